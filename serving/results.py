"""Turn calibrated scores into the result object of the interface contract (DESIGN.md)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from serving.contract import HEADS
from serving.phrasing import PhraseBank, suggest
from serving.routing import Policy, route
from serving.scorer import Manifest, Scores

__all__ = ["Decider", "frustration_level"]


def frustration_level(score: float, cutoffs: dict[str, float]) -> str:
    if score >= cutoffs["strong"]:
        return "strong"
    return "mild" if score >= cutoffs["mild"] else "none"


@dataclass(frozen=True)
class Decider:
    """Everything after the model: labels, route, phrasing. Pure given its three inputs."""

    manifest: Manifest
    policy: Policy
    phrases: PhraseBank

    def result(self, message_id: str | None, text: str, scores: Scores) -> dict[str, Any]:
        p = scores.probabilities
        thresholds = {**self.manifest.thresholds, **self.policy.thresholds}
        complaint = p["complaint"] >= thresholds["complaint"]
        labels: dict[str, Any] = {
            "frustration": frustration_level(
                p["frustration"],
                {**self.manifest.frustration_levels, "mild": thresholds["frustration"]},
            ),
            "boredom": p["boredom"] >= thresholds["boredom"],
            "complaint": complaint,
            "legitimacy": (p["legitimacy"] >= thresholds["legitimacy"]) if complaint else None,
        }
        decision = route(p, self.policy, self.manifest.thresholds, self.manifest.uncertainty_margin)
        key = message_id if message_id is not None else hashlib.sha256(text.encode()).hexdigest()
        return {
            "id": message_id,
            "scores": {h: round(p[h], 4) for h in HEADS},
            "labels": labels,
            "route": {
                "name": decision.name,
                "priority": decision.priority,
                "reason": decision.reason,
            },
            "phrasing": suggest(self.phrases, decision.name, labels["frustration"] != "none", key),
            "uncertain": decision.uncertain,
            "truncated": scores.truncated,
        }
