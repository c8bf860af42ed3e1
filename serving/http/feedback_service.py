"""The feedback store behind POST /v1/feedback: opened at start-up, reopened after a failure,
with each caller's hourly quota and the caller-namespaced idempotency key."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from serving.core.errors import HelpdeskError, Kind, StoreUnavailable
from serving.feedback import FeedbackStore
from serving.feedback.store import safe_url
from serving.http.guard import ApiError
from serving.http.observability import log

__all__ = [
    "QUOTA_WINDOW_SECONDS",
    "FeedbackQuota",
    "FeedbackService",
    "FeedbackStoreDep",
    "stored_key",
]

QUOTA_WINDOW_SECONDS = 3600.0


class FeedbackQuota:
    """Judgements each caller may send per rolling hour (HELPDESK_FEEDBACK_QUOTA_PER_HOUR), so
    one key cannot fill the database. Counted in this process: each replica allows as many."""

    def __init__(self, per_hour: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_hour = per_hour
        self._clock = clock
        self._sent: defaultdict[str, deque[tuple[float, int]]] = defaultdict(deque)
        self._lock = threading.Lock()

    def take(self, author: str, count: int) -> None:
        """Count `count` judgements for `author`, or raise a 429 saying when to retry."""
        if not self.per_hour:
            return
        with self._lock:
            now = self._clock()
            sent = self._sent[author]
            while sent and sent[0][0] <= now - QUOTA_WINDOW_SECONDS:
                sent.popleft()
            used = sum(n for _, n in sent)
            if used + count > self.per_hour:
                wait = sent[0][0] + QUOTA_WINDOW_SECONDS - now if sent else QUOTA_WINDOW_SECONDS
                raise ApiError(
                    Kind.QUOTA_EXCEEDED,
                    f"feedback quota: {used} of {self.per_hour} judgements sent in the last hour,"
                    f" this request has {count}; retry later",
                    headers={"Retry-After": str(int(wait) + 1)},
                )
            sent.append((now, count))


class FeedbackService:
    """The store behind the endpoint: opened at start-up, reopened on demand after a failure."""

    def __init__(self, url: str, quota_per_hour: int = 0) -> None:
        self.url = url
        self.store: FeedbackStore | None = None
        self.quota = FeedbackQuota(quota_per_hour)
        self._lock = threading.Lock()

    def open(self) -> None:
        """Open now if possible; a failure is logged, and requests answer 503 until it works."""
        if not self.url:
            log("feedback store disabled: HELPDESK_FEEDBACK_URL is empty")
            return
        try:
            self.get()
        except HelpdeskError as exc:
            log("feedback store unavailable at start", url=safe_url(self.url), error=str(exc))
        else:
            log("feedback store open", url=safe_url(self.url))

    def get(self) -> FeedbackStore:
        if not self.url:
            raise ApiError(
                Kind.NOT_FOUND, "feedback is turned off on this server (HELPDESK_FEEDBACK_URL)"
            )
        with self._lock:
            if self.store is None:
                try:
                    self.store = FeedbackStore.open(self.url)
                except HelpdeskError as exc:
                    raise StoreUnavailable(f"feedback store unavailable: {exc}") from None
            return self.store

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def get_feedback_store(request: Request) -> FeedbackStore:
    service: FeedbackService = request.app.state.feedback
    return service.get()


FeedbackStoreDep = Annotated[FeedbackStore, Depends(get_feedback_store)]


def stored_key(author: str, key: str | None) -> str:
    """The caller's key, namespaced by caller, so two callers' keys never collide."""
    if key is None:
        return uuid.uuid4().hex
    return hashlib.sha256(f"{author}\n{key}".encode()).hexdigest()
