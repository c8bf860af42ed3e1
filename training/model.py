"""The multi-task scorer: a shared encoder, mean pooling plus tone features, one logit per head."""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel

from serving.contract import HEADS
from serving.text import TONE_FEATURES

__all__ = ["MultiTaskModel"]


class MultiTaskModel(nn.Module):
    def __init__(self, encoder: PreTrainedModel, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.Linear(encoder.config.hidden_size + len(TONE_FEATURES), len(HEADS))

    @classmethod
    def from_encoder(cls, path: str, dropout: float = 0.1, layers: int = 0) -> MultiTaskModel:
        """The pretrained encoder at `path`; `layers` > 0 keeps that many of its transformer
        layers, evenly spaced from the first (a smaller student, initialised like DistilBERT's
        from every other layer of its teacher)."""
        encoder = AutoModel.from_pretrained(path)
        total = encoder.config.num_hidden_layers
        if 0 < layers < total:
            kept = [round(i * total / layers) for i in range(layers)]
            encoder.encoder.layer = nn.ModuleList(encoder.encoder.layer[i] for i in kept)
            encoder.config.num_hidden_layers = layers
        return cls(encoder, dropout)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, tone: torch.Tensor
    ) -> torch.Tensor:
        """Raw logits, shape (batch, len(HEADS)); tone is (batch, len(TONE_FEATURES)), the
        signals the uncased tokenizer erases. Sigmoid and calibration happen later."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-6)
        return self.heads(torch.cat([self.dropout(pooled), tone], dim=-1))
