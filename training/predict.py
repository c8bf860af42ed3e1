"""Torch inference over texts and frames the way serving reads them: the serving path's inputs as
tensors, each row's thread context, length-sorted batches of logits, AUROC per head. Training
(dev scoring each epoch, calibration) and export (the parity reference) share it."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch
from tokenizers import Tokenizer
from tqdm import tqdm

from serving.core.contract import HEADS, mask_column
from serving.core.metrics import auroc
from serving.core.text import context_of_history
from serving.core.text import encode as encode_texts
from training.config import TrainConfig
from training.model import MultiTaskModel

__all__ = ["auroc_by_head", "batches", "contexts_of", "encode", "predict_dev", "predict_logits"]


def batches(n: int, size: int) -> Iterator[np.ndarray]:
    """Row indices 0..n-1 in consecutive chunks of `size` (training uses length_batches)."""
    for start in range(0, n, size):
        yield np.arange(start, min(start + size, n))


def encode(
    tokenizer: Tokenizer,
    texts: list[str],
    max_length: int,
    contexts: list[str] | None = None,
    context_length: int = 0,
) -> dict[str, torch.Tensor]:
    """The serving path's inputs (normalised, head + tail truncated, tone, the context segment
    when the model reads one) as torch tensors."""
    encoded = encode_texts(tokenizer, texts, max_length, contexts, context_length)
    return {
        name: torch.from_numpy(array)
        for name, array in encoded.inputs(
            ("input_ids", "attention_mask", "tone", "token_type_ids")
        ).items()
    }


def contexts_of(frame: pd.DataFrame) -> list[str]:
    """Each row's context segment from its `history` column; "" for rows without one."""
    if "history" not in frame:
        return [""] * len(frame)
    return [context_of_history(raw) for raw in frame["history"].tolist()]


@torch.no_grad()
def predict_logits(
    model: MultiTaskModel,
    tokenizer: Tokenizer,
    texts: list[str],
    max_length: int,
    batch_size: int,
    desc: str = "predict",
    contexts: list[str] | None = None,
    context_length: int = 0,
) -> np.ndarray:
    """Raw logits, shape (len(texts), len(HEADS)), length-sorted batches to limit padding."""
    model.eval()
    context = contexts if contexts is not None and context_length else [""] * len(texts)
    order = np.argsort([len(t) + len(c) for t, c in zip(texts, context, strict=True)])
    out = np.zeros((len(texts), len(HEADS)), dtype=np.float32)
    for idx in tqdm(list(batches(len(texts), batch_size)), desc=desc, leave=False):
        rows = order[idx]
        inputs = encode(
            tokenizer,
            [texts[i] for i in rows],
            max_length,
            [context[i] for i in rows],
            context_length,
        )
        out[rows] = model(**inputs).numpy()
    return out


def predict_dev(
    model: MultiTaskModel,
    tokenizer: Tokenizer,
    dev_rows: pd.DataFrame,
    config: TrainConfig,
    desc: str,
    with_context: bool = True,
) -> np.ndarray:
    """Dev logits; a thread-reading model reads each row's context unless `with_context` is
    False (the lone-message view)."""
    return predict_logits(
        model,
        tokenizer,
        dev_rows["text"].tolist(),
        config.max_length,
        config.eval_batch_size,
        desc,
        contexts_of(dev_rows) if with_context else None,
        config.context_length,
    )


def auroc_by_head(frame: pd.DataFrame, probs: np.ndarray) -> dict[str, float]:
    """AUROC per head on the rows of `frame` labelled for it; probs: (len(frame), len(HEADS))."""
    report = {}
    for j, head in enumerate(HEADS):
        rows = frame[mask_column(head)].to_numpy() == 1
        report[head] = auroc(frame.loc[rows, head].to_numpy(), probs[rows, j])
    return report
