"""POST /v1/admin/reload: verify, warm up and golden-check a model folder, then swap it in."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter

from serving.core.errors import HelpdeskError, Kind, ModelRefused
from serving.core.schemas import ReloadRequest
from serving.http.deps import AdminCaller, RuntimeDep
from serving.http.guard import error_responses
from serving.http.observability import log
from serving.http.runtime import load_model_state, release_freed_memory

router = APIRouter(tags=["admin"])


@router.post(
    "/v1/admin/reload",
    summary="Hot-swap the model; on any failure the old model keeps serving",
    responses=error_responses(
        Kind.BAD_REQUEST,
        Kind.UNAUTHORIZED,
        Kind.FORBIDDEN,
        Kind.MODEL_REFUSED,
        Kind.TOO_LARGE,
        Kind.INVALID_INPUT,
    ),
)
async def reload(
    body: ReloadRequest, runtime: RuntimeDep, caller: AdminCaller
) -> dict[str, object]:
    async with runtime.reload_lock:
        folder = Path(body.model_dir)
        try:
            state = await asyncio.to_thread(
                load_model_state,
                folder,
                runtime.settings,
                runtime.policy,
                runtime.phrases,
                body.sha256,
            )
        except HelpdeskError as exc:
            refusal = str(exc)
        else:
            previous = runtime.current().ref
            runtime.swap(state)  # frees the old model's memory once no batch holds it
            log("model swapped", previous=previous["sha256"], current=state.ref["sha256"])
            return {"status": "swapped", "previous": previous, "model": state.ref}
        log("reload refused", folder=str(folder), error=refusal)
        await asyncio.to_thread(release_freed_memory)  # the refused model's, its traceback gone
        raise ModelRefused(f"model refused, still serving the old one: {refusal}")
