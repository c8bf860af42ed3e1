"""Route confusion on the gold set: the route the policy gives the gold labels vs the model's."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from serving.core.contract import HEADS, mask_column
from serving.core.decision.decide import DecisionRules, routes_for
from serving.core.metrics import hard_labels

__all__ = ["label_routes", "route_confusion"]


def label_routes(frame: pd.DataFrame, rules: DecisionRules) -> list[str]:
    """The route each row would get if the model scored its gold labels exactly (1 or 0;
    a masked label, e.g. legitimacy of a non-complaint, counts as 0)."""
    labels = hard_labels(np.nan_to_num(frame[list(HEADS)].to_numpy(dtype=float)))
    masks = frame[[mask_column(h) for h in HEADS]].to_numpy(dtype=float) == 1
    return routes_for(np.where(masks, labels, 0), rules)


def route_confusion(
    expected: Sequence[str], predicted: dict[str, Sequence[str]], names: Sequence[str]
) -> dict[str, object]:
    """Counts of (route from labels, route from each model's scores) and agreement rates."""
    matrices, agreement = {}, {}
    for model, routes in predicted.items():
        counts = [[0] * len(names) for _ in names]
        for want, got in zip(expected, routes, strict=True):
            counts[names.index(want)][names.index(got)] += 1
        matrices[model] = counts
        agree = sum(w == g for w, g in zip(expected, routes, strict=True))
        agreement[model] = agree / len(expected) if expected else None
    return {"n": len(expected), "names": list(names), "confusion": matrices, "agreement": agreement}
