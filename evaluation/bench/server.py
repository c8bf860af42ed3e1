"""Server-level benchmark: start a server as a subprocess, drive it with the open-loop generator
up a ladder of fixed rates, and record latency, errors, resident memory and (for ours) the
server-side timing split read from /metrics.

The ladder stops after a step with errors or a p99 over one second: past that point the server
is only queueing, and further steps would measure the backlog, not the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from tokenizers import Tokenizer

from evaluation.bench.load import Step, Target, run_step

__all__ = [
    "Server",
    "Variant",
    "best_rate",
    "bodies",
    "cpu_seconds",
    "free_port",
    "ladder",
    "poll_ready",
    "process_tree",
    "rss_mb",
    "serve",
]

SENTENCES = [
    "I ordered a blue jacket three weeks ago and it still has not arrived.",
    "The tracking page has said out for delivery since Monday.",
    "You charged my card twice for the same subscription this month.",
    "Can you tell me how to change the email address on my account?",
    "This is the third time I am writing about the same broken blender.",
    "ok thanks",
    "The screen cracked on the first day and the replacement is scratched too.",
    "Nobody from your team has called me back even though I was promised a call.",
    "I would like a refund for the missing item, order 48213.",
    "whatever, just cancel it",
    "My password reset link expires before the email even reaches me.",
    "Honestly I am tired of explaining this again to a new person every time.",
    "Is there a discount for annual plans or only for monthly ones?",
    "The app logs me out every few minutes and I lose what I typed.",
    "I have been a customer for ten years and this is how you treat me?",
    "Fine. Do what you want.",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll_ready(
    url: str,
    process: subprocess.Popen[str] | subprocess.Popen[bytes],
    timeout: float,
    interval: float = 0.2,
) -> bool:
    """Poll `url`/readyz until it answers 200 (True), the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(interval)
    return False


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (a multi-worker server's workers), from /proc (Linux)."""
    tree, index = [pid], 0
    while index < len(tree):
        current = tree[index]
        index += 1
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                tree += [int(child) for child in task.read_text().split()]
            except OSError:
                continue  # the task ended meanwhile
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, its threads and its child processes so far."""
    total = 0.0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its child processes, from /proc (Linux)."""
    total, found = 0.0, False
    for member in process_tree(pid):
        try:
            lines = Path(f"/proc/{member}/status").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith("VmRSS:"):
                total, found = total + int(line.split()[1]) / 1024, True
    return total if found else float("nan")


#: The thread of a request "with a 3-turn history": the customer, the agent, the customer again.
HISTORY = [
    "Where is my order 48213? It was due on Friday.",
    {"role": "agent", "text": "Sorry about the wait, I have asked the warehouse to check it."},
    "It is Tuesday now and the tracking page has not changed at all.",
]


def bodies(
    tokenizer: Tokenizer,
    lengths: Sequence[int],
    count: int = 200,
    seed: int = 0,
    history: bool = False,
) -> tuple[bytes, ...]:
    """Single-message request bodies whose text is about one of `lengths` tokens long, built
    from varied helpdesk sentences (cut at a word boundary once the token count is reached);
    with `history`, each message comes with the 3-turn HISTORY."""
    tokenizer.no_truncation()
    tokenizer.no_padding()  # a release tokenizer may pad to its max_length
    rng = random.Random(seed)
    out = []
    for i in range(count):
        target = lengths[i % len(lengths)]
        words: list[str] = []
        while len(tokenizer.encode(" ".join(words)).ids) < target:
            words.extend(rng.choice(SENTENCES).split())
            while len(words) > 1 and len(tokenizer.encode(" ".join(words)).ids) > target:
                words.pop()
            if len(tokenizer.encode(" ".join(words)).ids) >= target - 1:
                break
        message: dict[str, object] = {"text": " ".join(words)}
        if history:
            message["history"] = HISTORY
        out.append(json.dumps({"messages": [message]}).encode())
    return tuple(out)


@dataclass
class Server:
    """A running server process and its base URL."""

    name: str
    process: subprocess.Popen[bytes]
    url: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def metrics(self) -> dict[str, float]:
        """Sums and counts of our server's stage, batch and request histograms (empty for
        servers without /metrics)."""
        try:
            response = httpx.get(f"{self.url}/metrics", timeout=5)
        except httpx.HTTPError:
            return {}
        if response.status_code != 200:
            return {}
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name.endswith(("_sum", "_count")):
                    label = sample.labels.get("stage") or sample.labels.get("route") or ""
                    values[f"{sample.name}{{{label}}}"] = sample.value
        return values


def timing_split(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Mean milliseconds per request (queue) and per batch (tokenize, inference) over a step,
    with the mean batch size, from the difference of two /metrics snapshots."""

    def mean(prefix: str, label: str) -> float | None:
        count = after.get(f"{prefix}_count{{{label}}}", 0) - before.get(
            f"{prefix}_count{{{label}}}", 0
        )
        total = after.get(f"{prefix}_sum{{{label}}}", 0) - before.get(f"{prefix}_sum{{{label}}}", 0)
        return total / count if count else None

    split: dict[str, float] = {}
    for stage in ("queue", "tokenize", "inference"):
        value = mean("helpdesk_stage_seconds", stage)
        if value is not None:
            split[f"{stage}_ms"] = round(value * 1000, 2)
    request = mean("helpdesk_request_seconds", "/v1/score")
    if request is not None:
        split["in_server_ms"] = round(request * 1000, 2)
    batch = mean("helpdesk_batch_texts", "")
    if batch is not None:
        split["mean_batch"] = round(batch, 2)
    return split


@contextmanager
def serve(name: str, command: list[str], port: int, env: dict[str, str]) -> Iterator[Server]:
    """Start `command` (which must listen on `port` and answer /readyz), yield it, stop it."""
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **env},
    )
    server = Server(name, process, f"http://127.0.0.1:{port}")
    try:
        if not poll_ready(server.url, process, timeout=180):
            raise RuntimeError(f"{name} server did not start ({' '.join(command)})")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


async def _sampled(server: Server, step: asyncio.Task[Step]) -> float:
    """Peak resident memory of the server while `step` runs."""
    peak = rss_mb(server.pid)
    while not step.done():
        await asyncio.sleep(0.25)
        peak = max(peak, rss_mb(server.pid))
    return peak


async def _step(
    server: Server,
    payloads: tuple[bytes, ...],
    rate: float,
    seconds: float,
    warm: float,
    warm_payloads: tuple[bytes, ...] | None = None,
) -> dict[str, object]:
    target = Target.parse(f"{server.url}/v1/score", payloads)
    if warm > 0:
        warming = target if warm_payloads is None else replace(target, bodies=warm_payloads)
        await run_step(warming, rate, warm, seed=1)
    before, cpu = server.metrics(), cpu_seconds(server.pid)
    task = asyncio.create_task(run_step(target, rate, seconds))
    peak = await _sampled(server, task)
    step = task.result()
    cpu_ms = (cpu_seconds(server.pid) - cpu) * 1000 / max(1, step.sent)
    return {
        **step.as_dict(),
        "rss_peak_mb": round(peak, 1),
        "server_cpu_ms_per_request": round(cpu_ms, 2),
        **timing_split(before, server.metrics()),
    }


def ladder(
    server: Server,
    payloads: tuple[bytes, ...],
    rates: Sequence[float],
    seconds: float,
    warm: float,
    progress: bool = True,
    fresh: bool = False,
) -> list[dict[str, object]]:
    """Run each rate in turn; stop after a step with errors or p99 > 1 s. With `fresh`, every
    request of the ladder, warm-up included, takes the next unused payload (none repeats)."""
    steps = []
    used = 0
    for rate in rates:
        warm_payloads = None
        step_payloads = payloads
        if fresh:
            warm_n = max(1, round(rate * warm)) if warm > 0 else 0
            n = max(1, round(rate * seconds))
            if used + warm_n + n > len(payloads):
                raise ValueError(f"{len(payloads)} payloads run out at {rate}/s: none may repeat")
            warm_payloads = payloads[used : used + warm_n]
            step_payloads = payloads[used + warm_n : used + warm_n + n]
            used += warm_n + n
        step = asyncio.run(_step(server, step_payloads, rate, seconds, warm, warm_payloads))
        steps.append(step)
        if progress:
            print(
                f"  {server.name:9} {rate:>6.0f}/s -> {step['achieved_rps']:>6}/s "
                f"p50 {_latency(step, 'p50')} p99 {_latency(step, 'p99')} ms, "
                f"errors {step['errors']}, rss {step['rss_peak_mb']} MB",
                file=sys.stderr,
                flush=True,
            )
        if step["errors"] or _latency(step, "p99") > 1000:
            break
    return steps


def _latency(step: dict[str, object], key: str) -> float:
    latency = step["latency_ms"]
    assert isinstance(latency, dict)
    return float(latency.get(key, float("inf")))


def best_rate(steps: Sequence[dict[str, object]], p99_ms: float = 50.0) -> float | None:
    """The highest offered rate with zero errors and p99 under `p99_ms`."""
    ok = [
        float(str(s["offered_rps"]))
        for s in steps
        if not s["errors"] and _latency(s, "p99") < p99_ms
    ]
    return max(ok) if ok else None


@dataclass(frozen=True)
class Variant:
    """One way to start our server: extra settings, another model, or several replicas."""

    name: str
    env: dict[str, str] = field(default_factory=dict)
    model: Path | None = None  # None: the release
    replicas: int = 1  # > 1: that many servers on one port (evaluation.bench.replicas)

    def command(self, release: Path, port: int) -> tuple[list[str], dict[str, str]]:
        model = self.model or release
        # default logging (a line per request); the score cache off, since the ladders send
        # 200 bodies over and over and a cache would answer the repeats (live_threads.py
        # measures it on bodies that never repeat)
        env = {"HELPDESK_THREADS": "2", "HELPDESK_SCORE_CACHE_SIZE": "0", **self.env}
        where = ["--model", str(model), "--port", str(port)]
        if self.replicas > 1:
            launcher = ["evaluation.bench.replicas", "--count", str(self.replicas)]
            return [sys.executable, "-m", *launcher, *where], env
        return [sys.executable, "-m", "serving.cli", "serve", *where], env
