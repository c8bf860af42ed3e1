"""Live threads, with and without the score cache: our server side by side, one run.

    python -m evaluation.bench.live_threads [--release models/release] [--seconds 10]

Each thread sends three messages of about 64 tokens; each request carries the thread so far
as its history (the second: the first message and an agent reply; the third: a 3-turn
history), as a client that sends the whole thread does. Threads go in groups of 8, so a
thread's next message arrives after its previous one was answered. No body repeats within the
run, warm-up included, so the cache answers only earlier turns of a live thread, never a
repeated request. The same ladder of rates runs against the server with
HELPDESK_SCORE_CACHE_SIZE=0 and with the default cache; it prints each step and the highest
rate with p99 <= 50 ms and no errors, and the load average before and after. A benchmark,
not a test: compare figures only within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer

from evaluation.bench.server import Variant, best_rate, bodies, free_port, ladder, serve
from serving.core.contract import TOKENIZER_FILE
from serving.http.settings import Settings

__all__ = ["live_bodies"]

AGENT = {"role": "agent", "text": "Thanks, I have passed this on to the team and will update you."}
GROUP = 8  # threads interleaved: a thread's next message comes 8 requests after its last
RATES = (10, 25, 50, 100, 150, 200)


def live_bodies(tokenizer: Tokenizer, threads: int, seed: int) -> list[bytes]:
    """3 x `threads` request bodies: each thread's three messages, its history the thread so
    far, threads interleaved in groups of GROUP."""
    drawn = bodies(tokenizer, [64], 3 * threads + threads // 10 + 10, seed)
    texts = list(dict.fromkeys(json.loads(b)["messages"][0]["text"] for b in drawn))  # unique
    if len(texts) < 3 * threads:
        raise ValueError(f"only {len(texts)} distinct messages for {threads} threads")
    out: list[bytes] = []
    for start in range(0, threads, GROUP):
        group = range(start, min(threads, start + GROUP))
        for turn in range(3):
            for k in group:
                c = texts[3 * k : 3 * k + 3]
                history: list[object] = [[], [c[0], AGENT], [c[0], AGENT, c[1]]][turn]
                message = {"text": c[turn], "history": history}
                out.append(json.dumps({"messages": [message]}).encode())
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", type=Path, default=Path("models/release"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warm", type=float, default=2.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    tokenizer = Tokenizer.from_file(str(args.release / TOKENIZER_FILE))
    needed = sum(round(r * args.warm) + round(r * args.seconds) + 2 for r in RATES)
    payloads = tuple(live_bodies(tokenizer, needed // 3 + GROUP, seed=11))
    report: dict[str, object] = {"load_before": os.getloadavg()}
    default = Settings.model_fields["score_cache_size"].default
    for name, size in (("cache off", "0"), ("cache on", str(default))):
        print(f"{name}:", file=sys.stderr)
        port = free_port()
        variant = Variant(name, {"HELPDESK_SCORE_CACHE_SIZE": size})
        command, env = variant.command(args.release, port)
        with serve(name, command, port, env) as server:
            steps = ladder(server, payloads, RATES, args.seconds, args.warm, fresh=True)
            report[name] = {"steps": steps, "best_rate_p99_50ms": best_rate(steps)}
    report["load_after"] = os.getloadavg()
    for name in ("cache off", "cache on"):
        entry = report[name]
        assert isinstance(entry, dict)
        print(f"{name}: highest rate at p99 <= 50 ms: {entry['best_rate_p99_50ms']}/s")
    print(f"load average before {report['load_before']}, after {report['load_after']}")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
