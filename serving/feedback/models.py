"""The feedback table. Alembic migrations (migrations/versions) create it; this is their target."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["AUTHOR_MAX_CHARS", "Base", "Feedback"]

#: An author is an API key's name or a reviewer's: longer names are refused in settings.
AUTHOR_MAX_CHARS = 100


class Base(DeclarativeBase):
    pass


class Feedback(Base):
    """One judgement of one head of one sample, by one author; never updated, only appended."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    sample_id: Mapped[str] = mapped_column(String(200), index=True)
    head: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    label: Mapped[int | None] = mapped_column(Integer, nullable=True)
    previous_label: Mapped[float | None] = mapped_column(Float, nullable=True)
    model_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    model_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    author: Mapped[str] = mapped_column(String(AUTHOR_MAX_CHARS))
    channel: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
