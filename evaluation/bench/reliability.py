"""Reliability probe (issue 14): does a keyed caller still get fast 200s while the server is
abused? Prints numbers; asserts nothing (the tests assert the behaviour at small scale).

1. `stalled`: N connections without a key hold the server (half send headers and a
   Content-Length and stall the body, half send part of a request line) while a keyed client
   sends one-message requests at a fixed rate: its statuses and latency, and when the server
   closed the stalled connections.
2. `large`: 5 clients keep maximum-size requests (max_messages x max_chars) in the server
   while one-message requests arrive at a fixed rate: their statuses and latency.

`python -m evaluation.bench.reliability [--model models/release] [--stalled 500]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import httpx

from evaluation.bench.load import percentiles
from evaluation.bench.server import Server, free_port, serve
from serving.auth import hash_key
from serving.contract import RELEASE_DIR
from serving.settings import Settings

__all__ = ["main"]

KEY = "reliability-probe-key"
STALLED_BODY = (
    b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b'Content-Length: 100000\r\n\r\n{"messages": ['
)
PARTIAL_LINE = b"POST /v1/sco"
SINGLE = {"messages": [{"text": "my order never arrived, where is it?"}]}


async def keyed_load(
    url: str, rate: float, seconds: float
) -> tuple[dict[int, int], dict[str, float]]:
    """Open-loop one-message requests with the key: status counts and latency (ms)."""
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def one(at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            started = time.monotonic()
            try:
                response = await client.post("/v1/score", json=SINGLE, headers={"X-API-Key": KEY})
                status = response.status_code
            except httpx.HTTPError:
                status = 0
            latencies.append(time.monotonic() - started)
            statuses[status] = statuses.get(status, 0) + 1

        start = time.monotonic()
        count = int(rate * seconds)
        await asyncio.gather(*(one(start + i / rate) for i in range(count)))
    return statuses, {k: round(v, 1) for k, v in percentiles(latencies).items()}


async def stalled(server: Server, count: int, rate: float, timeout: float) -> dict[str, object]:
    port = int(server.url.rsplit(":", 1)[1])
    opened = time.monotonic()
    streams = []
    for i in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(STALLED_BODY if i % 2 == 0 else PARTIAL_LINE)
        streams.append((reader, writer))
    held = time.monotonic() - opened

    async def closed_after(reader: asyncio.StreamReader) -> float | None:
        try:
            await asyncio.wait_for(reader.read(-1), timeout + 10)
        except TimeoutError:
            return None
        except ConnectionError:
            pass
        return time.monotonic() - opened

    closing = [asyncio.ensure_future(closed_after(reader)) for reader, _ in streams]
    statuses, latency = await keyed_load(server.url, rate, timeout - held - 1.5)
    closes = await asyncio.gather(*closing)
    for _, writer in streams:
        writer.close()
    done = [c for c in closes if c is not None]
    return {
        "stalled_connections": count,
        "opened_in_s": round(held, 2),
        "keyed_rate_per_s": rate,
        "keyed_statuses": statuses,
        "keyed_latency_ms": latency,
        "configured_timeout_s": timeout,
        "stalled_closed": len(done),
        "stalled_closed_after_s": [round(min(done), 2), round(max(done), 2)] if done else None,
    }


async def large(
    server: Server, settings: Settings, rate: float, seconds: float
) -> dict[str, object]:
    text = ("I ordered a blue jacket three weeks ago and it still has not arrived. " * 300)[
        : settings.max_chars
    ]
    big = json.dumps({"messages": [{"text": text}] * settings.max_messages}).encode()
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    stop = time.monotonic() + seconds + 2

    async def keep_sending(client: httpx.AsyncClient) -> None:
        while time.monotonic() < stop:
            started = time.monotonic()
            response = await client.post(
                "/v1/score",
                content=big,
                headers={"X-API-Key": KEY, "Content-Type": "application/json"},
            )
            latencies.append(time.monotonic() - started)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 429:
                await asyncio.sleep(float(response.headers.get("retry-after", "1")))

    async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
        senders = [asyncio.ensure_future(keep_sending(client)) for _ in range(5)]
        await asyncio.sleep(2)  # the large requests are queued and running
        single_statuses, single_latency = await keyed_load(server.url, rate, seconds)
        await asyncio.gather(*senders)
    return {
        "large_request": f"{settings.max_messages} x {len(text)} characters, {len(big)} bytes",
        "large_statuses": statuses,
        "large_latency_ms": {k: round(v, 1) for k, v in percentiles(latencies).items()},
        "single_rate_per_s": rate,
        "single_statuses": single_statuses,
        "single_latency_ms": single_latency,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=RELEASE_DIR)
    parser.add_argument("--stalled", type=int, default=500)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the large run")
    args = parser.parse_args()
    settings = Settings()
    port = free_port()
    keys = json.dumps([{"name": "probe", "sha256": hash_key(KEY), "scopes": ["score"]}])
    env = {"HELPDESK_API_KEYS": keys, "HELPDESK_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "serving.cli", "serve", "--model", str(args.model)]
    command += ["--port", str(port)]
    print(json.dumps({"load_average_before": os.getloadavg()}))
    with serve("ours", command, port, env) as server:
        timeout = min(settings.timeout_header_seconds, settings.timeout_body_seconds)
        result = asyncio.run(stalled(server, args.stalled, args.rate, timeout))
        print(json.dumps({"scenario": "stalled", **result}))
        result = asyncio.run(large(server, settings, args.rate, args.seconds))
        print(json.dumps({"scenario": "large", **result}))
        after = httpx.get(f"{server.url}/readyz", timeout=5).status_code
    print(json.dumps({"readyz_after": after, "load_average_after": os.getloadavg()}))


if __name__ == "__main__":
    main()
