"""Model-level levers of the speed work, timed side by side in one run: onnxruntime graph
optimisation levels and thread counts on the released int8 graph; quantization formats and
smaller students on graphs of the same shape.

    python -m evaluation.bench.experiments.levers --out reports/levers.json
    python -m evaluation.bench.experiments.levers --only plain=models/candidate \
        fused=models/candidate-fused

Calls are interleaved (each repeat runs every variant once), so a slow moment of the VM falls
on all variants alike. Every session runs as the server's does, without spinning threads:
interleaved, one session's spinning pool would take the cores from the next one's call.
The same-shape graphs are built from the shipped encoder package and a seeded head (see
`evaluation.bench.torch_model`): the released model's tensor shapes, so the same cost, not its
scores; a student row times a graph with the first N encoder layers, the shape a distilled
student would have, untrained. The `same shape, static QDQ` row is the
release recipe and should time like the release itself: that checks the stand-in.
Prints a table and writes JSON; a benchmark, not a test. Needs the train extra (torch).
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort
from tqdm import tqdm

from evaluation.bench.model import inputs
from evaluation.bench.server import SENTENCES
from serving.core.contract import INPUT_NAMES, MODEL_FILE, OUTPUT_NAME, RELEASE_DIR, TOKENIZER_FILE
from serving.core.text import TONE_FEATURES, load_tokenizer

if TYPE_CHECKING:
    from training.model import MultiTaskModel

__all__ = ["Variant", "measure"]

LEVELS = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
SHAPES = ((1, 64), (1, 128), (8, 64), (8, 128))


@dataclass(frozen=True)
class Variant:
    """One graph with one session setting."""

    name: str
    graph: Path
    level: str = "all"
    threads: int = 2

    def session(self) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.graph_optimization_level = LEVELS[self.level]
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(self.graph), options, providers=["CPUExecutionProvider"])


def calibration_texts(count: int = 512, seed: int = 0) -> list[str]:
    """Helpdesk-like texts of 1 to 8 benchmark sentences, for the same-shape graphs' scales."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(SENTENCES, k=rng.randint(1, 8))) for _ in range(count)]


def same_shape_graphs(release: Path, folder: Path, depths: tuple[int, ...]) -> dict[str, Path]:
    """fp32, dynamic, static QDQ (release recipe) and variants of it (QOperator format, every
    MatMul, per-tensor weight scales) of the 6-layer stand-in, and the release recipe on
    students of `depths` layers."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    from evaluation.bench.torch_model import load_torch_model
    from training.export import onnx_fp32
    from training.quantize import calibration_reader, static_recipe

    loaded = load_torch_model(None, release)
    tokenizer = load_tokenizer(release / TOKENIZER_FILE)
    texts = calibration_texts()

    def static(fp32: Path, out: Path, **change: object) -> Path:
        reader = calibration_reader(tokenizer, texts, loaded.max_length)
        quantize_static(str(fp32), str(out), reader, **{**static_recipe(fp32), **change})
        return out

    graphs: dict[str, Path] = {}
    for depth in tqdm(depths, desc="same-shape graphs", unit="depth"):
        model = copy.deepcopy(loaded.model)
        model.encoder.encoder.layer = model.encoder.encoder.layer[:depth]
        model.encoder.config.num_hidden_layers = depth
        fp32 = folder / f"layers{depth}.fp32.onnx"
        onnx_fp32(model, fp32, loaded.max_length)
        if depth != 6:
            graphs[f"student {depth} layers, static QDQ"] = static(fp32, folder / f"s{depth}.onnx")
            continue
        graphs["same shape, fp32"] = fp32
        dynamic = folder / "dynamic.onnx"
        quantize_dynamic(str(fp32), str(dynamic), weight_type=QuantType.QInt8, per_channel=True)
        graphs["same shape, dynamic int8"] = dynamic
        graphs["same shape, static QDQ"] = static(fp32, folder / "qdq.onnx")
        graphs["same shape, static QOperator"] = static(
            fp32, folder / "qoperator.onnx", quant_format=QuantFormat.QOperator
        )
        graphs["same shape, static QDQ, every MatMul"] = static(
            fp32, folder / "qdq_all.onnx", nodes_to_exclude=[]
        )
        graphs["same shape, static QDQ, per-tensor weights"] = static(
            fp32, folder / "qdq_tensor.onnx", per_channel=False
        )
        graphs["same shape, static QDQ, per-tensor, every MatMul"] = static(
            fp32, folder / "qdq_tensor_all.onnx", per_channel=False, nodes_to_exclude=[]
        )
        graphs.update(fused_graphs(copy.deepcopy(loaded.model), loaded.max_length, folder, static))
    return graphs


def fused_graphs(
    model: MultiTaskModel, max_length: int, folder: Path, static: Callable[..., Path]
) -> dict[str, Path]:
    """The stand-in exported with eager attention and fused by onnxruntime's transformer
    optimizer: fp32, the release's static QDQ recipe on it (the fused Attention nodes stay fp32:
    QDQ cannot quantize them), and dynamic int8 (QAttention; per-batch activation scales)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from training.export import onnx_fp32
    from training.quantize import fuse

    eager = folder / "eager.fp32.onnx"
    onnx_fp32(model.eager_attention(), eager, max_length)
    fused = folder / "fused.fp32.onnx"
    config = model.encoder.config
    counts = fuse(
        eager, fused, num_heads=config.num_attention_heads, hidden_size=config.hidden_size
    )
    print(f"fused operators: {counts}")
    dynamic = folder / "fused.dynamic.onnx"
    quantize_dynamic(
        str(fused),
        str(dynamic),
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"DefaultTensorType": 1},  # FLOAT: the fused graph lacks some type info
    )
    return {
        "fused (eager export), fp32": fused,
        "fused, static QDQ": static(fused, folder / "fused.qdq.onnx"),
        "fused, dynamic int8 (QAttention)": dynamic,
    }


def variants(release: Path, graphs: dict[str, Path], student: Path | None) -> list[Variant]:
    graph = release / MODEL_FILE
    trained = [Variant("trained student, int8", student / MODEL_FILE)] if student else []
    return [
        *(Variant(f"release, opt {level}", graph, level) for level in LEVELS),
        Variant("release, opt all, 1 thread", graph, threads=1),
        *(Variant(name, path) for name, path in graphs.items()),
        *trained,
    ]


def measure(variants: list[Variant], release: Path, repeats: int) -> list[dict[str, object]]:
    """p50 and p90 ms per call for every variant at every shape, calls interleaved."""
    tokenizer = load_tokenizer(release / TOKENIZER_FILE)
    sessions = [(v, v.session()) for v in tqdm(variants, desc="sessions", unit="session")]
    rows: list[dict[str, object]] = []
    for batch, tokens in SHAPES:
        ids, mask = inputs(tokenizer, tokens, batch)
        tone = np.zeros((batch, len(TONE_FEATURES)), dtype=np.float32)
        given = dict(zip(INPUT_NAMES, (ids, mask, tone, np.zeros_like(ids)), strict=True))
        # each graph gets the inputs it declares (a thread-reading model adds token_type_ids)
        feeds_of = {
            v.name: {i.name: given[i.name] for i in session.get_inputs()} for v, session in sessions
        }
        seconds: dict[str, list[float]] = {v.name: [] for v in variants}
        for variant, session in sessions:
            for _ in range(3):
                session.run([OUTPUT_NAME], feeds_of[variant.name])
        count = repeats if batch == 1 else max(5, repeats // 3)
        for _ in tqdm(range(count), desc=f"batch {batch}, {tokens} tokens", unit="round"):
            for variant, session in sessions:
                started = time.perf_counter()
                session.run([OUTPUT_NAME], feeds_of[variant.name])
                seconds[variant.name].append(time.perf_counter() - started)
        for variant in variants:
            p50, p90 = np.percentile(seconds[variant.name], [50, 90]) * 1000
            rows.append(
                {
                    "variant": variant.name,
                    "batch": batch,
                    "tokens": tokens,
                    "p50_ms": round(float(p50), 2),
                    "p90_ms": round(float(p90), 2),
                    "ms_per_message": round(float(p50) / batch, 2),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--release", type=Path, default=RELEASE_DIR)
    parser.add_argument("--repeats", type=int, default=40, help="rounds at batch 1 (a third at 8)")
    parser.add_argument("--depths", type=int, nargs="+", default=[6, 4, 3])
    parser.add_argument("--student", type=Path, default=None, help="a trained student's release")
    parser.add_argument("--out", type=Path, default=Path("reports/levers.json"))
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME=MODEL_DIR",
        help="time only these model folders' graphs, interleaved (e.g. plain and fused exports)",
    )
    args = parser.parse_args()
    if args.only:
        folders = dict(item.split("=", 1) for item in args.only)
        chosen = [Variant(name, Path(folder) / MODEL_FILE) for name, folder in folders.items()]
        rows = measure(chosen, args.release, args.repeats)
    else:
        with tempfile.TemporaryDirectory(prefix="levers-") as folder:
            graphs = same_shape_graphs(args.release, Path(folder), tuple(args.depths))
            chosen = variants(args.release, graphs, args.student)
            rows = measure(chosen, args.release, args.repeats)
    print(f"{'variant':42} {'batch':>5} {'tokens':>6} {'p50 ms':>8} {'p90 ms':>8} {'ms/msg':>7}")
    for r in rows:
        print(
            f"{r['variant']:42} {r['batch']:>5} {r['tokens']:>6} {r['p50_ms']:>8} "
            f"{r['p90_ms']:>8} {r['ms_per_message']:>7}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"release": str(args.release), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
