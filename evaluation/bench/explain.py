"""What `"explain": true` costs: milliseconds per message scored plain and explained, for
messages of 16, 64 and 128 tokens, on the release model through the serving scorer (no HTTP).

    python -m evaluation.bench.explain --model models/release --messages 8 --repeats 5

Plain scores the messages in one scorer call; explained scores them with all their occlusion
variants (`serving.core.explain.plan`, at most MAX_UNITS per message) in one call, as the API's one
batcher job does. Each figure is the median of `repeats` timed runs after one warm-up. Prints a
table and the load average before and after; a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from evaluation.bench.model import LENGTHS, WORDS
from serving.core.contract import RELEASE_DIR
from serving.core.explain import MAX_UNITS, plan
from serving.core.scorer import ModelError, Scorer

__all__ = ["measure", "messages"]


def messages(scorer: Scorer, tokens: int, count: int) -> list[str]:
    """`count` different messages of exactly `tokens` tokens ([CLS] and [SEP] included)."""
    out = []
    for first in range(count):
        words: list[str] = []
        while len(scorer.tokenizer.encode(" ".join(words)).ids) < tokens:
            words.append(WORDS[(first + len(words)) % len(WORDS)])
        out.append(" ".join(words))
    return out


def median_seconds(scorer: Scorer, texts: list[str], batch_size: int, repeats: int) -> float:
    """Median seconds of one scorer call on `texts`, after a warm-up call."""
    scorer.probabilities(texts, batch_size)  # buffers sized for this length
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        scorer.probabilities(texts, batch_size)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def measure(
    scorer: Scorer, count: int, repeats: int, batch_size: int, lengths: tuple[int, ...] = LENGTHS
) -> list[dict[str, float]]:
    """One row per length: texts scored per message, ms per message plain and explained."""
    rows = []
    for tokens in lengths:
        texts = messages(scorer, tokens, count)
        explained = texts + [v for t in texts for v in plan(t).variants]
        plain_s = median_seconds(scorer, texts, batch_size, repeats)
        explained_s = median_seconds(scorer, explained, batch_size, repeats)
        row = {
            "tokens": tokens,
            "texts_per_message": len(explained) / count,
            "plain_ms": 1000 * plain_s / count,
            "explained_ms": 1000 * explained_s / count,
        }
        row["ratio"] = row["explained_ms"] / row["plain_ms"]
        rows.append(row)
        print(
            f"| {tokens} | {row['texts_per_message']:.0f} | {row['plain_ms']:.1f} "
            f"| {row['explained_ms']:.1f} | {row['ratio']:.1f}x |",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=RELEASE_DIR, help="released model folder")
    parser.add_argument("--messages", type=int, default=8, help="messages per length")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per ONNX batch")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.repeats < 1 or args.batch_size < 1 or args.threads < 1:
        parser.error("--messages, --repeats, --batch-size and --threads must be at least 1")
    try:
        scorer = Scorer.load(args.model, threads=args.threads)
    except ModelError as exc:
        raise SystemExit(f"error: {exc}") from None
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(
        f"{scorer.manifest.name} {scorer.manifest.version}, {args.threads} threads, batch "
        f"{args.batch_size}, {args.messages} messages x {args.repeats} runs, at most "
        f"{MAX_UNITS} variants per message"
    )
    print(
        "| tokens | texts per message explained | plain ms/message | explained ms/message | ratio |"
    )
    print("|---|---|---|---|---|")
    measure(scorer, args.messages, args.repeats, args.batch_size)
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
