"""The reference score distribution of a model folder, which the server's drift metric compares
recent traffic against (serving/core/drift.py): per head, the histogram of calibrated scores of the
dataset's dev messages of real customer text (the calibration rows, CALIBRATION_GROUPS).

Export writes it; for a model folder exported without one, add it without retraining (the
manifest is rewritten and the folder sealed again: model.onnx and tokenizer.json are untouched):

    python -m training.reference models/release --dataset data/processed/dataset.parquet
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from serving.core.artifact import seal, verify_folder
from serving.core.contract import HEADS, MANIFEST_FILE
from serving.core.drift import DRIFT_BINS, bin_counts
from serving.core.errors import BadInput
from serving.core.files import sha256_file
from serving.core.scorer import Scorer
from serving.core.text import context_of_history
from training.dataset_rules import calibration_rows

__all__ = ["add_reference", "reference"]


def reference(scorer: Scorer, dev: pd.DataFrame, dataset: Path) -> dict[str, Any]:
    """The manifest's `reference` entry: bin counts per head of `scorer`'s scores on the
    real-text rows of `dev` (the dev split of the dataset file `dataset`)."""
    rows, group = calibration_rows(dev)
    picked = dev.loc[rows]
    contexts = [context_of_history(h) for h in picked["history"]] if "history" in dev else None
    probs = scorer.probabilities(picked["text"].tolist(), contexts=contexts)
    return {
        "bins": DRIFT_BINS,
        "split": "dev",
        "rows": group,
        "messages": int(rows.sum()),
        "dataset_sha256": sha256_file(dataset),
        "counts": {h: bin_counts(probs[:, j]) for j, h in enumerate(HEADS)},
    }


def add_reference(folder: Path, dataset: Path) -> str:
    """Write the reference into `folder`'s manifest and seal the folder; return its digest."""
    scorer = Scorer.load(folder)  # verifies every file first
    try:
        frame = pd.read_parquet(dataset)
    except (OSError, ValueError) as exc:
        raise BadInput(f"cannot read dataset {dataset}: {exc}") from None
    if "split" not in frame or "text" not in frame:
        raise BadInput(f"{dataset} is not a prepared dataset (needs text and split columns)")
    dev = frame[frame["split"] == "dev"].reset_index(drop=True)
    if dev.empty:
        raise BadInput(f"{dataset} has no dev rows")
    path = folder / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest["reference"] = reference(scorer, dev, dataset)
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    digest = seal(folder)
    verify_folder(folder)
    return digest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--dataset", type=Path, default=Path("data/processed/dataset.parquet"))
    args = parser.parse_args(argv)
    try:
        print(f"{add_reference(args.model_dir, args.dataset)}  {args.model_dir}")
    except BadInput as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
