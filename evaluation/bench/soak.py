"""Soak: serve the released model, send varied requests (1 to 16 messages of 1 to 400 words, 0
to 2 history turns) at a fixed rate for a while, and report the server's resident memory and
open file descriptors over time: growth means a leak.

    python -m evaluation.bench.soak --seconds 180 --rate 15

A benchmark, not a test: it prints numbers and asserts nothing. Loopback only, bounded in
time and request count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
from pathlib import Path

from evaluation.bench.load import Target, run_step
from evaluation.bench.server import Server, free_port, rss_mb, serve
from serving.core.contract import RELEASE_DIR

__all__ = ["soak", "varied_bodies"]

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


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def message(rng: random.Random) -> dict[str, object]:
    length = rng.choice([1, 3, 8, 20, 60, 150, 400])
    text = " ".join(rng.choice(WORDS) for _ in range(length))
    history = [" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(rng.choice([0, 0, 2]))]
    return {"text": text, "history": history}


def varied_bodies(count: int = 500, seed: int = 0) -> tuple[bytes, ...]:
    rng = random.Random(seed)
    return tuple(
        json.dumps({"messages": [message(rng) for _ in range(rng.choice([1, 1, 4, 16]))]}).encode()
        for _ in range(count)
    )


async def _soak(server: Server, seconds: float, rate: float) -> dict[str, object]:
    target = Target.parse(f"{server.url}/v1/score", varied_bodies())
    await run_step(target, rate, min(5.0, seconds), seed=1)  # warm-up: buffers reach size
    before = {"rss_mb": round(rss_mb(server.pid), 1), "open_fds": open_fds(server.pid)}
    task = asyncio.create_task(run_step(target, rate, seconds))
    samples = []
    while not task.done():
        samples.append(round(rss_mb(server.pid), 1))
        await asyncio.sleep(1.0)
    step = task.result()
    after = {"rss_mb": round(rss_mb(server.pid), 1), "open_fds": open_fds(server.pid)}
    return {
        "seconds": seconds,
        "rate_per_second": rate,
        "statuses": step.statuses,
        "latency_ms": step.latency_ms,
        "before": before,
        "after": after,
        "rss_peak_mb": max(samples, default=after["rss_mb"]),
        "rss_samples_mb": samples,
        "rss_growth_mb": round(after["rss_mb"] - before["rss_mb"], 1),
        "fd_growth": after["open_fds"] - before["open_fds"],
    }


def soak(server: Server, seconds: float, rate: float) -> dict[str, object]:
    """Drive a running server for `seconds` at `rate` varied requests/s and report memory."""
    return asyncio.run(_soak(server, seconds, rate))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=RELEASE_DIR)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--rate", type=float, default=15.0, help="requests per second")
    args = parser.parse_args()
    port = free_port()
    command = [sys.executable, "-m", "serving.cli", "serve", "--model", str(args.model)]
    with serve("ours", [*command, "--port", str(port)], port, {}) as server:
        report = soak(server, args.seconds, args.rate)
    print(json.dumps({k: v for k, v in report.items() if k != "rss_samples_mb"}, indent=2))


if __name__ == "__main__":
    main()
