"""The feedback store on SQLite and PostgreSQL: schema from the migrations (column sizes equal to
the shared limits), idempotent writes, export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import inspect

from serving.core.contract import HEADS
from serving.core.errors import BadInput, StoreUnavailable
from serving.feedback import FeedbackIn, FeedbackStore
from serving.feedback.models import Feedback
from serving.feedback.schemas import (
    ACTION_MAX_CHARS,
    ACTIONS,
    AUTHOR_MAX_CHARS,
    CHANNEL_MAX_CHARS,
    CHANNELS,
    COMMENT_MAX_CHARS,
    HEAD_MAX_CHARS,
    KEY_MAX_CHARS,
    SAMPLE_ID_MAX_CHARS,
    SHA256_CHARS,
    SOURCE_MAX_CHARS,
)


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
def store(feedback_url: str) -> Iterator[FeedbackStore]:
    opened = FeedbackStore.open(feedback_url)
    yield opened
    opened.close()


def test_schema_comes_from_the_migrations(store: FeedbackStore) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert tables == {"feedback", "alembic_version"}


def test_migrated_column_sizes_equal_the_shared_limits(store: FeedbackStore) -> None:
    """The migration spells its sizes out; models.py takes them from schemas.py: both agree."""
    migrated = {
        column["name"]: getattr(column["type"], "length", None)
        for column in inspect(store.engine).get_columns("feedback")
    }
    declared = {
        column.name: getattr(column.type, "length", None) for column in Feedback.__table__.c
    }
    assert migrated == declared
    assert {name: size for name, size in declared.items() if size is not None} == {
        "key": KEY_MAX_CHARS,
        "sample_id": SAMPLE_ID_MAX_CHARS,
        "head": HEAD_MAX_CHARS,
        "action": ACTION_MAX_CHARS,
        "model_sha256": SHA256_CHARS,
        "source": SOURCE_MAX_CHARS,
        "author": AUTHOR_MAX_CHARS,
        "channel": CHANNEL_MAX_CHARS,
    }


def test_values_at_every_limit_are_stored_and_longer_ones_refused(store: FeedbackStore) -> None:
    """PostgreSQL enforces column sizes: a validator looser than its column would fail here."""
    longest = {
        "sample_id": "s" * SAMPLE_ID_MAX_CHARS,
        "key": "k" * KEY_MAX_CHARS,
        "author": "a" * AUTHOR_MAX_CHARS,
        "source": "x" * SOURCE_MAX_CHARS,
        "comment": "c" * COMMENT_MAX_CHARS,
        "model_sha256": "a" * SHA256_CHARS,
    }
    head = max(HEADS, key=len)
    action, channel = max(ACTIONS, key=len), max(CHANNELS, key=len)
    (stored,) = store.add([judgement(**longest, head=head, action=action, channel=channel)])
    assert stored.model_dump(include=set(longest)) == longest
    for field, value in longest.items():
        with pytest.raises(ValidationError, match=field):
            judgement(**{field: value + "a"})


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


def test_reopening_keeps_rows(feedback_url: str) -> None:
    first = FeedbackStore.open(feedback_url)
    first.add([judgement()])
    first.close()
    again = FeedbackStore.open(feedback_url)
    assert len(again.records()) == 1
    again.close()


def test_add_counted_tells_new_from_repeated(store: FeedbackStore) -> None:
    one, two = judgement(key="key-one-1"), judgement(key="key-two-2", head="boredom")
    assert store.add_counted([one])[1] == 1
    records, inserted = store.add_counted([one, two, two])
    assert inserted == 1 and [r.key for r in records] == ["key-one-1", "key-two-2", "key-two-2"]


def test_concurrent_first_opens_migrate_once(feedback_url: str) -> None:
    with ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(lambda _: FeedbackStore.open(feedback_url), range(4)))
    stores[0].add([judgement()])
    assert all(len(s.records()) == 1 for s in stores)
    for opened in stores:
        opened.close()


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown head"):
        judgement(head="anger")
    with pytest.raises(ValidationError):
        judgement(label=2)


def test_bad_url_is_a_user_error() -> None:
    with pytest.raises(BadInput, match="cannot open the feedback store"):
        FeedbackStore.open("nosuchdb://x")


def test_unreachable_database_hides_the_password() -> None:
    with pytest.raises(StoreUnavailable, match="cannot open the feedback store") as caught:
        FeedbackStore.open("postgresql+psycopg://u:s3cret@127.0.0.1:1/none?connect_timeout=2")
    assert "s3cret" not in str(caught.value) and "***" in str(caught.value)


def test_missing_driver_prints_the_install_hint() -> None:
    with pytest.raises(BadInput, match=r"pip install 'helpdesk-scorer\[postgres\]'"):
        FeedbackStore.open("postgresql+pg8000://u@127.0.0.1/none")
