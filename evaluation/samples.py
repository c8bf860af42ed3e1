"""predictions.jsonl and misclassified.jsonl: one record per sample, the review page's input.

The record format is fixed by the shared schema (notes/schema.md): id, text, source, split,
labels, scores, thresholds, route, errors, label_quality, label_issue.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serving.contract import HEADS, mask_column

__all__ = ["ERROR_KINDS", "build_records", "misclassified", "sample_errors", "write_jsonl"]

ERROR_KINDS = ("false_positive", "false_negative", "uncertain")


def sample_errors(
    labels: dict[str, float | None],
    scores: dict[str, float],
    thresholds: dict[str, float],
    uncertain: Sequence[str],
) -> list[dict[str, str]]:
    """Per head: a wrong decision (label positive when >= 0.5, predicted when score >=
    threshold) or, failing that, `uncertain` when serving marks the head uncertain (a deciding
    score within the policy margin of its threshold)."""
    errors = []
    for head in HEADS:
        label = labels[head]
        if label is not None and (label >= 0.5) != (scores[head] >= thresholds[head]):
            kind = "false_negative" if label >= 0.5 else "false_positive"
            errors.append({"head": head, "kind": kind})
        elif head in uncertain:
            errors.append({"head": head, "kind": "uncertain"})
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
    results: Sequence[dict[str, Any]],
    probs: np.ndarray,
    thresholds: dict[str, float],
    quality: np.ndarray,
    issue: np.ndarray,
) -> list[dict[str, Any]]:
    """One record per row of `frame` (same order as `results`, the serving result objects;
    probs: (n, len(HEADS)) unrounded scores the decisions were made on; quality, issue: (n,))."""
    records = []
    rows = frame.to_dict("records")
    for i, (row, result) in enumerate(zip(rows, results, strict=True)):
        labels = _labels(row)
        exact = {h: float(probs[i, j]) for j, h in enumerate(HEADS)}
        records.append(
            {
                "id": str(row["id"]),
                "text": str(row["text"]),
                "source": str(row["source"]),
                "split": str(row["split"]),
                "labels": labels,
                "scores": result["scores"],
                "thresholds": {h: round(thresholds[h], 4) for h in HEADS},
                "route": result["route"],
                "errors": sample_errors(labels, exact, thresholds, result["uncertain"]),
                "label_quality": None if math.isnan(quality[i]) else round(float(quality[i]), 4),
                "label_issue": bool(issue[i]),
            }
        )
    return records


def misclassified(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records wrong or uncertain on some head, likeliest wrong label first."""
    chosen = [r for r in records if r["errors"]]
    return sorted(
        chosen,
        key=lambda r: (r["label_quality"] is None, r["label_quality"] or 0.0, r["id"]),
    )


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count
