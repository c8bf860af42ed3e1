"""Suggested phrasing as data: a TOML phrase bank and a pure, deterministic choice."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from serving.core.decision.references import Reference, ReferenceKind, acknowledge, load_references
from serving.core.errors import BadInput
from serving.core.files import read_toml

__all__ = [
    "CLAIMS",
    "DEFAULT_PHRASES",
    "FACTS",
    "Phrase",
    "PhraseBank",
    "facts_of",
    "load_phrases",
    "suggest",
    "unsupported_claims",
]

DEFAULT_PHRASES = Path(__file__).with_name("phrases.toml")


#: What a phrase may need to be true before it is offered (`requires` in the bank):
#: `history`: the customer's earlier turns were sent; `detailed`: the message has at least
#: DETAILED_WORDS words; `reference`: a reference was found in it; `repeated`: the customer has
#: asked before (an earlier customer turn, or a repetition cue in the message).
FACTS = ("history", "detailed", "reference", "repeated")
DETAILED_WORDS = 25
_REPEATED = re.compile(
    r"\b(again|still|(second|third|fourth|2nd|3rd|4th) time|already (asked|told|sent|said)|"
    r"no (reply|response|answer)|how many times|yet another)\b",
    re.IGNORECASE,
)

#: Claims an agent pasting a phrase would make: an action already taken or knowledge the
#: service does not have. A phrase matching one is refused at load unless it requires the fact
#: named here; None: never offered (the service never knows it).
CLAIMS: tuple[tuple[re.Pattern[str], str | None], ...] = (
    (re.compile(r"\b(full|whole|complete) history\b|\bwon't need to repeat\b", re.I), "history"),
    (re.compile(r"\bthe detail you've given\b|\bsetting out what happened\b", re.I), "detailed"),
    (re.compile(r"\b(ask|asking|chase|chasing) (again|twice)\b", re.I), "repeated"),
    (
        re.compile(
            r"\bI(?:'ve| have) (taken care|refunded|fixed|sorted|resolved|noted|sent|processed|"
            r"cancell?ed|updated|escalated|passed)\b|\b(it's|it is|all) (done|sorted|fixed)\b|"
            r"\bnothing more (is )?needed\b|\bno forms needed\b",
            re.I,
        ),
        None,
    ),
)


@dataclass(frozen=True)
class Phrase:
    text: str
    requires: frozenset[str] = frozenset()


def facts_of(text: str, customer_turns: int, references: int) -> frozenset[str]:
    """The facts a message makes true: see FACTS."""
    facts = set()
    if customer_turns:
        facts.add("history")
    if len(text.split()) >= DETAILED_WORDS:
        facts.add("detailed")
    if references:
        facts.add("reference")
    if customer_turns or _REPEATED.search(text):
        facts.add("repeated")
    return frozenset(facts)


def unsupported_claims(phrase: Phrase) -> list[str]:
    """The claims `phrase` makes that its `requires` does not provide."""
    return [
        pattern.pattern
        for pattern, fact in CLAIMS
        if pattern.search(phrase.text) and (fact is None or fact not in phrase.requires)
    ]


@dataclass(frozen=True)
class PhraseBank:
    routes: dict[str, dict[str, tuple[Phrase, ...]]]  # route -> {"open": ..., "next": ...}
    frustrated_open: tuple[Phrase, ...]
    repeated_open: tuple[Phrase, ...] = ()
    references: tuple[ReferenceKind, ...] = ()

    def all_phrases(self) -> list[str]:
        """Every sentence of the bank, acknowledgement templates with `{value}` unfilled."""
        every = [p for parts in self.routes.values() for ps in parts.values() for p in ps]
        return [p.text for p in (*every, *self.frustrated_open, *self.repeated_open)] + [
            k.say for k in self.references
        ]


def _phrases(raw: object, where: str, implied: frozenset[str] = frozenset()) -> tuple[Phrase, ...]:
    """A list of phrases: strings, or tables {text, requires}; each must hold its claims and
    at least one must need nothing beyond `implied` (the section's own condition), so every
    message the section is for gets a phrase."""
    if not isinstance(raw, list) or not raw:
        raise BadInput(f"{where} needs a list of non-empty strings or {{text, requires}} tables")
    out = []
    for item in raw:
        text, requires = item, []
        if isinstance(item, dict):
            text, requires = item.get("text"), item.get("requires", [])
        if not isinstance(text, str) or not text.strip():
            raise BadInput(
                f"{where} needs a list of non-empty strings or {{text, requires}} tables"
            )
        if not isinstance(requires, list):
            raise BadInput(f"{where}: {text!r} requires must be a list of facts: {FACTS}")
        unknown = [r for r in requires if r not in FACTS]
        if unknown:
            raise BadInput(f"{where}: {text!r} requires unknown facts {unknown}; known: {FACTS}")
        phrase = Phrase(text, frozenset(requires) | implied)
        claims = unsupported_claims(phrase)
        if claims:
            raise BadInput(
                f"{where}: {text!r} claims what its precondition does not provide ({claims[0]})"
            )
        out.append(phrase)
    if all(p.requires - implied for p in out):
        raise BadInput(f"{where}: at least one phrase must have no precondition")
    return tuple(out)


def load_phrases(path: Path = DEFAULT_PHRASES, routes: tuple[str, ...] = ()) -> PhraseBank:
    """Parse and validate a phrase bank; every route named in `routes` must have phrases."""
    raw = read_toml(path, "phrase bank")
    bank: dict[str, dict[str, tuple[Phrase, ...]]] = {}
    for name, parts in raw.get("routes", {}).items():
        bank[name] = {
            part: _phrases(parts.get(part), f"{path}: routes.{name}.{part}")
            for part in ("open", "next")
        }
    missing = [r for r in routes if r not in bank]
    if missing:
        raise BadInput(f"{path}: no phrases for routes {missing}")
    if not raw.get("frustrated", {}).get("open"):
        raise BadInput(f"{path}: frustrated.open needs at least one phrase")
    frustrated = _phrases(raw["frustrated"]["open"], f"{path}: frustrated.open")
    repeated = (
        _phrases(raw["repeated"]["open"], f"{path}: repeated.open", frozenset({"repeated"}))
        if raw.get("repeated", {}).get("open")
        else ()
    )
    return PhraseBank(bank, frustrated, repeated, load_references(raw.get("references", {}), path))


def _pick(options: tuple[Phrase, ...], key: str, salt: str, facts: frozenset[str]) -> str:
    allowed = [p for p in options if p.requires <= facts]
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return allowed[int.from_bytes(digest[:4], "big") % len(allowed)].text


def suggest(
    bank: PhraseBank,
    route: str,
    frustrated: bool,
    key: str,
    refs: Sequence[Reference] = (),
    facts: frozenset[str] = frozenset(),
) -> list[str]:
    """An opener and a next step for `route`, the same for the same message `key` every time,
    offering only phrases whose preconditions `facts` holds; between them, when the customer
    gave a reference, a sentence that names the first one. A customer who has asked before
    (and is not disengaged) gets an opener that acknowledges it; a disengaged one gets the
    route's own short opener."""
    parts = bank.routes[route]
    if "repeated" in facts and bank.repeated_open and route != "re_engage":
        openers = bank.repeated_open
    elif frustrated and route != "re_engage":
        openers = bank.frustrated_open
    else:
        openers = parts["open"]
    named = [acknowledge(bank.references, refs[0])] if refs else []
    return [_pick(openers, key, "open", facts), *named, _pick(parts["next"], key, "next", facts)]
