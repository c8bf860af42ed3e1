"""Read-side helpers over the feedback store that the page needs and the store does not offer:
recent judgements newest first, which samples were reviewed, the judgements in force of one
sample (by the store's own rule). They only read the store, never change it."""

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
    """Per head, the judgement of this sample in force: the store's `current()`, as exported."""
    return {record.head: record for record in store.current(sample_ids=[sample_id])}
