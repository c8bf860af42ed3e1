"""Routing as data: a TOML policy and one pure function from decided heads to a rule."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from serving.core.contract import HEADS
from serving.core.errors import BadInput
from serving.core.files import read_toml

__all__ = ["DEFAULT_POLICY", "Policy", "Rule", "load_policy", "route"]

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
    # None: the manifest's margin
    uncertainty_margin: float | None = None


def _rule(raw: dict[str, Any], where: str) -> Rule:
    try:
        name, priority, reason = str(raw["name"]), str(raw["priority"]), str(raw["reason"])
        when = dict(raw.get("when", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"{where}: a rule needs name, priority, reason and when ({exc})") from None
    if priority not in PRIORITIES:
        raise BadInput(f"{where}: rule {name!r} priority must be one of {PRIORITIES}")
    bad = [h for h, v in when.items() if h not in HEADS or not isinstance(v, bool)]
    if bad:
        raise BadInput(f"{where}: rule {name!r} conditions must be head = true/false, got {bad}")
    turns = raw.get("min_frustrated_turns", 0)
    if not isinstance(turns, int) or turns < 0:
        raise BadInput(f"{where}: rule {name!r} min_frustrated_turns must be an integer >= 0")
    return Rule(name, priority, MappingProxyType(when), reason, turns)


def load_policy(path: Path = DEFAULT_POLICY) -> Policy:
    """Parse and validate a policy file; a broken file is a BadInput naming it."""
    raw = read_toml(path, "routing policy")
    rules = tuple(_rule(r, str(path)) for r in raw.get("rules", []))
    if not rules or rules[-1].when or rules[-1].min_frustrated_turns:
        raise BadInput(f"{path}: the last rule must have no conditions (the fallback route)")
    overrides = dict(raw.get("thresholds", {}))
    margin = overrides.pop("uncertainty_margin", None)
    unknown = sorted(set(overrides) - set(HEADS))
    if unknown:
        raise BadInput(f"{path}: unknown heads in [thresholds]: {unknown}")
    return Policy(
        rules,
        {h: float(v) for h, v in overrides.items()},
        None if margin is None else float(margin),
    )


def route(policy: Policy, above: Mapping[str, bool], frustrated_turns: int) -> Rule:
    """The first rule whose conditions hold. `above`: per head, whether its score is at or
    above its threshold in force; `frustrated_turns`: customer turns in a row, ending with this
    message, that were frustrated (0 when this one is not). Thresholds are applied in
    serving/core/decision/decide.py, not here."""
    for rule in policy.rules:
        holds = all(above[h] == want for h, want in rule.when.items())
        if holds and frustrated_turns >= rule.min_frustrated_turns:
            return rule
    raise AssertionError("load_policy guarantees a fallback rule")
