"""Figures per kind of text, in the order they matter: real customer text first, project-written
second, public sets third. Real text is the yardstick: it is what the users' traffic looks like.

Each head gets, per group, AUROC / average precision / F1 / ECE with 95% bootstrap intervals for
the model, the TF-IDF baseline and message length alone, and the paired differences model -
baseline and model - length. Length is scored in the direction that is better on the same
group's dev rows (short messages are the likelier boredom), never chosen on the judged rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from evaluation.stats import bootstrap
from serving.core.contract import HEADS, mask_column
from serving.core.metrics import auroc

__all__ = ["GROUPS", "group_figures", "group_of", "length_scores"]

#: Report groups -> the dataset `source` values in them (None: every other source).
GROUPS: dict[str, tuple[str, ...] | None] = {
    "real (new)": ("real_scale",),
    "real": ("real_gold",),
    "project-written": ("gold",),
    "public": None,
}
METRIC_NAMES = ("auroc", "average_precision", "f1", "ece")


def group_of(source: str) -> str:
    """The report group of a dataset source."""
    for group, sources in GROUPS.items():
        if sources is not None and source in sources:
            return group
    return "public"


def length_scores(texts: Sequence[str], sign: float) -> np.ndarray:
    """Message length as a [0, 1] score (rank-scaled), longer higher when sign > 0."""
    lengths = np.array([len(t) for t in texts], dtype=float) * sign
    order = lengths.argsort(kind="stable").argsort(kind="stable")
    return order / max(len(texts) - 1, 1)


def _length_sign(dev: pd.DataFrame, head: str) -> float:
    rows = dev[mask_column(head)].to_numpy() == 1
    if not rows.any():
        return 1.0
    value = auroc(dev.loc[rows, head].to_numpy(dtype=float), dev.loc[rows, "text"].str.len())
    return -1.0 if value == value and value < 0.5 else 1.0


def group_figures(
    rows: pd.DataFrame,
    dev: pd.DataFrame,
    probs: dict[str, np.ndarray],
    thresholds: dict[str, dict[str, float]],
    *,
    resamples: int,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """Per group (that has rows) and head: n, positives, figures and paired deltas.

    rows: the judged split; dev: the dev split (length direction only); probs: model name ->
    (len(rows), len(HEADS)) probabilities; thresholds: model name -> head -> threshold.
    """
    groups = rows["source"].astype(str).map(group_of).to_numpy()
    dev_groups = dev["source"].astype(str).map(group_of).to_numpy()
    result: dict[str, dict[str, Any]] = {}
    for group in GROUPS:
        in_group = groups == group
        if not in_group.any():
            continue
        result[group] = {}
        for j, head in enumerate(HEADS):
            labelled = in_group & (rows[mask_column(head)].to_numpy() == 1)
            labels = rows.loc[labelled, head].to_numpy(dtype=float)
            if len(np.unique(labels >= 0.5)) < 2:
                continue
            sign = _length_sign(dev[dev_groups == group], head)
            scores = {m: p[labelled, j] for m, p in probs.items()}
            scores["length"] = length_scores(rows.loc[labelled, "text"].tolist(), sign)
            cuts = {m: thresholds[m][head] for m in probs} | {"length": 0.5}
            figures, vs_baseline = bootstrap(
                labels, scores, cuts, METRIC_NAMES, resamples, seed, reference="baseline"
            )
            _, vs_length = bootstrap(labels, scores, cuts, ["auroc"], resamples, seed, "length")
            result[group][head] = {
                "n": int(labelled.sum()),
                "positives": int((labels >= 0.5).sum()),
                "models": figures,
                "model_minus_baseline": vs_baseline.get("model", {}),
                "model_minus_length": vs_length.get("model", {}),
                "length_direction": "longer" if sign > 0 else "shorter",
            }
    return result
