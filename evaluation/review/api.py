"""The page's JSON API: the queue with filters, confusion counts, one sample with its
attribution, judgements into the feedback store, and the feedback stored so far."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from evaluation.review.judgements import in_force, recent, reviewed_ids
from evaluation.review.predictions import OUTCOMES, Report, confusion, hard_label, outcome
from evaluation.review.state import ReviewState, StateDep
from evaluation.samples import ERROR_KINDS, Sample
from serving.core.contract import HEADS, HeadName
from serving.core.errors import BadInput, Kind
from serving.feedback import FeedbackIn
from serving.feedback.schemas import (
    COMMENT_MAX_CHARS,
    KEY_MAX_CHARS,
    KEY_MIN_CHARS,
    SAMPLE_ID_MAX_CHARS,
    SOURCE_MAX_CHARS,
    Channel,
)
from serving.http.guard import ApiError

__all__ = ["JudgementIn", "router", "select"]

router = APIRouter(prefix="/api", tags=["review"])

Probability = Annotated[float, Query(ge=0, le=1)]


def select(
    report: Report,
    *,
    head: str | None = None,
    kind: str | None = None,
    source: str | None = None,
    score_min: float = 0.0,
    score_max: float = 1.0,
    cell: str | None = None,
) -> list[Sample]:
    """Samples matching every filter given. Without `cell` they come from the review queue
    (in its order) and head/kind match the sample's errors; with `cell` (tp/fp/fn/tn of
    `head`) they come from every evaluated sample. The score range applies to `head`'s
    score, or without a head to the heads a sample is in the queue for (any of them)."""
    if cell is not None:
        pool = [s for s in report.samples.values() if head and outcome(s, head) == cell]
    else:
        pool = [report.samples[i] for i in report.queue]
        if head or kind:
            pool = [
                s
                for s in pool
                if any(
                    (not head or e.head == head) and (not kind or e.kind == kind) for e in s.errors
                )
            ]
    if source:
        pool = [s for s in pool if s.source == source]
    return [
        s
        for s in pool
        if any(
            score_min <= s.scores[h] <= score_max
            for h in ([head] if head else [e.head for e in s.errors] or HEADS)
        )
    ]


@router.get("/meta", summary="Heads, filter choices, reviewer, model and progress")
def meta(state: StateDep) -> dict[str, Any]:
    manifest = state.scorer.manifest
    return {
        "heads": list(HEADS),
        "kinds": list(ERROR_KINDS),
        "cells": list(OUTCOMES),
        "sources": state.report.sources,
        "reviewer": state.settings.reviewer,
        "model": {"name": manifest.name, "version": manifest.version},
        "report": str(state.report.folder),
        "store": state.store_label,
        "progress": state.progress(),
    }


@router.get("/queue", summary="The review queue, filtered and paged")
def queue(
    state: StateDep,
    head: HeadName | None = None,
    kind: Literal["false_positive", "false_negative", "uncertain"] | None = None,
    source: str | None = None,
    score_min: Probability = 0.0,
    score_max: Probability = 1.0,
    cell: Literal["tp", "fp", "fn", "tn"] | None = None,
    status: Literal["all", "pending", "reviewed"] = "all",
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    if score_min > score_max:
        raise BadInput("score_min is above score_max")
    if cell and not head:
        raise BadInput("a confusion cell needs a head")
    samples = select(
        state.report,
        head=head,
        kind=kind,
        source=source,
        score_min=score_min,
        score_max=score_max,
        cell=cell,
    )
    done = reviewed_ids(state.store)
    if status != "all":
        samples = [s for s in samples if (s.id in done) == (status == "reviewed")]
    return {
        "total": len(samples),
        "offset": offset,
        "limit": limit,
        "items": [
            {
                "id": s.id,
                "source": s.source,
                "text": s.text[:200],
                "errors": [e.model_dump() for e in s.errors],
                "scores": s.scores,
                "label_issue": s.label_issue,
                "reviewed": s.id in done,
            }
            for s in samples[offset : offset + limit]
        ],
        "progress": state.progress(done),
    }


@router.get("/confusion", summary="TP/FP/FN/TN per head over every evaluated sample")
def confusion_counts(state: StateDep) -> dict[str, dict[str, int]]:
    return confusion(state.report.samples.values())


def _sample(state: ReviewState, sample_id: str) -> Sample:
    sample = state.report.samples.get(sample_id)
    if sample is None:
        raise ApiError(Kind.NOT_FOUND, f"no sample {sample_id!r} in the report")
    return sample


@router.get("/samples/{sample_id:path}", summary="One sample, its judgements and attribution")
def sample_detail(state: StateDep, sample_id: str) -> dict[str, Any]:
    sample = _sample(state, sample_id)
    return {
        "sample": sample.model_dump(),
        "hard_labels": {h: hard_label(sample, h) for h in HEADS},
        "cells": {h: outcome(sample, h) for h in HEADS},
        "in_force": {
            h: r.model_dump(mode="json") for h, r in in_force(state.store, sample.id).items()
        },
        "attribution": state.attribute(sample.text).as_json(),
    }


class JudgementIn(BaseModel):
    """A reviewer's label for one head of one sample; null: the head does not apply. The
    server makes it a `confirm` when it equals the dataset label, else a `correct`."""

    model_config = ConfigDict(extra="forbid")

    sample_id: str = Field(min_length=1, max_length=SAMPLE_ID_MAX_CHARS)
    head: HeadName
    label: Literal[0, 1] | None
    key: str | None = Field(None, min_length=KEY_MIN_CHARS, max_length=KEY_MAX_CHARS)
    comment: str | None = Field(None, max_length=COMMENT_MAX_CHARS)


@router.post("/judgements", summary="Store a reviewer's judgement (channel review)")
def judge(state: StateDep, body: JudgementIn) -> dict[str, Any]:
    sample = _sample(state, body.sample_id)
    previous = sample.labels.get(body.head)
    item = FeedbackIn(
        sample_id=sample.id,
        head=body.head,
        action="confirm" if body.label == hard_label(sample, body.head) else "correct",
        label=body.label,
        author=state.settings.reviewer,
        channel="review",
        previous_label=previous,
        model_score=min(max(sample.scores[body.head], 0.0), 1.0),
        model_sha256=state.scorer.manifest.sha256,
        text=sample.text,
        source=sample.source[:SOURCE_MAX_CHARS] or None,
        comment=body.comment,
        **({"key": body.key} if body.key else {}),
    )
    (record,) = state.store.add([item])
    return {"record": record.model_dump(mode="json"), "progress": state.progress()}


@router.get("/feedback", summary="Recent stored judgements, newest first")
def feedback(
    state: StateDep,
    channel: Channel | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    return {"items": [r.model_dump(mode="json") for r in recent(state.store, channel, limit)]}
