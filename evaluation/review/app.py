"""The review app: `create_review_app(settings)`; report, store and scorer load in the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from evaluation.review import api
from evaluation.review.settings import ReviewSettings
from evaluation.review.state import load_state
from serving.http import install_error_handlers

__all__ = ["STATIC", "create_review_app"]

STATIC = Path(__file__).parent / "static"


def create_review_app(settings: ReviewSettings | None = None) -> FastAPI:
    """The page at `/`, its assets at `/static`, its JSON API under `/api`."""
    settings = settings or ReviewSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await asyncio.to_thread(load_state, settings)
        app.state.review = state
        try:
            yield
        finally:
            state.store.close()

    app = FastAPI(title="helpdesk-scorer review", lifespan=lifespan)
    app.include_router(api.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    install_error_handlers(app)
    return app
