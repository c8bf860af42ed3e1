"""The torch model the benchmark's torch rows and pipeline baseline run: a finished training run
when one is given, else the shipped encoder package with a head of the same shape.

Without a run the weights are not the fine-tuned ones, but every tensor has the shape of the
released model's (the same MiniLM-L6 encoder, a Linear(384 + tone, heads) head), so each call
costs what the fine-tuned model's would: fair for timing, meaningless for scores. The report
says which one was measured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.core.contract import MANIFEST_FILE

__all__ = ["TorchModel", "load_torch_model"]


@dataclass(frozen=True)
class TorchModel:
    """The model (`training.model.MultiTaskModel`, eval mode), where its tokenizer files are,
    its calibration (temperature, thresholds per head), its token budgets, and what it is."""

    model: Any
    tokenizer_dir: Path
    temperature: dict[str, float]
    thresholds: dict[str, float]
    max_length: int
    context_length: int  # tokens of thread context the model reads (0: the message alone)
    source: str


def load_torch_model(run: Path | None, release: Path) -> TorchModel:
    """The run's fine-tuned model, or (run None) the shipped encoder with a seeded head of the
    same shape calibrated like `release`. Needs the train extra (torch, transformers)."""
    import torch

    from training.config import default_encoder
    from training.model import MultiTaskModel
    from training.run_folder import load_run

    if run is None:
        manifest = json.loads((release / MANIFEST_FILE).read_text())
        torch.manual_seed(0)
        encoder = default_encoder()
        context_length = int(manifest.get("context_length", 0))
        model = MultiTaskModel.from_encoder(encoder, 0.0, context=context_length > 0).eval()
        return TorchModel(
            model,
            Path(encoder),
            manifest["calibration"]["temperature"],
            manifest["thresholds"],
            int(manifest["max_length"]),
            context_length,
            "shipped encoder package + a seeded head of the release's shape (no training run)",
        )
    finished = load_run(run)
    calibration = finished.calibration()
    return TorchModel(
        finished.model(),
        finished.tokenizer_file.parent,
        calibration["temperature"],
        calibration["thresholds"],
        finished.config.max_length,
        finished.config.context_length,
        f"training run {run}",
    )
