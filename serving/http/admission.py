"""Admission: whether a request's work may join the batch queue, counted in real tokens.

Kept apart from batching (`serving.http.batcher`), as TEI's router keeps its admission apart
from its batching: admission prices a request in the tokens the model will read (the loaded
tokenizer's counts after truncation, context included) and refuses it (`QueueFull`) when the
tokens the fair schedule runs ahead of it, plus its own, exceed `max_queued_tokens`. A request
with nothing ahead of it is always admitted, so an oversized request is slow, never refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Admission", "QueueFull", "TokenCounts"]

#: (texts, contexts) -> tokens each text costs the model.
TokenCounts = Callable[[Sequence[str], Sequence[str]], list[int]]


class QueueFull(Exception):
    """Too much work is queued ahead of this request."""


def _one_each(texts: Sequence[str], contexts: Sequence[str]) -> list[int]:
    return [1] * len(texts)


@dataclass(frozen=True)
class Admission:
    max_queued_tokens: int = 1 << 30
    count: TokenCounts = _one_each

    def price(self, texts: Sequence[str], contexts: Sequence[str]) -> list[int]:
        """Tokens each text costs (the batcher budgets its batches with the same numbers)."""
        return self.count(texts, contexts)

    def admit(self, costs: Sequence[int], ahead: int) -> None:
        """Raise QueueFull unless `costs` fit behind `ahead` queued tokens (or nothing is ahead)."""
        if ahead and ahead + sum(costs) > self.max_queued_tokens:
            raise QueueFull(f"{ahead} tokens queued ahead")
