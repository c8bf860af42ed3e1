"""The scoring server: `create_app(settings)` builds it; the model loads in the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from serving.batcher import MicroBatcher
from serving.http import Guard, install_error_handlers
from serving.observability import log
from serving.routes import admin, health, info, metrics, score
from serving.runtime import ModelState, Runtime, load_model_state, load_rules
from serving.settings import Settings

__all__ = ["create_app"]

API_VERSION = "1.0.0"


def create_app(settings: Settings | None = None) -> FastAPI:
    """A server for `settings` (default: HELPDESK_* environment). Policy and phrase files are
    validated here, so a broken file fails at start-up, not as a 500 later."""
    settings = settings or Settings()
    runtime = Runtime(settings, *load_rules(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await asyncio.to_thread(
            load_model_state, settings.model_dir, settings, runtime.policy, runtime.phrases
        )
        runtime.swap(state)
        batcher: MicroBatcher[ModelState] = MicroBatcher(
            runtime.current,
            settings.max_batch_size,
            settings.max_batch_wait_ms / 1000,
            runtime.metrics.observe_batch,
        )
        runtime.batcher = batcher
        batcher.start()
        log("ready", model=state.ref, threads=settings.threads, auth=bool(settings.api_keys))
        try:
            yield
        finally:
            runtime.draining = True
            await batcher.stop()
            log("stopped")

    app = FastAPI(
        title="helpdesk-scorer",
        version=API_VERSION,
        summary="Calibrated frustration, boredom, complaint and legitimacy scores, a route and "
        "suggested phrasing for each helpdesk message.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    for module in (score, info, health, metrics, admin):
        app.include_router(module.router)
    install_error_handlers(app, settings.max_body_bytes)
    app.add_middleware(Guard, runtime=runtime)
    return app
