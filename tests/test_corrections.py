"""Corrections from the feedback store merged by `prepare --corrections`; the feedback CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert, inspect

from evaluation.review.judgements import in_force as review_in_force
from serving.core.contract import HEADS, mask_column
from serving.core.errors import BadInput
from serving.feedback import FeedbackIn, FeedbackRecord, FeedbackStore
from serving.feedback.models import Feedback
from serving.feedback.schemas import in_force
from tests.test_prepare import project  # noqa: F401  (fixture)
from training.corrections import apply_corrections, load_corrections
from training.dataset_rules import pool_split
from training.prepare import PrepareConfig

ROOT = Path(__file__).parents[1]
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def record(n: int, **fields: object) -> FeedbackRecord:
    base: dict[str, object] = {
        "id": n,
        "key": f"key-{n:08d}",
        "sample_id": "g1",
        "head": "complaint",
        "action": "correct",
        "label": 0,
        "author": "qa-1",
        "channel": "review",
        "created_at": T0 + timedelta(minutes=n),
    }
    return FeedbackRecord.model_validate({**base, **fields})


def dataset() -> pd.DataFrame:
    rows = [
        ("g1", "My parcel never arrived, order 55", 0.0, 0.0, 1.0, 1.0, "none", "test"),
        ("g2", "ok", 0.0, 1.0, 0.0, None, "none", "train"),
        ("row-3", "This is ridiculous, charged twice!!", 1.0, 0.0, 1.0, 0.8, "strong", "dev"),
    ]
    frame = pd.DataFrame(rows, columns=["id", "text", *HEADS, "frustration_level", "split"]).assign(
        source="gold"
    )
    for head in HEADS:
        frame[mask_column(head)] = frame[head].notna().astype("float32")
    return frame


def test_correction_by_id_overrides_and_keeps_who_when_and_before() -> None:
    data, stats = apply_corrections(dataset(), [record(1, head="frustration", label=1)], 13)
    row = data.set_index("id").loc["g1"]
    assert row["frustration"] == 1.0 and row["frustration_level"] == "mild"
    assert row["frustration_before"] == 0.0 and row["frustration_corrected_by"] == "qa-1"
    assert row["frustration_corrected_at"] == (T0 + timedelta(minutes=1)).isoformat()
    assert pd.isna(row["complaint_before"])  # untouched heads carry no correction
    assert stats["by_id"] == 1 and stats["changed"] == 1 and stats["new_rows"] == 0


def test_complaint_withdrawn_masks_legitimacy_and_null_label_masks_the_head() -> None:
    records = [record(1, label=0), record(2, sample_id="row-3", head="boredom", label=None)]
    data, stats = apply_corrections(dataset(), records, 13)
    g1 = data.set_index("id").loc["g1"]
    assert g1["complaint"] == 0.0 and g1[mask_column("complaint")] == 1.0
    assert np.isnan(g1["legitimacy"]) and g1[mask_column("legitimacy")] == 0.0
    row3 = data.set_index("id").loc["row-3"]
    assert np.isnan(row3["boredom"]) and row3[mask_column("boredom")] == 0.0
    assert stats["legitimacy_masked"] == 1


def test_agent_flags_match_by_text_or_become_feedback_rows() -> None:
    records = [
        # an agent's ticket id, the text of an existing row: corrects that row
        record(1, sample_id="ticket-9", head="boredom", label=1, text="OK", channel="api"),
        # an unknown message: a new row, split by the text hash like the public pool
        record(2, sample_id="ticket-10", head="frustration", label=1, text="where is it?!"),
        record(3, sample_id="ticket-10", head="complaint", label=1, text="where is it?!"),
        # an id that exists but names another message: never overrides it
        record(4, sample_id="g1", head="boredom", label=1, text="whatever, forget it"),
        # an unknown id and no text: nothing to attach it to
        record(5, sample_id="nowhere", head="boredom", label=1),
    ]
    data, stats = apply_corrections(dataset(), records, 13)
    assert data.set_index("id").loc["g2", "boredom_corrected_by"] == "qa-1"
    assert data.set_index("id").loc["g1", "boredom"] == 0.0
    added = data[data["source"] == "feedback"].set_index("id")
    assert set(added.index) == {"ticket-10", "feedback:g1"}
    ticket = added.loc["ticket-10"]
    assert ticket["split"] == pool_split("where is it?!", 13)
    assert ticket["frustration"] == 1.0 and ticket["complaint"] == 1.0
    assert ticket[mask_column("boredom")] == 0.0 and ticket[mask_column("legitimacy")] == 0.0
    assert stats["by_text"] == 1 and stats["new_rows"] == 2 and stats["skipped"] == 1


def test_latest_judgement_wins_across_files(tmp_path: Path) -> None:
    older, newer = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    newer.write_text(record(1, label=1).model_dump_json() + "\n")
    older.write_text(record(2, label=0, author="qa-2").model_dump_json() + "\n\n")
    (only,) = load_corrections([newer, older])
    assert only.label == 0 and only.author == "qa-2"


def test_same_time_across_files_the_highest_id_wins(tmp_path: Path) -> None:
    """The store's tie-break, also across files (it used to be the file given last)."""
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text(record(2, label=1).model_dump_json() + "\n")
    second.write_text(record(1, label=0, created_at=T0 + timedelta(minutes=2)).model_dump_json())
    (only,) = load_corrections([first, second])
    assert only.id == 2 and only.label == 1


def write_jsonl(path: Path, records: list[FeedbackRecord]) -> Path:
    path.write_text("".join(r.model_dump_json() + "\n" for r in records))
    return path


def test_store_review_page_and_prepare_agree_on_the_judgement_in_force(
    feedback_url: str, tmp_path: Path
) -> None:
    """Ids out of time order (g1 complaint: the store and the page took the highest id,
    prepare the latest time) and one time shared (row-3: highest id): one rule for all."""
    rows = [
        record(1, label=1, created_at=T0 + timedelta(minutes=9)),
        record(2, label=0, author="qa-2", created_at=T0 + timedelta(minutes=8)),
        record(3, sample_id="row-3", created_at=T0),
        record(4, sample_id="row-3", label=1, created_at=T0),
        record(5, head="boredom", label=1),
    ]
    store = FeedbackStore.open(feedback_url)
    with store.engine.begin() as conn:
        conn.execute(insert(Feedback), [r.model_dump() for r in rows])
    expected = {1, 4, 5}
    assert {r.id for r in store.current()} == expected
    assert {r.id for r in in_force(store.records())} == expected
    page = [r for sample in ("g1", "row-3") for r in review_in_force(store, sample).values()]
    assert {r.id for r in page} == expected
    export = tmp_path / "export.jsonl"
    assert store.export_jsonl(export) == len(expected)
    store.close()
    assert {r.id for r in load_corrections([export])} == expected
    # every stored judgement, spread over two files in reverse order: the same three
    files = [
        write_jsonl(tmp_path / "new.jsonl", rows[3:]),
        write_jsonl(tmp_path / "old.jsonl", rows[:3]),
    ]
    assert {r.id for r in load_corrections(files[::-1])} == expected
    assert {r.id for r in load_corrections(files)} == expected


def test_bad_corrections_file_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(record(1).model_dump_json() + "\n" + '{"head": "anger"}\n')
    with pytest.raises(BadInput, match=r"bad\.jsonl:2"):
        load_corrections([bad])
    with pytest.raises(BadInput, match="not found"):
        load_corrections([tmp_path / "missing.jsonl"])


def test_prepare_merges_an_export_and_the_card_counts_it(
    project: dict[str, Path],  # noqa: F811
) -> None:
    store = FeedbackStore.open(f"sqlite:///{project['root'] / 'feedback.db'}")
    judgement = {"head": "complaint", "action": "correct", "author": "qa-1", "channel": "review"}
    store.add(
        [
            FeedbackIn.model_validate({**judgement, "sample_id": "g1", "label": 0}),
            FeedbackIn.model_validate(
                {
                    **judgement,
                    "sample_id": "t-77",
                    "label": 1,
                    "channel": "api",
                    "action": "flag",
                    "text": "my refund is three weeks late",
                }
            ),
        ]
    )
    export = project["root"] / "corrections.jsonl"
    assert store.export_jsonl(export) == 2
    from training.prepare import prepare

    out = prepare(
        PrepareConfig(
            mirror=project["mirror"],
            out=project["root"] / "out",
            sources=project["sources"],
            gold_dir=project["gold"],
            handwritten_dir=project["root"] / "none",
            real_gold_dir=project["root"] / "no-real-gold",
            real_scale_dir=project["root"] / "no-real-scale",
            cache=project["root"] / "cache",
            corrections=[export],
        )
    )
    data = pd.read_parquet(out.dataset).set_index("id")
    assert data.loc["g1", "complaint"] == 0.0 and data.loc["g1", "complaint_before"] == 1.0
    assert data.loc["t-77", "source"] == "feedback"
    assert (data.loc[data[mask_column("legitimacy")] == 1, "complaint"] == 1).all()
    assert data.groupby("text")["split"].nunique().max() == 1
    assert "**1 corrections applied**" in out.card.read_text()


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout, from any folder
    return subprocess.run(
        [sys.executable, "-m", "serving.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
    )


def test_feedback_cli_migrates_and_exports(tmp_path: Path, feedback_url: str) -> None:
    migrated = run_cli("feedback", "migrate", "--url", feedback_url)
    assert migrated.returncode == 0, migrated.stderr
    store = FeedbackStore(__import__("sqlalchemy").create_engine(feedback_url))
    assert "feedback" in inspect(store.engine).get_table_names()
    store.add(
        [
            FeedbackIn.model_validate(
                {
                    "sample_id": "g1",
                    "head": "boredom",
                    "action": "confirm",
                    "label": 1,
                    "author": "qa-1",
                    "channel": "review",
                }
            )
        ]
    )
    store.close()
    out = tmp_path / "corrections.jsonl"
    exported = run_cli("feedback", "export", "--url", feedback_url, "-o", str(out))
    assert exported.returncode == 0 and "exported 1 judgements" in exported.stdout
    assert json.loads(out.read_text())["sample_id"] == "g1"


@pytest.mark.parametrize(
    "args, message",
    [
        (["feedback", "export", "--url", "nosuch://x", "-o", "x.jsonl"], "cannot open"),
        (
            ["feedback", "migrate", "--url", "postgresql+pg8000://u@h/d"],
            "helpdesk-scorer[postgres]",
        ),
        (["prepare", "--corrections", "/nonexistent.jsonl"], "corrections file not found"),
    ],
)
def test_feedback_cli_errors_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
