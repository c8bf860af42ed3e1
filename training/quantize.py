"""int8 quantization of the exported fp32 graph, with activation scales fixed at export.

Dynamic quantization picks each activation's scale from the batch it runs on, so a message's
scores move with its batch-mates (up to 0.15 measured here, changing routes). Static QDQ
quantization fixes every scale at export from calibration messages (real and project-written
dev text), so a message scores the same alone, in any batch and in any engine.

Only MatMul (the encoder's projections and feed-forward layers, where the time goes) is
quantized; LayerNorm, Softmax, GELU and the residual additions stay fp32, which costs little
speed and keeps the heads' accuracy. On CPUs without VNNI (like the ones this runs on),
onnxruntime recommends uint8 activations, int8 weights and 7-bit weight range.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from serving.contract import INPUT_NAMES
from serving.text import encode

__all__ = ["CALIBRATION_MESSAGES", "METHODS", "quantize"]

#: Messages whose activations set the static scales (seeded sample of dev text).
CALIBRATION_MESSAGES = 512
#: The schemes export can write; "static" is the default (batch-independent).
METHODS = ("static", "dynamic")


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over length-sorted batches of texts."""

    def __init__(self, tokenizer: Tokenizer, texts: Sequence[str], max_length: int) -> None:
        ordered = sorted(texts, key=len)
        self._batches = iter(
            [
                encode(tokenizer, ordered[start : start + 16], max_length).inputs(INPUT_NAMES)
                for start in range(0, len(ordered), 16)
            ]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize(
    fp32: Path,
    int8: Path,
    *,
    method: str,
    tokenizer: Tokenizer,
    calibration_texts: Sequence[str],
    max_length: int,
    seed: int = 0,
) -> str:
    """Write the int8 graph of `fp32` to `int8`; return the manifest's `quantization` name."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    if method == "dynamic":
        # per-channel weight scales: per-tensor ones cost 0.007 dev AUROC on legitimacy here
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
        return "int8-dynamic"
    rng = np.random.default_rng(seed)
    picked = rng.permutation(len(calibration_texts))[:CALIBRATION_MESSAGES]
    quantize_static(
        str(fp32),
        str(int8),
        _Reader(tokenizer, [calibration_texts[i] for i in picked], max_length),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        reduce_range=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    return "int8-static-qdq"
