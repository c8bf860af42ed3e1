"""Figures of one head with seeded bootstrap confidence intervals, for every model at once.

Every model is scored on the same bootstrap resamples, so the interval of a difference (model
minus baseline) is paired: it says whether the gap is larger than the resampling noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_fscore_support,
)

from serving.core.metrics import auroc, expected_calibration_error, f1_at, hard_labels

__all__ = [
    "CI_LEVEL",
    "FAST",
    "METRICS",
    "bootstrap",
    "head_figures",
    "threshold_table",
]

CI_LEVEL = 0.95
TABLE_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

Metric = Callable[[np.ndarray, np.ndarray, float], float]


def _average_precision(y: np.ndarray, p: np.ndarray, _: float) -> float:
    return float(average_precision_score(y, p)) if 0 < y.sum() < len(y) else math.nan


#: name -> f(labels (n,), probs (n,), threshold) -> value; F1 uses each model's own threshold.
METRICS: dict[str, Metric] = {
    "auroc": lambda y, p, _: auroc(y, p),
    "average_precision": _average_precision,
    "f1": f1_at,
    "ece": lambda y, p, _: expected_calibration_error(y, p),
}


def _auroc_fast(y: np.ndarray, p: np.ndarray, _: float) -> float:
    """Mann-Whitney form of ROC AUC (ties count half), equal to sklearn's; y in {0, 1}."""
    positives = int(y.sum())
    negatives = len(y) - positives
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _average_precision_fast(y: np.ndarray, p: np.ndarray, _: float) -> float:
    """sklearn's average precision (step-wise, one step per distinct score); y in {0, 1}."""
    order = np.argsort(-p, kind="mergesort")
    ends = np.r_[np.flatnonzero(np.diff(p[order])), len(y) - 1]
    tps = np.cumsum(y[order])[ends]
    precision = tps / (ends + 1)
    return float(np.sum(np.diff(np.r_[0.0, tps / tps[-1]]) * precision))


def _f1_fast(y: np.ndarray, p: np.ndarray, threshold: float) -> float:
    predicted = p >= threshold
    tp = int((predicted & (y == 1)).sum())
    wrong = int((predicted != (y == 1)).sum())
    return 2 * tp / (2 * tp + wrong) if tp or wrong else 0.0


#: The same metrics for the bootstrap loop, where sklearn's input checks would dominate the
#: run time: plain numpy on hard labels with both classes present (tests pin them to sklearn).
FAST: dict[str, Metric] = {
    "auroc": _auroc_fast,
    "average_precision": _average_precision_fast,
    "f1": _f1_fast,
    "ece": METRICS["ece"],
}

Interval = dict[str, float | None]


def _interval(value: float, draws: list[float]) -> Interval:
    finite = [d for d in draws if not math.isnan(d)]
    if math.isnan(value):
        return {"value": None, "low": None, "high": None}
    if not finite:
        return {"value": value, "low": None, "high": None}
    tail = (1 - CI_LEVEL) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return {"value": value, "low": float(low), "high": float(high)}


def bootstrap(
    labels: np.ndarray,
    probs: dict[str, np.ndarray],
    thresholds: dict[str, float],
    names: Sequence[str],
    resamples: int,
    seed: int,
    reference: str | None = None,
) -> tuple[dict[str, dict[str, Interval]], dict[str, dict[str, Interval]]]:
    """Point value and percentile CI of each metric in `names` for each model.

    labels: (n,) soft or hard labels; probs: model -> (n,) probabilities; thresholds: model ->
    its decision threshold. With `reference` (e.g. "baseline") also returns, per other model,
    the paired difference model - reference. Resamples with a single class are skipped.
    """
    y = hard_labels(labels)
    point = {m: {n: METRICS[n](y, p, thresholds[m]) for n in names} for m, p in probs.items()}
    draws: dict[str, dict[str, list[float]]] = {m: {n: [] for n in names} for m in probs}
    rng = np.random.default_rng(seed)
    for _ in range(resamples if len(np.unique(y)) == 2 else 0):
        rows = rng.integers(0, len(y), len(y))
        if y[rows].min() == y[rows].max():
            continue
        for m, p in probs.items():
            for n in names:
                draws[m][n].append(FAST[n](y[rows], p[rows], thresholds[m]))
    figures = {m: {n: _interval(point[m][n], draws[m][n]) for n in names} for m in probs}
    deltas: dict[str, dict[str, Interval]] = {}
    if reference in probs:
        for m in probs:
            if m != reference:
                deltas[m] = {
                    n: _interval(
                        point[m][n] - point[reference][n],
                        [a - b for a, b in zip(draws[m][n], draws[reference][n], strict=True)],
                    )
                    for n in names
                }
    return figures, deltas


def threshold_table(
    labels: np.ndarray, probs: np.ndarray, thresholds: Sequence[float] = TABLE_THRESHOLDS
) -> list[dict[str, float]]:
    """Precision, recall, F1 and share flagged at each threshold; labels, probs: shape (n,)."""
    y = hard_labels(labels)
    rows = []
    for t in sorted({round(float(t), 4) for t in thresholds}):
        predicted = (np.asarray(probs) >= t).astype(int)
        precision, recall, f1, _ = precision_recall_fscore_support(
            y, predicted, average="binary", zero_division=0
        )
        rows.append(
            {
                "threshold": t,
                "precision": float(precision),
                "recall": float(recall),
                "f1": float(f1),
                "flagged": float(predicted.mean()),
            }
        )
    return rows


def _confusion(labels: np.ndarray, probs: np.ndarray, threshold: float) -> list[list[int]]:
    """[[true negatives, false positives], [false negatives, true positives]]."""
    matrix = confusion_matrix(hard_labels(labels), np.asarray(probs) >= threshold, labels=[0, 1])
    return [[int(v) for v in row] for row in matrix]


def head_figures(
    labels: np.ndarray,
    probs: dict[str, np.ndarray],
    thresholds: dict[str, float],
    sources: np.ndarray,
    resamples: int,
    seed: int,
) -> dict[str, object]:
    """Everything the report shows for one head over its labelled rows.

    labels, sources: shape (n,); probs: model -> (n,). Whole-split figures get CIs for every
    metric; the per-source breakdown gets CIs for AUROC only (to keep evaluation in minutes).
    """
    figures, deltas = bootstrap(
        labels, probs, thresholds, list(METRICS), resamples, seed, reference="baseline"
    )
    by_source: dict[str, object] = {}
    for source in sorted(set(sources.tolist())):
        rows = sources == source
        source_figures, _ = bootstrap(
            labels[rows],
            {m: p[rows] for m, p in probs.items()},
            thresholds,
            ["auroc"],
            resamples,
            seed,
        )
        for m, p in probs.items():
            for n in ("average_precision", "f1", "ece"):
                value = METRICS[n](hard_labels(labels[rows]), p[rows], thresholds[m])
                source_figures[m][n] = _interval(value, [])
        by_source[source] = {
            "n": int(rows.sum()),
            "positives": int(hard_labels(labels[rows]).sum()),
            "models": source_figures,
        }
    return {
        "n": len(labels),
        "positives": int(hard_labels(labels).sum()),
        "thresholds": thresholds,
        "models": figures,
        "confusion": {m: _confusion(labels, p, thresholds[m]) for m, p in probs.items()},
        "delta_vs_baseline": deltas,
        "threshold_table": {
            m: threshold_table(labels, p, [*TABLE_THRESHOLDS, thresholds[m]])
            for m, p in probs.items()
        },
        "sources": by_source,
    }
