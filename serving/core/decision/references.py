"""References the customer gave (order, ticket, booking...), found conservatively so the
agent's phrasing can name them and the customer never has to repeat one.

The cue words and wording are data (the `[references.*]` tables of the phrase bank); the
safety rules for what may be echoed are here, once, so no data file can loosen them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.core.errors import BadInput

__all__ = [
    "MAX_DIGITS",
    "MAX_PHONE_DIGITS",
    "MAX_REFERENCES",
    "MAX_SAY_CHARS",
    "MAX_VALUE_CHARS",
    "MIN_VALUE_CHARS",
    "Reference",
    "ReferenceKind",
    "acknowledge",
    "echoable",
    "find_references",
    "load_references",
]

MIN_VALUE_CHARS = 4  # shorter is more often a quantity ("order 3 more") than a reference
MAX_VALUE_CHARS = 20  # the agent's UI shows it inline: a cap on untrusted text
MAX_DIGITS = 11  # 12+ digits could be a card or bank account number: never echoed in full
MAX_PHONE_DIGITS = 9  # digits-only values with more look like a phone number
MAX_REFERENCES = 3  # per message
MAX_SAY_CHARS = 120

#: ASCII letters and digits, dashes only inside: no markup, quotes, spaces or look-alikes.
VALUE = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")
DATE_LIKE = re.compile(
    r"\d{1,4}-\d{1,2}-\d{1,4}|\d{1,2}-\d{1,2}|(?:19|20)\d\d|(?:19|20)\d\d[01]\d[0-3]\d"
)
#: Besides a space, only these may come right before the value: the cue's own separators.
BEFORE = frozenset("#:([\"'")
#: After the value: closing punctuation then a space or the end, so the value is the whole
#: token ("4471." yes; "4471.50", "4471@mail.com", "4471</b>", "12/03" no) and no currency.
AFTER = re.compile(r"[.,;:!?)\]\"']*(?:\s|$)")
CURRENCY_AFTER = re.compile(r"\s*(?:[$€£¥]|(?:usd|eur|gbp|dollars?|euros?|pounds?)\b)", re.I)


@dataclass(frozen=True)
class ReferenceKind:
    kind: str
    pattern: re.Pattern[str]
    say: str  # the acknowledgement, with {value} once
    show_last: int | None  # echo only the last N characters (accounts)


@dataclass(frozen=True)
class Reference:
    kind: str
    value: str  # as shown: the customer's own characters (the last N with show_last)


def _kind(path: Path, kind: str, spec: Any) -> ReferenceKind:
    where = f"{path}: references.{kind}"
    if not isinstance(spec, dict) or set(spec) - {"pattern", "say", "show_last"}:
        raise BadInput(f"{where} takes pattern, say and optionally show_last")
    pattern, say, show_last = spec.get("pattern"), spec.get("say"), spec.get("show_last")
    if not isinstance(pattern, str):
        raise BadInput(f"{where}.pattern must be a regex string")
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise BadInput(f"{where}.pattern does not compile: {exc}") from None
    if compiled.groups != 1 or "value" not in compiled.groupindex:
        raise BadInput(f"{where}.pattern needs exactly one group, named `value`")
    if (
        not isinstance(say, str)
        or say.count("{value}") != 1
        or re.search(r"[{}<>&]|\d", say.replace("{value}", ""))
        or len(say) > MAX_SAY_CHARS
    ):
        raise BadInput(
            f"{where}.say must contain {{value}} once, no other braces, digits or markup, "
            f"and at most {MAX_SAY_CHARS} characters"
        )
    if show_last is not None and (
        not isinstance(show_last, int) or not 1 <= show_last <= MIN_VALUE_CHARS
    ):
        raise BadInput(f"{where}.show_last must be an integer from 1 to {MIN_VALUE_CHARS}")
    return ReferenceKind(kind, compiled, say, show_last)


def load_references(raw: Any, path: Path) -> tuple[ReferenceKind, ...]:
    """Validate the `[references.*]` tables; a broken one fails at start-up, naming the file."""
    if not isinstance(raw, dict):
        raise BadInput(f"{path}: references must be tables, one per kind")
    return tuple(_kind(path, kind, spec) for kind, spec in raw.items())


def echoable(text: str, start: int, end: int) -> bool:
    """May text[start:end] be echoed? Only if it is a whole token of the customer's text and
    cannot be an amount, a date, a card, phone or account number, an email or markup."""
    value = text[start:end]
    digits = sum(c.isdigit() for c in value)
    return (
        MIN_VALUE_CHARS <= len(value) <= MAX_VALUE_CHARS
        and VALUE.fullmatch(value) is not None
        and 0 < digits <= MAX_DIGITS
        and not (digits > MAX_PHONE_DIGITS and not any(c.isalpha() for c in value))
        and DATE_LIKE.fullmatch(value) is None
        and (start == 0 or text[start - 1].isspace() or text[start - 1] in BEFORE)
        and AFTER.match(text, end) is not None
        and CURRENCY_AFTER.match(text, end) is None
    )


def find_references(kinds: tuple[ReferenceKind, ...], text: str) -> list[Reference]:
    """The references in `text` (this message's customer text only), in the order written,
    each once; deterministic. A span two kinds both match counts for the first kind."""
    found: list[tuple[int, int, Reference]] = []
    for order, kind in enumerate(kinds):
        for match in kind.pattern.finditer(text):
            start, end = match.span("value")
            if start < 0 or not echoable(text, start, end):
                continue
            value = text[start:end]
            if kind.show_last and len(value) <= kind.show_last:
                continue  # it would be echoed in full
            shown = value[-kind.show_last :] if kind.show_last else value
            found.append((start, order, Reference(kind.kind, shown)))
    refs: list[Reference] = []
    starts: set[int] = set()
    for start, _, ref in sorted(found, key=lambda f: (f[0], f[1])):
        if start not in starts and ref not in refs:
            refs.append(ref)
        starts.add(start)
    return refs[:MAX_REFERENCES]


def acknowledge(kinds: tuple[ReferenceKind, ...], ref: Reference) -> str:
    """The sentence that names `ref` for the agent, from its kind's template."""
    say = next(k.say for k in kinds if k.kind == ref.kind)
    return say.replace("{value}", ref.value)
