"""References in the phrasing: found conservatively, echoed verbatim, filled phrases follow
the phrasing principles, and a broken `[references]` table fails at load."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.core.decision.phrasing import load_phrases, suggest
from serving.core.decision.references import (
    MAX_DIGITS,
    MAX_PHONE_DIGITS,
    MAX_REFERENCES,
    MAX_SAY_CHARS,
    MAX_VALUE_CHARS,
    Reference,
    find_references,
)
from serving.core.errors import BadInput
from tests.test_routing_phrasing import BANK, broken_principles

KINDS = BANK.references
MASKED = {k.kind: k.show_last for k in KINDS}
PIECES = re.compile(r"[\s#:(\[\"'.,;!?)\]]+")  # what separates a reference from its neighbours
UNSAFE_NEIGHBOURS = re.compile(r"[$€£¥]\s?$|\d[/.,]$|[@<>&]$")  # before the value
UNSAFE_AFTER = re.compile(r"^(?:[/.,]\d|[@<>&])")


def clean_occurrence(text: str, token: str) -> bool:
    """Some occurrence of `token` in `text` is not part of an amount, date, email or markup."""
    for match in re.finditer(re.escape(token), text):
        before, after = text[: match.start()], text[match.end() :]
        if not UNSAFE_NEIGHBOURS.search(before) and not UNSAFE_AFTER.match(after):
            return True
    return False


def check_echo(text: str, ref: Reference) -> None:
    """The value is the customer's own token, verbatim, and safe to show (an independent
    oracle for serving/core/decision/references.py, not a copy of its rules)."""
    value = ref.value
    assert re.fullmatch(r"[A-Za-z0-9-]+", value) and len(value) <= MAX_VALUE_CHARS
    pieces = PIECES.split(text)
    tokens = [p for p in pieces if p.endswith(value)] if MASKED[ref.kind] else [value]
    assert any(t in pieces for t in tokens), f"{value!r} is not a whole token of {text!r}"
    token = next((t for t in tokens if t in pieces and clean_occurrence(text, t)), None)
    assert token, f"every {value!r} in {text!r} is part of an amount, date, email or markup"
    digits = sum(c.isdigit() for c in token)
    assert 0 < digits <= MAX_DIGITS, "no digit, or a card-like number"
    assert any(c.isalpha() for c in token) or digits <= MAX_PHONE_DIGITS, "a phone number"
    assert not re.fullmatch(r"\d{1,4}-\d{1,2}-\d{1,4}|(?:19|20)\d\d", token), "a date"
    if MASKED[ref.kind]:
        assert len(value) == MASKED[ref.kind] and len(token) > len(value)


def check_phrasing(text: str, refs: list[Reference], phrasing: list[str]) -> None:
    """Filled phrases follow the principles once the customer's value is taken out."""
    for ref in refs:
        check_echo(text, ref)
    for phrase in phrasing:
        masked = phrase.replace(refs[0].value, "VALUE") if refs else phrase
        assert broken_principles(masked) == [], phrase
        assert len(phrase) <= MAX_SAY_CHARS + MAX_VALUE_CHARS


CORPUS = [
    ("Order 4471 arrived with a cracked screen", [("order", "4471")]),
    ("my order number is AB-4471.", [("order", "AB-4471")]),
    ("Order No. 4471 is late", [("order", "4471")]),
    ("order #88123 never came", [("order", "88123")]),
    ("order ref: AB12CD, still nothing", [("order", "AB12CD")]),
    ("ORDER#A7-7781: broken", [("order", "A7-7781")]),
    ("ticket: 4471, thanks", [("ticket", "4471")]),
    ("I opened ticket #T-20931 last week", [("ticket", "T-20931")]),
    ("case no 5512 is still open", [("case", "5512")]),
    ("booking reference XK12PL and ticket #88812", [("booking", "XK12PL"), ("ticket", "88812")]),
    ("My reservation code: QZ-881 was cancelled", [("booking", "QZ-881")]),
    ("confirmation number ZX81Q", [("reference", "ZX81Q")]),
    ("account number 12345678 is locked", [("account", "5678")]),
    ("account 4471 is locked", []),  # shown in full if echoed at all
    ("(order 4471) and again: order 4471!", [("order", "4471")]),
    ("ticket 4471 and order 4471", [("ticket", "4471"), ("order", "4471")]),
    ("nothing to see here, my parcel is late", []),
    ("order status please, I ordered 4471 items", []),
    ("I was charged $4471 for my order", []),
    ("order $4471", []),
    ("order 4471.50 was refunded", []),
    ("order 4471 EUR is what I paid", []),
    ("booking 12/03/2025 was moved", []),
    ("booking 2025-03-12 was moved", []),
    ("my reservation 2025 summer", []),
    ("account 4111-1111-1111-1111", []),
    ("order 4111111111111111", []),
    ("order AB123456789012 please", []),  # 12 digits: could be a card or bank account
    ("order AB12345678901 please", [("order", "AB12345678901")]),
    ("ticket 07946095812 call me", []),
    ("order 4471@example.com", []),
    ("order <b>1234</b>", []),
    ("order 1234</b>", []),
    ("order 1234<script>alert(1)</script>", []),
    ("order " + "A1" * 30, []),
    ("order \u212a4471", []),  # Kelvin sign: looks like K, matches [A-Z] case-insensitively
    ("order \uff14\uff14\uff17\uff11", []),  # fullwidth digits
    ("just in case 12 of them break", []),
]


@pytest.mark.parametrize("text, expected", CORPUS)
def test_corpus(text: str, expected: list[tuple[str, str]]) -> None:
    refs = find_references(KINDS, text)
    assert [(r.kind, r.value) for r in refs] == expected
    check_phrasing(text, refs, suggest(BANK, "complaint_desk", False, text, refs))


def test_acknowledgement_goes_between_opener_and_next_step() -> None:
    refs = find_references(KINDS, "Order 4471 arrived with a cracked screen")
    opener, named, step = suggest(BANK, "standard", False, "m-1", refs)
    assert named == "I can see this is about order 4471."
    assert [opener, step] == suggest(BANK, "standard", False, "m-1")


def test_at_most_max_references() -> None:
    text = "order 1234, ticket 2345, case 3456, booking 4567, ref 5678"
    assert len(find_references(KINDS, text)) == MAX_REFERENCES


CUES = ["order", "Order", "ORDER", "ticket", "case", "booking", "reservation", "ref.", "orders"]
ODD = ["$4471", "4471.50", "12/03/2025", "4111-1111-1111-1111", "<b>1234</b>", "a@b.com"]
value_like = st.one_of(
    st.from_regex(r"[A-Z]{0,3}[0-9]{1,14}(-[A-Za-z0-9]{1,4})?", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9-]{1,25}", fullmatch=True),
    st.sampled_from(ODD),
)
cued = st.builds(
    "".join,
    st.tuples(
        st.sampled_from([*CUES, "account", "order number is", "confirmation"]),
        st.sampled_from([" ", " #", ": ", " no. ", " ref: ", "#"]),
        value_like,
    ),
)
word = st.one_of(
    cued,
    st.sampled_from([*CUES, *ODD, "number", "is", "no.", "#", ":", "my", "late", "EUR"]),
    value_like,
    st.text(max_size=8),
)
glue = st.sampled_from([" ", " #", ": ", "#", "  ", "\n", ".", "</b>", "@x.com", ")", "'s"])


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.lists(st.tuples(word, glue), max_size=12))
def test_echoed_values_are_verbatim_and_safe(parts: list[tuple[str, str]]) -> None:
    text = "".join(w + g for w, g in parts)
    refs = find_references(KINDS, text)
    assert refs == find_references(KINDS, text)
    check_phrasing(text, refs, suggest(BANK, "escalate_senior", True, text, refs))


BANK_HEAD = "[routes.standard]\nopen=['Hi.']\nnext=['Let me check.']\n[frustrated]\nopen=['Ok.']\n"
GOOD = r"'''\border\s+(?P<value>[A-Z0-9-]+)'''"


@pytest.mark.parametrize(
    "table, message",
    [
        (f"pattern={GOOD}\nsay='About {{value}}.'\nextra=1", "takes pattern, say"),
        ("pattern='order ('\nsay='About {value}.'", "does not compile"),
        ("pattern='order ([0-9]+)'\nsay='About {value}.'", "one group, named `value`"),
        ("pattern='(o)(?P<value>[0-9]+)'\nsay='About {value}.'", "one group, named `value`"),
        (f"pattern={GOOD}\nsay='About it.'", "say must contain"),
        (f"pattern={GOOD}\nsay='About {{value}} {{value}}.'", "say must contain"),
        (f"pattern={GOOD}\nsay='<b>{{value}}</b>'", "say must contain"),
        (f"pattern={GOOD}\nsay='Order {{value}} ships in 2 days.'", "say must contain"),
        (f"pattern={GOOD}\nsay='About {{value}}.'\nshow_last=0", "show_last"),
    ],
)
def test_broken_reference_table_is_a_clear_error(tmp_path: Path, table: str, message: str) -> None:
    path = tmp_path / "phrases.toml"
    path.write_text(f"{BANK_HEAD}[references.order]\n{table}\n")
    with pytest.raises(BadInput, match=message) as caught:
        load_phrases(path)
    assert str(path) in str(caught.value)


def test_a_bank_without_references_names_none(tmp_path: Path) -> None:
    path = tmp_path / "phrases.toml"
    path.write_text(BANK_HEAD)
    bank = load_phrases(path)
    assert find_references(bank.references, "Order 4471 arrived") == []


@pytest.mark.parametrize("filler", [" ", "\t", "\n"])
def test_a_long_run_after_a_cue_is_searched_quickly(filler: str) -> None:
    """Patterns must not backtrack quadratically: a message may hold 20000 characters."""
    text = "order number is" + filler * (20_000 // len(filler)) + "!"
    start = time.perf_counter()
    assert find_references(KINDS, text) == []
    assert time.perf_counter() - start < 1.0
