"""The evaluation report the page reviews: predictions.jsonl and misclassified.jsonl.

Both files hold one `evaluation.samples.Sample` per line, with serving's decisions; the queue is
misclassified.jsonl in its order (likeliest wrong label first), the confusion matrices and
confusion-cell lists come from predictions.jsonl (every evaluated sample).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import ValidationError
from sklearn.metrics import confusion_matrix

from evaluation.samples import MISCLASSIFIED_FILE, PREDICTIONS_FILE, Sample
from serving.core.contract import HEADS
from serving.core.errors import BadInput

__all__ = ["OUTCOMES", "Report", "confusion", "hard_label", "load_report", "outcome"]

OUTCOMES = ("tp", "fp", "fn", "tn")


def hard_label(sample: Sample, head: str) -> int | None:
    """The dataset label cut at 0.5 (soft labels), None where the head is masked."""
    label = sample.labels.get(head)
    return None if label is None else int(label >= 0.5)


def outcome(sample: Sample, head: str) -> str | None:
    """tp/fp/fn/tn of the model's decision against the dataset label; None when masked."""
    label = hard_label(sample, head)
    if label is None:
        return None
    predicted = sample.predicted[head]
    return ("tn", "fp", "fn", "tp")[2 * label + int(predicted)]


@dataclass(frozen=True)
class Report:
    """Every evaluated sample by id, and the review queue (ids, in review order)."""

    folder: Path
    samples: dict[str, Sample]
    queue: list[str]

    @property
    def sources(self) -> list[str]:
        return sorted({s.source for s in self.samples.values()})


def _read(path: Path) -> list[Sample]:
    if not path.is_file():
        raise BadInput(f"report file missing: {path} (made by `helpdesk-scorer evaluate`)")
    samples: list[Sample] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                sample = Sample.model_validate(json.loads(line))
            except (json.JSONDecodeError, ValidationError) as exc:
                if isinstance(exc, ValidationError):
                    first = exc.errors()[0]
                    where = ".".join(str(p) for p in first["loc"]) or "line"
                    reason = f"{where}: {first['msg']}"
                else:
                    reason = f"not JSON ({exc.msg})"
                raise BadInput(f"{path}:{number}: {reason}") from None
            if sample.id in seen:
                raise BadInput(f"{path}:{number}: id {sample.id!r} appears twice")
            seen.add(sample.id)
            samples.append(sample)
    return samples


def load_report(folder: Path) -> Report:
    """Read and check both files; any problem is one BadInput naming file and line."""
    if not folder.is_dir():
        raise BadInput(f"report folder not found: {folder}")
    predictions = _read(folder / PREDICTIONS_FILE)
    misclassified = _read(folder / MISCLASSIFIED_FILE)
    samples = {s.id: s for s in predictions}
    samples.update((s.id, s) for s in misclassified)
    return Report(folder, samples, [s.id for s in misclassified])


def confusion(samples: Iterable[Sample]) -> dict[str, dict[str, int]]:
    """Per head: TP/FP/FN/TN counts of the model's decisions, and how many were unlabelled."""
    rows = list(samples)
    counts: dict[str, dict[str, int]] = {}
    for head in HEADS:
        labelled = [s for s in rows if hard_label(s, head) is not None]
        truth = np.array([hard_label(s, head) for s in labelled], dtype=int)
        predicted = np.array([s.predicted[head] for s in labelled], dtype=int)
        tn, fp, fn, tp = confusion_matrix(truth, predicted, labels=[0, 1]).ravel()
        counts[head] = {
            "tp": int(tp),
            "fp": int(fp),
            "fn": int(fn),
            "tn": int(tn),
            "unlabelled": len(rows) - len(labelled),
        }
    return counts
