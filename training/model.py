"""The multi-task scorer: a shared encoder, mean pooling plus tone features, one logit per head.

A thread-reading model (`context=True`) reads the message and its thread context as two token
segments in one pass; it pools the message tokens and the context tokens separately, so a lone
message (no segment 1) gives a zero context vector and the heads still see the message alone.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel

from serving.core.contract import HEADS
from serving.core.text import TONE_FEATURES

__all__ = ["MultiTaskModel"]


def _mean(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    weights = weights.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-6)


class MultiTaskModel(nn.Module):
    def __init__(self, encoder: PreTrainedModel, dropout: float = 0.1, context: bool = False):
        super().__init__()
        self.encoder = encoder
        self.context = context
        self.dropout = nn.Dropout(dropout)
        pooled = encoder.config.hidden_size * (2 if context else 1)
        self.heads = nn.Linear(pooled + len(TONE_FEATURES), len(HEADS))

    @classmethod
    def from_encoder(
        cls, path: str, dropout: float = 0.1, layers: int = 0, context: bool = False
    ) -> MultiTaskModel:
        """The pretrained encoder at `path`; `layers` > 0 keeps that many of its transformer
        layers, evenly spaced from the first (a smaller student, initialised like DistilBERT's
        from every other layer of its teacher)."""
        encoder = AutoModel.from_pretrained(path)
        total = encoder.config.num_hidden_layers
        if 0 < layers < total:
            kept = [round(i * total / layers) for i in range(layers)]
            encoder.encoder.layer = nn.ModuleList(encoder.encoder.layer[i] for i in kept)
            encoder.config.num_hidden_layers = layers
        return cls(encoder, dropout, context)

    def eager_attention(self) -> MultiTaskModel:
        """Use the encoder's eager attention (same math as SDPA), whose exported pattern
        onnxruntime's transformer optimizer fuses into Attention nodes."""
        self.encoder.set_attn_implementation("eager")
        return self

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        tone: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Raw logits, shape (batch, len(HEADS)); tone is (batch, len(TONE_FEATURES)), the
        signals the uncased tokenizer erases; token_type_ids (batch, seq) marks the context
        segment with 1. Sigmoid and calibration happen later."""
        types = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=types
        ).last_hidden_state
        pooled = _mean(hidden, attention_mask * (1 - types))
        if self.context:
            pooled = torch.cat([pooled, _mean(hidden, attention_mask * types)], dim=-1)
        return self.heads(torch.cat([self.dropout(pooled), tone], dim=-1))
