"""Label-issue functions on hand-made arrays: the planted wrong labels come out first."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.label_issues import (
    label_issue_mask,
    label_quality,
    rank_label_issues,
    sample_quality,
)
from evaluation.stats import FAST, METRICS, bootstrap

PLANTED = [3, 17, 42, 88, 150]


def _arrays() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    truth = (np.arange(200) % 3 == 0).astype(float)
    probs = np.clip(np.where(truth == 1, 0.85, 0.12) + rng.normal(0, 0.05, 200), 0.01, 0.99)
    labels = truth.copy()
    labels[PLANTED] = 1 - labels[PLANTED]  # wrong labels the model contradicts
    return labels, probs


def test_planted_wrong_labels_are_flagged_and_ranked_first() -> None:
    labels, probs = _arrays()
    mask = label_issue_mask(labels, probs)
    assert set(np.flatnonzero(mask)) == set(PLANTED)
    assert set(rank_label_issues(labels, probs)[: len(PLANTED)].tolist()) == set(PLANTED)
    quality = label_quality(labels, probs)
    assert quality[PLANTED].max() < np.delete(quality, PLANTED).min()


def test_soft_labels_are_cut_at_half_and_one_class_flags_nothing() -> None:
    labels, probs = _arrays()
    soft = np.where(labels == 1, 0.8, 0.2)
    assert (label_issue_mask(soft, probs) == label_issue_mask(labels, probs)).all()
    assert not label_issue_mask(np.ones(10), np.full(10, 0.1)).any()


def test_sample_quality_combines_heads_and_skips_masked_ones() -> None:
    labels, probs = _arrays()
    matrix_labels = np.column_stack([labels, 1 - labels])
    matrix_probs = np.column_stack([probs, 1 - probs])
    masks = np.ones_like(matrix_labels)
    masks[:, 1] = 0
    masks[5] = 0  # a row without any label
    quality, worst, issue = sample_quality(matrix_labels, matrix_probs, masks)
    assert np.isnan(quality[5]) and worst[5] == -1 and not issue[5]
    assert set(np.flatnonzero(issue)) == set(PLANTED)
    assert (worst[np.arange(200) != 5] == 0).all()


def test_bootstrap_is_seeded_and_paired() -> None:
    labels, probs = _arrays()
    worse = np.random.default_rng(1).uniform(0, 1, 200)  # a model that knows nothing
    models = {"model": probs, "baseline": worse}
    cut = {"model": 0.5, "baseline": 0.5}
    first = bootstrap(labels, models, cut, ["auroc", "f1"], 100, 7, "baseline")
    assert first == bootstrap(labels, models, cut, ["auroc", "f1"], 100, 7, "baseline")
    delta = first[1]["model"]["auroc"]
    assert delta["low"] is not None and 0 < delta["low"] <= delta["value"] <= delta["high"]


def test_fast_bootstrap_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(3)
    for ties in (False, True):
        y = (rng.random(300) < 0.3).astype(int)
        p = rng.random(300)
        if ties:
            p = np.round(p, 1)  # many tied scores
        for name, fast in FAST.items():
            assert fast(y, p, 0.45) == pytest.approx(METRICS[name](y, p, 0.45)), (name, ties)
