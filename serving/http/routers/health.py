"""Liveness and readiness (for load balancers and Kubernetes probes; GET or HEAD)."""

from __future__ import annotations

from fastapi import APIRouter

from serving.core.errors import Kind, NotReady
from serving.http.deps import RuntimeDep
from serving.http.guard import error_responses
from serving.http.runtime import Runtime

router = APIRouter(tags=["health"])


def batcher_trouble(runtime: Runtime) -> str | None:
    """Why the batch worker cannot serve: stopped for good, or one batch hung past the
    request deadline. None before the model loads (there is no worker yet) and when fine."""
    batcher = runtime.batcher
    if batcher is None:
        return None
    if not batcher.alive:
        return "batch worker stopped"
    if batcher.stuck(runtime.settings.request_deadline_seconds):
        return "batch worker stuck"
    return None


@router.head("/healthz", include_in_schema=False)
@router.get(
    "/healthz",
    responses=error_responses(Kind.UNAVAILABLE),
    summary="The process is alive (503: its batch worker is gone, so restart it)",
)
async def healthz(runtime: RuntimeDep) -> dict[str, str]:
    trouble = batcher_trouble(runtime)
    if trouble and not runtime.draining:
        raise NotReady(trouble)
    return {"status": "ok"}


@router.head("/readyz", include_in_schema=False)
@router.get(
    "/readyz",
    responses=error_responses(Kind.UNAVAILABLE),
    summary="A verified, warmed-up model is loaded, its batch worker runs, and not draining",
)
async def readyz(runtime: RuntimeDep) -> dict[str, str]:
    if runtime.model is None or runtime.draining:
        raise NotReady("not ready" if runtime.model is None else "draining")
    trouble = batcher_trouble(runtime)
    if trouble:
        raise NotReady(trouble)
    return {"status": "ready", "model_sha256": runtime.model.ref["sha256"]}
