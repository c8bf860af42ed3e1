"""The scoring server: `create_app(settings)` builds it; the model loads in the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline

from serving.core.scorer import ModelError
from serving.http.admission import Admission
from serving.http.auth_gate import AuthGate, keyed_routes
from serving.http.batcher import MicroBatcher
from serving.http.feedback_service import FeedbackService
from serving.http.guard import Guard, install_error_handlers
from serving.http.observability import Metrics, log
from serving.http.routers import admin, feedback, health, info, metrics, score
from serving.http.runtime import ModelState, Runtime, load_model_state, load_rules
from serving.http.settings import Settings

__all__ = ["create_app"]

API_VERSION = "1.0.0"


def history_item_schema(components: dict[str, Any], max_chars: int) -> dict[str, Any]:
    """A history item as one schema of two types: a non-blank string (an earlier customer turn)
    or a Turn object. Equivalent to pydantic's anyOf, but keywords that apply to one type only
    (pattern, maxLength; properties) keep the schema fuzzer's generator fast."""
    turn = components["Turn"]
    turn["properties"]["text"]["maxLength"] = max_chars
    text = turn["properties"]["text"]
    return {
        "type": ["string", "object"],
        "pattern": text["pattern"],
        "maxLength": max_chars,
        "properties": turn["properties"],
        "required": turn["required"],
        "additionalProperties": False,
        "description": "An earlier customer turn (a string) or {role, text}.",
    }


def openapi_with_limits(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """The generated schema with this deployment's limits written in, so clients (and the
    fuzzer) see the same bounds the server enforces with 413."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        components = schema["components"]["schemas"]
        request = components["ScoreRequest"]
        request["properties"]["messages"]["maxItems"] = settings.max_messages
        request["if"] = {"properties": {"explain": {"const": True}}, "required": ["explain"]}
        request["then"] = {"properties": {"messages": {"maxItems": settings.max_explain_messages}}}
        message = components["Message"]["properties"]
        message["text"]["maxLength"] = settings.max_chars
        message["history"]["maxItems"] = settings.max_history
        message["history"]["items"] = history_item_schema(components, settings.max_chars)
        components["FeedbackRequest"]["properties"]["judgements"]["maxItems"] = (
            settings.max_judgements
        )
        components["Judgement"]["properties"]["text"]["maxLength"] = settings.max_chars
        app.openapi_schema = schema
    return app.openapi_schema


def first_model(runtime: Runtime) -> ModelState:
    """The model of HELPDESK_MODEL_DIR; a refusal is logged with its reason (uvicorn logs only
    the exception's type). No local reference outlives the call: a reload frees it."""
    settings = runtime.settings
    try:
        return load_model_state(settings.model_dir, settings, runtime.policy, runtime.phrases)
    except ModelError as exc:
        log("model refused at start", logging.ERROR, error=str(exc))
        raise


def create_app(settings: Settings | None = None) -> FastAPI:
    """A server for `settings` (default: HELPDESK_* environment). Policy and phrase files are
    validated here, so a broken file fails at start-up, not as a 500 later."""
    settings = settings or Settings()
    metrics_ = Metrics(settings.drift_window, settings.metrics_score_histograms)
    runtime = Runtime(settings, *load_rules(settings), metrics_)
    store = FeedbackService(settings.feedback_url, settings.feedback_quota_per_hour)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.swap(await asyncio.to_thread(first_model, runtime))
        await asyncio.to_thread(store.open)
        batcher: MicroBatcher[ModelState] = MicroBatcher(
            runtime.current,
            settings.max_batch_size,
            settings.max_batch_wait_ms / 1000,
            runtime.metrics.observe_batch,
            max_tokens=settings.max_batch_tokens,
            admission=Admission(
                settings.max_queued_tokens,
                lambda texts, contexts: runtime.current().scorer.token_counts(texts, contexts),
            ),
            on_failure=lambda what: runtime.metrics.failures.labels(what).inc(),
        )
        runtime.batcher = batcher
        batcher.start()
        model = runtime.current().ref
        log("ready", model=model, threads=settings.threads, auth=bool(settings.api_keys))
        try:
            yield
        finally:
            runtime.draining = True
            await batcher.stop()
            store.close()
            log("stopped")

    app = FastAPIOffline(  # Swagger UI and ReDoc assets from the package: /docs works offline
        title="helpdesk-scorer",
        version=API_VERSION,
        summary="Calibrated frustration, boredom, complaint and legitimacy scores, a route and "
        "suggested phrasing for each helpdesk message.",
        lifespan=lifespan,
        redirect_slashes=False,  # a 307 would carry a Location built from the Host header
    )
    app.state.runtime = runtime
    app.state.feedback = store
    app.openapi = lambda: openapi_with_limits(app, settings)  # type: ignore[method-assign]
    routers = [m.router for m in (score, info, health, metrics, admin, feedback)]
    for router in routers:
        app.include_router(router)
    install_error_handlers(app)
    # inside Guard, so a refused key is limited, timed and recorded like any request
    app.add_middleware(AuthGate, runtime=runtime, routes=keyed_routes(routers))
    app.add_middleware(Guard, runtime=runtime)
    return app
