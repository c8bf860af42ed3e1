"""PSI per head of a model folder's scores on slices of the dataset against its manifest's
reference (serving/core/drift.py), to see what the drift gauge would read on such traffic.

    python -m evaluation.bench.drift [--model models/release] [--dataset data/processed/...]

The reference's own rows (real-text dev) read 0 by construction; real-text test is new
messages of the same kind; the other slices are shifted traffic (complaints only, calm bank
queries only, Reddit comments).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from serving.core.contract import HEADS, RELEASE_DIR
from serving.core.drift import PSI_ALERT, bin_counts, psi
from serving.core.errors import BadInput
from serving.core.scorer import Scorer

__all__ = ["SLICES", "drift_by_slice"]

#: Slice name -> rows of the dataset it takes.
SLICES = {
    "real-text dev (the reference)": "split == 'dev' and source == 'real_gold'",
    "real-text test": "split == 'test' and source == 'real_gold'",
    "real-text complaints only (dev + test)": "source == 'real_gold' and complaint == 1",
    "banking77 test (calm bank queries)": "split == 'test' and source == 'banking77'",
    "goemotions test (Reddit comments)": "split == 'test' and source == 'goemotions'",
}


def drift_by_slice(scorer: Scorer, frame: pd.DataFrame) -> list[tuple[str, int, dict[str, float]]]:
    """(slice, messages, PSI per head) for every slice with rows."""
    reference = scorer.manifest.reference
    if reference is None:
        raise BadInput("the model's manifest has no reference: python -m training.reference")
    found = []
    for name, query in SLICES.items():
        texts = frame.query(query)["text"].tolist()
        if texts:
            probs = scorer.probabilities(texts)
            values = {h: psi(reference[h], bin_counts(probs[:, j])) for j, h in enumerate(HEADS)}
            found.append((name, len(texts), values))
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=RELEASE_DIR)
    parser.add_argument("--dataset", type=Path, default=Path("data/processed/dataset.parquet"))
    args = parser.parse_args(argv)
    try:
        frame = pd.read_parquet(args.dataset)
        rows = drift_by_slice(Scorer.load(args.model), frame)
    except (OSError, ValueError, BadInput) as exc:
        sys.exit(f"error: {exc}")
    print(f"| slice | messages | {' | '.join(HEADS)} |")
    print(f"|---|---:|{'---:|' * len(HEADS)}")
    for name, n, values in rows:
        cells = " | ".join(
            f"**{values[h]:.3f}**" if values[h] > PSI_ALERT else f"{values[h]:.3f}" for h in HEADS
        )
        print(f"| {name} | {n} | {cells} |")
    print(f"\nPSI above {PSI_ALERT} (the alert threshold) in bold.")


if __name__ == "__main__":
    main()
