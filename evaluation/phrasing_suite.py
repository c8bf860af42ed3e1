"""The phrasing suite: every sentence the service offers an agent, checked against the rules.

`python -m evaluation.phrasing_suite` builds cases from the guide (each route, with and without
history, sarcasm, short and long messages, references, repeated asks), asks the phrase bank for
its suggestion as the service does (`serving.core.decision.phrasing.suggest` with the
message's facts) and checks each offered sentence; it prints the pass rate per rule and overall.

Rules: no admission of liability, no amounts, dates or guarantees, no policy recital, no sales
talk (DESIGN.md); no claim the message's facts do not support
(`serving.core.decision.phrasing.CLAIMS`); a disengaged customer gets at most DISENGAGED_WORDS
words and no claim that work is done; a customer who has asked before is told so in the opener
(unless disengaged).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from serving.core.decision.phrasing import CLAIMS, PhraseBank, facts_of, load_phrases, suggest
from serving.core.decision.references import find_references

__all__ = ["PRINCIPLES", "Case", "cases", "check", "run"]

DISENGAGED_WORDS = 20
ROUTES = ("escalate_senior", "supervisor_support", "complaint_desk", "re_engage", "standard")

PRINCIPLES: dict[str, re.Pattern[str]] = {
    "admits liability": re.compile(
        r"\b(our|my) (fault|mistake|error)\b|\bwe (messed|screwed) up\b|"
        r"\bwe are (to blame|responsible)\b",
        re.IGNORECASE,
    ),
    "promises amounts, dates or outcomes": re.compile(
        r"\b(guarantee|promise|definitely|certainly will|within \d+|by (monday|"
        r"tomorrow|tonight|friday))\b|[$€£]\s?\d",
        re.IGNORECASE,
    ),
    "recites policy": re.compile(
        r"\b(policy|terms and conditions|terms of service|as stated|"
        r"per our|unfortunately we (cannot|can't))\b",
        re.IGNORECASE,
    ),
    "sounds like a salesperson": re.compile(
        r"\b(upgrade|special offer|(great|best) deal|discount|premium|limited time)\b",
        re.IGNORECASE,
    ),
}
_ASKED_AGAIN = re.compile(r"\b(ask|asking|chase|chasing) (again|twice)\b|\bchasing\b", re.I)
_DONE = re.compile(
    r"\b(it's|it is|all|that's|this is) (done|sorted|resolved|fixed)\b|\btaken care\b|"
    r"\bnothing more\b",
    re.I,
)

MESSAGES = (
    "k",
    "ok.",
    "Oh great, another delay. Thanks a lot.",
    "Where is my refund? This is the third time I'm asking.",
    "Hi, order 88213 arrived broken, could you replace it?",
    "My booking reference K7QX2P disappeared from the app.",
    "How do I change my password?",
    "I have emailed four times, waited two weeks, filled in the form twice and called the "
    "helpline, and still nobody has told me why my account was closed or when the balance "
    "will be returned to me.",
)
HISTORIES: tuple[tuple[int, str], ...] = ((0, "no history"), (2, "two earlier customer turns"))


@dataclass(frozen=True)
class Case:
    text: str
    customer_turns: int
    route: str
    frustrated: bool

    @property
    def name(self) -> str:
        mood = " frustrated" if self.frustrated else ""
        return f"{self.route}{mood}, {self.customer_turns} turns: {self.text[:40]!r}"


def cases() -> list[Case]:
    """Every message with and without history, on every route, frustrated or not."""
    return [
        Case(text, turns, route, frustrated)
        for text in MESSAGES
        for turns, _ in HISTORIES
        for route in ROUTES
        for frustrated in (False, True)
    ]


def check(bank: PhraseBank, case: Case) -> dict[str, bool]:
    """Each rule for one case's suggestion: True when it holds."""
    refs = find_references(bank.references, case.text)
    facts = facts_of(case.text, case.customer_turns, len(refs))
    offered = suggest(bank, case.route, case.frustrated, case.text, refs, facts)
    joined = " ".join(offered)
    rules: dict[str, bool] = {
        what: not pattern.search(joined) for what, pattern in PRINCIPLES.items()
    }
    rules["claims only what the facts support"] = not any(
        pattern.search(joined) and (fact is None or fact not in facts) for pattern, fact in CLAIMS
    )
    if case.route == "re_engage":
        rules["brief for a disengaged customer"] = len(joined.split()) <= DISENGAGED_WORDS
        rules["never tells a disengaged customer it is done"] = not _DONE.search(joined)
    elif "repeated" in facts and bank.repeated_open:
        rules["acknowledges a repeated ask"] = bool(_ASKED_AGAIN.search(offered[0]))
    return rules


def run(bank: PhraseBank | None = None, out: Callable[[str], object] = print) -> float:
    """Check every case; print failures and the pass rate per rule; return the overall rate."""
    bank = bank or load_phrases(routes=ROUTES)
    results = [(case, check(bank, case)) for case in cases()]
    by_rule: dict[str, list[bool]] = {}
    for case, rules in results:
        for rule, ok in rules.items():
            by_rule.setdefault(rule, []).append(ok)
            if not ok:
                out(f"FAIL {rule}: {case.name}")
    for rule, oks in by_rule.items():
        out(f"{rule:<48} {sum(oks):>4}/{len(oks):<4} {sum(oks) / len(oks):.0%}")
    passed = [all(rules.values()) for _, rules in results]
    rate = sum(passed) / len(passed)
    out(f"overall: {sum(passed)}/{len(passed)} cases pass every rule ({rate:.1%})")
    return rate


def main(argv: Sequence[str] | None = None) -> None:
    rate = run()
    raise SystemExit(0 if rate == 1.0 else 1)


if __name__ == "__main__":
    main(sys.argv[1:])
