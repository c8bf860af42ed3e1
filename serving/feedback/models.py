"""The feedback table. Alembic migrations (migrations/versions) create it; this is their target.
Column sizes come from the shared field limits in schemas.py."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from serving.feedback.schemas import (
    ACTION_MAX_CHARS,
    AUTHOR_MAX_CHARS,
    CHANNEL_MAX_CHARS,
    HEAD_MAX_CHARS,
    KEY_MAX_CHARS,
    SAMPLE_ID_MAX_CHARS,
    SHA256_CHARS,
    SOURCE_MAX_CHARS,
)

__all__ = ["Base", "Feedback"]


class Base(DeclarativeBase):
    pass


class Feedback(Base):
    """One judgement of one head of one sample, by one author; never updated, only appended."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(KEY_MAX_CHARS), unique=True)
    sample_id: Mapped[str] = mapped_column(String(SAMPLE_ID_MAX_CHARS), index=True)
    head: Mapped[str] = mapped_column(String(HEAD_MAX_CHARS))
    action: Mapped[str] = mapped_column(String(ACTION_MAX_CHARS))
    label: Mapped[int | None] = mapped_column(Integer, nullable=True)
    previous_label: Mapped[float | None] = mapped_column(Float, nullable=True)
    model_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    model_sha256: Mapped[str | None] = mapped_column(String(SHA256_CHARS), nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    source: Mapped[str | None] = mapped_column(String(SOURCE_MAX_CHARS), nullable=True)
    author: Mapped[str] = mapped_column(String(AUTHOR_MAX_CHARS))
    channel: Mapped[str] = mapped_column(String(CHANNEL_MAX_CHARS))
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
