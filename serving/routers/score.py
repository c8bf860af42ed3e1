"""POST /v1/score: 1..max_messages messages (with optional history) -> the contract's results."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from serving.batcher import BatcherDown, BatchFailed, QueueFull
from serving.deps import RuntimeDep, ScoreCaller
from serving.errors import Kind, NotReady
from serving.http import ApiError, error_responses, over_limit
from serving.runtime import ModelState, Runtime
from serving.schemas import ScoreRequest, ScoreResponse
from serving.scorer import Scores
from serving.settings import Settings

router = APIRouter(tags=["score"])

ERRORS = error_responses(400, 401, 403, 408, 413, 422, 429, 500, 503, 504)


def check_limits(body: ScoreRequest, settings: Settings) -> None:
    over_limit(len(body.messages), settings.max_messages, "messages")
    for i, message in enumerate(body.messages):
        over_limit(len(message.history), settings.max_history, "turns", f"messages.{i}.history")
        for j, text in enumerate([*message.turn_texts(), message.text]):
            where = f"history.{j}" if j < len(message.history) else "text"
            over_limit(len(text), settings.max_chars, "characters", f"messages.{i}.{where}")


@router.post(
    "/v1/score",
    response_model=ScoreResponse,
    response_model_exclude_unset=True,  # `thread` only appears when history was sent
    responses=ERRORS,
    summary="Score messages",
)
async def score(
    body: ScoreRequest, request: Request, runtime: RuntimeDep, caller: ScoreCaller
) -> dict[str, Any]:
    """Scores, labels, route, phrasing and uncertain heads for each message, in order. The
    customer's history turns are scored in the same batch and summarised in `thread`; agent
    turns are context and are not scored."""
    check_limits(body, runtime.settings)
    texts = [text for m in body.messages for text in (*m.customer_history(), m.text)]
    scores, state = await admitted(runtime, texts)
    results, offset = [], 0
    for message in body.messages:
        turns = scores[offset : offset + len(message.customer_history()) + 1]
        offset += len(turns)
        message_id = None if message.id is None else str(message.id)
        results.append(state.decider.result(message_id, message.text, turns[-1], turns[:-1]))
    runtime.metrics.observe_scores([r["scores"] for r in results])
    request.scope.setdefault("state", {}).setdefault("log_fields", {}).update(
        messages=len(body.messages), texts=len(texts), chars=sum(len(t) for t in texts)
    )
    return {"model": state.ref, "results": results}


async def admitted(runtime: Runtime, texts: list[str]) -> tuple[list[Scores], ModelState]:
    """Scores from the batcher. The request reaches this point authenticated and with its
    whole body, so only such requests count as in flight or take queue room."""
    assert runtime.batcher is not None
    runtime.metrics.in_flight.inc()
    try:
        return await runtime.batcher.submit(texts)
    except QueueFull:
        retry = str(runtime.settings.retry_after_seconds)
        message = "too much work queued ahead of this request; retry later"
        raise ApiError(Kind.OVERLOADED, message, headers={"Retry-After": retry}) from None
    except BatchFailed:
        raise ApiError(
            Kind.INTERNAL_ERROR, "scoring failed for this batch; retry the request"
        ) from None
    except BatcherDown:
        raise NotReady("the batch worker stopped; retry on another replica") from None
    finally:
        runtime.metrics.in_flight.dec()
