"""Occlusion attribution: which words drove a score.

Each word (or, for long texts, each group of neighbouring words, so the cost stays bounded) is
removed in turn and the text is scored again; the attribution of a word is how much the score
dropped without it. All variants go through the scorer in one batched call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from serving.contract import HEADS

__all__ = ["Attribution", "occlusion"]

WORD = re.compile(r"\S+")

#: texts -> calibrated probabilities, shape (len(texts), len(HEADS)); e.g. Scorer.probabilities.
ProbabilityFn = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Attribution:
    """spans: (start, end) character span of each word in the text; drops[h][i]: score drop
    for head h when word i's unit was removed (words of one group share it); base: the
    scores of the whole text."""

    spans: list[tuple[int, int]]
    drops: dict[str, list[float]]
    base: dict[str, float]
    grouped: bool

    def as_json(self) -> dict[str, object]:
        return {
            "spans": [list(span) for span in self.spans],
            "drops": {h: [round(d, 4) for d in v] for h, v in self.drops.items()},
            "base": {h: round(v, 4) for h, v in self.base.items()},
            "grouped": self.grouped,
        }


def occlusion(probabilities: ProbabilityFn, text: str, max_units: int = 48) -> Attribution:
    """Score drop per word for every head, from one call of `probabilities` on
    1 + min(words, max_units) texts."""
    spans = [m.span() for m in WORD.finditer(text)]
    size = max(1, math.ceil(len(spans) / max_units))
    units = [spans[i : i + size] for i in range(0, len(spans), size)]
    variants = [text[: unit[0][0]] + text[unit[-1][1] :] for unit in units]
    scores = np.asarray(probabilities([text, *variants]), dtype=float)
    base, without = scores[0], scores[1:]
    per_unit = base[None, :] - without  # (units, heads)
    per_word = np.repeat(per_unit, [len(u) for u in units], axis=0) if units else per_unit
    return Attribution(
        spans=[(int(a), int(b)) for a, b in spans],
        drops={h: per_word[:, j].tolist() for j, h in enumerate(HEADS)},
        base={h: float(base[j]) for j, h in enumerate(HEADS)},
        grouped=size > 1,
    )
