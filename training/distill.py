"""Knowledge distillation: a released model's scores as soft targets for a smaller student.

The teacher scores every train row for all four heads, labelled or not, so the student learns
from rows whose own labels cover one head only. The targets are the teacher's raw sigmoid
outputs (its calibration undone): the student is calibrated afterwards on real dev like any
run. Only train rows are scored, so no dev or test text reaches training.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from serving.contract import HEADS
from serving.scorer import Scorer

__all__ = ["distillation_loss", "teacher_targets"]

CHUNK = 1024


def teacher_targets(release: Path, texts: list[str], cache: Path) -> torch.Tensor:
    """The teacher's uncalibrated probabilities, shape (len(texts), len(HEADS)), cached in
    `cache` (a resumed run has the same teacher and rows: its config check guarantees it)."""
    if cache.is_file():
        cached = np.load(cache)
        if cached.shape == (len(texts), len(HEADS)):
            return torch.from_numpy(cached)
    loaded = Scorer.load(release)
    uncalibrated = replace(loaded.manifest, temperatures=np.ones(len(HEADS)))
    scorer = Scorer(uncalibrated, loaded.session, loaded.tokenizer)
    raw = np.zeros((len(texts), len(HEADS)), dtype=np.float32)
    for start in tqdm(range(0, len(texts), CHUNK), desc="teacher", unit="chunk"):
        raw[start : start + CHUNK] = scorer.probabilities(texts[start : start + CHUNK], 64)
    np.save(cache, raw)
    return torch.from_numpy(raw)


def distillation_loss(logits: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy against the teacher's probabilities, summed over heads like the
    label loss; logits and teacher are (batch, len(HEADS))."""
    per_cell = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, teacher, reduction="none"
    )
    return per_cell.mean(0).sum()
