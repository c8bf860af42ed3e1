"""Turn calibrated scores into the result object of the interface contract (DESIGN.md)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from serving.contract import HEADS
from serving.language import language_of
from serving.phrasing import PhraseBank, suggest
from serving.references import find_references
from serving.route_policy import Policy, route
from serving.scorer import Manifest, Scores

__all__ = ["Decider", "frustration_level", "thread_summary"]

TREND_BAND = 0.15  # change in frustration over the last turns that counts as a trend


def frustration_level(score: float, cutoffs: dict[str, float]) -> str:
    """none / mild / strong; below the mild cut-off is never strong, even if a deployment
    raised the frustration threshold above the model's strong cut-off."""
    if score < cutoffs["mild"]:
        return "none"
    return "strong" if score >= cutoffs["strong"] else "mild"


def thread_summary(frustration: list[float], threshold: float) -> dict[str, Any]:
    """Per-turn frustration (oldest first, this message last), its trend over the last three
    turns, and how many turns in a row, ending now, were frustrated."""
    window = frustration[-3:]
    change = window[-1] - window[0]
    trend = "rising" if change > TREND_BAND else "falling" if change < -TREND_BAND else "steady"
    in_a_row = 0
    for score in reversed(frustration):
        if score < threshold:
            break
        in_a_row += 1
    return {
        "frustration": [round(s, 4) for s in frustration],
        "trend": trend,
        "frustrated_in_a_row": in_a_row,
    }


@dataclass(frozen=True)
class Decider:
    """Everything after the model: labels, route, phrasing. Pure given its three inputs."""

    manifest: Manifest
    policy: Policy
    phrases: PhraseBank

    def result(
        self,
        message_id: str | None,
        text: str,
        scores: Scores,
        history: list[Scores] | None = None,
    ) -> dict[str, Any]:
        """The contract's result object; with `history` (earlier turns, oldest first) it gains
        a `thread` object and routing sees how long the customer has been frustrated."""
        p = scores.probabilities
        thresholds = self.policy.cut(self.manifest.thresholds)
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
        thread = None
        earlier = 0
        if history:
            turns = [s.probabilities["frustration"] for s in history]
            earlier = thread_summary(turns, thresholds["frustration"])["frustrated_in_a_row"]
            thread = thread_summary([*turns, p["frustration"]], thresholds["frustration"])
        decision = route(
            p, self.policy, self.manifest.thresholds, self.manifest.uncertainty_margin, earlier
        )
        key = message_id if message_id is not None else hashlib.sha256(text.encode()).hexdigest()
        frustrated = labels["frustration"] != "none"
        refs = find_references(self.phrases.references, text)  # this message only, not history
        return {
            "id": message_id,
            "scores": {h: round(p[h], 4) for h in HEADS},
            "labels": labels,
            "route": {
                "name": decision.name,
                "priority": decision.priority,
                "reason": decision.reason,
            },
            "phrasing": suggest(self.phrases, decision.name, frustrated, key, refs),
            "references": [{"kind": r.kind, "value": r.value} for r in refs],
            "uncertain": decision.uncertain,
            "truncated": scores.truncated,
            "language": language_of(text),  # still scored when unsupported, but marked
            **({"thread": thread} if thread else {}),
        }
