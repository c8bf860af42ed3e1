"""Liveness and readiness (for load balancers and Kubernetes probes)."""

from __future__ import annotations

from fastapi import APIRouter

from serving.deps import RuntimeDep
from serving.http import ApiError, error_responses

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses=error_responses(503),
    summary="A verified, warmed-up model is loaded and not draining",
)
async def readyz(runtime: RuntimeDep) -> dict[str, str]:
    if runtime.model is None or runtime.draining:
        raise ApiError(503, "not ready" if runtime.model is None else "draining")
    return {"status": "ready", "model_sha256": runtime.model.ref["sha256"]}
