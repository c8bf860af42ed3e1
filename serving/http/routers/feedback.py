"""POST /v1/feedback: agents flag a wrong score into the feedback store (channel "api").

The store is opened in the lifespan; when the database is down then (or later), requests get a
503 and the next request tries again, while scoring keeps working. An empty
HELPDESK_FEEDBACK_URL turns the endpoint off (404).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy.exc import SQLAlchemyError

from serving.core.errors import Kind, StoreUnavailable
from serving.feedback import FeedbackIn
from serving.feedback.schemas import FeedbackRequest, FeedbackResponse
from serving.http.deps import FeedbackCaller, RuntimeDep
from serving.http.feedback_service import FeedbackService, FeedbackStoreDep, stored_key
from serving.http.guard import error_responses, over_limit
from serving.http.observability import log

__all__ = ["router"]

router = APIRouter(tags=["feedback"])


@router.post(
    "/v1/feedback",
    status_code=201,
    response_model=FeedbackResponse,
    responses=error_responses(
        Kind.BAD_REQUEST,
        Kind.UNAUTHORIZED,
        Kind.FORBIDDEN,
        Kind.NOT_FOUND,
        Kind.TOO_LARGE,
        Kind.INVALID_INPUT,
        Kind.QUOTA_EXCEEDED,
        Kind.UNAVAILABLE,
    ),
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
