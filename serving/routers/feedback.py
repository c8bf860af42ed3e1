"""POST /v1/feedback: agents flag a wrong score into the feedback store (channel "api").

The store is opened in the lifespan; when the database is down then (or later), requests get a
503 and the next request tries again, while scoring keeps working. An empty
HELPDESK_FEEDBACK_URL turns the endpoint off (404).
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictStr,
    field_validator,
)
from sqlalchemy.exc import SQLAlchemyError

from serving.contract import HEADS, known_head
from serving.deps import FeedbackCaller, RuntimeDep
from serving.errors import HelpdeskError, Kind, StoreUnavailable
from serving.feedback import FeedbackIn, FeedbackRecord, FeedbackStore
from serving.feedback.schemas import (
    COMMENT_MAX_CHARS,
    KEY_MAX_CHARS,
    KEY_MIN_CHARS,
    SAMPLE_ID_MAX_CHARS,
    SHA256_PATTERN,
)
from serving.feedback.store import safe_url
from serving.http import ApiError, error_responses, over_limit
from serving.observability import log
from serving.schemas import EXAMPLE_TEXT, ErrorResponse, Text, UnicodeStr

__all__ = [
    "FeedbackQuota",
    "FeedbackRequest",
    "FeedbackResponse",
    "FeedbackService",
    "Judgement",
    "router",
]

router = APIRouter(tags=["feedback"])

QUOTA_WINDOW_SECONDS = 3600.0
QUOTA_RESPONSE = {
    "model": ErrorResponse,
    "description": "This API key sent its quota of judgements for the hour (see Retry-After)",
}

OptionalText = Annotated[UnicodeStr, Field(max_length=COMMENT_MAX_CHARS)] | None


def _number(value: object) -> object:
    """JSON Schema's integer includes 1.0, so 1.0 is accepted; true and "1" are not."""
    if isinstance(value, bool | str):
        raise ValueError("must be 0, 1 or null")
    return value


Label = Annotated[int, Field(ge=0, le=1), BeforeValidator(_number)]


def _without_nul(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL characters, which JSON allows (the schema too): store
    U+FFFD in their place, on every backend alike."""
    return None if value is None else value.replace("\x00", "\ufffd")


class Judgement(BaseModel):
    """One flag: the score of `head` on this message was wrong; `label` is what it should be."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    sample_id: UnicodeStr = Field(
        min_length=1,
        max_length=SAMPLE_ID_MAX_CHARS,
        description="Your id of the message (e.g. ticket id).",
    )
    head: StrictStr = Field(json_schema_extra={"enum": list(HEADS)})
    label: Label | None = Field(
        description="The right label: 1 yes, 0 no, null the head does not apply (legitimacy "
        "of a non-complaint)."
    )
    text: Text = Field(description="The message as scored (default limit 20000 characters).")
    key: UnicodeStr | None = Field(
        None,
        min_length=KEY_MIN_CHARS,
        max_length=KEY_MAX_CHARS,
        description="Idempotency key: a retry with the same key (from the same caller) is "
        "stored once and answered with the stored record.",
    )
    model_score: StrictFloat | None = Field(None, ge=0, le=1, description="The score you saw.")
    model_sha256: StrictStr | None = Field(
        None, pattern=SHA256_PATTERN, description="model.sha256 from the score response."
    )
    comment: OptionalText = None

    @field_validator("head")
    @classmethod
    def known_head(cls, value: str) -> str:
        return known_head(value)

    @field_validator("text")
    @classmethod
    def storable_text(cls, value: str) -> str:
        return _without_nul(value) or value

    @field_validator("sample_id", "key", "comment")
    @classmethod
    def storable(cls, value: str | None) -> str | None:
        return _without_nul(value)


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "judgements": [
                        {
                            "sample_id": "ticket-4471",
                            "head": "frustration",
                            "label": 1,
                            "text": EXAMPLE_TEXT,
                            "key": "ticket-4471-frustration-1",
                            "model_score": 0.12,
                            "comment": "customer was clearly upset",
                        }
                    ]
                }
            ]
        },
    )

    judgements: list[Judgement] = Field(
        min_length=1, description="1 to max_judgements flags (default 64: 413 above)."
    )


class FeedbackResponse(BaseModel):
    records: list[FeedbackRecord] = Field(
        description="The stored records, in request order; a repeated key returns the record "
        "stored the first time. `key` is derived from your key and your API key's name."
    )


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


@router.post(
    "/v1/feedback",
    status_code=201,
    response_model=FeedbackResponse,
    responses={**error_responses(400, 401, 403, 404, 413, 422, 503), 429: QUOTA_RESPONSE},
    summary="Flag wrong scores for review and retraining",
)
def feedback(
    body: FeedbackRequest,
    request: Request,
    runtime: RuntimeDep,
    caller: FeedbackCaller,
    store: FeedbackStoreDep,
) -> dict[str, object]:
    """Stores each judgement with channel "api", action "flag" and the caller's key name as
    author ("anonymous" without keys). All or nothing: on a database error nothing is stored.
    Every judgement sent counts against the caller's hourly quota, retries included."""
    settings = runtime.settings
    over_limit(len(body.judgements), settings.max_judgements, "judgements")
    for i, judgement in enumerate(body.judgements):
        over_limit(len(judgement.text), settings.max_chars, "characters", f"judgements.{i}.text")
    author = caller.name if caller is not None else "anonymous"
    service: FeedbackService = request.app.state.feedback
    service.quota.take(author, len(body.judgements))
    items = [
        FeedbackIn(
            **j.model_dump(exclude={"key"}),
            key=stored_key(author, j.key),
            action="flag",
            author=author,
            channel="api",
        )
        for j in body.judgements
    ]
    try:
        records, inserted = store.add_counted(items)
    except SQLAlchemyError as exc:
        log("feedback store error", error=type(exc).__name__)
        raise StoreUnavailable("feedback store unavailable; nothing was stored, retry") from None
    runtime.metrics.feedback.labels("stored").inc(inserted)
    runtime.metrics.feedback.labels("repeated").inc(len(items) - inserted)
    request.scope.setdefault("state", {}).setdefault("log_fields", {}).update(
        judgements=len(items), stored=inserted
    )
    return {"records": records}
