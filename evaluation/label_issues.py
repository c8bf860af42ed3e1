"""Label-issue ranking with cleanlab over out-of-sample predicted probabilities.

Pure functions over (labels, probs) for one binary head, like cleanlab's own API, plus the
combination over heads that orders the review queue (likeliest wrong label first). The
probabilities must be out-of-sample (dev/test rows the model was not trained on), or a model
that memorised a wrong label hides it.
"""

from __future__ import annotations

import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores

from serving.core.metrics import hard_labels

__all__ = ["METHOD", "label_issue_mask", "label_quality", "rank_label_issues", "sample_quality"]

METHOD = (
    "cleanlab 2.9 find_label_issues (prune_by_noise_rate) per head, "
    "label quality = self-confidence (probability the model gives the dataset label)"
)


def _pred_probs(probs: np.ndarray) -> np.ndarray:
    """(n,) positive-class probabilities -> (n, 2) class probabilities, as cleanlab wants."""
    p = np.clip(np.asarray(probs, dtype=float), 0.0, 1.0)
    return np.column_stack([1.0 - p, p])


def label_quality(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-sample label quality in [0, 1], lower = label likelier wrong.

    labels: (n,) soft or hard labels (cut at 0.5); probs: (n,) out-of-sample P(positive).
    """
    if len(labels) == 0:
        return np.zeros(0)
    return np.asarray(
        get_label_quality_scores(hard_labels(labels), _pred_probs(probs)), dtype=float
    )


def label_issue_mask(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Boolean (n,) mask of samples cleanlab flags as likely mislabelled.

    labels: (n,) soft or hard labels (cut at 0.5); probs: (n,) out-of-sample P(positive).
    A head with only one class present has nothing to contrast: no sample is flagged.
    """
    y = hard_labels(labels)
    if len(np.unique(y)) < 2:
        return np.zeros(len(y), dtype=bool)
    return np.asarray(find_label_issues(y, _pred_probs(probs), n_jobs=1), dtype=bool)


def rank_label_issues(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Indices of the flagged samples, likeliest wrong label first (lowest quality)."""
    flagged = np.flatnonzero(label_issue_mask(labels, probs))
    quality = label_quality(labels, probs)
    return flagged[np.argsort(quality[flagged], kind="stable")]


def sample_quality(
    labels: np.ndarray, probs: np.ndarray, masks: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Combine heads: per sample the worst label quality, its head, and whether any head is
    flagged.

    labels, probs, masks: (n, heads); masks is 1 where the head is labelled. Returns
    quality (n,) with NaN where no head is labelled, worst head index (n,) (-1 there), and
    issue (n,) booleans.
    """
    n, heads = labels.shape
    quality = np.full((n, heads), np.nan)
    issue = np.zeros(n, dtype=bool)
    for j in range(heads):
        rows = masks[:, j] == 1
        quality[rows, j] = label_quality(labels[rows, j], probs[rows, j])
        issue[np.flatnonzero(rows)[label_issue_mask(labels[rows, j], probs[rows, j])]] = True
    labelled = ~np.isnan(quality).all(axis=1)
    worst = np.full(n, -1)
    worst[labelled] = np.nanargmin(quality[labelled], axis=1)
    best = np.full(n, np.nan)
    best[labelled] = quality[labelled, worst[labelled]]
    return best, worst, issue
