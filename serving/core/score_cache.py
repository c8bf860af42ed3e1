"""A bounded LRU of one model's scores, keyed by the digest of what the model reads.

A live thread is sent again with each new message: its earlier customer turns come back as
history, each with the context it had before, and would be scored again. A scorer with a cache
(the server's: HELPDESK_SCORE_CACHE_SIZE entries per loaded model, 0 turns it off) scores each
(context, text) once. Keys are sha256 digests, so the cache holds no customer text. Scores do
not depend on the batch a text ran in (the export gate holds them within 1e-4), so a kept
score is the score a fresh batch gives; a reload starts a new model with an empty cache.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["ScoreCache"]


V = TypeVar("V")


class ScoreCache(Generic[V]):
    """Values (the scorer keeps its `Scores`) by key, the least recently used dropped first."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a score cache holds at least one entry, not {size}")
        self.size = size
        self._entries: OrderedDict[bytes, V] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(text: str, context: str) -> bytes:
        """The digest of what the model reads: the context (empty for none) and the text."""
        return hashlib.sha256(f"{len(context)}:{context}\x00{text}".encode()).digest()

    def get(self, key: bytes) -> V | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: bytes, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
