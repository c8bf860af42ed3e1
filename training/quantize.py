"""int8 quantization of the exported fp32 graph, with activation scales fixed at export.

Dynamic quantization picks each activation's scale from the batch it runs on, so a message's
scores move with its batch-mates (up to 0.15 measured here, changing routes). Static QDQ
quantization fixes every scale at export from calibration messages (real and project-written
dev text), so a message scores the same alone, in any batch and in any engine.

Only MatMul (the encoder's attention projections and the first feed-forward layer, where most
of the time goes) is quantized; LayerNorm, Softmax, GELU, the residual additions and the heads
stay fp32. The feed-forward down-projections stay fp32 too: their input (after GELU) has
outlier activations that one fixed scale cannot cover. Measured on the v3 run's dev split:
quantizing them as well cost 0.010 AUROC on boredom (0.045 on the real-text dev rows), past the
0.005 gate; leaving them fp32 cost at most 0.0007 on any head. On CPUs without VNNI (like
the ones this runs on), onnxruntime recommends uint8 activations, int8 weights and 7-bit
weight range.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from serving.core.contract import graph_inputs
from serving.core.text import encode

__all__ = ["CALIBRATION_MESSAGES", "calibration_reader", "quantize", "static_recipe"]

#: Messages whose activations set the static scales (seeded sample of dev text).
CALIBRATION_MESSAGES = 512


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over length-sorted batches of texts."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        texts: Sequence[str],
        max_length: int,
        contexts: Sequence[str],
        context_length: int,
    ) -> None:
        ordered = sorted(zip(texts, contexts, strict=True), key=lambda p: len(p[0]) + len(p[1]))
        names = graph_inputs(context_length > 0)
        self._batches = iter(
            [
                encode(
                    tokenizer,
                    [t for t, _ in ordered[start : start + 16]],
                    max_length,
                    [c for _, c in ordered[start : start + 16]],
                    context_length,
                ).inputs(names)
                for start in range(0, len(ordered), 16)
            ]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def is_down_projection(node: str) -> bool:
    """A BERT layer's feed-forward output MatMul (`.../layer.N/output/dense/MatMul`), not the
    attention output (`.../attention/output/dense/MatMul`)."""
    return "/output/dense/" in node and "/attention/" not in node


def static_recipe(fp32: Path) -> dict[str, Any]:
    """Keyword arguments of onnxruntime's `quantize_static` for the release recipe (besides the
    paths and the calibration reader): one home, so a benchmark lever that changes one of them
    changes only that one.

    Every down projection stays fp32. On 0.4.0's weights layer 0's carries the activation
    outliers (int8 there alone: -0.0041 dev AUROC; any other one layer: -0.0011 to -0.0017;
    all six: -0.0052, over the gate), and int8 in layers 1-5 (-0.0026, 1.2x faster) fails the
    behaviour gate, 75.1% against 78.4% (`python -m evaluation.bench.experiments.int8_sensitivity`,
    docs/benchmark-profiling.md)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    graph = onnx.load(str(fp32)).graph
    return {
        "quant_format": QuantFormat.QDQ,
        "op_types_to_quantize": ["MatMul"],
        "nodes_to_exclude": [
            n.name for n in graph.node if n.op_type == "MatMul" and is_down_projection(n.name)
        ],
        "per_channel": True,
        "reduce_range": True,
        "activation_type": QuantType.QUInt8,
        "weight_type": QuantType.QInt8,
        "calibrate_method": CalibrationMethod.MinMax,
    }


def calibration_reader(
    tokenizer: Tokenizer,
    texts: Sequence[str],
    max_length: int,
    seed: int = 0,
    contexts: Sequence[str] | None = None,
    context_length: int = 0,
) -> _Reader:
    """A seeded sample of CALIBRATION_MESSAGES of `texts` (with their contexts for a
    thread-reading model), as onnxruntime's data reader."""
    context = list(contexts) if contexts is not None else [""] * len(texts)
    picked = np.random.default_rng(seed).permutation(len(texts))[:CALIBRATION_MESSAGES]
    return _Reader(
        tokenizer,
        [texts[i] for i in picked],
        max_length,
        [context[i] for i in picked],
        context_length,
    )


def fuse(fp32: Path, fused: Path, *, num_heads: int, hidden_size: int) -> dict[str, int]:
    """onnxruntime's transformer optimizer on an fp32 BERT graph: Attention, EmbedLayerNorm,
    SkipLayerNorm and BiasGelu fusion. It finds the attention only in a graph exported with
    eager attention (`MultiTaskModel.eager_attention`): the SDPA export's pattern is not
    recognised. Returns the fused-operator counts."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(
        str(fp32), model_type="bert", num_heads=num_heads, hidden_size=hidden_size
    )
    optimized.save_model_to_file(str(fused))
    counts: dict[str, int] = optimized.get_fused_operator_statistics()
    return {name: count for name, count in counts.items() if count}


def quantize(
    fp32: Path,
    int8: Path,
    *,
    method: str,
    tokenizer: Tokenizer,
    calibration_texts: Sequence[str],
    max_length: int,
    seed: int = 0,
    calibration_contexts: Sequence[str] | None = None,
    context_length: int = 0,
) -> str:
    """Write the int8 graph of `fp32` to `int8`; return the manifest's `quantization` name."""
    from onnxruntime.quantization import QuantType, quantize_dynamic, quantize_static

    if method == "dynamic":
        # per-channel weight scales: per-tensor ones cost 0.007 dev AUROC on legitimacy here
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
        return "int8-dynamic"
    reader = calibration_reader(
        tokenizer, calibration_texts, max_length, seed, calibration_contexts, context_length
    )
    quantize_static(str(fp32), str(int8), reader, **static_recipe(fp32))
    return "int8-static-qdq"
