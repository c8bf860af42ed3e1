"""Reload memory: serve a model, hot-reload the same folder N times (a few scores between
reloads), and print the server's resident memory: growth means old sessions are kept alive.

    python -m evaluation.bench.reloads --reloads 100

A benchmark, not a test: it prints numbers and asserts nothing. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import httpx

from evaluation.bench.server import Server, free_port, rss_mb, serve
from serving.core.contract import RELEASE_DIR

__all__ = ["reload_memory"]

BODY = {"messages": [{"text": "Third time I'm asking: where is my refund?!"}, {"text": "ok"}]}


def reload_memory(server: Server, model: Path, reloads: int) -> dict[str, object]:
    """Resident memory before, during (every 10th reload, after its next score), at its peak
    (right after a reload) and after `reloads` hot reloads."""
    with httpx.Client(base_url=server.url, timeout=120) as client:
        for _ in range(3):  # warm-up: buffers reach their size before the baseline
            client.post("/v1/score", json=BODY).raise_for_status()
        before = rss_mb(server.pid)
        samples, peak = [], before
        for i in range(1, reloads + 1):
            client.post("/v1/admin/reload", json={"model_dir": str(model)}).raise_for_status()
            peak = max(peak, rss_mb(server.pid))  # old and new model both held
            client.post("/v1/score", json=BODY).raise_for_status()
            if i % 10 == 0:
                samples.append(round(rss_mb(server.pid), 1))
        after = rss_mb(server.pid)
    return {
        "reloads": reloads,
        "rss_before_mb": round(before, 1),
        "rss_after_mb": round(after, 1),
        "rss_growth_mb": round(after - before, 1),
        "rss_peak_mb": round(peak, 1),
        "rss_every_10_mb": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=RELEASE_DIR)
    parser.add_argument("--reloads", type=int, default=100)
    args = parser.parse_args()
    model = args.model.resolve()
    port = free_port()
    command = [sys.executable, "-m", "serving.cli", "serve", "--model", str(model)]
    with serve("ours", [*command, "--port", str(port)], port, {}) as server:
        report = reload_memory(server, model, args.reloads)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
