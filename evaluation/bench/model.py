"""Model-level latency: torch fp32 eager vs ONNX fp32 vs ONNX int8, batch 1 and 32, messages of
about 16, 64 and 128 tokens, beside the physical floor (FLOPs over this machine's matmul peak).

    python -m evaluation.bench.model --run models/runs/v3 --release models/release

Times the model call alone (inputs tokenized beforehand). Prints a table and writes JSON; a
benchmark, not a test. Without a run folder the torch row times the shipped encoder with a
head of the same shape (same cost) and the fp32 ONNX row is skipped; without torch, both are.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from serving.core.contract import INPUT_NAMES, MODEL_FILE, OUTPUT_NAME, RELEASE_DIR, TOKENIZER_FILE
from serving.core.text import TONE_FEATURES

__all__ = ["flops_per_message", "inputs", "measure"]

LENGTHS = (16, 64, 128)
BATCHES = (1, 32)
WORDS = [
    "my",
    "order",
    "arrived",
    "late",
    "and",
    "the",
    "screen",
    "is",
    "cracked",
    "so",
    "I",
    "would",
    "like",
    "a",
    "refund",
    "please",
]


def inputs(tokenizer: Tokenizer, tokens: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """A batch of identical messages of exactly `tokens` tokens (with [CLS] and [SEP])."""
    tokenizer.no_padding()
    tokenizer.enable_truncation(tokens)
    text = " ".join(WORDS[i % len(WORDS)] for i in range(tokens * 2))
    ids = np.array([tokenizer.encode(text).ids] * batch, dtype=np.int64)
    return ids, np.ones_like(ids)


def flops_per_message(tokens: int, layers: int = 6, width: int = 384, ffn: int = 1536) -> float:
    """Multiply-adds x 2 of a MiniLM-L6 forward pass: projections, attention, feed-forward."""
    per_layer = tokens * (4 * width * width + 2 * width * ffn) + 2 * tokens * tokens * width
    return 2.0 * layers * per_layer


def matmul_peak_gflops(size: int = 1024, repeats: int = 20) -> float:
    """fp32 matmul throughput of this machine, the denominator of the floor."""
    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    a @ a
    started = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def timed(call: Callable[[], object], repeats: int, budget: float = 10.0) -> list[float]:
    """`repeats` timings after 3 warm-up calls, fewer (at least 5) once `budget` seconds are
    spent: slow rows (torch at batch 32) would otherwise dominate the run."""
    for _ in range(3):
        call()
    seconds: list[float] = []
    while len(seconds) < repeats and (len(seconds) < 5 or sum(seconds) < budget):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return seconds


def onnx_runner(path: Path, threads: int) -> Callable[[np.ndarray, np.ndarray], object]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def call(ids: np.ndarray, mask: np.ndarray) -> object:
        tone = np.zeros((len(ids), len(TONE_FEATURES)), dtype=np.float32)
        feeds = dict(zip(INPUT_NAMES, (ids, mask, tone, np.zeros_like(ids)), strict=True))
        return session.run([OUTPUT_NAME], {n: feeds[n] for n in names})

    return call


def torch_runner(
    run: Path | None, release: Path, threads: int
) -> tuple[Callable[[np.ndarray, np.ndarray], object], str] | None:
    """The torch model's call and what it is (see `evaluation.bench.torch_model`); None
    without the train extra."""
    try:
        import torch

        from evaluation.bench.torch_model import load_torch_model

        loaded = load_torch_model(run, release)
    except ModuleNotFoundError:
        return None
    torch.set_num_threads(threads)
    model = loaded.model

    def call(ids: np.ndarray, mask: np.ndarray) -> object:
        with torch.no_grad():
            tone = torch.zeros((len(ids), len(TONE_FEATURES)))
            return model(torch.from_numpy(ids), torch.from_numpy(mask), tone)

    return call, loaded.source


def measure(
    release: Path,
    run: Path | None,
    threads: int = 2,
    repeats: int = 50,
    lengths: tuple[int, ...] = LENGTHS,
    batches: tuple[int, ...] = BATCHES,
) -> dict[str, object]:
    """Time every backend found at every batch size and length; print a table as it goes."""
    tokenizer = Tokenizer.from_file(str(release / TOKENIZER_FILE))
    runners: dict[str, Callable[[np.ndarray, np.ndarray], object]] = {}
    torch_model = torch_runner(run, release, threads)
    torch_source = None
    if torch_model is not None:
        runners["torch fp32 eager"], torch_source = torch_model
    if run is not None:
        from training.run_folder import FP32_ONNX_FILE  # a run folder is training's

        if (run / FP32_ONNX_FILE).is_file():
            runners["onnx fp32"] = onnx_runner(run / FP32_ONNX_FILE, threads)
    runners["onnx int8"] = onnx_runner(release / MODEL_FILE, threads)
    peak = matmul_peak_gflops()
    rows = []
    print(f"fp32 matmul peak: {peak:.1f} GFLOP/s on {threads} threads")
    print(
        f"{'model':18} {'batch':>5} {'tokens':>6} {'p50 ms':>8} {'p99 ms':>8} {'msg/s':>8} "
        f"{'floor ms':>8}"
    )
    for name, call in runners.items():
        for batch in batches:
            for tokens in lengths:
                ids, mask = inputs(tokenizer, tokens, batch)
                seconds = timed(lambda: call(ids, mask), repeats)  # noqa: B023
                p50, p99 = np.percentile(seconds, 50), np.percentile(seconds, 99)
                floor = flops_per_message(tokens) * batch / (peak * 1e9)
                row = {
                    "model": name,
                    "batch": batch,
                    "tokens": tokens,
                    "p50_ms": round(p50 * 1000, 2),
                    "p99_ms": round(p99 * 1000, 2),
                    "messages_per_s": round(batch / p50, 1),
                    "floor_ms": round(floor * 1000, 2),
                }
                rows.append(row)
                print(
                    f"{name:18} {batch:>5} {tokens:>6} {row['p50_ms']:>8} {row['p99_ms']:>8} "
                    f"{row['messages_per_s']:>8} {row['floor_ms']:>8}",
                    flush=True,
                )
    return {
        "peak_gflops": round(peak, 1),
        "threads": threads,
        "torch_model": torch_source,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--release", type=Path, default=RELEASE_DIR)
    parser.add_argument("--run", type=Path, default=None, help="run folder: torch and fp32 rows")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("reports/bench_model.json"))
    args = parser.parse_args()
    result = measure(args.release, args.run, args.threads, args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
