"""What the text path's parts do for a trained model, measured at inference on real text.

    python -m evaluation.ablations --model models/release --split dev

Scores the real-text gold rows of a split with the model as shipped and with one part of the
text path switched off at a time: tone features zeroed, head-only truncation (no tail), the old
64-token head-only budget, no normalisation. Prints AUROC per head for each. This shows what the
trained model relies on; it is not a retraining ablation (a model trained without a part could
learn to do without it). Prints numbers, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from serving.core import text as text_path
from serving.core.contract import HEADS, RELEASE_DIR, mask_column
from serving.core.metrics import auroc
from serving.core.scorer import Scorer


def _zero_tone(text: str) -> list[float]:
    return [0.0] * len(text_path.TONE_FEATURES)


def _identity(text: str) -> str:
    return text


#: Variant -> (attributes of serving.core.text replaced while scoring, token budget or None).
VARIANTS: dict[str, tuple[dict[str, object], int | None]] = {
    "as shipped": ({}, None),
    "tone zeroed": ({"tone": _zero_tone}, None),
    "head only (no tail)": ({"TAIL_SHARE": 0.0}, None),
    "64 tokens, head only": ({"TAIL_SHARE": 0.0}, 64),
    "no normalisation": ({"normalise": _identity}, None),
}


@contextmanager
def patched(replacements: dict[str, object]) -> Iterator[None]:
    originals = {name: getattr(text_path, name) for name in replacements}
    for name, value in replacements.items():
        setattr(text_path, name, value)
    try:
        yield
    finally:
        for name, value in originals.items():
            setattr(text_path, name, value)


def measure(scorer: Scorer, rows: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Variant -> head -> AUROC on `rows` (labelled rows of each head)."""
    texts = rows["text"].astype(str).tolist()
    result: dict[str, dict[str, float]] = {}
    for name, (replacements, budget) in VARIANTS.items():
        manifest = replace(scorer.manifest, max_length=budget or scorer.manifest.max_length)
        with patched(replacements):
            probs = Scorer(manifest, scorer.session, scorer.tokenizer).probabilities(texts)
        result[name] = {}
        for j, head in enumerate(HEADS):
            labelled = rows[mask_column(head)].to_numpy() == 1
            labels = rows.loc[labelled, head].to_numpy(dtype=float)
            result[name][head] = round(auroc(labels, probs[labelled, j]), 4)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=RELEASE_DIR)
    parser.add_argument("--data", type=Path, default=Path("data/processed/dataset.parquet"))
    parser.add_argument("--split", default="dev")
    args = parser.parse_args()
    data = pd.read_parquet(args.data)
    rows = data[(data["split"] == args.split) & (data["source"] == "real_gold")]
    rows = rows.reset_index(drop=True)
    scorer = Scorer.load(args.model)
    truncated = np.mean([s.truncated for s in scorer.score(rows["text"].tolist())])
    print(json.dumps({"rows": len(rows), "share_truncated": round(float(truncated), 4)}))
    for name, figures in measure(scorer, rows).items():
        print(json.dumps({"variant": name, **figures}))


if __name__ == "__main__":
    main()
