"""Bulk-scoring throughput: the local engine against Ray at 1 and 2 workers, same archive.

    python -m evaluation.bench.bulk --messages 100000 --model models/release

Writes a synthetic archive of helpdesk-like messages (varied lengths, fixed seed), scores it
with `score` (local engine, one process, all CPUs) and with `score --engine ray` at each worker
count, prints messages/s and the load average around each run, checks that the engines agree,
and writes JSON. A benchmark, not a test: numbers from a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serving.bulk.file_engine import score_file
from serving.bulk.ray_engine import flatten, prepare_job, ray_session, score_archive
from serving.core.contract import HEADS, RELEASE_DIR
from serving.core.decision.phrasing import load_phrases
from serving.core.decision.route_policy import load_policy
from serving.core.results import ResultBuilder
from serving.core.scorer import Scorer

FRAGMENTS = [
    "my order never arrived",
    "I was charged twice for the same subscription",
    "the app crashes every time I open my account page",
    "thanks, that fixed it",
    "ok",
    "fine whatever",
    "this is the third time I am asking about my refund",
    "can you change the delivery address on order 4471",
    "the parcel was left in the rain and the box is soaked",
    "nobody has called me back although you promised yesterday",
    "how do I reset my password",
    "never mind, forget it",
    "I want compensation for the phone I dropped myself",
    "the engineer did not turn up between 8 and 12 as booked",
    "great service, the replacement came the next morning",
    "I have been on hold for forty minutes",
    "please cancel my plan at the end of this month",
    "your website says in stock but the order was cancelled",
]


def synthetic_archive(path: Path, messages: int, seed: int) -> None:
    """JSONL of `messages` messages: 1 to 12 fragments each (long-tailed), with an id."""
    rng = np.random.default_rng(seed)
    counts = np.clip(rng.geometric(0.35, messages), 1, 12)
    with path.open("w", encoding="utf-8") as out:
        for i, count in enumerate(counts):
            picks = rng.integers(0, len(FRAGMENTS), count)
            text = ". ".join(FRAGMENTS[j] for j in picks)
            out.write(json.dumps({"id": f"m{i}", "text": text}) + "\n")


def load_conditions() -> dict[str, Any]:
    one, five, fifteen = os.getloadavg()
    return {"load_1m": round(one, 2), "load_5m": round(five, 2), "load_15m": round(fifteen, 2)}


def run_local(archive: Path, work: Path, model: Path, batch_size: int) -> dict[str, Any]:
    policy = load_policy()
    bank = load_phrases(routes=tuple(r.name for r in policy.rules))
    before = load_conditions()
    started = time.perf_counter()
    scorer = Scorer.load(model)
    report = score_file(
        archive,
        work / "local.jsonl",
        scorer,
        ResultBuilder.create(scorer.manifest, policy, bank),
        batch_size,
    )
    seconds = time.perf_counter() - started
    return {
        "mode": "local",
        "workers": 1,
        "threads": len(os.sched_getaffinity(0)),
        "messages": report.scored,
        "seconds": round(seconds, 2),
        "messages_per_s": round(report.scored / seconds, 1),
        "load_before": before,
        "load_after": load_conditions(),
    }


def run_ray(
    archive: Path, work: Path, model: Path, workers: int, threads: int, batch_size: int
) -> dict[str, Any]:
    policy = load_policy()
    bank = load_phrases(routes=tuple(r.name for r in policy.rules))
    out = work / f"ray-{workers}x{threads}"
    before = load_conditions()
    started = time.perf_counter()
    with ray_session(None):
        ready = time.perf_counter()
        report = score_archive(
            prepare_job(archive, out, model),
            policy,
            bank,
            workers=workers,
            threads=threads,
            batch_size=batch_size,
        )
        scored = time.perf_counter()
    return {
        "mode": "ray",
        "workers": workers,
        "threads": threads,
        "messages": report.scored,
        "seconds": round(scored - started, 2),
        "ray_start_seconds": round(ready - started, 2),
        "messages_per_s": round(report.scored / (scored - started), 1),
        "messages_per_s_after_start": round(report.scored / (scored - ready), 1),
        "load_before": before,
        "load_after": load_conditions(),
        "output": str(out),
    }


def agreement(local: Path, ray_out: Path) -> dict[str, float]:
    """How far the engines' results are apart: int8 activations are quantised per batch, so
    scores move slightly with their batch companions; labels and routes should rarely flip."""
    mine = pd.DataFrame(
        [flatten(json.loads(line)) for line in local.read_text().splitlines()]
    ).set_index("id")
    theirs = pd.read_parquet(ray_out).set_index("id").loc[mine.index]
    scores = [f"score_{h}" for h in HEADS]
    labels = [f"label_{h}" for h in HEADS]
    return {
        "max_abs_score_diff": float((mine[scores] - theirs[scores]).abs().to_numpy().max()),
        "labels_equal": float(
            (mine[labels].fillna("-") == theirs[labels].fillna("-")).all(axis=1).mean()
        ),
        "routes_equal": float((mine["route_name"] == theirs["route_name"]).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--model", type=Path, default=RELEASE_DIR)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads-per-worker", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("reports/bench/bulk.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bulk-bench-") as tmp:
        work = Path(tmp)
        archive = work / "archive.jsonl"
        synthetic_archive(archive, args.messages, args.seed)
        runs = [run_local(archive, work, args.model, args.batch_size)]
        for workers in args.workers:
            runs.append(
                run_ray(
                    archive, work, args.model, workers, args.threads_per_worker, args.batch_size
                )
            )
        agree = agreement(work / "local.jsonl", Path(runs[-1].pop("output")))
        for run in runs:
            run.pop("output", None)
    report = {
        "messages": args.messages,
        "seed": args.seed,
        "model": str(args.model),
        "batch_size": args.batch_size,
        "cpus": len(os.sched_getaffinity(0)),
        "machine": platform.processor() or platform.machine(),
        "runs": runs,
        "agreement_local_vs_last_ray": agree,
    }
    print(
        f"{'engine':<8}{'workers x threads':>18}{'seconds':>10}{'msg/s':>9}  load 1m before/after"
    )
    for run in runs:
        shape = f"{run['workers']} x {run['threads']}"
        print(
            f"{run['mode']:<8}{shape:>18}{run['seconds']:>10}{run['messages_per_s']:>9}  "
            f"{run['load_before']['load_1m']}/{run['load_after']['load_1m']}"
        )
    print(json.dumps(agree))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
