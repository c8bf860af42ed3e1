"""The gold set follows the labelling guide, its split is stable, agreement is computed right."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from serving.core.contract import HEADS
from serving.core.errors import BadInput
from training.gold import agreement, assign_split, load_labelled, validate

GOLD = Path(__file__).parents[1] / "data" / "gold"
GOOD = {
    "id": "x",
    "text": "charged twice",
    "frustration": 0,
    "frustration_level": "none",
    "boredom": 0,
    "complaint": 1,
    "legitimacy": 1,
}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"text": "  "}, "empty"),
        ({"frustration": 2}, "frustration must be 0 or 1"),
        ({"frustration": 1}, "frustration_level"),
        ({"legitimacy": None}, "needs legitimacy"),
        ({"complaint": 0}, "must be null"),
    ],
)
def test_validate_rejects_guide_violations(change: dict[str, object], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        validate({**GOOD, **change}, "here")


def test_split_is_stable_and_spread() -> None:
    splits = Counter(assign_split(f"id-{i}") for i in range(2000))
    assert assign_split("ga-001") == assign_split("ga-001")
    assert 0.30 < splits["test"] / 2000 < 0.40 and 0.20 < splits["dev"] / 2000 < 0.30


def test_agreement_kappa() -> None:
    first = {str(i): {**GOOD, "id": str(i), "boredom": i % 2} for i in range(10)}
    second = {k: dict(v) for k, v in first.items()}
    assert agreement(first, second)["boredom"]["kappa"] == 1.0
    second["0"]["boredom"] = 1
    result = agreement(first, second)["boredom"]
    assert result["agreement"] == 0.9 and 0.7 < result["kappa"] < 0.9


def test_committed_gold_set_meets_the_issue() -> None:
    records = load_labelled([GOLD / "gold.jsonl"])
    assert len(records) >= 500
    splits = Counter(r["split"] for r in records)
    assert splits["test"] >= 200
    for split in ("train", "dev", "test"):
        rows = [r for r in records if r["split"] == split]
        for head in HEADS:
            values = {r[head] for r in rows if r[head] is not None}
            assert values == {0, 1}, (split, head)
    report = json.loads((GOLD / "agreement.json").read_text())
    assert report["second_pass"] >= 150
