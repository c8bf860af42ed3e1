"""What a caller sends (FeedbackIn) and what the store returns (FeedbackRecord)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from serving.contract import HEADS
from serving.feedback.models import AUTHOR_MAX_CHARS

__all__ = ["ACTIONS", "CHANNELS", "FeedbackIn", "FeedbackRecord", "check_head"]

#: confirm: the label is right; correct: the label is wrong, `label` is the right one;
#: flag: an agent says the model's score was wrong, `label` is what it should have said.
ACTIONS = ("confirm", "correct", "flag")
CHANNELS = ("review", "api")


def check_head(value: str) -> str:
    if value not in HEADS:
        raise ValueError(f"unknown head {value!r}; expected one of {', '.join(HEADS)}")
    return value


class FeedbackIn(BaseModel):
    """One judgement. `label` None means the head does not apply (e.g. legitimacy of a
    non-complaint); `key` makes retries idempotent and defaults to a fresh UUID."""

    model_config = ConfigDict(extra="forbid")

    sample_id: str = Field(min_length=1, max_length=200)
    head: str
    action: Literal["confirm", "correct", "flag"]
    label: Literal[0, 1] | None
    author: str = Field(min_length=1, max_length=AUTHOR_MAX_CHARS)
    channel: Literal["review", "api"]
    key: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=8, max_length=64)
    previous_label: float | None = Field(None, ge=0, le=1)
    model_score: float | None = Field(None, ge=0, le=1)
    model_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    text: str | None = None  # bounded by the caller: HELPDESK_MAX_CHARS for the API
    source: str | None = Field(None, max_length=64)
    comment: str | None = Field(None, max_length=2_000)

    @field_validator("head")
    @classmethod
    def known_head(cls, value: str) -> str:
        return check_head(value)


class FeedbackRecord(FeedbackIn):
    """A stored judgement: the input plus its row id and UTC time of storage."""

    model_config = ConfigDict(from_attributes=True, extra="forbid")

    id: int
    created_at: datetime

    @field_validator("created_at")
    @classmethod
    def utc(cls, value: datetime) -> datetime:
        """SQLite hands back naive times; every stored time is UTC."""
        return value if value.tzinfo else value.replace(tzinfo=UTC)
