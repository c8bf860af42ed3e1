"""Occlusion explanations: which words raised and lowered each score.

Each word (or, for long texts, each group of neighbouring words, so the cost stays bounded) is
removed in turn and the text is scored again; a word's change is the score with it minus the
score without it. The review page and the API's `"explain": true` both use this module; the
API sends the variants through its batcher, the review page through the scorer directly.
Scores are deterministic per text (static int8 quantization), so a variant scores the same
whatever it is batched with.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from serving.core.contract import HEADS

__all__ = ["MAX_UNITS", "TOP_WORDS", "Attribution", "Occlusion", "occlusion", "plan"]

WORD = re.compile(r"\S+")
#: Most words or word groups removed one at a time: a text costs at most 1 + MAX_UNITS texts.
MAX_UNITS = 48
#: Words (or groups) listed per head and direction in an API explanation.
TOP_WORDS = 3

#: texts -> calibrated probabilities, shape (len(texts), len(HEADS)); e.g. Scorer.probabilities.
ProbabilityFn = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Occlusion:
    """A text cut into units, and the variants to score: the text without each unit.
    spans: (start, end) of each word; sizes: words per unit, in order."""

    text: str
    spans: list[tuple[int, int]]
    sizes: list[int]
    variants: list[str]

    @property
    def units(self) -> list[tuple[int, int]]:
        """The character span of each unit, from its first word's start to its last's end."""
        ends = np.cumsum(self.sizes, dtype=int)
        return [
            (self.spans[e - n][0], self.spans[e - 1][1])
            for n, e in zip(self.sizes, ends, strict=True)
        ]


def plan(text: str, max_units: int = MAX_UNITS) -> Occlusion:
    """Cut `text` into at most `max_units` runs of neighbouring words of equal size."""
    spans = [(int(a), int(b)) for a, b in (m.span() for m in WORD.finditer(text))]
    size = max(1, math.ceil(len(spans) / max_units))
    units = [spans[i : i + size] for i in range(0, len(spans), size)]
    variants = [text[: unit[0][0]] + text[unit[-1][1] :] for unit in units]
    return Occlusion(text, spans, [len(u) for u in units], variants)


@dataclass(frozen=True)
class Attribution:
    """changes[h][u]: how much unit u raised (+) or lowered (-) head h's score; base: the
    scores of the whole text; grouped: units hold more than one word."""

    occlusion: Occlusion
    changes: dict[str, list[float]]
    base: dict[str, float]

    @classmethod
    def of(cls, occluded: Occlusion, base: np.ndarray, without: np.ndarray) -> Attribution:
        """From the whole text's scores (len(HEADS),) and the variants' (units, len(HEADS))."""
        base = np.asarray(base, dtype=float)
        per_unit = base[None, :] - np.asarray(without, dtype=float).reshape(-1, len(HEADS))
        return cls(
            occluded,
            {h: per_unit[:, j].tolist() for j, h in enumerate(HEADS)},
            {h: float(base[j]) for j, h in enumerate(HEADS)},
        )

    @property
    def spans(self) -> list[tuple[int, int]]:
        """The character span of each word."""
        return self.occlusion.spans

    @property
    def grouped(self) -> bool:
        return any(size > 1 for size in self.occlusion.sizes)

    @property
    def drops(self) -> dict[str, list[float]]:
        """Per word: its unit's change (words of one group share it)."""
        sizes = self.occlusion.sizes
        return {h: np.repeat(v, sizes).tolist() for h, v in self.changes.items()}

    def as_json(self) -> dict[str, object]:
        """Per-word form for the review page's highlighting."""
        return {
            "spans": [list(span) for span in self.spans],
            "drops": {h: [round(d, 4) for d in v] for h, v in self.drops.items()},
            "base": {h: round(v, 4) for h, v in self.base.items()},
            "grouped": self.grouped,
        }

    def strongest(self, top: int = TOP_WORDS) -> dict[str, object]:
        """Per head the `top` units that raised and lowered its score most (units that changed
        nothing are neither), with their text and character span: the API's `explanation`."""
        text, units = self.occlusion.text, self.occlusion.units

        def entry(i: int, change: float) -> dict[str, object]:
            start, end = units[i]
            return {"text": text[start:end], "span": [start, end], "change": change}

        heads: dict[str, object] = {}
        for head, values in self.changes.items():
            changes = [round(v, 4) for v in values]  # as shown: a change that rounds to 0 is none
            raising = sorted((i for i, c in enumerate(changes) if c > 0), key=lambda i: -changes[i])
            lowering = sorted((i for i, c in enumerate(changes) if c < 0), key=lambda i: changes[i])
            heads[head] = {
                "raising": [entry(i, changes[i]) for i in raising[:top]],
                "lowering": [entry(i, changes[i]) for i in lowering[:top]],
            }
        return {**heads, "grouped": self.grouped}


def occlusion(probabilities: ProbabilityFn, text: str, max_units: int = MAX_UNITS) -> Attribution:
    """Change per unit for every head, from one call of `probabilities` on
    1 + min(words, max_units) texts."""
    occluded = plan(text, max_units)
    scores = np.asarray(probabilities([text, *occluded.variants]), dtype=float)
    return Attribution.of(occluded, scores[0], scores[1:])
