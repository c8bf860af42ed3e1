"""A message and its thread as the scorer takes them: one home for thread flattening.

A thread is the earlier turns, oldest first, each (role, text). Every customer turn of the
thread is scored too (the frustration streak in `thread` needs their scores), each with the
turns before it as its context; the message itself is scored with the whole thread. A model
that reads no context ignores the contexts (`Scorer.probabilities_and_truncation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from serving.core.text import context_text

__all__ = ["Thread", "flatten_threads", "split_threads"]

T = TypeVar("T")
#: (earlier turns as (role, text), oldest first; the message's text)
Thread = tuple[Sequence[tuple[str, str]], str]


def flatten_threads(messages: Sequence[Thread]) -> tuple[list[str], list[str]]:
    """(texts, contexts) to score: each thread's customer turns, then its message, in order."""
    texts: list[str] = []
    contexts: list[str] = []
    for turns, text in messages:
        for i, (role, turn) in enumerate(turns):
            if role == "customer":
                texts.append(turn)
                contexts.append(context_text(turns[:i]))
        texts.append(text)
        contexts.append(context_text(turns))
    return texts, contexts


def split_threads(scored: Sequence[T], messages: Sequence[Thread]) -> list[tuple[list[T], T]]:
    """The inverse of `flatten_threads` on the scored list: (customer turns' scores, message's)."""
    out: list[tuple[list[T], T]] = []
    offset = 0
    for turns, _ in messages:
        count = sum(role == "customer" for role, _ in turns) + 1
        part: list[Any] = list(scored[offset : offset + count])
        offset += count
        out.append((part[:-1], part[-1]))
    return out
