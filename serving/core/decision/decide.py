"""The decision core: where thresholds are applied and the route is decided.

Every engine decides here: the API, the file and Ray engines (through `serving.core.results`),
`evaluate` (which writes the decisions into predictions.jsonl for the review page), and the
benchmarks. Two steps:

- `rules_in_force(manifest, policy)`, once per loaded model: the manifest's thresholds with the
  policy's overrides, the uncertainty margin, and the frustration levels. The `mild` level is
  the frustration threshold in force, so "frustrated" means the same to labels, the streak and
  routing; `strong` is the manifest's cut-off, never below `mild`. `/v1/info` reports these.
- `decide(scores, rules, thread)`, per message: labels, which side of each threshold, the
  frustration streak, the thread summary, the route and the heads too close to call.

A thread's scores are the customer's earlier turns, oldest first; `serving.core.threads` turns
messages with threads into the texts and contexts to score and back, for every engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from serving.core.artifact import Manifest
from serving.core.contract import HEADS
from serving.core.decision.route_policy import Policy, Rule, route

__all__ = [
    "TREND_BAND",
    "Decision",
    "DecisionRules",
    "Route",
    "decide",
    "frustration_level",
    "merge_rules",
    "routes_for",
    "rules_in_force",
    "thread_summary",
]

TREND_BAND = 0.15  # change in frustration over the last turns that counts as a trend


@dataclass(frozen=True)
class DecisionRules:
    """What `decide` applies: per-head thresholds, the margin, frustration levels, the rules."""

    policy: Policy
    thresholds: Mapping[str, float]
    uncertainty_margin: float
    frustration_levels: Mapping[str, float]  # "mild", "strong"

    def as_json(self) -> dict[str, Any]:
        return {
            "thresholds": dict(self.thresholds),
            "uncertainty_margin": self.uncertainty_margin,
            "frustration_levels": dict(self.frustration_levels),
        }


def rules_in_force(manifest: Manifest, policy: Policy) -> DecisionRules:
    """The model's cut-offs merged with the policy's overrides (see the module docstring)."""
    return merge_rules(
        policy,
        manifest.thresholds,
        manifest.uncertainty_margin,
        manifest.frustration_levels["strong"],
    )


def merge_rules(
    policy: Policy, thresholds: Mapping[str, float], margin: float, strong: float
) -> DecisionRules:
    """`rules_in_force` for a scorer without a manifest (e.g. evaluate's baseline): its own
    per-head thresholds, margin and strong-frustration cut-off, overridden by the policy's."""
    merged = {h: float(policy.thresholds.get(h, thresholds[h])) for h in HEADS}
    mild = merged["frustration"]
    return DecisionRules(
        policy=policy,
        thresholds=MappingProxyType(merged),
        uncertainty_margin=margin
        if policy.uncertainty_margin is None
        else policy.uncertainty_margin,
        frustration_levels=MappingProxyType({"mild": mild, "strong": max(mild, strong)}),
    )


@dataclass(frozen=True)
class Route:
    name: str
    priority: str
    reason: str  # the rule's reason with the deciding scores


@dataclass(frozen=True)
class Decision:
    """Everything decided about one message; `thread` is None without earlier turns."""

    labels: dict[str, Any]
    above: dict[str, bool]  # per head: score >= its threshold in force
    frustrated_in_a_row: int  # customer turns in a row, ending with this one, that were frustrated
    thread: dict[str, Any] | None
    route: Route
    uncertain: list[str]


def frustration_level(score: float, levels: Mapping[str, float]) -> str:
    """none / mild / strong."""
    if score < levels["mild"]:
        return "none"
    return "strong" if score >= levels["strong"] else "mild"


def thread_summary(frustration: Sequence[float], threshold: float) -> dict[str, Any]:
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


def decide(
    scores: Mapping[str, float],
    rules: DecisionRules,
    thread: Sequence[Mapping[str, float]] = (),
) -> Decision:
    """Labels, route and uncertain heads of one message from its calibrated scores; `thread`
    holds the scores of the customer's earlier turns, oldest first.

    A head is uncertain when its score is within the margin of its threshold and deciding the
    other way would change the route: a near-threshold legitimacy score on a message that is no
    complaint changes nothing, so it is not flagged.
    """
    cut = rules.thresholds
    above = {h: scores[h] >= cut[h] for h in HEADS}
    earlier = [turn["frustration"] for turn in thread]
    before = thread_summary(earlier, cut["frustration"])["frustrated_in_a_row"] if earlier else 0
    summary = thread_summary([*earlier, scores["frustration"]], cut["frustration"])
    streak = summary["frustrated_in_a_row"]
    rule = route(rules.policy, above, streak)
    uncertain = []
    for head in HEADS:
        if abs(scores[head] - cut[head]) >= rules.uncertainty_margin:
            continue
        flipped = {**above, head: not above[head]}
        other = route(rules.policy, flipped, before + 1 if flipped["frustration"] else 0)
        if (other.name, other.priority) != (rule.name, rule.priority):
            uncertain.append(head)
    complaint = above["complaint"]
    labels: dict[str, Any] = {
        "frustration": frustration_level(scores["frustration"], rules.frustration_levels),
        "boredom": above["boredom"],
        "complaint": complaint,
        "legitimacy": above["legitimacy"] if complaint else None,
    }
    return Decision(
        labels=labels,
        above=above,
        frustrated_in_a_row=streak,
        thread=summary if thread else None,
        route=Route(rule.name, rule.priority, _reason(rule, scores, cut, above, streak)),
        uncertain=uncertain,
    )


def _digits(value: float, other: float) -> str:
    """`value` with 2 decimals, or up to 4 when 2 would print it equal to `other`."""
    for places in (2, 3, 4):
        if f"{value:.{places}f}" != f"{other:.{places}f}":
            return f"{value:.{places}f}"
    return f"{value:.4f}"


def _reason(
    rule: Rule,
    scores: Mapping[str, float],
    cut: Mapping[str, float],
    above: Mapping[str, bool],
    streak: int,
) -> str:
    """The rule's reason with the scores that decided it: the rule's own heads, or for the
    fallback every head but legitimacy when the message is no complaint (legitimacy only
    matters for a complaint). Each score shows as many digits as tell it from its threshold."""
    heads = set(rule.when) or {h for h in HEADS if h != "legitimacy" or above["complaint"]}
    shown = ", ".join(
        f"{h} {_digits(scores[h], cut[h])} {'>=' if above[h] else '<'} {_digits(cut[h], scores[h])}"
        for h in HEADS
        if h in heads
    )
    if rule.min_frustrated_turns:
        shown += f", {streak} frustrated turns in a row"
    return f"{rule.reason} ({shown})"


def routes_for(scores: np.ndarray, rules: DecisionRules) -> list[str]:
    """Route name of each row of a (n, len(HEADS)) matrix of calibrated scores, each row
    decided as a lone message (no thread)."""
    return [
        decide(dict(zip(HEADS, row.tolist(), strict=True)), rules).route.name
        for row in np.asarray(scores, dtype=float)
    ]
