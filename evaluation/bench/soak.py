"""Soak: serve the released model, send varied-length requests at a fixed rate for a while,
and report resident memory and open file descriptors of the server before and after.

    python -m evaluation.bench.soak --seconds 180 --rate 40

A benchmark, not a test: it prints numbers and asserts nothing. Loopback only, bounded in
time and request count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

WORDS = [
    "order",
    "refund",
    "charged",
    "twice",
    "delivery",
    "late",
    "broken",
    "screen",
    "account",
    "password",
    "help",
    "please",
    "still",
    "waiting",
    "third",
    "time",
    "again",
    "never",
    "arrived",
    "ok",
    "thanks",
    "whatever",
    "fine",
    "cancel",
    "subscription",
]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def message(rng: random.Random) -> dict[str, object]:
    length = rng.choice([1, 3, 8, 20, 60, 150, 400])
    text = " ".join(rng.choice(WORDS) for _ in range(length))
    history = [" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(rng.choice([0, 0, 2]))]
    return {"text": text, "history": history}


async def drive(url: str, seconds: float, rate: float, seed: int) -> dict[str, int]:
    """Open loop: one request every 1/rate seconds, whatever the answers do."""
    rng = random.Random(seed)
    statuses: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one(body: dict[str, object]) -> None:
            try:
                status = str((await client.post("/v1/score", json=body)).status_code)
            except httpx.TransportError as exc:
                status = type(exc).__name__
            statuses[status] = statuses.get(status, 0) + 1

        tasks = []
        start = time.perf_counter()
        for i in range(int(seconds * rate)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            body: dict[str, object] = {
                "messages": [message(rng) for _ in range(rng.choice([1, 1, 4, 16]))]
            }
            tasks.append(asyncio.create_task(one(body)))
        await asyncio.gather(*tasks)
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/release"))
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "serving.cli",
            "serve",
            "--model",
            str(args.model),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        warm = asyncio.run(drive(url, 5, args.rate, args.seed + 1))
        before = {"rss_mb": rss_mb(server.pid), "open_fds": open_fds(server.pid)}
        statuses = asyncio.run(drive(url, args.seconds, args.rate, args.seed))
        after = {"rss_mb": rss_mb(server.pid), "open_fds": open_fds(server.pid)}
    finally:
        server.terminate()
        server.wait(timeout=30)
    report = {
        "seconds": args.seconds,
        "rate_per_second": args.rate,
        "warm_up_statuses": warm,
        "statuses": statuses,
        "before": before,
        "after": after,
        "rss_growth_mb": round(after["rss_mb"] - before["rss_mb"], 1),
        "fd_growth": after["open_fds"] - before["open_fds"],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
