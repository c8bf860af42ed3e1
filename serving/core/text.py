"""The one path from a message to model inputs, shared by training, export and serving.

Three things happen here and nowhere else:
- **Normalisation**: NFKC folds full-width and other compatibility forms ("ＷＨＥＲＥ" -> "WHERE",
  mathematical bold letters -> ASCII), and a confusables map turns Cyrillic and Greek look-alike
  letters inside Latin words into the Latin letters they imitate ("rеfund" with a Cyrillic е).
  Without it the uncased WordPiece vocabulary sees unknown tokens and a furious message in
  full-width letters scores as calm.
- **Tone**: the uncased tokenizer erases capitals, and repeated punctuation, elongated words and
  emoji barely survive it, so a few tone features (`TONE_FEATURES`) are computed from the
  normalised text and given to the heads beside the encoder's pooled output.
- **Head + tail truncation**: a message longer than the model's `max_length` keeps its first
  tokens and its last `TAIL_SHARE` of the budget, so a complaint at the end of a long message is
  not cut off.
- **Context**: a thread-reading model (manifest `context_length` > 0) reads the message and then
  its context as a second segment (`token_type_ids` 1): the earlier turns, most recent first,
  each marked by its role, cut at `context_length` tokens so the oldest turns go first. A message
  without history is encoded exactly as a lone message.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

__all__ = [
    "CONTEXT_TURNS",
    "TAIL_SHARE",
    "TONE_FEATURES",
    "Encoded",
    "context_of_history",
    "context_text",
    "encode",
    "load_tokenizer",
    "normalise",
    "token_counts",
    "tone",
]

#: Look-alike letters (Unicode confusables of Latin letters, Cyrillic and Greek) -> Latin.
CONFUSABLES = str.maketrans(
    "аеорсухіјѕԁһӏАВЕКМНОРСТХІЈЅԜԝαοτνυκιΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
    "aeopcyxijsdhlABEKMHOPCTXIJSWwaotvukiABEZHIKMNOPTYX",
)
_LATIN = re.compile(r"[A-Za-z]")
_WORD = re.compile(r"\S+")
_CONFUSABLE_CHARS = frozenset(chr(c) for c in CONFUSABLES)


def _unconfuse(word: str) -> str:
    """Map look-alikes in a word that mixes scripts (or is made of look-alikes only)."""
    if _LATIN.search(word) or all(c in _CONFUSABLE_CHARS or not c.isalpha() for c in word):
        return word.translate(CONFUSABLES)
    return word


def normalise(text: str) -> str:
    """NFKC, then look-alike letters folded to Latin within Latin-looking words."""
    text = unicodedata.normalize("NFKC", text)
    if text.isascii():
        return text
    return _WORD.sub(lambda m: _unconfuse(m.group(0)), text)


#: Tone the tokenizer cannot see, each scaled to [0, 1].
TONE_FEATURES = (
    "capitals_share",  # share of letters in capitals (texts with >= 6 letters)
    "shouted_words",  # words of >= 3 letters in capitals, /3, capped at 1
    "exclamations",  # "!" count /3, capped
    "repeated_punctuation",  # a run such as "!!", "??", "?!"
    "elongation",  # a letter repeated 3+ times ("sooo", "pleeease")
    "negative_emoji",
    "positive_emoji",
    "ellipsis",  # "..." or "…" (trailing off, resignation)
)
_SHOUTED = re.compile(r"\b[A-Z]{3,}\b")
_REPEATED_PUNCT = re.compile(r"[!?]{2,}")
_ELONGATED = re.compile(r"([a-zA-Z])\1\1")
_ELLIPSIS = re.compile(r"\.\.\.|…")
NEGATIVE_EMOJI = frozenset("😡😠🤬😤😒🙄😞😢😭👎😩😫😑😐💩🤦😣😖😕☹🙁")
POSITIVE_EMOJI = frozenset("😀😃😄😁😊🙂😍🥰👍😘🙏😂🤣❤💕💯👏🎉😎✨💙💜💚")


def tone(text: str) -> list[float]:
    """The `TONE_FEATURES` of one normalised text."""
    letters = [c for c in text if c.isalpha()]
    upper = sum(c.isupper() for c in letters)
    return [
        upper / len(letters) if len(letters) >= 6 else 0.0,
        min(len(_SHOUTED.findall(text)) / 3, 1.0),
        min(text.count("!") / 3, 1.0),
        float(bool(_REPEATED_PUNCT.search(text))),
        float(bool(_ELONGATED.search(text))),
        float(any(c in NEGATIVE_EMOJI for c in text)),
        float(any(c in POSITIVE_EMOJI for c in text)),
        float(bool(_ELLIPSIS.search(text))),
    ]


#: Share of the token budget kept from the end of a message that is too long.
TAIL_SHARE = 0.25


#: Earlier turns of a thread that a context model reads (most recent first, then cut by tokens).
CONTEXT_TURNS = 4


def context_text(turns: Sequence[tuple[str, str]]) -> str:
    """The context segment of a message: its earlier (role, text) turns, oldest first as the
    API takes them, written most recent first, each after its role, so a token cut drops the
    oldest turns first."""
    recent = list(turns)[-CONTEXT_TURNS:][::-1]
    return " | ".join(f"{role}: {text}" for role, text in recent)


def context_of_history(raw: object) -> str:
    """`context_text` of a stored history: a JSON list of {"role", "text"} turns, oldest first
    (a dataset's `history` column, a predictions record); "" when there is none."""
    turns = json.loads(raw) if isinstance(raw, str) and raw.strip() else raw
    if not isinstance(turns, list):
        return ""
    return context_text([(str(t["role"]), str(t["text"])) for t in turns])


@dataclass(frozen=True)
class Encoded:
    """Model inputs for a batch: int64 ids, mask and token types (batch, width), float32 tone
    (batch, 8). Token type 1 marks the context segment."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    tone: np.ndarray
    truncated: list[bool]
    token_type_ids: np.ndarray | None = None

    def inputs(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        """The arrays a graph with these input names takes, by name."""
        arrays = {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "tone": self.tone,
            "token_type_ids": (
                self.token_type_ids
                if self.token_type_ids is not None
                else np.zeros_like(self.input_ids)
            ),
        }
        return {name: arrays[name] for name in names}


def load_tokenizer(path: Path) -> Tokenizer:
    """A WordPiece tokenizer.json with padding and truncation off: `encode` does both."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def _fit(ids: list[int], max_length: int) -> list[int]:
    """Keep [CLS] + head + tail + [SEP] within max_length tokens."""
    if len(ids) <= max_length:
        return ids
    body = max_length - 2
    tail = int(body * TAIL_SHARE)
    return ids[: 1 + body - tail] + ids[len(ids) - 1 - tail :]


def _context_ids(tokenizer: Tokenizer, contexts: Sequence[str], budget: int) -> list[list[int]]:
    """Each context's tokens without [CLS], cut to `budget` - 1 and closed by [SEP]; an empty
    context has no tokens at all."""
    out: list[list[int]] = [[] for _ in contexts]
    present = [i for i, c in enumerate(contexts) if c.strip()]
    if budget < 2 or not present:
        return out
    encodings = tokenizer.encode_batch([normalise(contexts[i]) for i in present])
    for i, encoding in zip(present, encodings, strict=True):
        body = encoding.ids[1:-1][: budget - 1]
        out[i] = [*body, encoding.ids[-1]]
    return out


def token_counts(
    tokenizer: Tokenizer,
    texts: Sequence[str],
    max_length: int,
    contexts: Sequence[str] | None = None,
    context_length: int = 0,
) -> list[int]:
    """The tokens `encode` gives each row (message after truncation, plus its context
    segment): what a row costs the model before padding."""
    encodings = tokenizer.encode_batch([normalise(t) for t in texts])
    context = _context_ids(tokenizer, contexts or [""] * len(texts), context_length)
    return [
        min(len(e.ids), max_length) + len(extra)
        for e, extra in zip(encodings, context, strict=True)
    ]


def encode(
    tokenizer: Tokenizer,
    texts: Sequence[str],
    max_length: int,
    contexts: Sequence[str] | None = None,
    context_length: int = 0,
) -> Encoded:
    """Normalise, tokenize, truncate head + tail and pad to the longest row of the batch; with
    `context_length` > 0, each row's context (`context_text`) follows as segment 1. Tone is
    the message's own."""
    normalised = [normalise(t) for t in texts]
    encodings = tokenizer.encode_batch(normalised)
    fitted = [_fit(e.ids, max_length) for e in encodings]
    context = _context_ids(tokenizer, contexts or [""] * len(texts), context_length)
    width = max(len(ids) + len(extra) for ids, extra in zip(fitted, context, strict=True))
    input_ids = np.zeros((len(texts), width), dtype=np.int64)
    attention_mask = np.zeros((len(texts), width), dtype=np.int64)
    token_type_ids = np.zeros((len(texts), width), dtype=np.int64)
    for row, (ids, extra) in enumerate(zip(fitted, context, strict=True)):
        input_ids[row, : len(ids) + len(extra)] = ids + extra
        attention_mask[row, : len(ids) + len(extra)] = 1
        token_type_ids[row, len(ids) : len(ids) + len(extra)] = 1
    return Encoded(
        input_ids=input_ids,
        attention_mask=attention_mask,
        tone=np.array([tone(t) for t in normalised], dtype=np.float32).reshape(
            len(texts), len(TONE_FEATURES)
        ),
        truncated=[len(e.ids) > max_length for e in encodings],
        token_type_ids=token_type_ids,
    )
