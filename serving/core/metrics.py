"""Metric functions over (labels, probs) arrays, shared by training, export and reports.

labels: shape (n,), values in {0, 1} (soft labels are cut at 0.5 by `hard_labels`);
probs: shape (n,), calibrated probabilities in [0, 1].
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import f1_score, precision_recall_curve, roc_auc_score

__all__ = ["auroc", "best_f1_threshold", "expected_calibration_error", "f1_at", "hard_labels"]


def hard_labels(labels: np.ndarray) -> np.ndarray:
    return (np.asarray(labels, dtype=float) >= 0.5).astype(int)


def auroc(labels: np.ndarray, probs: np.ndarray) -> float:
    """ROC AUC, or NaN when only one class is present."""
    y = hard_labels(labels)
    return float(roc_auc_score(y, probs)) if len(np.unique(y)) == 2 else math.nan


def f1_at(labels: np.ndarray, probs: np.ndarray, threshold: float) -> float:
    return float(f1_score(hard_labels(labels), np.asarray(probs) >= threshold, zero_division=0))


def best_f1_threshold(labels: np.ndarray, probs: np.ndarray) -> float:
    """The probability cut that maximises F1 (chosen on dev, applied to test), kept strictly
    inside (0, 1) as a served manifest requires: a saturated probability of exactly 1.0 (a
    small temperature) would otherwise become the cut itself."""
    precision, recall, thresholds = precision_recall_curve(hard_labels(labels), probs)
    f1 = 2 * precision * recall / np.clip(precision + recall, 1e-12, None)
    best = float(thresholds[int(np.argmax(f1[:-1]))]) if len(thresholds) else 0.5
    return float(np.clip(best, 1e-6, 1 - 1e-6))


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = 10) -> float:
    """ECE with equal-width bins: the weighted mean gap between confidence and frequency.

    A bin's weight times its gap, (count / n) * |mean p - mean y|, is |sum p - sum y| / n,
    so per-bin sums (bincount) give it without a loop: the bootstrap calls this thousands of
    times.
    """
    y, p = hard_labels(labels), np.asarray(probs, dtype=float)
    if len(p) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    gaps = np.bincount(index, weights=p, minlength=bins) - np.bincount(
        index, weights=y, minlength=bins
    )
    return float(np.abs(gaps).sum() / len(p))
