"""Read-side helpers over the feedback store that the page needs and the store does not offer:
recent judgements newest first, which samples were reviewed, the judgements in force of one
sample. They use only the store's engine and table, never change them."""

from __future__ import annotations

from sqlalchemy import select

from serving.feedback import FeedbackRecord, FeedbackStore
from serving.feedback.models import Feedback

__all__ = ["in_force", "recent", "reviewed_ids"]


def recent(store: FeedbackStore, channel: str | None, limit: int) -> list[FeedbackRecord]:
    """The latest `limit` judgements (of one channel, if given), newest first."""
    query = select(Feedback).order_by(Feedback.id.desc()).limit(limit)
    if channel is not None:
        query = query.where(Feedback.channel == channel)
    with store.engine.connect() as conn:
        return [FeedbackRecord.model_validate(row) for row in conn.execute(query).mappings()]


def reviewed_ids(store: FeedbackStore, channel: str = "review") -> set[str]:
    """Ids of the samples that hold at least one judgement from `channel`."""
    query = select(Feedback.sample_id).where(Feedback.channel == channel).distinct()
    with store.engine.connect() as conn:
        return set(conn.execute(query).scalars())


def in_force(store: FeedbackStore, sample_id: str) -> dict[str, FeedbackRecord]:
    """Per head, the latest judgement of this sample (the one in force, as in the export)."""
    return {record.head: record for record in store.records(sample_ids=[sample_id])}
