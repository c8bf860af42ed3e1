"""predictions.jsonl and misclassified.jsonl: one `Sample` per evaluated message.

`evaluate` writes them and the review page reads them, both through the `Sample` model below,
so the format has one definition. A sample carries serving's decision (`predicted`: which side
of its threshold each head's score fell, from serving/core/decision/decide.py), so readers
never re-apply thresholds; `thresholds` is there to draw them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from serving.core.contract import HEADS, HeadName, mask_column
from serving.core.decision.decide import Decision
from serving.core.schemas import Result
from serving.feedback.schemas import SAMPLE_ID_MAX_CHARS

__all__ = [
    "ERROR_KINDS",
    "MISCLASSIFIED_FILE",
    "PREDICTIONS_FILE",
    "Sample",
    "SampleError",
    "SampleRoute",
    "build_records",
    "misclassified",
    "sample_errors",
    "write_jsonl",
]

PREDICTIONS_FILE = "predictions.jsonl"
MISCLASSIFIED_FILE = "misclassified.jsonl"
ErrorKind = Literal["false_positive", "false_negative", "uncertain"]
ERROR_KINDS: tuple[str, ...] = ErrorKind.__args__  # type: ignore[attr-defined]


class SampleError(BaseModel):
    head: HeadName
    kind: ErrorKind


class SampleRoute(BaseModel):
    name: str
    priority: str = ""
    reason: str = ""


class Sample(BaseModel):
    """One evaluated message; extra fields written by newer evaluate versions are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1, max_length=SAMPLE_ID_MAX_CHARS)  # judged by that id
    text: str
    source: str = ""
    split: str = ""
    labels: dict[str, float | None]
    scores: dict[str, float]
    thresholds: dict[str, float]
    predicted: dict[str, bool]  # per head: score >= threshold, as serving decided
    route: SampleRoute | None = None
    errors: list[SampleError] = Field(default_factory=list)
    label_quality: float | None = None
    label_issue: bool = False

    @field_validator("labels", "scores", "thresholds", "predicted")
    @classmethod
    def known_heads(cls, value: dict[str, object]) -> dict[str, object]:
        unknown = set(value) - set(HEADS)
        if unknown:
            raise ValueError(f"unknown heads {sorted(unknown)}")
        return value

    @field_validator("scores", "thresholds", "predicted")
    @classmethod
    def every_head(cls, value: dict[str, object]) -> dict[str, object]:
        missing = [h for h in HEADS if h not in value]
        if missing:
            raise ValueError(f"missing heads {missing}")
        return value


def sample_errors(
    labels: dict[str, float | None], predicted: dict[str, bool], uncertain: Sequence[str]
) -> list[SampleError]:
    """Per head: a wrong decision (label positive when >= 0.5 against serving's decision) or,
    failing that, `uncertain` when serving marks the head uncertain (a deciding score within
    the policy margin of its threshold)."""
    errors = []
    for head in HEADS:
        label = labels[head]
        if label is not None and (label >= 0.5) != predicted[head]:
            kind = "false_negative" if label >= 0.5 else "false_positive"
            errors.append(SampleError(head=head, kind=kind))
        elif head in uncertain:
            errors.append(SampleError(head=head, kind="uncertain"))
    return errors


def _labels(row: dict[str, Any]) -> dict[str, float | None]:
    """Dataset label per head; None where the head is masked or missing."""
    labels: dict[str, float | None] = {}
    for h in HEADS:
        value = row[h]
        usable = row[mask_column(h)] == 1 and value is not None and not math.isnan(value)
        labels[h] = float(value) if usable else None
    return labels


def build_records(
    frame: pd.DataFrame,
    results: Sequence[tuple[Decision, Result]],
    thresholds: dict[str, float],
    quality: np.ndarray,
    issue: np.ndarray,
) -> list[Sample]:
    """One sample per row of `frame` (same order as `results`: serving's decision and result
    object per row; quality, issue: shape (n,))."""
    records = []
    rows = frame.to_dict("records")
    for i, (row, (decision, result)) in enumerate(zip(rows, results, strict=True)):
        labels = _labels(row)
        records.append(
            Sample(
                id=str(row["id"]),
                text=str(row["text"]),
                source=str(row["source"]),
                split=str(row["split"]),
                labels=labels,
                scores=result.scores.model_dump(),
                thresholds={h: round(thresholds[h], 4) for h in HEADS},
                predicted=decision.above,
                route=SampleRoute(**result.route.model_dump()),
                errors=sample_errors(labels, decision.above, decision.uncertain),
                label_quality=None if math.isnan(quality[i]) else round(float(quality[i]), 4),
                label_issue=bool(issue[i]),
            )
        )
    return records


def misclassified(records: Iterable[Sample]) -> list[Sample]:
    """Samples wrong or uncertain on some head, likeliest wrong label first."""
    chosen = [r for r in records if r.errors]
    return sorted(chosen, key=lambda r: (r.label_quality is None, r.label_quality or 0.0, r.id))


def write_jsonl(path: Path, records: Iterable[Sample]) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(record.model_dump_json() + "\n")
            count += 1
    return count
