"""Per-head temperature scaling and threshold choice, fitted on in-domain dev data."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve

from serving.core.artifact import TEMPERATURE_RANGE
from serving.core.metrics import best_f1_threshold, hard_labels

__all__ = ["fit_temperature", "frustration_cutoffs", "sigmoid"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    p = np.clip(sigmoid(logits / temperature), 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in sigmoid(logit / T) that minimises dev log-loss (log-spaced grid, then refined).

    logits, labels: shape (n,). A 1-D search is exact enough and needs no optimiser.
    """
    y = hard_labels(labels).astype(float)
    low, high = TEMPERATURE_RANGE  # what a manifest may hold
    grid = np.exp(np.linspace(np.log(low), np.log(high), 200))
    best = grid[int(np.argmin([_nll(logits, y, t) for t in grid]))]
    fine = np.linspace(max(best * 0.95, low), min(best * 1.05, high), 41)
    return float(fine[int(np.argmin([_nll(logits, y, t) for t in fine]))])


def frustration_cutoffs(
    probs: np.ndarray, frustrated: np.ndarray, levels: np.ndarray
) -> dict[str, float]:
    """Cut-offs on the calibrated frustration score (shape (n,) each): `mild` from F1 over
    none vs any; `strong` where strong vs mild is best told apart among the frustrated
    (Youden's J: F1 would put every frustrated message in the larger class)."""
    mild = best_f1_threshold(frustrated, probs)
    among = hard_labels(frustrated) == 1
    strong_labels = (levels[among] == "strong").astype(int)
    if len(np.unique(strong_labels)) < 2:
        return {"mild": mild, "strong": max(mild, 0.9)}
    fpr, tpr, thresholds = roc_curve(strong_labels, probs[among])
    strong = float(min(thresholds[int(np.argmax(tpr - fpr))], 1.0))
    return {"mild": mild, "strong": max(strong, mild)}
