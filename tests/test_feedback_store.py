"""The feedback store on SQLite: schema from the migrations, idempotent writes, export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import inspect

from serving.errors import UserError
from serving.feedback import FeedbackIn, FeedbackStore


def judgement(**changes: object) -> FeedbackIn:
    fields: dict[str, object] = {
        "sample_id": "ga-001",
        "head": "complaint",
        "action": "correct",
        "label": 0,
        "author": "qa-1",
        "channel": "review",
    }
    return FeedbackIn.model_validate({**fields, **changes})


@pytest.fixture
def store(tmp_path: Path) -> FeedbackStore:
    return FeedbackStore.open(f"sqlite:///{tmp_path / 'feedback.db'}")


def test_schema_comes_from_the_migrations(store: FeedbackStore) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert tables == {"feedback", "alembic_version"}


def test_repeated_key_is_stored_once(store: FeedbackStore) -> None:
    first = judgement(key="retry-key-1")
    stored = store.add([first])
    again = store.add([first.model_copy(update={"label": 1})])
    assert again == stored
    assert len(store.records()) == 1
    assert stored[0].created_at.tzinfo is not None


def test_latest_judgement_is_in_force_and_exported(store: FeedbackStore, tmp_path: Path) -> None:
    store.add([judgement(label=0), judgement(head="frustration", label=1)])
    store.add([judgement(label=1, author="qa-2")])
    current = {(r.sample_id, r.head): r for r in store.current()}
    assert current["ga-001", "complaint"].label == 1
    assert current["ga-001", "complaint"].author == "qa-2"
    assert len(store.records()) == 3
    out = tmp_path / "corrections.jsonl"
    assert store.export_jsonl(out) == 2
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(line["head"], line["label"]) for line in lines} == {
        ("complaint", 1),
        ("frustration", 1),
    }


def test_reopening_keeps_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    FeedbackStore.open(url).add([judgement()])
    assert len(FeedbackStore.open(url).records()) == 1


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown head"):
        judgement(head="anger")
    with pytest.raises(ValidationError):
        judgement(label=2)


def test_bad_url_is_a_user_error() -> None:
    with pytest.raises(UserError, match="cannot open the feedback store"):
        FeedbackStore.open("nosuchdb://x")
