"""Knowledge distillation: a released model's scores as soft targets for a smaller student.

The teacher scores every train row for all four heads, labelled or not, so the student learns
from rows whose own labels cover one head only. `unlabelled_messages` adds real customer
messages nobody labelled (with their threads) as rows the student learns from the teacher
alone. A thread-reading teacher scores each row twice, with its context and alone, so a row
shown without its context (context dropout) learns the teacher's lone-message score. The
targets are the teacher's raw sigmoid outputs (its calibration undone): the student is
calibrated afterwards on real dev like any run. Only train rows and messages from threads
outside every held-back split are scored, so no dev or test text reaches training.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from serving.core.contract import HEADS, mask_column
from serving.core.scorer import Scorer
from serving.core.text import normalise
from training.real_gold import REAL_GOLD_DIR, real_pool
from training.real_scale import held_back_threads

__all__ = ["UNLABELLED_SOURCE", "distillation_loss", "teacher_targets", "unlabelled_messages"]

CHUNK = 1024
#: The `source` of a real customer message that joins training with the teacher's scores only.
UNLABELLED_SOURCE = "real_unlabelled"


def unlabelled_messages(mirror: Path, n: int, seed: int, avoid: set[str]) -> pd.DataFrame:
    """A seeded sample of `n` real customer messages as label-free rows (text, history, source,
    every head masked): from threads outside every held-back split, none whose normalised text
    is in `avoid` (the dataset's texts, so no dev or test text and no labelled row comes back)."""
    pool = real_pool(mirror)
    pool = pool[~pool["thread_id"].isin(held_back_threads(REAL_GOLD_DIR))]
    pool = pool.assign(text=[normalise(t) for t in pool["text"]])
    pool = pool[(pool["text"].str.len() > 0) & ~pool["text"].isin(avoid)]
    pool = pool.drop_duplicates("text")
    picked = pool.iloc[np.random.default_rng(seed).permutation(len(pool))[:n]]
    rows = pd.DataFrame(
        {"text": picked["text"].to_numpy(), "history": picked["history"].to_numpy()}
    )
    rows["source"] = UNLABELLED_SOURCE
    rows["split"] = "train"
    for head in HEADS:
        rows[head] = np.nan
        rows[mask_column(head)] = 0.0
    return rows


def teacher_targets(
    release: Path, texts: list[str], contexts: list[str], cache: Path
) -> torch.Tensor:
    """The teacher's uncalibrated probabilities, shape (len(texts), 2, len(HEADS)): [:, 0] the
    message alone, [:, 1] with its context (the same as alone for a teacher that reads none).
    Cached in `cache` (a resumed run has the same teacher and rows: its config check says so)."""
    if cache.is_file():
        cached = np.load(cache)
        if cached.shape == (len(texts), 2, len(HEADS)):
            return torch.from_numpy(cached)
    loaded = Scorer.load(release)
    uncalibrated = replace(loaded.manifest, temperatures=np.ones(len(HEADS)))
    scorer = Scorer(uncalibrated, loaded.session, loaded.tokenizer)
    reads = loaded.manifest.context_length > 0
    raw = np.zeros((len(texts), 2, len(HEADS)), dtype=np.float32)
    for start in tqdm(range(0, len(texts), CHUNK), desc="teacher", unit="chunk"):
        part = slice(start, start + CHUNK)
        raw[part, 0] = scorer.probabilities(texts[part], 64)
        raw[part, 1] = (
            scorer.probabilities(texts[part], 64, contexts=contexts[part])
            if reads
            else raw[part, 0]
        )
    np.save(cache, raw)
    return torch.from_numpy(raw)


def distillation_loss(logits: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy against the teacher's probabilities, summed over heads like the
    label loss; logits and teacher are (batch, len(HEADS))."""
    per_cell = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, teacher, reduction="none"
    )
    return per_cell.mean(0).sum()
