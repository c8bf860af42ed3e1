"""HTTP plumbing: the JSON error shape, exception handlers, and the guard middleware
(body size, load shedding, draining, access log and request metrics)."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.observability import log
from serving.runtime import Runtime

__all__ = [
    "ApiError",
    "Guard",
    "error_response",
    "error_responses",
    "install_error_handlers",
    "over_limit",
]

SHED_PATHS = ("/v1/score",)
STATUS_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "model_refused",
    413: "too_large",
    422: "invalid_input",
    429: "overloaded",
    500: "internal_error",
    503: "unavailable",
}


ERROR_DESCRIPTIONS = {
    400: "The body is not parseable JSON (malformed, invalid UTF-8, nested too deep)",
    401: "Missing or unknown API key",
    403: "The API key lacks the scope",
    404: "Turned off on this server",
    409: "The model folder was refused (missing, changed or unexpected files, failed golden "
    "check); the current model keeps serving",
    413: "Body, message/judgement count, history or text length over the limit",
    422: "Invalid input: empty or non-string text, wrong types, unknown fields",
    429: "Too many requests in flight (see Retry-After)",
    503: "No model loaded yet, shutting down, or the feedback store is unavailable",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error codes, all with the JSON error body."""
    from serving.schemas import ErrorResponse

    return {c: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[c]} for c in codes}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.kind = kind or STATUS_TYPES.get(status, "error")
        self.headers = headers or {}


def over_limit(count: int, limit: int, what: str, where: str | None = None) -> None:
    """413 when a request carries more than the deployment allows, naming what and where:
    "70 messages; at most 64" or "messages.0.text has 20001 characters; at most 20000"."""
    if count > limit:
        said = f"{where} has {count} {what}" if where else f"{count} {what}"
        raise ApiError(413, f"{said}; at most {limit}")


class BodyTooLarge(Exception):
    pass


def error_response(
    status: int, message: str, kind: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"type": kind or STATUS_TYPES.get(status, "error"), "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def body_too_large(limit: int) -> JSONResponse:
    return error_response(413, f"request body is larger than {limit} bytes")


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ())[1:]) or "body"
        message = error.get("msg", "invalid")
        if error.get("type") == "string_pattern_mismatch":  # the only pattern is NOT_BLANK
            message = "empty or whitespace-only text"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def install_error_handlers(app: FastAPI, max_body_bytes: int) -> None:
    """Every error is {"error": {"type", "message"}}; an unexpected one is a 500 without a
    trace (the exception type goes to the log, never the request body)."""

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.message, exc.kind, exc.headers)

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(422, _validation_message(exc))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return error_response(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    async def too_large(request: Request, exc: Exception) -> JSONResponse:
        return body_too_large(max_body_bytes)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log("unhandled error", logging.ERROR, error=type(exc).__name__, path=request.url.path)
        return error_response(500, "internal error; the request was not processed")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(BodyTooLarge, too_large)
    app.add_exception_handler(Exception, unexpected)


class Guard:
    """Pure ASGI middleware around all routes: it sheds, limits and records every request,
    including the ones it rejects before they reach a route."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}
        path: str = scope["path"]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        rejection = self._reject(scope, path)
        counted = path in SHED_PATHS and rejection is None
        try:
            if rejection is not None:
                await rejection(scope, receive, send_status)
                return
            if counted:
                self.runtime.in_flight += 1
                self.runtime.metrics.in_flight.inc()
            await self.app(scope, self._limited(receive), send_status)
        finally:
            if counted:
                self.runtime.in_flight -= 1
                self.runtime.metrics.in_flight.dec()
            self._record(scope, path, status["code"], time.perf_counter() - started)

    def _reject(self, scope: Scope, path: str) -> JSONResponse | None:
        settings = self.runtime.settings
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > settings.max_body_bytes:
            return body_too_large(settings.max_body_bytes)
        if path not in SHED_PATHS:
            return None  # health, metrics and info are never shed
        if self.runtime.draining or self.runtime.model is None:
            return error_response(503, "not ready or shutting down; retry on another replica")
        if self.runtime.in_flight >= settings.max_in_flight:
            retry = str(settings.retry_after_seconds)
            return error_response(
                429, "too many requests in flight; retry later", headers={"Retry-After": retry}
            )
        return None

    def _limited(self, receive: Receive) -> Receive:
        limit, received = self.runtime.settings.max_body_bytes, 0

        async def wrapped() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge
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
