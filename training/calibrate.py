"""Per-head temperature scaling and threshold choice, fitted on in-domain dev data.

Thresholds follow `TrainConfig.threshold_rule`: each head's best F1, or ("routes") the
thresholds whose routes best agree with the routes the labellers gave real dev messages, which
is what the product acts on (docs/thread-model.md, "Toward 0.5.0").
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from serving.core.artifact import TEMPERATURE_RANGE
from serving.core.contract import HEADS, mask_column
from serving.core.decision.route_policy import Policy, load_policy, route
from serving.core.errors import BadInput
from serving.core.metrics import best_f1_threshold, expected_calibration_error, hard_labels
from training.dataset_rules import calibration_rows

__all__ = [
    "ROUTE_GRID",
    "ROUTE_TUNED_HEADS",
    "THRESHOLD_RULES",
    "fit_calibration",
    "fit_temperature",
    "frustration_cutoffs",
    "route_thresholds",
    "sigmoid",
]

#: How a run's thresholds are set: each head's best F1, or the best route agreement.
THRESHOLD_RULES = ("f1", "routes")
#: The heads whose thresholds the "routes" rule searches (boredom only decides re_engage, a
#: route too rare on real dev to tune on), and the calibrated scores it tries for each.
ROUTE_TUNED_HEADS = ("frustration", "complaint", "legitimacy")
ROUTE_GRID = np.round(np.arange(0.25, 0.851, 0.025), 3)


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


def _lone_routes(policy: Policy) -> np.ndarray:
    """(2 ** len(HEADS),) route names: the route of a lone message for each pattern of heads
    above their thresholds (bit j of the index: HEADS[j] above), decided by serving's policy."""
    names = []
    for code in range(2 ** len(HEADS)):
        above = {h: bool(code >> j & 1) for j, h in enumerate(HEADS)}
        names.append(route(policy, above, int(above["frustration"])).name)
    return np.array(names, dtype=object)


def route_thresholds(
    probs: np.ndarray,
    expected: Sequence[str],
    thresholds: Mapping[str, float],
    *,
    policy: Policy | None = None,
) -> dict[str, float]:
    """Thresholds with those of ROUTE_TUNED_HEADS searched over ROUTE_GRID for the best route
    agreement of `probs` (n, len(HEADS), calibrated) with `expected` (n route names), each row
    a lone message; the other heads keep `thresholds`. A head whose threshold the policy
    (default: serving's) overrides is not searched, and the search uses the override, as
    serving would. The first best grid point wins."""
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 2 or probs.shape[1] != len(HEADS) or len(expected) != len(probs):
        raise BadInput(f"route_thresholds needs (n, {len(HEADS)}) scores and n routes")
    policy = policy if policy is not None else load_policy()
    table = _lone_routes(policy)
    wanted = np.asarray(expected, dtype=object)
    searched = [h for h in ROUTE_TUNED_HEADS if h not in policy.thresholds]
    fixed = sum(
        (probs[:, j] >= policy.thresholds.get(h, thresholds[h])).astype(np.int64) << j
        for j, h in enumerate(HEADS)
        if h not in searched
    )
    tuned = [HEADS.index(h) for h in searched]
    bits = {j: [(probs[:, j] >= t).astype(np.int64) << j for t in ROUTE_GRID] for j in tuned}
    best, best_at = -1.0, (0,) * len(tuned)
    for at in itertools.product(range(len(ROUTE_GRID)), repeat=len(tuned)):
        code = fixed + sum(bits[j][g] for j, g in zip(tuned, at, strict=True))
        agreement = float(np.mean(table[code] == wanted))
        if agreement > best:
            best, best_at = agreement, at
    out = {h: float(thresholds[h]) for h in HEADS}
    out.update({HEADS[j]: float(ROUTE_GRID[g]) for j, g in zip(tuned, best_at, strict=True)})
    return out


def fit_calibration(
    frame: pd.DataFrame, logits: np.ndarray, threshold_rule: str = "f1"
) -> dict[str, object]:
    """Temperatures, thresholds and frustration cut-offs on in-domain dev rows (real text
    first); with `threshold_rule` "routes", the thresholds that best agree with those rows'
    labelled routes (`route_thresholds`) instead of each head's best F1."""
    gold, group = calibration_rows(frame)
    result: dict[str, object] = {"fitted_on": f"{int(gold.sum())} dev rows of {group}"}
    temperatures, thresholds, ece = {}, {}, {}
    for j, head in enumerate(HEADS):
        rows = gold & (frame[mask_column(head)].to_numpy() == 1)
        labels = frame.loc[rows, head].to_numpy(dtype=float)
        temperatures[head] = fit_temperature(logits[rows, j], labels)
        probs = sigmoid(logits[rows, j] / temperatures[head])
        thresholds[head] = best_f1_threshold(labels, probs)
        ece[head] = expected_calibration_error(labels, probs)
    if threshold_rule == "routes":
        routed = gold & (frame["route"].notna().to_numpy() if "route" in frame else False)
        if not routed.any():
            raise BadInput(f"threshold_rule routes: no dev row of {group} has a labelled route")
        scale = np.array([temperatures[h] for h in HEADS])
        expected = frame.loc[routed, "route"].astype(str).tolist()
        thresholds = route_thresholds(sigmoid(logits[routed] / scale), expected, thresholds)
        result["fitted_on"] = f"{result['fitted_on']}; thresholds for {len(expected)} routes"
    rows = gold & (frame[mask_column("frustration")].to_numpy() == 1)
    frustration = sigmoid(logits[rows, 0] / temperatures["frustration"])
    result.update(
        temperature=temperatures,
        thresholds=thresholds,
        dev_ece=ece,
        frustration_levels=frustration_cutoffs(
            frustration,
            frame.loc[rows, "frustration"].to_numpy(dtype=float),
            frame.loc[rows, "frustration_level"].to_numpy(dtype=object),
        ),
    )
    return result
