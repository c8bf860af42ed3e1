"""Route agreement on real dev during training: how often serving's policy, fed a run's
calibrated scores, picks the route the labeller gave. Mean AUROC can rise while the routes
fall (docs/thread-model.md, "Toward 0.5.0"), so a run may select its epoch on both
(`TrainConfig.select_on`); its thresholds may be set for the routes too
(`training.calibrate.route_thresholds`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from serving.core.contract import HEADS
from serving.core.decision.decide import merge_rules, routes_for
from serving.core.decision.route_policy import load_policy
from serving.core.errors import BadInput
from training.calibrate import THRESHOLD_RULES, sigmoid

__all__ = ["SELECT_ON", "check_run_rules", "dev_route_agreement", "selection_score"]

#: What picks a run's best epoch: mean dev AUROC, or that plus dev route agreement.
SELECT_ON = ("auroc", "auroc+routes")


def dev_route_agreement(
    frame: pd.DataFrame, logits: np.ndarray, calibration: Mapping[str, Any]
) -> float | None:
    """Share of the route-labelled rows of `frame` (n rows) whose route from `logits` (n,
    len(HEADS)), calibrated by `calibration` (`fit_calibration`), is the labeller's; each row
    decided as a lone message. None when no row has a route."""
    labelled = frame["route"].notna().to_numpy() if "route" in frame else np.zeros(0, bool)
    if not labelled.any():
        return None
    scale = np.array([float(calibration["temperature"][h]) for h in HEADS])
    probs = sigmoid(logits[labelled] / scale)
    strong = float(calibration["frustration_levels"]["strong"])
    # the margin only flags uncertain heads; it never changes a route
    rules = merge_rules(load_policy(), calibration["thresholds"], 0.0, strong)
    routes = routes_for(probs, rules)
    expected = frame.loc[labelled, "route"].astype(str).tolist()
    return float(np.mean([r == e for r, e in zip(routes, expected, strict=True)]))


def check_run_rules(select_on: str, threshold_rule: str) -> None:
    """Refuse an unknown `select_on` or `threshold_rule` before training starts, not after
    its first epoch."""
    if select_on not in SELECT_ON:
        raise BadInput(f"select_on must be one of {SELECT_ON}, got {select_on!r}")
    if threshold_rule not in THRESHOLD_RULES:
        raise BadInput(f"threshold_rule must be one of {THRESHOLD_RULES}, got {threshold_rule!r}")


def selection_score(select_on: str, mean_auroc: float, routes: float | None) -> float:
    """The number a run's best epoch maximises (`SELECT_ON`)."""
    return mean_auroc + (routes or 0.0) if select_on == "auroc+routes" else mean_auroc
