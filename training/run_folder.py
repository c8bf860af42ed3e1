"""A training run folder's contract, the way `serving/core/contract.py` is the release folder's: the
file names `train` writes, and `load_run()` for everything that reads a finished run (export,
recalibration, evaluation's fp32 column, the benchmarks). Importing it needs no torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from serving.core.contract import TOKENIZER_FILE
from serving.core.errors import BadInput
from training.config import TrainConfig, load_config

if TYPE_CHECKING:
    from training.model import MultiTaskModel

__all__ = [
    "BEST_DEV_LOGITS_FILE",
    "BEST_WEIGHTS_FILE",
    "CALIBRATION_FILE",
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "FP32_ONNX_FILE",
    "METRICS_FILE",
    "RUN_FILES",
    "TEACHER_TARGETS_FILE",
    "TOKENIZER_DIR",
    "FinishedRun",
    "load_run",
]

CONFIG_FILE: Final = "config.toml"
CHECKPOINT_FILE: Final = "checkpoint.pt"
BEST_WEIGHTS_FILE: Final = "best.pt"
BEST_DEV_LOGITS_FILE: Final = "best_dev_logits.npy"
CALIBRATION_FILE: Final = "calibration.json"
METRICS_FILE: Final = "metrics.json"
TOKENIZER_DIR: Final = "tokenizer"
#: The teacher's soft targets for the train rows, when the run distils a release.
TEACHER_TARGETS_FILE: Final = "teacher_targets.npy"
#: Written by `export` beside the weights it was exported from.
FP32_ONNX_FILE: Final = "model.fp32.onnx"
#: What a finished run holds (and TOKENIZER_DIR/TOKENIZER_FILE).
RUN_FILES: Final = (
    CONFIG_FILE,
    CHECKPOINT_FILE,
    BEST_WEIGHTS_FILE,
    BEST_DEV_LOGITS_FILE,
    CALIBRATION_FILE,
    METRICS_FILE,
)


@dataclass(frozen=True)
class FinishedRun:
    """A run folder with its config and best weights; calibration is read on demand, since
    recalibration reads a run whose calibration is missing or stale."""

    folder: Path
    config: TrainConfig

    @property
    def tokenizer_file(self) -> Path:
        return self.folder / TOKENIZER_DIR / TOKENIZER_FILE

    def calibration(self) -> dict[str, Any]:
        path = self.folder / CALIBRATION_FILE
        if not path.is_file():
            raise BadInput(f"{self.folder} has no {CALIBRATION_FILE} (run `train` or `calibrate`)")
        calibration: dict[str, Any] = json.loads(path.read_text())
        return calibration

    def model(self) -> MultiTaskModel:
        """The best weights in the run's architecture, in eval mode (needs the train extra)."""
        import torch

        from training.config import default_encoder
        from training.model import MultiTaskModel

        config = self.config
        model = MultiTaskModel.from_encoder(
            config.encoder or default_encoder(),
            config.dropout,
            config.encoder_layers,
            context=config.context_length > 0,
        )
        model.load_state_dict(torch.load(self.folder / BEST_WEIGHTS_FILE))
        return model.eval()


def load_run(folder: Path) -> FinishedRun:
    """The finished run in `folder`; BadInput naming what is missing if it is not one."""
    missing = [name for name in (CONFIG_FILE, BEST_WEIGHTS_FILE) if not (folder / name).is_file()]
    if missing:
        raise BadInput(f"{folder} is not a finished training run (no {', '.join(missing)})")
    return FinishedRun(folder, load_config(folder / CONFIG_FILE))
