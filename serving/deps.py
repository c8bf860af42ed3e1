"""FastAPI dependencies: the runtime, and callers authenticated for a scope."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, Request

from serving.auth import authenticate
from serving.errors import Kind
from serving.http import ApiError
from serving.runtime import Runtime
from serving.settings import ApiKey

__all__ = ["AdminCaller", "FeedbackCaller", "RuntimeDep", "ScoreCaller"]


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def _caller(scope: str, *also: str) -> Callable[..., Awaitable[ApiKey | None]]:
    """A dependency admitting keys with `scope` or any of `also`."""

    async def check(
        request: Request,
        runtime: RuntimeDep,
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> ApiKey | None:
        keys = runtime.settings.api_keys
        if not keys:
            return None  # no keys: the server only listens on loopback
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
        if not {scope, *also} & set(key.scopes):
            raise ApiError(Kind.FORBIDDEN, f"this API key lacks the '{scope}' scope")
        request.scope.setdefault("state", {}).setdefault("log_fields", {})["caller"] = key.name
        return key

    return check


ScoreCaller = Annotated[ApiKey | None, Depends(_caller("score"))]
AdminCaller = Annotated[ApiKey | None, Depends(_caller("admin"))]
#: Agents' tools may hold a feedback-only key; a key that may score may also flag a score.
FeedbackCaller = Annotated[ApiKey | None, Depends(_caller("feedback", "score"))]
