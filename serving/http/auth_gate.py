"""Authentication before the body: a keyless or wrongly scoped request is answered 401 or 403
from its head alone, so no byte of its body is read, buffered or parsed.

The scopes a route needs are read off the route itself (the `serving.http.deps` caller dependency
it declares, `keyed_routes`), so they are written once. Failed authentication is slowed per
client address by a small token bucket (`FailureBuckets`): past the burst, failures get 429
with `Retry-After` while a valid key from the same address still passes.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.core.errors import HelpdeskError, Kind
from serving.http.deps import admit, required_scopes
from serving.http.guard import ApiError, error_response
from serving.http.runtime import Runtime

__all__ = ["AuthGate", "FailureBuckets", "keyed_routes"]


@dataclass
class _Bucket:
    tokens: float
    updated: float


class FailureBuckets:
    """Failed authentications per client address: `burst` at once, then `per_second`.
    Bounded: the least recently failing addresses are forgotten past `max_clients`."""

    def __init__(self, burst: int, per_second: float, max_clients: int = 10_000) -> None:
        self.burst, self.per_second, self.max_clients = burst, per_second, max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def retry_after(self, client: str, now: float | None = None) -> int:
        """0 when this client may fail once more (and counts the failure), else the seconds
        until it may."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.pop(client, None) or _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.per_second)
        bucket.updated = now
        self._buckets[client] = bucket
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0
        return max(1, math.ceil((1 - bucket.tokens) / self.per_second))


def keyed_routes(routers: list[APIRouter]) -> list[tuple[APIRoute, tuple[str, ...]]]:
    """Each route of `routers` that declares a caller dependency, with its scopes."""
    found = []
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute):
                scopes = required_scopes(route.dependant)
                if scopes is not None:
                    found.append((route, scopes))
    return found


class AuthGate:
    """Pure ASGI middleware: checks the key of a route that needs one before the route runs."""

    def __init__(
        self, app: ASGIApp, runtime: Runtime, routes: list[tuple[APIRoute, tuple[str, ...]]]
    ) -> None:
        self.app = app
        self.runtime = runtime
        self.routes = routes
        settings = runtime.settings
        self.failures = FailureBuckets(settings.auth_failure_burst, settings.auth_failure_rate)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        keys = self.runtime.settings.api_keys
        scopes = self._scopes(scope) if scope["type"] == "http" and keys else None
        if scopes is None:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            admit(headers.get("authorization"), headers.get("x-api-key"), keys, scopes)
        except HelpdeskError as exc:
            client = (scope.get("client") or ("unknown", 0))[0]
            wait = self.failures.retry_after(client) if exc.kind is Kind.UNAUTHORIZED else 0
            if wait:
                exc = ApiError(
                    Kind.QUOTA_EXCEEDED,
                    "too many failed authentications from this address; retry later",
                    headers={"Retry-After": str(wait)},
                )
            headers_out = {**getattr(exc, "headers", {}), "Connection": "close"}
            response = error_response(exc.kind, str(exc), headers=headers_out)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _scopes(self, scope: Scope) -> tuple[str, ...] | None:
        """The scopes of the keyed route this request is for; None: an open route."""
        for route, scopes in self.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:  # PARTIAL: the path with another method (405 later)
                return scopes
        return None
