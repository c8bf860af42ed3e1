"""Route agreement on dev as a training run measures it, and the epoch-selection rule."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from serving.core.contract import HEADS
from serving.core.decision.route_policy import load_policy
from serving.core.errors import BadInput
from training.calibrate import fit_calibration, route_thresholds
from training.route_selection import check_run_rules, dev_route_agreement, selection_score

CALIBRATION = {
    "temperature": dict.fromkeys(HEADS, 2.0),
    "thresholds": dict.fromkeys(HEADS, 0.7),
    "frustration_levels": {"mild": 0.7, "strong": 0.9},
}


def _logits(**on: float) -> list[float]:
    """Logits far below every threshold, except the heads named."""
    return [on.get(h, -8.0) for h in HEADS]


def test_route_agreement_counts_rows_whose_route_is_the_labellers() -> None:
    frame = pd.DataFrame(
        {
            "route": ["standard", "complaint_desk", "escalate_senior", None],
            "source": "real_scale",
        }
    )
    logits = np.array(
        [
            _logits(),
            _logits(complaint=8.0, legitimacy=8.0),
            # a calm complaint, so complaint_desk: the labeller's escalate_senior is missed
            _logits(complaint=8.0, legitimacy=8.0),
            _logits(frustration=8.0),  # no route label: not counted
        ]
    )
    assert dev_route_agreement(frame, logits, CALIBRATION) == pytest.approx(2 / 3)
    # the temperature applies: sigmoid(1.2) = 0.77 is above the 0.7 threshold, but
    # sigmoid(1.2 / 2) = 0.65 is below
    weak = logits.copy()
    weak[1] = _logits(complaint=1.2, legitimacy=1.2)
    assert dev_route_agreement(frame, weak, CALIBRATION) == pytest.approx(1 / 3)


def test_no_route_labels_no_agreement() -> None:
    frame = pd.DataFrame({"route": [None, None], "source": "cfpb"})
    assert dev_route_agreement(frame, np.zeros((2, len(HEADS))), CALIBRATION) is None


def test_selection_adds_routes_only_when_asked() -> None:
    assert selection_score("auroc", 0.9, 0.7) == 0.9
    assert selection_score("auroc+routes", 0.9, 0.7) == pytest.approx(1.6)
    assert selection_score("auroc+routes", 0.9, None) == 0.9
    with pytest.raises(BadInput, match="select_on"):
        check_run_rules("routes", "f1")
    with pytest.raises(BadInput, match="threshold_rule"):
        check_run_rules("auroc", "auroc")


def test_route_thresholds_search_the_cut_the_routes_need() -> None:
    """Two plain requests at complaint 0.3 and 0.6, two calm legitimate complaints at 0.8 and
    0.9: the routes need a complaint threshold above 0.6; the first grid point that gives it
    is 0.625. Boredom is not searched."""
    probs = np.array([[0.1, 0.0, c, 0.9] for c in (0.3, 0.6, 0.8, 0.9)])
    expected = ["standard", "standard", "complaint_desk", "complaint_desk"]
    given = dict.fromkeys(HEADS, 0.5) | {"boredom": 0.42}
    tuned = route_thresholds(probs, expected, given)
    assert tuned["complaint"] == pytest.approx(0.625)
    assert tuned["boredom"] == 0.42
    assert route_thresholds(probs, ["complaint_desk"] * 4, given)["complaint"] == 0.25
    with pytest.raises(BadInput, match="scores and n routes"):
        route_thresholds(probs, expected[:3], given)


def test_route_thresholds_leave_a_policy_override_alone() -> None:
    """A complaint threshold the policy overrides (0.95: no row above it, so no
    complaint_desk) is not searched and keeps its given value; the search reads the override,
    so the best it finds is every row standard."""
    probs = np.array([[0.1, 0.0, c, 0.9] for c in (0.3, 0.6, 0.8, 0.9)])
    expected = ["standard", "standard", "complaint_desk", "complaint_desk"]
    given = dict.fromkeys(HEADS, 0.5)
    policy = dataclasses.replace(load_policy(), thresholds={"complaint": 0.95})
    tuned = route_thresholds(probs, expected, given, policy=policy)
    assert tuned["complaint"] == 0.5
    assert tuned["frustration"] == 0.25 and tuned["legitimacy"] == 0.25


def test_fit_calibration_sets_thresholds_for_routes_when_asked() -> None:
    rng = np.random.default_rng(0)
    n = 200
    complaint = rng.integers(0, 2, n)
    frame = pd.DataFrame(
        {
            "source": "real_scale",
            "frustration": 0.0,
            "frustration_level": "none",
            "boredom": 0.0,
            "complaint": complaint.astype(float),
            "legitimacy": 1.0,
            "route": np.where(complaint == 1, "complaint_desk", "standard"),
            **{f"has_{h}": 1 for h in HEADS},
        }
    )
    logits = np.column_stack(
        [
            rng.normal(-3, 1, n),
            rng.normal(-3, 1, n),
            (complaint * 4 - 2) + rng.normal(0, 1, n),
            rng.normal(3, 1, n),
        ]
    )
    f1 = fit_calibration(frame, logits, "f1")
    routes = fit_calibration(frame, logits, "routes")
    assert "routes" not in str(f1["fitted_on"]) and "200 routes" in str(routes["fitted_on"])
    assert routes["temperature"] == f1["temperature"]
    assert dev_route_agreement(frame, logits, routes) >= dev_route_agreement(frame, logits, f1)
    with pytest.raises(BadInput, match="no dev row"):
        fit_calibration(frame.assign(route=None), logits, "routes")
