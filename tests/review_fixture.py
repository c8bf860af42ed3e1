"""A hand-written evaluation report (predictions.jsonl + misclassified.jsonl) for the review
page tests, in the schema `evaluate` writes. Texts use the tiny model's vocabulary.

Thresholds are 0.5 everywhere (`predicted` is score >= 0.5, as serving would decide).
Confusion counts over the six predictions:
frustration tp 2 fp 1 fn 0 tn 3; complaint tp 2 fp 0 fn 1 tn 3; legitimacy tp 3, 3 unlabelled.
"""

from __future__ import annotations

import json
from pathlib import Path

from serving.core.contract import HEADS
from serving.feedback import FeedbackIn

__all__ = ["QUEUE", "agent_flag", "write_report"]


def _row(
    sample_id: str,
    text: str,
    source: str,
    labels: tuple[float, float, float, float | None],
    scores: tuple[float, float, float, float],
    errors: list[tuple[str, str]],
) -> dict[str, object]:
    return {
        "id": sample_id,
        "text": text,
        "source": source,
        "split": "test",
        "labels": dict(zip(HEADS, labels, strict=True)),
        "scores": dict(zip(HEADS, scores, strict=True)),
        "thresholds": dict.fromkeys(HEADS, 0.5),
        "predicted": {h: score >= 0.5 for h, score in zip(HEADS, scores, strict=True)},
        "route": {"name": "standard", "priority": "normal", "reason": "nothing stood out"},
        "errors": [{"head": h, "kind": k} for h, k in errors],
        "label_quality": 0.1,
        "label_issue": False,
    }


ROWS = {
    "a1": _row(
        "a1",
        "my order never arrived and i am angry",
        "gold",
        (1, 0, 1, 1),
        (0.9, 0.1, 0.2, 0.8),
        [("complaint", "false_negative")],
    ),
    "a2": _row(
        "a2",
        "ok",
        "complaints",
        (0, 1, 0, None),
        (0.1, 0.3, 0.1, 0.5),
        [("boredom", "false_negative")],
    ),
    "a3": _row(
        "a3",
        "thanks great help love it",
        "gold",
        (0, 0, 0, None),
        (0.7, 0.1, 0.1, 0.2),
        [("frustration", "false_positive")],
    ),
    "a4": _row(
        "a4",
        "charged twice this is terrible",
        "complaints",
        (1, 0, 1, 1),
        (0.52, 0.1, 0.9, 0.9),
        [("frustration", "uncertain")],
    ),
    "a5": _row("a5", "please change my address", "gold", (0, 0, 0, None), (0.1,) * 4, []),
    "a6": _row(
        "a6", "the parcel was late by a week", "complaints", (0, 0, 1, 1), (0.1, 0.1, 0.8, 0.7), []
    ),
}
#: misclassified.jsonl, in its order (likeliest wrong label first).
QUEUE = ["a3", "a1", "a2", "a4"]


def write_report(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = {
        "predictions.jsonl": list(ROWS.values()),
        "misclassified.jsonl": [ROWS[i] for i in QUEUE],
    }
    for name, rows in lines.items():
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def agent_flag(message_id: str) -> FeedbackIn:
    """What an agent sends through the scoring API: this message's frustration was missed."""
    return FeedbackIn(
        sample_id=message_id,
        head="frustration",
        action="flag",
        label=1,
        author="crm-agent",
        channel="api",
        model_score=0.2,
        text="still waiting for my refund",
    )
