"""FastAPI dependencies: the runtime, and callers authenticated for a scope."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.dependencies.models import Dependant

from serving.core.errors import Kind
from serving.http.auth import authenticate
from serving.http.guard import ApiError
from serving.http.runtime import Runtime
from serving.http.settings import ApiKey

__all__ = [
    "AdminCaller",
    "FeedbackCaller",
    "RuntimeDep",
    "ScoreCaller",
    "admit",
    "required_scopes",
]


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def admit(
    authorization: str | None, x_api_key: str | None, keys: list[ApiKey], scopes: tuple[str, ...]
) -> ApiKey:
    """The presented key (a Bearer token or X-API-Key) when it is known and holds one of
    `scopes`; else ApiError 401 (unknown or missing) or 403 (known, lacks the scope)."""
    presented = x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        presented = authorization[7:].strip()
    key = authenticate(presented, keys)
    if key is None:
        raise ApiError(
            Kind.UNAUTHORIZED,
            "missing or unknown API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not set(scopes) & set(key.scopes):
        raise ApiError(Kind.FORBIDDEN, f"this API key lacks the '{scopes[0]}' scope")
    return key


def _caller(scope: str, *also: str) -> Callable[..., Awaitable[ApiKey | None]]:
    """A dependency admitting keys with `scope` or any of `also`; `serving.http.auth_gate` reads
    its `scopes` to check the key before the body is read."""

    async def check(
        request: Request,
        runtime: RuntimeDep,
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> ApiKey | None:
        keys = runtime.settings.api_keys
        if not keys:
            return None  # no keys: the server only listens on loopback
        key = admit(authorization, x_api_key, keys, (scope, *also))
        request.scope.setdefault("state", {}).setdefault("log_fields", {})["caller"] = key.name
        return key

    check.scopes = (scope, *also)  # type: ignore[attr-defined]
    return check


def required_scopes(dependant: Dependant) -> tuple[str, ...] | None:
    """The scopes of the caller dependency among a route's dependencies; None: open route."""
    for sub in dependant.dependencies:
        scopes = getattr(sub.call, "scopes", None)
        if scopes is not None:
            return tuple(scopes)
    return None


ScoreCaller = Annotated[ApiKey | None, Depends(_caller("score"))]
AdminCaller = Annotated[ApiKey | None, Depends(_caller("admin"))]
#: Agents' tools may hold a feedback-only key; a key that may score may also flag a score.
FeedbackCaller = Annotated[ApiKey | None, Depends(_caller("feedback", "score"))]
