"""Schemathesis against the live server's own OpenAPI schema, and overload on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from serving.http.app import create_app
from serving.http.settings import Settings
from tests.server_process import free_port, start, stop, wait_ready


@pytest.fixture(scope="module")
def live_url(tiny_release: Path) -> Iterator[str]:
    port = free_port()
    # nobody reads the server's stderr pipe during the run: per-request log lines would fill
    # it (64 KiB) and block the server, so only warnings are logged
    process = start(
        tiny_release, port, HELPDESK_MAX_BATCH_WAIT_MS="0", HELPDESK_LOG_LEVEL="WARNING"
    )
    try:
        wait_ready(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


# The schema is the app's own; building the app loads no model (that happens in the lifespan).
# 413 is how this API rejects data over its limits (maxItems/maxLength in the schema).
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
            }
        }
    }
)
schema = schemathesis.openapi.from_dict(
    create_app(Settings(model_dir=Path("unused"))).openapi(), config=CONFIG
)


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case, live_url: str) -> None:
    response = case.call(base_url=live_url, timeout=30)
    assert response.status_code < 500, response.text[:300]
    case.validate_response(response)


def test_overload_sheds_with_429_and_still_scores(tiny_release: Path) -> None:
    port = free_port()
    process = start(
        tiny_release, port, HELPDESK_MAX_QUEUED_TOKENS="800", HELPDESK_MAX_BATCH_WAIT_MS="20"
    )
    try:
        wait_ready(port, process)
        url = f"http://127.0.0.1:{port}"

        async def burst() -> list[tuple[int, float, str | None]]:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:

                async def one(i: int) -> tuple[int, float, str | None]:
                    started = time.perf_counter()
                    body = {"messages": [{"text": f"message {i} " * 20}] * 8}
                    response = await client.post("/v1/score", json=body)
                    return (
                        response.status_code,
                        time.perf_counter() - started,
                        response.headers.get("retry-after"),
                    )

                return await asyncio.gather(*(one(i) for i in range(120)))

        results = asyncio.run(burst())
        statuses = {status for status, _, _ in results}
        assert statuses <= {200, 429} and statuses == {200, 429}
        assert all(retry == "1" for status, _, retry in results if status == 429)
        admitted = sorted(seconds for status, seconds, _ in results if status == 200)
        assert admitted[-1] < 20  # admitted requests are served, not queued without bound
        after = httpx.post(f"{url}/v1/score", json={"messages": [{"text": "ok"}]}, timeout=10)
        assert after.status_code == 200 and len(after.json()["results"]) == 1
    finally:
        stop(process)
