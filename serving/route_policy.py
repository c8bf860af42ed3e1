"""Routing as data: a TOML policy and one pure function from scores to a route."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from serving.contract import HEADS
from serving.errors import UserError
from serving.files import read_toml

__all__ = ["DEFAULT_POLICY", "Policy", "Route", "Rule", "load_policy", "route"]

DEFAULT_POLICY = Path(__file__).with_name("policy.toml")
PRIORITIES = ("high", "normal", "low")


@dataclass(frozen=True)
class Rule:
    name: str
    priority: str
    when: MappingProxyType[str, bool]
    reason: str
    min_frustrated_turns: int = 0  # >0: also needs that many frustrated turns in a row


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    thresholds: dict[str, float] = field(default_factory=dict)  # overrides of the manifest's
    uncertainty_margin: float | None = None

    def cut(self, model: dict[str, float]) -> dict[str, float]:
        """The thresholds in force: the model's, overridden by this policy's."""
        return {**model, **self.thresholds}

    def margin(self, model: float) -> float:
        """The uncertainty margin in force: this policy's if set, else the model's."""
        return model if self.uncertainty_margin is None else self.uncertainty_margin


@dataclass(frozen=True)
class Route:
    name: str
    priority: str
    reason: str
    uncertain: list[str]


def _rule(raw: dict[str, Any], where: str) -> Rule:
    try:
        name, priority, reason = str(raw["name"]), str(raw["priority"]), str(raw["reason"])
        when = dict(raw.get("when", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{where}: a rule needs name, priority, reason and when ({exc})") from None
    if priority not in PRIORITIES:
        raise UserError(f"{where}: rule {name!r} priority must be one of {PRIORITIES}")
    bad = [h for h, v in when.items() if h not in HEADS or not isinstance(v, bool)]
    if bad:
        raise UserError(f"{where}: rule {name!r} conditions must be head = true/false, got {bad}")
    turns = raw.get("min_frustrated_turns", 0)
    if not isinstance(turns, int) or turns < 0:
        raise UserError(f"{where}: rule {name!r} min_frustrated_turns must be an integer >= 0")
    return Rule(name, priority, MappingProxyType(when), reason, turns)


def load_policy(path: Path = DEFAULT_POLICY) -> Policy:
    """Parse and validate a policy file; a broken file is a UserError naming it."""
    raw = read_toml(path, "routing policy")
    rules = tuple(_rule(r, str(path)) for r in raw.get("rules", []))
    if not rules or rules[-1].when or rules[-1].min_frustrated_turns:
        raise UserError(f"{path}: the last rule must have no conditions (the fallback route)")
    overrides = dict(raw.get("thresholds", {}))
    margin = overrides.pop("uncertainty_margin", None)
    unknown = sorted(set(overrides) - set(HEADS))
    if unknown:
        raise UserError(f"{path}: unknown heads in [thresholds]: {unknown}")
    return Policy(
        rules,
        {h: float(v) for h, v in overrides.items()},
        None if margin is None else float(margin),
    )


def _first_rule(policy: Policy, above: dict[str, bool], earlier_turns: int) -> Rule:
    """The first rule whose conditions hold; this message's own frustration extends the streak."""
    turns = earlier_turns + 1 if above["frustration"] else 0
    for rule in policy.rules:
        holds = all(above[h] == want for h, want in rule.when.items())
        if holds and turns >= rule.min_frustrated_turns:
            return rule
    raise AssertionError("load_policy guarantees a fallback rule")


def route(
    scores: dict[str, float],
    policy: Policy,
    thresholds: dict[str, float],
    margin: float,
    earlier_frustrated_turns: int = 0,
) -> Route:
    """First matching rule, its reason with the deciding scores, and the heads too close to call.

    A head is uncertain when its score is within `margin` of its threshold and deciding the
    other way would change the route: a near-threshold legitimacy score on a message that is no
    complaint changes nothing, so it is not flagged. `earlier_frustrated_turns` counts the
    frustrated customer turns in a row just before this message (its history).
    """
    cut = policy.cut(thresholds)
    margin = policy.margin(margin)
    above = {h: scores[h] >= cut[h] for h in HEADS}
    rule = _first_rule(policy, above, earlier_frustrated_turns)
    heads = set(rule.when) or set(HEADS)
    shown = ", ".join(
        f"{h} {scores[h]:.2f} {'>=' if above[h] else '<'} {cut[h]:.2f}" for h in HEADS if h in heads
    )
    if rule.min_frustrated_turns:
        shown += f", {earlier_frustrated_turns + 1} frustrated turns in a row"
    uncertain = [
        h
        for h in HEADS
        if abs(scores[h] - cut[h]) < margin
        and _outcome(_first_rule(policy, {**above, h: not above[h]}, earlier_frustrated_turns))
        != _outcome(rule)
    ]
    return Route(rule.name, rule.priority, f"{rule.reason} ({shown})", uncertain)


def _outcome(rule: Rule) -> tuple[str, str]:
    return rule.name, rule.priority
