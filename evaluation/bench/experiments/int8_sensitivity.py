"""Per-layer int8 sensitivity of the feed-forward down projections: the dev AUROC each head loses
against fp32 when one more layer's down projection is quantized, on a finished training run.

    python -m evaluation.bench.experiments.int8_sensitivity models/runs/thread-0.4.0

Each variant is the release's static QDQ recipe (`training.quantize.static_recipe`) with a
different set of down projections left in fp32, scored on the run's whole dev split through the
serving scorer (a copy of `models/release` with the graph swapped in and the folder resealed).
Prints each head's drop per variant, ending with every down projection int8 but the most
sensitive layer's; the export gate allows a drop of `MAX_AUROC_DROP` per head. An
experiment, not a test; it needs the train extra (torch).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd

from serving.core.contract import HEADS, MANIFEST_FILE, MODEL_FILE, RELEASE_DIR
from serving.core.scorer import Scorer
from serving.core.text import load_tokenizer

__all__ = ["main"]


def _scored(
    graph: Path, release: Path, folder: Path, texts: list[str], contexts: list[str]
) -> np.ndarray:
    """Dev probabilities of `graph` through the serving scorer, in a resealed copy of `release`."""
    from training.export import write_manifest

    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(release, folder)
    shutil.copy(graph, folder / MODEL_FILE)
    write_manifest(folder, json.loads((folder / MANIFEST_FILE).read_text()))
    return Scorer.load(folder).probabilities(texts, contexts=contexts)


def _drops(
    name: str,
    fp32: Path,
    exclude: list[str],
    base: dict[str, float],
    run: Any,
    tokenizer: Any,
    dev: pd.DataFrame,
    texts: list[str],
    contexts: list[str],
    args: argparse.Namespace,
) -> dict[str, float]:
    """Quantize `fp32` with `exclude` left fp32; print and return each head's dev AUROC drop."""
    from onnxruntime.quantization import quantize_static

    from training.export import MAX_AUROC_DROP
    from training.predict import auroc_by_head
    from training.quantize import calibration_reader, static_recipe

    config = run.config
    reader = calibration_reader(
        tokenizer, texts, config.max_length, 0, contexts, config.context_length
    )
    out = fp32.with_name("int8.onnx")
    quantize_static(
        str(fp32), str(out), reader, **{**static_recipe(fp32), "nodes_to_exclude": exclude}
    )
    scores = auroc_by_head(dev, _scored(out, args.release, fp32.with_name("r"), texts, contexts))
    drops = {h: round(base[h] - scores[h], 4) for h in HEADS}
    verdict = "within" if max(drops.values()) <= MAX_AUROC_DROP else "over"
    print(f"{name:60} {json.dumps(drops)} ({verdict} the {MAX_AUROC_DROP} gate)", flush=True)
    return drops


def main() -> None:
    from training.export import onnx_fp32
    from training.predict import auroc_by_head, contexts_of
    from training.quantize import is_down_projection
    from training.run_folder import load_run

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--release", type=Path, default=RELEASE_DIR, help="folder to copy")
    args = parser.parse_args()
    run = load_run(args.run)
    config = run.config
    data = pd.read_parquet(config.data)
    dev = data[data["split"] == "dev"].reset_index(drop=True)
    texts, contexts = dev["text"].tolist(), contexts_of(dev)
    tokenizer = load_tokenizer(run.tokenizer_file)
    with tempfile.TemporaryDirectory(prefix="int8-sensitivity-") as tmp:
        work = Path(tmp)
        fp32 = work / "fp32.onnx"
        onnx_fp32(run.model(), fp32, config.max_length)
        graph = onnx.load(str(fp32)).graph
        downs = [n.name for n in graph.node if n.op_type == "MatMul" and is_down_projection(n.name)]
        layers = sorted({int(name.split("layer.")[1].split("/")[0]) for name in downs})
        base = auroc_by_head(dev, _scored(fp32, args.release, work / "r", texts, contexts))
        variants = {"every down projection fp32": downs, "every down projection int8": []}
        for layer in layers:
            variants[f"only layer {layer}'s down projection int8"] = [
                d for d in downs if f"layer.{layer}/" not in d
            ]
        print(f"fp32 dev AUROC: {json.dumps({h: round(v, 4) for h, v in base.items()})}")
        drops: dict[str, dict[str, float]] = {}
        for name, exclude in variants.items():
            drops[name] = _drops(
                name, fp32, exclude, base, run, tokenizer, dev, texts, contexts, args
            )
        worst = max(
            layers, key=lambda k: max(drops[f"only layer {k}'s down projection int8"].values())
        )
        name = f"all but layer {worst}'s down projection int8 (the most sensitive)"
        exclude = [d for d in downs if f"layer.{worst}/" in d]
        _drops(name, fp32, exclude, base, run, tokenizer, dev, texts, contexts, args)


if __name__ == "__main__":
    main()
