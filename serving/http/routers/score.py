"""POST /v1/score: 1..max_messages messages (with optional history) -> the contract's results."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from fastapi import APIRouter, Request

from serving.core.contract import HEADS
from serving.core.errors import Kind, NotReady
from serving.core.explain import Attribution, Occlusion, plan
from serving.core.language import language_of
from serving.core.schemas import Explanation, Message, ScoreRequest, ScoreResponse
from serving.core.scorer import Scores
from serving.core.threads import flatten_threads, split_threads
from serving.http.admission import QueueFull
from serving.http.batcher import BatcherDown, BatchFailed
from serving.http.deps import RuntimeDep, ScoreCaller
from serving.http.guard import ApiError, error_responses, over_limit
from serving.http.runtime import ModelState, Runtime
from serving.http.settings import Settings

router = APIRouter(tags=["score"])

ERRORS = error_responses(
    Kind.BAD_REQUEST,
    Kind.UNAUTHORIZED,
    Kind.FORBIDDEN,
    Kind.BODY_TIMEOUT,
    Kind.TOO_LARGE,
    Kind.INVALID_INPUT,
    Kind.OVERLOADED,
    Kind.INTERNAL_ERROR,
    Kind.UNAVAILABLE,
    Kind.DEADLINE_EXCEEDED,
)


def check_limits(body: ScoreRequest, settings: Settings) -> None:
    over_limit(len(body.messages), settings.max_messages, "messages")
    if body.explain:
        over_limit(len(body.messages), settings.max_explain_messages, "messages with explain")
    for i, message in enumerate(body.messages):
        over_limit(len(message.history), settings.max_history, "turns", f"messages.{i}.history")
        for j, text in enumerate([*message.turn_texts(), message.text]):
            where = f"history.{j}" if j < len(message.history) else "text"
            over_limit(len(text), settings.max_chars, "characters", f"messages.{i}.{where}")


@router.post(
    "/v1/score",
    response_model=ScoreResponse,
    response_model_exclude_unset=True,  # `thread`, `explanation` only appear when asked for
    responses=ERRORS,
    summary="Score messages",
)
async def score(
    body: ScoreRequest, request: Request, runtime: RuntimeDep, caller: ScoreCaller
) -> dict[str, Any]:
    """Scores, labels, route, phrasing and uncertain heads for each message, in order. The
    customer's history turns are scored in the same batch and summarised in `thread`; agent
    turns are context and are not scored. With `explain`, each message's occlusion variants
    join the same batcher job, so admission and the deadline count them too."""
    check_limits(body, runtime.settings)
    threads = [(m.turns(), m.text) for m in body.messages]
    texts, contexts = flatten_threads(threads)
    over_limit(
        len(texts),
        runtime.settings.max_texts_per_request,
        "texts to score (messages and their customer history turns)",
    )
    occlusions = [plan(m.text) for m in body.messages] if body.explain else []
    variants = [v for o in occlusions for v in o.variants]
    own_contexts = [own for _, own in split_threads(contexts, threads)]  # each message's thread
    variant_contexts = (
        [c for o, c in zip(occlusions, own_contexts, strict=True) for _ in o.variants]
        if body.explain
        else []
    )
    # language detection (~0.3 ms a message) runs in a worker thread while the model scores
    languages = asyncio.ensure_future(asyncio.to_thread(_languages, body.messages))
    scores, state = await admitted(runtime, texts + variants, contexts + variant_contexts)
    scored = split_threads(scores[: len(texts)], threads)
    detected = await languages
    results = [
        state.results.result(
            None if m.id is None else str(m.id), m.text, own, earlier, language=language
        )
        for m, (earlier, own), language in zip(body.messages, scored, detected, strict=True)
    ]
    if body.explain:
        own = [message for _, message in scored]
        explained = explanations(occlusions, own, scores[len(texts) :])
        for result, explanation in zip(results, explained, strict=True):
            result.explanation = Explanation.model_validate(explanation)
    runtime.metrics.observe_results(results)
    request.scope.setdefault("state", {}).setdefault("log_fields", {}).update(
        messages=len(body.messages),
        texts=len(texts),
        chars=sum(len(t) for t in texts),
        explained_texts=len(variants),
    )
    return {"model": state.ref, "results": results}


def _languages(messages: list[Message]) -> list[dict[str, Any]]:
    return [language_of(m.text) for m in messages]


def explanations(
    occlusions: list[Occlusion], own: list[Scores], variants: list[Scores]
) -> list[dict[str, object]]:
    """Each message's `explanation`, from its own scores and those of its variants (in the
    order of `occlusions`, concatenated)."""
    out, start = [], 0
    for occluded, scores in zip(occlusions, own, strict=True):
        without = variants[start : start + len(occluded.variants)]
        start += len(without)
        out.append(Attribution.of(occluded, _matrix([scores])[0], _matrix(without)).strongest())
    return out


def _matrix(scores: list[Scores]) -> np.ndarray:
    """Probabilities of `scores`, shape (len(scores), len(HEADS))."""
    return np.array([[s.probabilities[h] for h in HEADS] for s in scores]).reshape(-1, len(HEADS))


async def admitted(
    runtime: Runtime, texts: list[str], contexts: list[str]
) -> tuple[list[Scores], ModelState]:
    """Scores from the batcher. The request reaches this point authenticated and with its
    whole body, so only such requests count as in flight or take queue room."""
    assert runtime.batcher is not None
    runtime.metrics.in_flight.inc()
    try:
        return await runtime.batcher.submit(texts, contexts)
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
