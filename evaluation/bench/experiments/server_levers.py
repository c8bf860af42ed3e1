"""Server-level levers, side by side in one run: each variant is our server started fresh and
driven up the same open-loop ladder of single-message 64-token requests, one after another.

    python -m evaluation.bench.experiments.server_levers --out reports/server_levers.json
    python -m evaluation.bench.experiments.server_levers --student models/runs/student3/release \
        --only student

Variants change one thing against the default: the event loop, the batch token budget, the
process layout (two of our servers with one onnxruntime thread each on one port,
`evaluation.bench.replicas`: the stand-in for two one-CPU replicas behind a Service; CPU and
memory summed over both), or the model (a distilled student, when `--student` names its folder).
The uvloop variant needs `pip install uvloop`. Prints a table and writes JSON; a benchmark,
not a test: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tokenizers import Tokenizer

from evaluation.bench.server import Variant, best_rate, bodies, free_port, ladder, serve
from serving.core.contract import RELEASE_DIR, TOKENIZER_FILE

__all__ = ["main", "variants"]

RATES = (50, 100, 150, 200, 250, 300, 400)


def variants(student: Path | None) -> list[Variant]:
    found = [
        Variant("default"),
        Variant("asyncio loop", {"HELPDESK_EVENT_LOOP": "asyncio"}),
        Variant("uvloop", {"HELPDESK_EVENT_LOOP": "uvloop"}),
        Variant("512-token batches", {"HELPDESK_MAX_BATCH_TOKENS": "512"}),
        Variant("1024-token batches", {"HELPDESK_MAX_BATCH_TOKENS": "1024"}),
        Variant("2 replicas x 1 thread", {"HELPDESK_THREADS": "1"}, replicas=2),
        Variant(
            "2 replicas, 512-token",
            {"HELPDESK_THREADS": "1", "HELPDESK_MAX_BATCH_TOKENS": "512"},
            replicas=2,
        ),
    ]
    if student is not None:
        found += [
            Variant("student", model=student),
            Variant("student, 512-token", {"HELPDESK_MAX_BATCH_TOKENS": "512"}, model=student),
            Variant("student, 2 replicas", {"HELPDESK_THREADS": "1"}, model=student, replicas=2),
        ]
    return found


def summary(variant: Variant, steps: list[dict[str, object]]) -> dict[str, object]:
    """Best rate at p99 < 50 ms and zero errors, and the latency at 50/s and at the top."""
    at = {s["offered_rps"]: s for s in steps}
    fifty = at.get(50, {}).get("latency_ms", {})
    assert isinstance(fifty, dict)
    row: dict[str, object] = {
        "variant": variant.name,
        "best_rate_p99_50ms": best_rate(steps),
        "p50_ms_at_50": fifty.get("p50"),
        "p99_ms_at_50": fifty.get("p99"),
        "steps": steps,
    }
    clean = [s for s in steps if not s["errors"]]
    top = clean[-1] if clean else {}
    row["cpu_ms_per_request_at_top"] = top.get("server_cpu_ms_per_request")
    row["mean_batch_at_top"] = top.get("mean_batch")  # /metrics of one replica when several
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--release", type=Path, default=RELEASE_DIR)
    parser.add_argument("--student", type=Path, default=None, help="a student's release folder")
    parser.add_argument("--only", nargs="+", default=None, help="variant names to run")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--out", type=Path, default=Path("reports/server_levers.json"))
    args = parser.parse_args()
    chosen = [v for v in variants(args.student) if args.only is None or v.name in args.only]
    if not chosen:
        parser.error(f"no variant named {args.only}")
    payloads = bodies(Tokenizer.from_file(str(args.release / TOKENIZER_FILE)), [64])
    rows = []
    load_before = os.getloadavg()
    for variant in chosen:
        port = free_port()
        command, env = variant.command(args.release, port)
        print(f"{variant.name}", file=sys.stderr, flush=True)
        with serve(variant.name, command, port, env) as server:
            rows.append(summary(variant, ladder(server, payloads, RATES, args.seconds, 2.0)))
    result = {"load_before": load_before, "load_after": os.getloadavg(), "variants": rows}
    print(f"{'variant':24} {'best/s':>7} {'p50@50':>7} {'p99@50':>7} {'cpu ms':>7} {'batch':>6}")
    for r in rows:
        print(
            f"{r['variant']:24} {r['best_rate_p99_50ms']!s:>7} {r['p50_ms_at_50']!s:>7} "
            f"{r['p99_ms_at_50']!s:>7} {r.get('cpu_ms_per_request_at_top', '-')!s:>7} "
            f"{r.get('mean_batch_at_top', '-')!s:>6}"
        )
    print(f"load average before {load_before}, after {result['load_after']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
