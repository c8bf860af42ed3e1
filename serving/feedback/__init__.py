"""Feedback store: label corrections from QA reviewers and wrong-score flags from agents.

One SQLAlchemy schema, created and upgraded by Alembic migrations, on SQLite (default) or
PostgreSQL. Every write carries an idempotency key, so a retried request is stored once.
"""

from __future__ import annotations

from serving.feedback.schemas import FeedbackIn, FeedbackRecord
from serving.feedback.store import FeedbackStore

__all__ = ["FeedbackIn", "FeedbackRecord", "FeedbackStore"]
