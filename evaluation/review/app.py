"""The review app: `create_review_app(settings)`; report, store and scorer load in the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from evaluation.review import api
from evaluation.review.settings import ReviewSettings, allowed_host_headers
from evaluation.review.state import load_state
from serving.core.errors import Kind
from serving.http.guard import error_response, install_error_handlers

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
    app.add_middleware(HostCheck, allowed=allowed_host_headers(settings))
    return app


class HostCheck:
    """The page has no login, so it answers only its own names: a `Host` outside `allowed`
    (a page on another origin that resolves to this address) gets 403, and so does a write
    whose `Origin` is not one of them."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            host = headers.get("host", "").lower()
            origin = headers.get("origin")
            write = scope["method"] not in ("GET", "HEAD", "OPTIONS")
            problem = None
            if host not in self.allowed:
                problem = f"this page answers only {sorted(self.allowed)}, not Host {host!r}"
            elif write and origin is not None and _origin_host(origin) not in self.allowed:
                problem = f"a write from origin {origin!r} is refused"
            if problem is not None:
                await error_response(Kind.FORBIDDEN, problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _origin_host(origin: str) -> str:
    """`http://name:port` -> `name:port` (an opaque `null` origin matches nothing)."""
    return origin.split("://", 1)[-1].rstrip("/").lower()
