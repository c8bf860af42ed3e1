"""What reading the thread costs: milliseconds per message scored alone and with a 3-turn
history, batch 1, for each model given, through the serving scorer (no HTTP).

    python -m evaluation.bench.context_cost models/release models/candidate --repeats 30

A message of 64 tokens; the history is a customer turn, an agent reply and a customer turn of
about 30 tokens each (a model without context ignores it). Each figure is the median of
`repeats` timed calls after warm-up. The last column is the server's admission pricing the
message with its history (`Scorer.token_counts`), which tokenizes it a second time. Prints a
table and the load average before and after; compare figures only within one run. A
benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from evaluation.bench.explain import messages
from serving.core.scorer import ModelError, Scorer
from serving.core.text import context_text

__all__ = ["measure"]

HISTORY_TURNS = ("customer", "agent", "customer")


def _median_ms(call: Callable[[], object], repeats: int) -> float:
    call()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return 1000 * statistics.median(seconds)


def measure(scorer: Scorer, repeats: int) -> dict[str, float]:
    """Median milliseconds of one batch-1 call: the message alone, and with its history; and
    of the server's admission pricing it (`Scorer.token_counts`: a second tokenizing)."""
    text = messages(scorer, 64, 1)[0]
    turn = messages(scorer, 30, 1)[0]
    context = context_text([(role, turn) for role in HISTORY_TURNS])
    out = {
        "alone": _median_ms(lambda: scorer.probabilities([text], 1), repeats),
        "with 3-turn history": _median_ms(
            lambda: scorer.probabilities([text], 1, [context]), repeats
        ),
    }
    out["admission count, history"] = _median_ms(
        lambda: scorer.token_counts([text], [context]), repeats
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()[0]:.2f}")
    print(
        f"{'model':28} {'context tokens':>14} {'alone ms':>9} {'history ms':>11} "
        f"{'admission count ms':>18}"
    )
    for folder in args.models:
        try:
            scorer = Scorer.load(folder, threads=args.threads)
        except ModelError as exc:
            raise SystemExit(f"error: {exc}") from None
        ms = measure(scorer, args.repeats)
        name = f"{scorer.manifest.name} {scorer.manifest.version}"
        print(
            f"{name:28} {scorer.manifest.context_length:>14} {ms['alone']:>9.2f} "
            f"{ms['with 3-turn history']:>11.2f} {ms['admission count, history']:>18.3f}"
        )
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
