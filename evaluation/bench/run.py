"""One command for the whole benchmark: model level, the generator's own floor, the server
ladders (64-token, 128-token and varied-length messages) of ours (one process, and the deploy
layout of two one-thread processes) and of the pipeline baseline, memory and a soak; then the JSON
results, the plot and docs/benchmarks.md.

    python -m evaluation.bench run --out reports/bench   # a fresh clone: no training run needed
    python -m evaluation.bench run --run models/runs/v3 --out reports/bench   # fine-tuned torch
    python -m evaluation.bench run --smoke ...   # a few seconds: checks the report is produced
    python -m evaluation.bench report reports/bench/results.json   # re-render the docs only
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tokenizers import Tokenizer

from evaluation.bench import model as model_bench
from evaluation.bench.load import Target, run_step
from evaluation.bench.render_docs import render
from evaluation.bench.server import (
    Server,
    Variant,
    best_rate,
    bodies,
    free_port,
    ladder,
    rss_mb,
    serve,
)
from evaluation.bench.soak import soak
from evaluation.bench.targets import TWO_WORKERS
from serving.core.contract import RELEASE_DIR, TOKENIZER_FILE
from serving.core.errors import BadInput

__all__ = ["Plan", "main"]

DOCS = Path("docs/benchmarks.md")


@dataclass(frozen=True)
class Plan:
    """How long and how hard each part runs; `smoke()` is the few-seconds CI version."""

    seconds: float = 10.0
    warm: float = 2.0
    ours_rates: tuple[float, ...] = (10, 25, 50, 100, 150, 200, 250, 300, 400)
    pipeline_rates: tuple[float, ...] = (5, 10, 25, 35, 50, 75, 100)
    long_rates: tuple[float, ...] = (10, 25, 50, 75, 100, 150)
    pipeline_long_rates: tuple[float, ...] = (5, 10, 25, 35, 50)
    varied_rates: tuple[float, ...] = (25, 50, 100)
    history_rates: tuple[float, ...] = (10, 25, 50, 100, 150, 200, 250)
    pipeline_history_rates: tuple[float, ...] = (5, 10, 25, 35, 50)
    floor_rates: tuple[float, ...] = (200, 500)
    soak_seconds: float = 120.0
    soak_rate: float = 15.0
    model_repeats: int = 50
    lengths: tuple[int, ...] = model_bench.LENGTHS
    batches: tuple[int, ...] = model_bench.BATCHES

    @classmethod
    def smoke(cls) -> Plan:
        return cls(
            seconds=1.0,
            warm=0.2,
            ours_rates=(5, 10),
            pipeline_rates=(5,),
            long_rates=(5,),
            pipeline_long_rates=(5,),
            varied_rates=(5,),
            history_rates=(5,),
            pipeline_history_rates=(5,),
            floor_rates=(20,),
            soak_seconds=2.0,
            soak_rate=5.0,
            model_repeats=3,
            lengths=(16,),
            batches=(1, 4),
        )


def machine() -> dict[str, object]:
    """What the numbers were measured on, and how busy it was."""
    import fastapi
    import onnxruntime
    import uvicorn

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    memory = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    versions = {
        "python": sys.version.split()[0],
        "onnxruntime": onnxruntime.__version__,
        "fastapi": fastapi.__version__,
        "uvicorn": uvicorn.__version__,
    }
    for name in ("torch", "transformers"):
        try:
            versions[name] = __import__(name).__version__
        except ModuleNotFoundError:
            versions[name] = "not installed"
    return {
        "cpu": cpu,
        "cpus": len(os.sched_getaffinity(0)),
        "memory_gb": round(int(memory) / 1024**2, 1),
        "versions": versions,
        "load_average_before": list(os.getloadavg()),
    }


def _ours(
    release: Path, env: list[str], threads: int, replicas: int = 1
) -> tuple[list[str], int, dict[str, str]]:
    """Our server with default settings but the thread count (and `--server-env`); with
    `replicas` > 1, that many on one port (the deploy layout)."""
    port = free_port()
    settings = {"HELPDESK_THREADS": str(threads), **dict(e.split("=", 1) for e in env)}
    command, settings = Variant("ours", settings, replicas=replicas).command(release, port)
    return command, port, settings


def _pipeline(
    run: Path | None, release: Path, threads: int
) -> tuple[list[str], int, dict[str, str]]:
    port = free_port()
    command = [sys.executable, "-m", "evaluation.bench.pipeline_server", "--release", str(release)]
    if run is not None:
        command += ["--run", str(run)]
    return [*command, "--port", str(port), "--threads", str(threads)], port, {}


def _sweep(
    server: Server,
    plan: Plan,
    rates: tuple[float, ...],
    long_rates: tuple[float, ...],
    history_rates: tuple[float, ...],
    tokenizer: Tokenizer,
) -> dict[str, object]:
    idle = rss_mb(server.pid)
    print(f"{server.name}: 64-token messages", file=sys.stderr)
    steps = ladder(server, bodies(tokenizer, [64]), rates, plan.seconds, plan.warm)
    print(f"{server.name}: 128-token messages", file=sys.stderr)
    long = ladder(server, bodies(tokenizer, [128], seed=2), long_rates, plan.seconds, plan.warm)
    print(f"{server.name}: varied lengths (8 to 128 tokens)", file=sys.stderr)
    varied_payloads = bodies(tokenizer, [8, 16, 32, 64, 128], seed=1)
    varied = ladder(server, varied_payloads, plan.varied_rates, plan.seconds, plan.warm)
    print(f"{server.name}: 64-token messages with a 3-turn history", file=sys.stderr)
    threaded = bodies(tokenizer, [64], seed=3, history=True)
    with_history = ladder(server, threaded, history_rates, plan.seconds, plan.warm)
    return {
        "idle_rss_mb": round(idle, 1),
        "steps": steps,
        "best_rate_p99_50ms": best_rate(steps),
        "long": long,
        "best_rate_p99_50ms_128": best_rate(long),
        "varied": varied,
        "history": with_history,
        "best_rate_p99_50ms_history": best_rate(with_history),
    }


def run(args: argparse.Namespace) -> dict[str, object]:
    plan = Plan.smoke() if args.smoke else Plan(seconds=args.seconds, soak_seconds=args.soak)
    started = time.monotonic()
    host = machine()
    results: dict[str, object] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m evaluation.bench " + shlex.join(sys.argv[1:]),
        "smoke": args.smoke,
        "machine": host,
        "plan": plan.__dict__,
    }
    run_dir: Path | None = args.run
    print("model level", file=sys.stderr)
    results["model"] = model_bench.measure(
        args.release, run_dir, args.threads, plan.model_repeats, plan.lengths, plan.batches
    )
    tokenizer = Tokenizer.from_file(str(args.release / TOKENIZER_FILE))
    servers: dict[str, object] = {}
    with serve("ours", *_ours(args.release, args.server_env, args.threads)) as server:
        health = Target.parse(f"{server.url}/healthz")
        results["generator_floor"] = [
            asyncio.run(run_step(health, rate, plan.seconds)).as_dict() for rate in plan.floor_rates
        ]
        servers["ours"] = _sweep(
            server, plan, plan.ours_rates, plan.long_rates, plan.history_rates, tokenizer
        )
    with serve(TWO_WORKERS, *_ours(args.release, args.server_env, 1, replicas=2)) as server:
        servers[TWO_WORKERS] = _sweep(
            server, plan, plan.ours_rates, plan.long_rates, plan.history_rates, tokenizer
        )
    has_torch = all(importlib.util.find_spec(m) for m in ("torch", "transformers"))
    if not has_torch:
        print(
            "pipeline server and torch rows skipped: pip install 'helpdesk-scorer[train]'",
            file=sys.stderr,
        )
    else:
        with serve("pipeline", *_pipeline(run_dir, args.release, args.threads)) as server:
            servers["pipeline"] = _sweep(
                server,
                plan,
                plan.pipeline_rates,
                plan.pipeline_long_rates,
                plan.pipeline_history_rates,
                tokenizer,
            )
    results["servers"] = servers
    print(f"soak: {plan.soak_seconds:.0f} s at {plan.soak_rate:.0f} req/s", file=sys.stderr)
    with serve("ours", *_ours(args.release, args.server_env, args.threads)) as server:
        results["soak"] = soak(server, plan.soak_seconds, plan.soak_rate)
    results["duration_s"] = round(time.monotonic() - started, 1)
    host["load_average_after"] = list(os.getloadavg())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m evaluation.bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    go = commands.add_parser("run", help="run the whole benchmark and write the report")
    go.add_argument("--release", type=Path, default=RELEASE_DIR)
    go.add_argument(
        "--run",
        type=Path,
        default=None,
        help="training run: fine-tuned weights for the torch rows and the pipeline server, and "
        "its fp32 ONNX row (default: none; the shipped encoder with a same-shape head is timed)",
    )
    go.add_argument("--out", type=Path, default=Path("reports/bench"))
    go.add_argument(
        "--docs", type=Path, default=None, help="default: docs/benchmarks.md (smoke: in --out)"
    )
    go.add_argument("--threads", type=int, default=2, help="inference threads of each server")
    go.add_argument("--seconds", type=float, default=10.0, help="measured seconds per step")
    go.add_argument("--soak", type=float, default=120.0, help="soak seconds")
    go.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="HELPDESK_X=VALUE",
        help="a setting for our server (repeatable), e.g. HELPDESK_MAX_BATCH_WAIT_MS=0",
    )
    go.add_argument("--smoke", action="store_true", help="a few seconds; checks the plumbing")
    again = commands.add_parser("report", help="re-render the docs from a results file")
    again.add_argument("results", type=Path)
    again.add_argument("--docs", type=Path, default=DOCS)
    args = parser.parse_args()
    if args.command == "report":
        render(json.loads(args.results.read_text()), args.docs)
        return
    if not args.release.is_dir():
        parser.error(f"release folder {args.release} does not exist")
    if args.run is not None:
        from training.run_folder import load_run  # a run folder is training's

        try:
            load_run(args.run)
        except BadInput as exc:
            parser.error(str(exc))
    if any("=" not in e for e in args.server_env):
        parser.error("--server-env takes HELPDESK_X=VALUE")
    docs = args.docs or (args.out / "benchmarks.md" if args.smoke else DOCS)
    results = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    render(results, docs)
    print(f"wrote {args.out / 'results.json'}, {docs} and its plot", file=sys.stderr)
