"""HTTP plumbing: the JSON error shape, exception handlers, and the guard middleware
(body size and time, draining, the score deadline, access log and request metrics)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.core.errors import KINDS, STATUS_KINDS, HelpdeskError, Kind
from serving.http.observability import log

if TYPE_CHECKING:  # the runtime loads onnxruntime; error handling needs none of it
    from serving.http.runtime import Runtime

__all__ = [
    "ApiError",
    "Guard",
    "error_response",
    "error_responses",
    "install_error_handlers",
    "over_limit",
]

SHED_PATHS = ("/v1/score",)


def error_responses(*kinds: Kind) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error kinds, all with the JSON error body; each status
    is described by its kinds' causes from the one table (`KINDS`)."""
    from serving.core.schemas import ErrorResponse

    causes: dict[int, list[str]] = {}
    for kind in kinds:
        info = KINDS[kind]
        causes.setdefault(info.status, []).append(f"`{kind}`: {info.cause}")
    return {
        status: {"model": ErrorResponse, "description": "; ".join(said)}
        for status, said in causes.items()
    }


class ApiError(HelpdeskError):
    """A failure only HTTP has (auth, limits, load): its kind, a message, and headers."""

    def __init__(self, kind: Kind, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, kind)
        self.headers = headers or {}


def over_limit(count: int, limit: int, what: str, where: str | None = None) -> None:
    """413 when a request carries more than the deployment allows, naming what and where:
    "70 messages; at most 64" or "messages.0.text has 20001 characters; at most 20000"."""
    if count > limit:
        said = f"{where} has {count} {what}" if where else f"{count} {what}"
        raise ApiError(Kind.TOO_LARGE, f"{said}; at most {limit}")


class BodyTooLarge(HTTPException):
    """An HTTPException, so FastAPI's body reader passes it on (any other error it turns
    into a 400): a chunked body over the limit is a 413 like a declared one."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes")


class BodiesBusy(HTTPException):
    """Request bodies held across connections are at their cap: this one waits its turn."""

    def __init__(self, limit: int, retry_after: int) -> None:
        message = f"request bodies in flight are at the server's {limit}-byte cap; retry later"
        headers = {"Retry-After": str(retry_after), "Connection": "close"}
        super().__init__(429, message, headers=headers)


class BodyTimeout(HTTPException):
    def __init__(self, seconds: float) -> None:
        message = f"request body not received within {seconds:g} seconds"
        super().__init__(408, message, headers={"Connection": "close"})


def error_response(
    kind: Kind, message: str, headers: dict[str, str] | None = None, status: int | None = None
) -> JSONResponse:
    """The JSON error; its status is the kind's (`serving.core.errors.KINDS`) unless a framework
    error brings a status the table has no kind for."""
    body = {"error": {"type": str(kind), "message": message}}
    return JSONResponse(body, status_code=status or KINDS[kind].status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ())[1:]) or "body"
        message = error.get("msg", "invalid")
        if error.get("type") == "string_pattern_mismatch":  # the only pattern is NOT_BLANK
            message = "empty or whitespace-only text"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """Every error is {"error": {"type", "message"}}; an unexpected one is a 500 without a
    trace (the exception type goes to the log, never the request body)."""

    async def expected(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HelpdeskError)
        headers = exc.headers if isinstance(exc, ApiError) else None
        return error_response(exc.kind, str(exc), headers)

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(Kind.INVALID_INPUT, _validation_message(exc))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        kind = STATUS_KINDS.get(exc.status_code, Kind.INTERNAL_ERROR)
        headers = dict(exc.headers or {})
        return error_response(kind, str(exc.detail), headers, status=exc.status_code)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log("unhandled error", logging.ERROR, error=type(exc).__name__, path=request.url.path)
        return error_response(Kind.INTERNAL_ERROR, "internal error; the request was not processed")

    app.add_exception_handler(HelpdeskError, expected)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


class Guard:
    """Pure ASGI middleware around all routes: it limits, times and records every request,
    including the ones it rejects before they reach a route. It never counts a request
    against the load limit: that happens after authentication and the body (in the route)."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.bytes_in_flight = 0  # request-body bytes held by requests not yet answered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}
        path: str = scope["path"]
        held = {"bytes": 0}

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = 1
            await send(message)

        try:
            rejection = self._reject(scope, path)
            if rejection is not None:
                await rejection(scope, receive, send_status)
            elif path in SHED_PATHS:
                limited = self._limited(receive, held)
                await self._with_deadline(scope, limited, send_status, status)
            else:
                await self.app(scope, self._limited(receive, held), send_status)
        finally:
            self.bytes_in_flight -= held["bytes"]
            self._record(scope, path, status["code"], time.perf_counter() - started)

    async def _with_deadline(
        self, scope: Scope, receive: Receive, send: Send, status: dict[str, int]
    ) -> None:
        """The score request in full (body, queue, scoring) within the deadline, else 504."""
        seconds = self.runtime.settings.request_deadline_seconds
        try:
            async with asyncio.timeout(seconds) as deadline:
                await self.app(scope, receive, send)
        except TimeoutError:
            if not deadline.expired():
                raise
            self.runtime.metrics.deadlines.inc()
            if "started" not in status:
                message = f"no answer within the {seconds:g} second deadline; retry later"
                await error_response(Kind.DEADLINE_EXCEEDED, message)(scope, receive, send)

    def _reject(self, scope: Scope, path: str) -> JSONResponse | None:
        settings = self.runtime.settings
        headers = dict(scope["headers"])
        if b"transfer-encoding" in headers and b"content-length" in headers:
            # RFC 9112 6.1: a request with both may be smuggled behind a proxy; never reuse it
            message = "both Transfer-Encoding and Content-Length; send one"
            return error_response(Kind.BAD_REQUEST, message, headers={"Connection": "close"})
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > settings.max_body_bytes:
            error = BodyTooLarge(settings.max_body_bytes)
            return error_response(Kind.TOO_LARGE, error.detail)
        if path in SHED_PATHS and (self.runtime.draining or self.runtime.model is None):
            message = "not ready or shutting down; retry on another replica"
            return error_response(Kind.UNAVAILABLE, message)
        return None  # health, metrics and info are never shed

    def _limited(self, receive: Receive, held: dict[str, int]) -> Receive:
        """`receive` with the body limits: size (413), arrival time from the head (408), and
        the bytes all requests hold at once (429); `held` counts this request's share."""
        settings = self.runtime.settings
        limit, received, complete = settings.max_body_bytes, 0, False
        timeout = settings.timeout_body_seconds
        body_deadline = asyncio.get_running_loop().time() + timeout

        async def wrapped() -> Message:
            nonlocal received, complete
            if complete:  # after the body: waiting for a disconnect is not timed
                return await receive()
            try:
                async with asyncio.timeout_at(body_deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(timeout) from None
            size = len(message.get("body", b""))
            received += size
            complete = not message.get("more_body", False)
            if received > limit:
                raise BodyTooLarge(limit)
            cap = settings.max_body_bytes_in_flight
            if size and self.bytes_in_flight + size > cap:
                raise BodiesBusy(cap, settings.retry_after_seconds)
            self.bytes_in_flight += size
            held["bytes"] += size
            return message

        return wrapped

    def _record(self, scope: Scope, path: str, status: int, seconds: float) -> None:
        route = scope.get("route")
        template: str = getattr(route, "path", None) or (
            path if path in SHED_PATHS else "unmatched"
        )
        metrics = self.runtime.metrics
        metrics.requests.labels(template, str(status)).inc()
        metrics.latency.labels(template).observe(seconds)
        fields: dict[str, Any] = {
            "method": scope["method"],
            "path": template,
            "status": status,
            "ms": round(seconds * 1000, 2),
        }
        fields.update(scope.get("state", {}).get("log_fields", {}))
        log("request", **fields)
