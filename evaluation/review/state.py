"""What the review app holds while it runs: the report, the feedback store, the scorer and a
cache of attributions. Loaded once, in the app's lifespan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import make_url

from evaluation.review.judgements import reviewed_ids
from evaluation.review.predictions import Report, load_report
from evaluation.review.settings import ReviewSettings
from serving.core.explain import Attribution, occlusion
from serving.core.scorer import Scorer
from serving.feedback import FeedbackStore

__all__ = ["ReviewState", "StateDep", "load_state"]


@dataclass
class ReviewState:
    settings: ReviewSettings
    report: Report
    store: FeedbackStore
    scorer: Scorer
    attribute: Callable[[str], Attribution]

    def progress(self, done: set[str] | None = None) -> dict[str, int]:
        """Queue samples that hold a reviewer's judgement (`done`, else read from the store),
        out of the whole queue."""
        done = reviewed_ids(self.store) if done is None else done
        return {
            "reviewed": sum(i in done for i in self.report.queue),
            "total": len(self.report.queue),
        }

    @property
    def store_label(self) -> str:
        """The store URL without its password, safe to show on the page."""
        return make_url(self.settings.store_url).render_as_string(hide_password=True)


def load_state(settings: ReviewSettings) -> ReviewState:
    report = load_report(settings.report_dir)
    store = FeedbackStore.open(settings.store_url)
    scorer = Scorer.load(settings.model_dir)
    score = partial(scorer.probabilities, batch_size=settings.attribution_units + 1)
    attribute = lru_cache(maxsize=2048)(
        partial(occlusion, score, max_units=settings.attribution_units)
    )
    return ReviewState(settings, report, store, scorer, attribute)


def get_state(request: Request) -> ReviewState:
    state: ReviewState = request.app.state.review
    return state


StateDep = Annotated[ReviewState, Depends(get_state)]
