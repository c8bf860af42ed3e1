"""Does a message's score depend on what it is batched with? The export gate (a release must not
let batch-mates move a score) and `python -m evaluation.bench.consistency` both run this.

A statically quantized model (activation scales fixed at export) differs only by float rounding,
like fp32; a dynamically quantized one picks an activation scale per tensor from the whole batch,
so other messages (and their padding) shift a message's score.
"""

from __future__ import annotations

import numpy as np

from serving.core.contract import HEADS
from serving.core.decision.decide import DecisionRules, decide, rules_in_force
from serving.core.decision.route_policy import load_policy
from serving.core.scorer import Scorer

__all__ = ["batch_dependence"]


def batch_dependence(scorer: Scorer, texts: list[str], batch: int, seed: int) -> dict[str, float]:
    """Alone vs in random batches of `batch`: |difference| quantiles, and the share of messages
    whose decision (a head's side of its threshold, or the route) changes, decided by serving
    under the default routing policy."""
    alone = np.stack([scorer.probabilities([text])[0] for text in texts])
    together = np.zeros_like(alone)
    order = np.random.default_rng(seed).permutation(len(texts))
    for start in range(0, len(texts), batch):
        rows = order[start : start + batch]
        together[rows] = scorer.probabilities([texts[i] for i in rows], batch_size=batch)
    rules = rules_in_force(scorer.manifest, load_policy())
    diff = np.abs(alone - together)
    flipped = [
        _decision(a, rules) != _decision(t, rules) for a, t in zip(alone, together, strict=True)
    ]
    return {
        "messages": len(texts),
        "batch": batch,
        "max_abs_diff": float(diff.max()),
        "p99_abs_diff": float(np.quantile(diff, 0.99)),
        "mean_abs_diff": float(diff.mean()),
        "share_with_a_flipped_decision": float(np.mean(flipped)),
    }


def _decision(row: np.ndarray, rules: DecisionRules) -> tuple[object, ...]:
    decision = decide(dict(zip(HEADS, row.tolist(), strict=True)), rules)
    return (*decision.above.values(), decision.route.name)
