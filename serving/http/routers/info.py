"""What is being served and with which limits."""

from __future__ import annotations

from fastapi import APIRouter

from serving.core.contract import HEADS
from serving.core.errors import Kind, NotReady
from serving.core.schemas import InfoResponse
from serving.http.deps import RuntimeDep, ScoreCaller
from serving.http.guard import error_responses

router = APIRouter(tags=["info"])


@router.get(
    "/v1/info",
    response_model=InfoResponse,
    responses=error_responses(Kind.UNAUTHORIZED, Kind.FORBIDDEN, Kind.UNAVAILABLE),
    summary="Model, thresholds and limits",
)
async def info(runtime: RuntimeDep, caller: ScoreCaller) -> dict[str, object]:
    if runtime.model is None:
        raise NotReady("not ready")
    state = runtime.model
    settings = runtime.settings
    return {
        "model": state.ref,
        "heads": list(HEADS),
        **state.results.rules.as_json(),  # exactly what serving/core/decision/decide.py applies
        "max_length_tokens": state.scorer.manifest.max_length,
        "drift_reference": state.scorer.manifest.reference is not None,
        "limits": {
            "max_messages": settings.max_messages,
            "max_explain_messages": settings.max_explain_messages,
            "max_history": settings.max_history,
            "max_chars": settings.max_chars,
            "max_body_bytes": settings.max_body_bytes,
            "max_queued_tokens": settings.max_queued_tokens,
        },
    }
