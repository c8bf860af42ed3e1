"""Head names, labels and the model-artifact contract, spelled once for every package."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Final

from pydantic import AfterValidator

__all__ = [
    "CHECKSUMS_FILE",
    "FRUSTRATION_LEVELS",
    "HEADS",
    "INPUT_NAMES",
    "MANIFEST_FILE",
    "MASK_PREFIX",
    "MAX_LENGTH_TOKENS",
    "MODEL_CARD_FILE",
    "MODEL_FILE",
    "NOT_BLANK_PATTERN",
    "OUTPUT_NAME",
    "RELEASE_DIR",
    "SPLITS",
    "TOKENIZER_FILE",
    "HeadName",
    "graph_inputs",
    "known_head",
    "mask_column",
    "text_error",
]

#: The four scores, in the order of the model's output columns.
HEADS: Final = ("frustration", "boredom", "complaint", "legitimacy")
FRUSTRATION_LEVELS: Final = ("none", "mild", "strong")
SPLITS: Final = ("train", "dev", "test")

#: Dataset column prefix for "this source has a label for this head" (1.0) or not (0.0).
MASK_PREFIX: Final = "has_"

#: The shipped model: `models/release` of the checkout this package runs from, whatever the
#: working directory (a default path relative to it broke the installed command elsewhere).
RELEASE_DIR: Final = Path(__file__).resolve().parents[2] / "models" / "release"

#: Files of a released model folder.
MODEL_FILE: Final = "model.onnx"
TOKENIZER_FILE: Final = "tokenizer.json"
MANIFEST_FILE: Final = "manifest.json"
MODEL_CARD_FILE: Final = "MODEL_CARD.md"
#: sha256 of every other file of the folder; its own sha256 is the model's identity.
CHECKSUMS_FILE: Final = "SHA256SUMS"
#: Position embeddings of the encoders used (MiniLM, BERT): no manifest may ask for more.
MAX_LENGTH_TOKENS: Final = 512

#: ONNX graph names: int64 [batch, seq] ids and mask, float32 [batch, n] tone features
#: (serving.core.text.TONE_FEATURES), int64 [batch, seq] token types (1: the context segment of a
#: thread-reading model), float32 [batch, len(HEADS)] raw logits.
INPUT_NAMES: Final = ("input_ids", "attention_mask", "tone", "token_type_ids")
OUTPUT_NAME: Final = "logits"


def graph_inputs(reads_context: bool) -> tuple[str, ...]:
    """The graph inputs of a model that reads thread context or of one that does not."""
    return INPUT_NAMES if reads_context else INPUT_NAMES[:3]


def mask_column(head: str) -> str:
    """Name of the dataset column that says whether `head` is labelled in a row."""
    return f"{MASK_PREFIX}{head}"


def known_head(value: str) -> str:
    """`value` if it names a head; the one check every record and request uses."""
    if value not in HEADS:
        raise ValueError(f"unknown head {value!r}; expected one of {', '.join(HEADS)}")
    return value


#: A head name, checked wherever one comes in (pydantic fields).
HeadName = Annotated[str, AfterValidator(known_head)]


#: A scorable text has a character outside ASCII whitespace (the API schema's pattern too).
NOT_BLANK_PATTERN: Final = r"[^ \t\n\r\f\v]"
_NOT_BLANK = re.compile(NOT_BLANK_PATTERN)


def text_error(text: str) -> str | None:
    """Why `text` cannot be scored, or None: blank text, or a lone surrogate (from a JSON
    escape such as "\\ud800"), which is not valid Unicode and which the tokenizer rejects. The
    one rule of every engine: the API's schema, the file and Ray engines' rows."""
    if not _NOT_BLANK.search(text):
        return "empty or whitespace-only text"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text is not valid Unicode (lone surrogate)"
    return None
