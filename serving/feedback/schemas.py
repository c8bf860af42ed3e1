"""What a caller sends (FeedbackIn), what the store returns and the export writes
(FeedbackRecord), the field limits every layer shares, the rule of the judgement in force, and
the API's feedback request and response (Judgement, FeedbackRequest, FeedbackResponse).

The limits are the one home of the column sizes (models.py), the validators here and the API
models (below, and evaluation/review/api.py). The first migration keeps its
literal sizes; tests/test_feedback_store.py checks they equal these.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from operator import attrgetter
from typing import Annotated, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictStr,
    field_validator,
)

from serving.core.contract import HEADS, HeadName, known_head
from serving.core.schemas import EXAMPLE_TEXT, Text, UnicodeStr

__all__ = [
    "ACTIONS",
    "ACTION_MAX_CHARS",
    "AUTHOR_MAX_CHARS",
    "CHANNELS",
    "CHANNEL_MAX_CHARS",
    "COMMENT_MAX_CHARS",
    "HEAD_MAX_CHARS",
    "IN_FORCE_ORDER",
    "KEY_MAX_CHARS",
    "KEY_MIN_CHARS",
    "SAMPLE_ID_MAX_CHARS",
    "SHA256_CHARS",
    "SHA256_PATTERN",
    "SOURCE_MAX_CHARS",
    "Action",
    "Channel",
    "FeedbackIn",
    "FeedbackRecord",
    "FeedbackRequest",
    "FeedbackResponse",
    "Judgement",
    "in_force",
    "in_force_rank",
]

#: confirm: the label is right; correct: the label is wrong, `label` is the right one;
#: flag: an agent says the model's score was wrong, `label` is what it should have said.
Action = Literal["confirm", "correct", "flag"]
Channel = Literal["review", "api"]
ACTIONS: tuple[str, ...] = get_args(Action)
CHANNELS: tuple[str, ...] = get_args(Channel)

SAMPLE_ID_MAX_CHARS = 200
#: Idempotency keys: the API stores a SHA-256 hex digest, callers send 8 to 64 characters.
KEY_MIN_CHARS = 8
KEY_MAX_CHARS = 64
HEAD_MAX_CHARS = 32
ACTION_MAX_CHARS = 16
CHANNEL_MAX_CHARS = 16
#: An author is an API key's name or a reviewer's: longer names are refused in settings.
AUTHOR_MAX_CHARS = 100
SOURCE_MAX_CHARS = 64
COMMENT_MAX_CHARS = 2_000
#: model_sha256: the digest the score response names, lowercase hex.
SHA256_CHARS = 64
SHA256_PATTERN = rf"^[0-9a-f]{{{SHA256_CHARS}}}$"

#: The judgement in force per (sample_id, head) is the one with the greatest value of these
#: fields: the latest `created_at`, then the highest `id` (one batch shares one time). The
#: store's SQL and `in_force` over exported files both sort by them, so they always agree.
IN_FORCE_ORDER = ("created_at", "id")


class FeedbackIn(BaseModel):
    """One judgement. `label` None means the head does not apply (e.g. legitimacy of a
    non-complaint); `key` makes retries idempotent and defaults to a fresh UUID."""

    model_config = ConfigDict(extra="forbid")

    sample_id: str = Field(min_length=1, max_length=SAMPLE_ID_MAX_CHARS)
    head: HeadName
    action: Action
    label: Literal[0, 1] | None
    author: str = Field(min_length=1, max_length=AUTHOR_MAX_CHARS)
    channel: Channel
    key: str = Field(
        default_factory=lambda: uuid.uuid4().hex,
        min_length=KEY_MIN_CHARS,
        max_length=KEY_MAX_CHARS,
    )
    previous_label: float | None = Field(None, ge=0, le=1)
    model_score: float | None = Field(None, ge=0, le=1)
    model_sha256: str | None = Field(None, pattern=SHA256_PATTERN)
    text: str | None = None  # bounded by the caller: HELPDESK_MAX_CHARS for the API
    source: str | None = Field(None, max_length=SOURCE_MAX_CHARS)
    comment: str | None = Field(None, max_length=COMMENT_MAX_CHARS)


class FeedbackRecord(FeedbackIn):
    """A stored judgement: the input plus its row id and UTC time of storage. It is also one
    line of the export (`helpdesk-scorer feedback export`) that `prepare --corrections` reads."""

    model_config = ConfigDict(from_attributes=True, extra="forbid")

    id: int
    created_at: datetime

    @field_validator("created_at")
    @classmethod
    def utc(cls, value: datetime) -> datetime:
        """SQLite hands back naive times; every stored time is UTC."""
        return value if value.tzinfo else value.replace(tzinfo=UTC)


#: The sort key of IN_FORCE_ORDER: the greatest one of a (sample_id, head) is in force.
in_force_rank = attrgetter(*IN_FORCE_ORDER)


def in_force(records: Iterable[FeedbackRecord]) -> list[FeedbackRecord]:
    """The judgements in force among `records` (e.g. several exported files), one per
    (sample_id, head), ordered by IN_FORCE_ORDER; the store's `current()` applies the same rule.
    A record seen twice (one judgement in two exports) counts once."""
    latest: dict[tuple[str, str], FeedbackRecord] = {}
    for record in records:
        slot = (record.sample_id, record.head)
        if slot not in latest or in_force_rank(record) > in_force_rank(latest[slot]):
            latest[slot] = record
    return sorted(latest.values(), key=in_force_rank)


# The API's feedback request and response (POST /v1/feedback).

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
