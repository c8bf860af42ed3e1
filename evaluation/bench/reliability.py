"""Reliability probe (issue 14): does a keyed caller still get fast 200s while the server is
abused? Prints numbers; asserts nothing (the tests assert the behaviour at small scale).

1. `stalled`: N connections without a key hold the server (half send headers and a
   Content-Length and stall the body, half send part of a request line) while a keyed client
   sends one-message requests at a fixed rate: its statuses and latency, and when the server
   closed the stalled connections.
2. `large`: 5 clients keep maximum-size requests (max_messages x max_chars) in the server
   while one-message requests arrive at a fixed rate: their statuses and latency.
3. `keyless_bodies`: N clients without a key send maximum-size bodies (max_body_bytes), once
   each (a wave) and then back to back (a storm), while the keyed client sends at a fixed
   rate: the keyless statuses, the keyed statuses and latency, and the server's resident
   memory before, at peak and after.
4. `largest`: on a one-thread server (the deploy layout), the largest request the limits
   admit: max_messages messages whose histories make max_texts_per_request texts to score,
   each as long as the body limit allows; its status and seconds against the deadline.
5. `host` (with `--review-report`): the review page with a foreign `Host` (DNS rebinding) and
   a foreign `Origin` on a write: the statuses.

`python -m evaluation.bench.reliability [--model models/release] [--stalled 500]
[--keyless 200] [--review-report reports/eval]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from evaluation.bench.load import percentiles
from evaluation.bench.server import Server, free_port, rss_mb, serve
from serving.core.contract import RELEASE_DIR
from serving.http.auth import hash_key
from serving.http.settings import Settings

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


async def keyless_bodies(
    server: Server, settings: Settings, clients: int, rate: float, seconds: float, storm: bool
) -> dict[str, object]:
    """`storm`: each keyless client sends again as soon as it is answered, for `seconds`;
    otherwise each sends one body (a wave of `clients` at once)."""
    port = int(server.url.rsplit(":", 1)[1])
    body = b'{"messages": [{"text": "' + b"x" * (settings.max_body_bytes - 40) + b'"}]}'
    head = (
        b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    statuses: dict[str, int] = {}
    peak = before = rss_mb(server.pid)
    stop = time.monotonic() + seconds

    async def one_client() -> None:
        first = True
        while first or (storm and time.monotonic() < stop):
            first = False
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(head + body)
                line = await asyncio.wait_for(reader.readline(), 30)
                status = line.split(b" ")[1].decode() if line else "closed"
                writer.close()
            except (ConnectionError, TimeoutError, IndexError):
                status = "error"
            statuses[status] = statuses.get(status, 0) + 1

    async def watch_memory() -> None:
        nonlocal peak
        while time.monotonic() < stop + 1:
            peak = max(peak, rss_mb(server.pid))
            await asyncio.sleep(0.2)

    tasks = [asyncio.ensure_future(one_client()) for _ in range(clients)]
    watcher = asyncio.ensure_future(watch_memory())
    keyed_statuses, keyed_latency = await keyed_load(server.url, rate, seconds)
    await asyncio.gather(*tasks, watcher)
    await asyncio.sleep(2)
    return {
        "keyless_clients": clients,
        "keyless_mode": "storm" if storm else "wave",
        "body_bytes": len(body),
        "keyless_statuses": statuses,
        "keyed_rate_per_s": rate,
        "keyed_statuses": keyed_statuses,
        "keyed_latency_ms": keyed_latency,
        "rss_mb": {"before": before, "peak": peak, "after": rss_mb(server.pid)},
    }


def largest(model: Path, settings: Settings) -> dict[str, object]:
    """The largest admitted request on one onnxruntime thread: status and seconds."""
    per_message = max(1, settings.max_texts_per_request // settings.max_messages)
    turns = min(settings.max_history, per_message - 1)
    # as long as the body limit lets every text be (each is cut to the model's tokens anyway)
    chars = min(
        settings.max_chars,
        int(0.9 * settings.max_body_bytes) // (settings.max_messages * (turns + 1)),
    )
    text = ("My order still has not arrived and nobody answers my emails. " * 400)[:chars]
    messages = [{"text": text, "history": [text] * turns} for _ in range(settings.max_messages)]
    texts = len(messages) * (turns + 1)
    port = free_port()
    command = [sys.executable, "-m", "serving.cli", "serve", "--model", str(model)]
    command += ["--port", str(port)]
    env = {"HELPDESK_THREADS": "1", "HELPDESK_LOG_LEVEL": "WARNING"}
    with serve("largest", command, port, env) as server:
        started = time.monotonic()
        response = httpx.post(f"{server.url}/v1/score", json={"messages": messages}, timeout=120)
        seconds = time.monotonic() - started
    return {
        "texts_scored": texts,
        "chars_per_text": len(text),
        "status": response.status_code,
        "seconds": round(seconds, 2),
        "deadline_s": settings.request_deadline_seconds,
    }


def host_check(report: Path, model: Path) -> dict[str, int]:
    """Statuses of the review page for its own Host, a foreign Host and a foreign Origin."""
    port = free_port()
    command = [sys.executable, "-m", "serving.cli", "review", str(report), "--model", str(model)]
    command += ["--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/api/feedback", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        judgement = {"sample_id": "none", "head": "complaint", "label": 1}
        cases = {
            "own_host_read": ("GET", {}),
            "foreign_host_read": ("GET", {"Host": f"attacker.example:{port}"}),
            "foreign_host_write": ("POST", {"Host": f"attacker.example:{port}"}),
            "foreign_origin_write": ("POST", {"Origin": f"http://attacker.example:{port}"}),
        }
        out = {}
        for name, (method, headers) in cases.items():
            path = "/api/feedback" if method == "GET" else "/api/judgements"
            body = None if method == "GET" else judgement
            out[name] = httpx.request(method, url + path, json=body, headers=headers).status_code
        return out
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=RELEASE_DIR)
    parser.add_argument("--stalled", type=int, default=500)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the large run")
    parser.add_argument("--keyless", type=int, default=200, help="keyless max-size clients")
    parser.add_argument("--review-report", type=Path, default=None, help="report for `host`")
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
        for storm in (False, True):
            result = asyncio.run(
                keyless_bodies(server, settings, args.keyless, args.rate, args.seconds, storm)
            )
            print(json.dumps({"scenario": "keyless_bodies", **result}))
        after = httpx.get(f"{server.url}/readyz", timeout=5).status_code
    print(json.dumps({"scenario": "largest", **largest(args.model, settings)}))
    if args.review_report is not None:
        print(json.dumps({"scenario": "host", **host_check(args.review_report, args.model)}))
    print(json.dumps({"readyz_after": after, "load_average_after": os.getloadavg()}))


if __name__ == "__main__":
    main()
