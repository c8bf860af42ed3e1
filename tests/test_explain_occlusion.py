"""Occlusion (serving/core/explain.py): the planted word gets the score drop, long texts stay
bounded, and the strongest words are listed per head and direction."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from serving.core.contract import HEADS
from serving.core.explain import occlusion


class KeywordScorer:
    """Frustration 0.9 when the text holds `word`, else 0.1; the other heads flat. Counts calls."""

    def __init__(self, word: str) -> None:
        self.word, self.calls, self.texts = word, 0, 0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts += len(texts)
        out = np.full((len(texts), len(HEADS)), 0.5)
        out[:, 0] = [0.9 if self.word in t.split() else 0.1 for t in texts]
        return out


def test_the_planted_word_carries_the_score() -> None:
    scorer = KeywordScorer("refund")
    result = occlusion(scorer, "please  refund my\norder")
    assert scorer.calls == 1 and scorer.texts == 5
    assert result.spans == [(0, 6), (8, 14), (15, 17), (18, 23)]
    assert result.drops["frustration"] == pytest.approx([0, 0.8, 0, 0])
    assert result.drops["complaint"] == pytest.approx([0, 0, 0, 0])
    assert result.base["frustration"] == pytest.approx(0.9)
    assert not result.grouped


def test_long_texts_are_occluded_in_bounded_groups() -> None:
    words = [f"w{i}" for i in range(100)]
    words[37] = "refund"
    scorer = KeywordScorer("refund")
    result = occlusion(scorer, " ".join(words), max_units=10)
    assert scorer.calls == 1 and scorer.texts == 11
    assert result.grouped and len(result.spans) == 100
    drops = np.array(result.drops["frustration"])
    assert np.flatnonzero(drops > 0.5).tolist() == list(range(30, 40))


def test_tiny_model_drops_match_rescoring(tiny_release: Path) -> None:
    from serving.core.scorer import Scorer

    scorer = Scorer.load(tiny_release, threads=1)
    text = "my order never arrived and i am angry"
    result = occlusion(scorer.probabilities, text)
    assert len(result.spans) == 8
    assert all(len(result.drops[h]) == 8 for h in HEADS)
    base = scorer.probabilities([text])[0]
    without_angry = scorer.probabilities(["my order never arrived and i am "])[0]
    # static int8 quantization: a text scores the same alone as in the batch of its variants
    for j, head in enumerate(HEADS):
        assert result.base[head] == pytest.approx(base[j], abs=1e-6)
        assert result.drops[head][7] == pytest.approx(base[j] - without_angry[j], abs=1e-6)


def test_strongest_lists_raisers_and_lowerers_by_size() -> None:
    def scores(texts: Sequence[str]) -> np.ndarray:
        out = np.full((len(texts), len(HEADS)), 0.5)
        out[:, 0] += [
            0.3 * ("refund" in t) - 0.2 * ("thanks" in t) + 0.1 * ("now" in t) for t in texts
        ]
        return out

    text = "thanks refund me now"
    strongest = occlusion(scores, text).strongest(top=1)
    assert strongest["frustration"] == {
        "raising": [{"text": "refund", "span": [7, 13], "change": 0.3}],
        "lowering": [{"text": "thanks", "span": [0, 6], "change": -0.2}],
    }
    assert strongest["complaint"] == {"raising": [], "lowering": []}
    assert strongest["grouped"] is False
