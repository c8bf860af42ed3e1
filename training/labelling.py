"""Labelling functions (weak supervision) for the two heads no public corpus labels.

Each function reads one row (its text and the source's metadata) and votes POSITIVE, NEGATIVE
or ABSTAIN. `training.label_model` combines the votes into probabilistic labels. Legitimacy
functions are only applied to rows that are complaints.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ABSTAIN",
    "BOREDOM_LFS",
    "LEGITIMACY_LFS",
    "NEGATIVE",
    "POSITIVE",
    "LabellingFunction",
    "apply_lfs",
]

ABSTAIN, NEGATIVE, POSITIVE = -1, 0, 1
Row = Mapping[str, object]


@dataclass(frozen=True)
class LabellingFunction:
    name: str
    doc: str
    fn: Callable[[str, Row], int]

    def __call__(self, text: str, meta: Row) -> int:
        return self.fn(text, meta)


def _num(meta: Row, key: str) -> float:
    value = meta.get(key)
    return float(value) if isinstance(value, int | float) else math.nan


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


_MINIMAL = {
    "ok",
    "k",
    "kk",
    "okay",
    "okey",
    "fine",
    "whatever",
    "sure",
    "yeah",
    "yep",
    "yup",
    "meh",
    "alright",
    "right",
    "mhm",
    "hmm",
    "np",
    "thx",
    "ta",
    "noted",
    "cool",
    "idk",
    "nvm",
}
_RESIGNED = re.compile(
    r"\b(never ?mind|nvm|forget (it|about it)|(does ?n[o']?t|doesnt) matter|(do ?n[o']?t|dont) care"
    r"|whatever|i give up|not worth (it|the)|can'?t be bothered|too tired|so tired|bored|boring"
    r"|just close (it|the)|i'?m done|don'?t have the energy|same as before|as i said)\b",
    re.IGNORECASE,
)
_ENERGY = re.compile(
    r"(!|\b(love|amazing|awesome|excited|great|thanks so much|urgent|asap)\b)", re.IGNORECASE
)


def _minimal_reply(text: str, meta: Row) -> int:
    words = _words(text)
    return POSITIVE if 0 < len(words) <= 3 and set(words) <= _MINIMAL else ABSTAIN


def _resigned(text: str, meta: Row) -> int:
    return POSITIVE if _RESIGNED.search(text) else ABSTAIN


def _high_energy(text: str, meta: Row) -> int:
    caps = sum(1 for w in text.split() if len(w) > 2 and w.isupper())
    return NEGATIVE if _ENERGY.search(text) or caps >= 2 else ABSTAIN


def _engaged_question(text: str, meta: Row) -> int:
    return NEGATIVE if "?" in text and len(_words(text)) >= 6 else ABSTAIN


def _detailed(text: str, meta: Row) -> int:
    return NEGATIVE if len(_words(text)) >= 25 and not _RESIGNED.search(text) else ABSTAIN


def _emobank_corner(text: str, meta: Row) -> int:
    arousal, valence = _num(meta, "meta_arousal"), _num(meta, "meta_valence")
    if math.isnan(arousal):
        return ABSTAIN
    if arousal <= 2.6 and valence <= 2.9:
        return POSITIVE
    return NEGATIVE if arousal >= 3.4 else ABSTAIN


_ENGAGED_EMOTIONS = {"anger", "excitement", "joy", "curiosity", "gratitude", "amusement", "love"}


def _goemotions_aroused(text: str, meta: Row) -> int:
    emotions = set(str(meta.get("meta_emotions") or "").split(","))
    return NEGATIVE if emotions & _ENGAGED_EMOTIONS else ABSTAIN


BOREDOM_LFS: Sequence[LabellingFunction] = (
    LabellingFunction(
        "minimal_reply", "1-3 words, all minimal acknowledgements (ok, k, fine)", _minimal_reply
    ),
    LabellingFunction(
        "resigned", "resignation phrases (never mind, forget it, whatever)", _resigned
    ),
    LabellingFunction("high_energy", "'!', caps or excited/urgent words: engaged", _high_energy),
    LabellingFunction(
        "engaged_question", "a real question of 6+ words: engaged", _engaged_question
    ),
    LabellingFunction("detailed", "25+ words without resignation: engaged", _detailed),
    LabellingFunction(
        "emobank_corner",
        "EmoBank human ratings: low arousal and valence = 1, high arousal = 0",
        _emobank_corner,
    ),
    LabellingFunction(
        "goemotions_aroused", "GoEmotions high-arousal emotion: engaged", _goemotions_aroused
    ),
)

_SPECIFICS = re.compile(
    r"(#\s?\d{3,}|\b(order|ticket|account|case|ref|invoice|booking|tracking)\s*(no\.?|number|#)?"
    r"\s*[:#]?\s*[a-z]*\d{3,}|[$€£]\s?\d|\d+(\.\d\d)\s?(usd|eur|gbp|dollars)?"
    r"|\b\d{1,2}(st|nd|rd|th)?\s+(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
    r"|\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\s+\d{1,2}\b"
    r"|\b\d{1,2}/\d{1,2}(/\d{2,4})?\b)",
    re.IGNORECASE,
)
_FAILURE = re.compile(
    r"\b(charged (me )?twice|double[- ]charged|overcharged|never (arrived|received|came|showed)"
    r"|not (delivered|received|arrived|working)|(doesn'?t|does not|won'?t|stopped) work"
    r"|broken|damaged|cracked|defective|faulty|wrong (item|size|order|amount|charge)|missing"
    r"|still (waiting|no|not|haven'?t)|cancell?ed|outage|crash(es|ed|ing)?|no refund"
    r"|(keep|kept) (being )?(transferred|passed)|unauthori[sz]ed|fraud|error|late fee)\b",
    re.IGNORECASE,
)
_ABUSE = re.compile(
    r"\b(idiots?|morons?|stupid|garbage|trash|pathetic|useless|clowns?|scam(mers)?|suck|"
    r"worst|incompetent|f+u+c+k\w*|shit\w*|crap)\b",
    re.IGNORECASE,
)
_OWN_MISTAKE = re.compile(
    r"\b(my (own )?(mistake|fault|bad)|i (forgot|accidentally|mistakenly|misread|typed|"
    r"didn'?t (read|check|notice))|by (mistake|accident))\b",
    re.IGNORECASE,
)
_UNREASONABLE = re.compile(
    r"\b(\d+|two|three|four|five|several) years ago|changed my mind|just (don'?t|do not) like"
    r"|for free forever|lifetime (free|supply)|because of the (weather|rain|snow|traffic)"
    r"|compensat\w+ for (my|the) (time|stress|inconvenience)",
    re.IGNORECASE,
)


def _specifics(text: str, meta: Row) -> int:
    return POSITIVE if _SPECIFICS.search(text) else ABSTAIN


def _concrete_failure(text: str, meta: Row) -> int:
    return POSITIVE if _FAILURE.search(text) else ABSTAIN


def _abuse_only(text: str, meta: Row) -> int:
    return NEGATIVE if _ABUSE.search(text) and not _FAILURE.search(text) else ABSTAIN


def _own_mistake(text: str, meta: Row) -> int:
    return NEGATIVE if _OWN_MISTAKE.search(text) else ABSTAIN


def _unreasonable(text: str, meta: Row) -> int:
    return NEGATIVE if _UNREASONABLE.search(text) else ABSTAIN


def _cfpb_relief(text: str, meta: Row) -> int:
    response = str(meta.get("meta_response") or "")
    if "relief" in response and "without" not in response:
        return POSITIVE
    return NEGATIVE if response in {"Closed with explanation", "Closed without relief"} else ABSTAIN


LEGITIMACY_LFS: Sequence[LabellingFunction] = (
    LabellingFunction("specifics", "order/account numbers, amounts or dates", _specifics),
    LabellingFunction(
        "concrete_failure",
        "a concrete failure the business owns (double charge, broken item, missed delivery)",
        _concrete_failure,
    ),
    LabellingFunction("abuse_only", "insults with no concrete failure named", _abuse_only),
    LabellingFunction("own_mistake", "the customer's own mistake", _own_mistake),
    LabellingFunction(
        "unreasonable",
        "demand outside reasonable expectation (years later, changed mind, weather)",
        _unreasonable,
    ),
    LabellingFunction(
        "cfpb_relief",
        "CFPB company response: relief = 1, explanation = 0 (weak, noisy)",
        _cfpb_relief,
    ),
)


#: The addressing plumbing of real support tweets (handles, TWCS's `__company__` placeholders,
#: links): no function should count "@AmazonHelp ok" as three words.
ADDRESSING = re.compile(r"@\w+|__\w+__|https?://\S+")


def apply_lfs(
    lfs: Sequence[LabellingFunction], texts: Sequence[str], metas: Sequence[Row]
) -> np.ndarray:
    """Vote matrix, shape (n_rows, n_lfs), values in {ABSTAIN, NEGATIVE, POSITIVE}; each text is
    read without its addressing plumbing."""
    votes = np.full((len(texts), len(lfs)), ABSTAIN, dtype=np.int8)
    for i, (raw, meta) in enumerate(zip(texts, metas, strict=True)):
        text = " ".join(ADDRESSING.sub(" ", raw).split())
        for j, lf in enumerate(lfs):
            votes[i, j] = lf(text, meta)
    return votes
