"""Route agreement on dev as a training run measures it, and the epoch-selection rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.core.contract import HEADS
from serving.core.errors import BadInput
from training.route_selection import check_select_on, dev_route_agreement, selection_score

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
        check_select_on("routes")
