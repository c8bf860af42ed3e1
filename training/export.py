"""`helpdesk-scorer export RUN`: ONNX fp32 -> parity -> int8 -> AUROC and consistency -> release.

Follows setfit's exporter: explicit input/output names, dynamic batch and sequence axes, and a
parity check against torch right after export that fails loudly.
"""

from __future__ import annotations

import json
import shutil
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from serving.core.artifact import seal
from serving.core.consistency import batch_dependence
from serving.core.contract import (
    CHECKSUMS_FILE,
    HEADS,
    MANIFEST_FILE,
    MODEL_CARD_FILE,
    MODEL_FILE,
    OUTPUT_NAME,
    TOKENIZER_FILE,
    graph_inputs,
    mask_column,
)
from serving.core.errors import ParityError
from serving.core.files import sha256_file
from serving.core.metrics import auroc, best_f1_threshold, expected_calibration_error, f1_at
from serving.core.scorer import Scorer
from serving.core.text import TONE_FEATURES, load_tokenizer
from training.calibrate import sigmoid
from training.model import MultiTaskModel
from training.model_card import model_card
from training.quantize import fuse, quantize
from training.reference import reference
from training.run_folder import FP32_ONNX_FILE, load_run
from training.tracking import log_to_run

__all__ = ["ParityError", "export", "onnx_fp32", "write_manifest"]

PARITY_ROWS = 256
MAX_PROB_DIFF = 1e-4
MAX_AUROC_DROP = 0.005
#: A dev message scored alone and inside mixed-length batches must agree this closely.
MAX_BATCH_DIFF = 1e-4
CONSISTENCY_BATCH = 16
#: Lowest behaviour-suite pass rate (`evaluation.behaviour`) a release may have, set from the
#: best model so far: 0.4.0 passes 78.4% of the 301 checks (0.3.0: 71.4%, 0.2.0: 66.1%); a new
#: release may not fall below it.
BEHAVIOUR_GATE = 0.78
OPSET = 17
#: Scored one at a time at export and again by the server before it swaps a model in.
GOLDEN_TEXTS = (
    "ok",
    "Order 4471 arrived with a cracked screen, I'd like a replacement please.",
    "THIRD TIME I'M ASKING. Where is my refund?!",
    "How do I change the email address on my account?",
    "whatever, never mind, just close the ticket",
    "I want compensation because it rained on the day of my delivery.",
)


def onnx_fp32(model: MultiTaskModel, path: Path, max_length: int) -> None:
    """TorchScript export (dynamo=False, which the export of this encoder needs here).

    Its tracer warnings about Python booleans are expected for BERT's masking code; the parity
    check that follows is what proves the graph right, at several batch sizes and lengths. A
    thread-reading model also takes `token_type_ids` (its context segment).
    """
    names = graph_inputs(model.context)
    dummy = torch.ones((2, max_length), dtype=torch.long)
    tone = torch.zeros((2, len(TONE_FEATURES)), dtype=torch.float32)
    types = torch.zeros_like(dummy)
    types[:, max_length // 2 :] = 1
    args = (dummy, torch.ones_like(dummy), tone, types)[: len(names)]
    axes = {name: {0: "batch", 1: "sequence"} for name in names if name != "tone"}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Converting a tensor to a Python boolean")
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::index")
        torch.onnx.export(
            model,
            args,
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=list(names),
            output_names=[OUTPUT_NAME],
            dynamic_axes={**axes, "tone": {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )


def write_manifest(folder: Path, manifest: dict[str, object]) -> str:
    """The manifest with the sha256 of every other file, then SHA256SUMS over all of them;
    returns the folder's digest (the model's identity)."""
    files = sorted(
        p.name for p in folder.iterdir() if p.name not in (MANIFEST_FILE, CHECKSUMS_FILE)
    )
    manifest["files"] = {name: sha256_file(folder / name) for name in files}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return seal(folder)


#: Test groups in the order reports show them: real customer text first, project-written
#: second, public sets third.
TEST_GROUPS = {
    "real_new": ("real_scale",),
    "real": ("real_gold",),
    "gold": ("gold",),
    "complaints": ("complaints",),
    "goemotions": ("goemotions",),
    "all": None,
}


def _rows(frame: pd.DataFrame, sources: tuple[str, ...] | None, head: str) -> np.ndarray:
    labelled = frame[mask_column(head)].to_numpy() == 1
    return labelled if sources is None else labelled & frame["source"].isin(sources).to_numpy()


def held_out_split_metrics(
    test: pd.DataFrame,
    dev: pd.DataFrame,
    dev_probs: np.ndarray,
    scorer: Scorer,
    contexts: list[str],
) -> dict[str, dict[str, dict[str, float]]]:
    """Per source group and head of the test split: AUROC, ECE, F1 at the release threshold
    (chosen on gold dev) and F1 at the threshold that is best on the same group's dev rows,
    which is what a deployment on that kind of text would pick. `contexts` are the test rows'
    threads; a thread-reading model is also judged on each real message alone (`<group>,
    alone`)."""
    probs = scorer.probabilities(test["text"].tolist(), contexts=contexts)
    alone = scorer.probabilities(test["text"].tolist()) if scorer.manifest.context_length else None
    result: dict[str, dict[str, dict[str, float]]] = {}
    for name, sources in TEST_GROUPS.items():
        result[name] = _group_metrics(test, dev, dev_probs, probs, sources, scorer)
        if alone is not None and name.startswith("real"):
            result[f"{name}, alone"] = _group_metrics(test, dev, dev_probs, alone, sources, scorer)
    return result


def _group_metrics(
    test: pd.DataFrame,
    dev: pd.DataFrame,
    dev_probs: np.ndarray,
    probs: np.ndarray,
    sources: tuple[str, ...] | None,
    scorer: Scorer,
) -> dict[str, dict[str, float]]:
    """One group's figures per head (heads with one class in test or dev are left out)."""
    result: dict[str, dict[str, float]] = {}
    for j, head in enumerate(HEADS):
        rows, dev_rows = _rows(test, sources, head), _rows(dev, sources, head)
        labels = test.loc[rows, head].to_numpy(dtype=float)
        dev_labels = dev.loc[dev_rows, head].to_numpy(dtype=float)
        if len(np.unique(labels >= 0.5)) < 2 or len(np.unique(dev_labels >= 0.5)) < 2:
            continue
        group_threshold = best_f1_threshold(dev_labels, dev_probs[dev_rows, j])
        result[head] = {
            "n": int(rows.sum()),
            "positives": int((labels >= 0.5).sum()),
            "auroc": auroc(labels, probs[rows, j]),
            "f1": f1_at(labels, probs[rows, j], scorer.manifest.thresholds[head]),
            "f1_group_dev_threshold": f1_at(labels, probs[rows, j], group_threshold),
            "ece": expected_calibration_error(labels, probs[rows, j]),
        }
    return result


def export(
    run_dir: Path,
    out: Path,
    name: str = "helpdesk-scorer",
    version: str = "0.1.0",
    quantization: str = "static",
    min_behaviour: float = BEHAVIOUR_GATE,
    fused: bool = False,
) -> Path:
    """Export the run's best weights into a release folder `out`; return it. `fused` exports
    with eager attention and fuses the fp32 graph (`training.quantize.fuse`) before the parity
    check and quantization.

    Everything is built in `out`.partial and moved into place only when the parity, AUROC and
    batch-consistency checks pass, so a failed export never leaves a folder that looks
    releasable.
    """
    from evaluation.behaviour import behaviour_report
    from training.predict import auroc_by_head, contexts_of, predict_logits

    run = load_run(run_dir)
    config, calibration = run.config, run.calibration()
    tokenizer_file = run.tokenizer_file
    tokenizer = load_tokenizer(tokenizer_file)
    model = run.model()

    fp32 = run_dir / FP32_ONNX_FILE
    if fused:
        eager = fp32.with_suffix(".eager.onnx")
        onnx_fp32(model.eager_attention(), eager, config.max_length)
        encoder = model.encoder.config
        heads, hidden = encoder.num_attention_heads, encoder.hidden_size
        fuse(eager, fp32, num_heads=heads, hidden_size=hidden)
    else:
        onnx_fp32(model, fp32, config.max_length)
    data = pd.read_parquet(config.data)
    dev = data[data["split"] == "dev"].reset_index(drop=True)
    test = data[data["split"] == "test"].reset_index(drop=True)
    data_sha256 = sha256_file(Path(config.data))
    texts, contexts = dev["text"].tolist(), contexts_of(dev)
    torch_logits = predict_logits(
        model,
        tokenizer,
        texts,
        config.max_length,
        64,
        "torch dev",
        contexts,
        config.context_length,
    )
    temps = np.array([calibration["temperature"][h] for h in HEADS])
    torch_probs = sigmoid(torch_logits / temps)

    final, out = out, out.with_name(out.name + ".partial")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copy(tokenizer_file, out / TOKENIZER_FILE)
    manifest = {
        "name": name,
        "version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "heads": list(HEADS),
        "inputs": list(graph_inputs(model.context)),
        "output": OUTPUT_NAME,
        "max_length": config.max_length,
        "context_length": config.context_length,
        "quantization": "fp32",
        "graph": "fused" if fused else "plain",
        "calibration": {
            "temperature": calibration["temperature"],
            "fitted_on": calibration["fitted_on"],
        },
        "thresholds": calibration["thresholds"],
        "frustration_levels": calibration["frustration_levels"],
        "uncertainty_margin": 0.05,
        "training_data": {"path": config.data, "sha256": data_sha256},
        "metrics": {},
    }
    shutil.copy(fp32, out / MODEL_FILE)
    write_manifest(out, manifest)
    fp32_probs = Scorer.load(out).probabilities(texts, contexts=contexts)
    diff = float(np.abs(fp32_probs[:PARITY_ROWS] - torch_probs[:PARITY_ROWS]).max())
    if diff > MAX_PROB_DIFF:
        raise ParityError(f"fp32 ONNX differs from torch by {diff:.2e} > {MAX_PROB_DIFF:.0e}")

    manifest["quantization"] = quantize(
        fp32,
        out / MODEL_FILE,
        method=quantization,
        tokenizer=tokenizer,
        calibration_texts=texts,
        max_length=config.max_length,
        calibration_contexts=contexts,
        context_length=config.context_length,
    )
    write_manifest(out, manifest)
    int8 = Scorer.load(out)
    int8_probs = int8.probabilities(texts, contexts=contexts)
    consistency = batch_dependence(int8, texts, CONSISTENCY_BATCH, seed=0)
    torch_auroc, int8_auroc = auroc_by_head(dev, torch_probs), auroc_by_head(dev, int8_probs)
    drops = {h: torch_auroc[h] - int8_auroc[h] for h in HEADS}
    manifest["reference"] = reference(int8, dev, Path(config.data))
    manifest["golden"] = [
        {"text": text, "probabilities": [round(float(p), 6) for p in int8.probabilities([text])[0]]}
        for text in GOLDEN_TEXTS
    ]
    manifest["metrics"] = {
        "dev": {
            "torch_fp32_auroc": torch_auroc,
            "onnx_int8_auroc": int8_auroc,
            "fp32_onnx_max_prob_diff": diff,
            "alone_vs_batched_max_prob_diff": consistency["max_abs_diff"],
            "dev_ece": calibration["dev_ece"],
        },
        "test": held_out_split_metrics(test, dev, int8_probs, int8, contexts_of(test)),
    }
    behaviour = behaviour_report(int8)
    manifest["metrics"]["behaviour"] = {
        "checks": behaviour["checks"],
        "pass_rate": behaviour["pass_rate"],
        "groups": behaviour["groups"],
    }
    (out / MODEL_CARD_FILE).write_text(model_card(manifest, run_dir))
    digest = write_manifest(out, manifest)
    worst = max(drops, key=lambda h: drops[h])
    passed = {
        "fp32_parity": diff <= MAX_PROB_DIFF,
        "int8_auroc_drop": drops[worst] <= MAX_AUROC_DROP,
        "behaviour": behaviour["pass_rate"] >= min_behaviour,
        "batch_independence": consistency["max_abs_diff"] <= MAX_BATCH_DIFF,
    }
    log_to_run(  # every candidate under its digest; the tags name the latest
        run_dir,
        prefix="release",
        metrics={
            "fp32_max_prob_diff": diff,
            "int8_auroc_drop": drops,
            "behaviour_pass_rate": behaviour["pass_rate"],
            "alone_vs_batched_max_prob_diff": consistency["max_abs_diff"],
            "gates_passed": float(all(passed.values())),
        },
        tags={
            "release_version": version,
            "release_sha256": digest,
            "release_gates": ", ".join(f"{k} {'pass' if v else 'FAIL'}" for k, v in passed.items()),
            "release_dataset_sha256": data_sha256,
        },
        artifacts=(out / MODEL_CARD_FILE, out / MANIFEST_FILE),
        artifact_dir=f"release/{digest[:16]}",
    )
    if drops[worst] > MAX_AUROC_DROP:
        raise ParityError(
            f"int8 loses {drops[worst]:.4f} AUROC on {worst} "
            f"(> {MAX_AUROC_DROP}); the unreleased files are in {out}"
        )
    if behaviour["pass_rate"] < min_behaviour:
        raise ParityError(
            f"the behaviour suite passes {behaviour['pass_rate']:.1%} of its checks "
            f"(< {min_behaviour:.1%}); the unreleased files are in {out}"
        )
    if consistency["max_abs_diff"] > MAX_BATCH_DIFF:
        raise ParityError(
            f"int8 scores move with batch-mates by {consistency['max_abs_diff']:.2e} "
            f"(> {MAX_BATCH_DIFF:.0e}); the unreleased files are in {out}"
        )
    shutil.rmtree(final, ignore_errors=True)
    out.rename(final)
    return final
