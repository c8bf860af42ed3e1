"""MODEL_CARD.md of a release folder: real-text figures first, other groups, calibration, limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from serving.core.contract import HEADS
from training.card import table
from training.run_folder import METRICS_FILE

__all__ = ["model_card"]

GROUP_NOTES = {
    "real_new": "real customer messages of the scaled real-text test split (data/real_scale/: "
    "one message per thread, drawn in recorded strata, labelled by the guide; never trained "
    "or tuned on), read with their thread context",
    "real_new, alone": "the same messages scored without their thread",
    "real, alone": "the same messages scored without their thread",
    "real": "real customer messages (the real-text gold test split: TWCS, TweetSumm, IBM "
    "customer-care threads and CFPB narratives, labelled by the guide; never trained or tuned on)",
    "gold": "the project-written gold test split",
    "complaints": "the complaints corpus test split",
    "goemotions": "the GoEmotions (Reddit) test split",
    "all": "every labelled test row",
}


def _test_rows(metrics: dict[str, Any], groups: list[str]) -> list[list[Any]]:
    return [
        [
            group,
            head,
            m["n"],
            m["positives"],
            m["auroc"],
            m["f1"],
            m["f1_group_dev_threshold"],
            m["ece"],
        ]
        for group in groups
        for head, m in metrics["test"].get(group, {}).items()
    ]


def model_card(manifest: dict[str, Any], run_dir: Path) -> str:
    """The card: what the model is, real-text test figures, other groups, calibration, parity."""
    metrics = manifest["metrics"]
    training = json.loads((run_dir / METRICS_FILE).read_text())
    dev = metrics["dev"]
    header = ["group", "head", "n", "positives", "AUROC", "F1", "F1 (group dev threshold)", "ECE"]
    real = [g for g in metrics["test"] if g.startswith("real")]
    others = [g for g in metrics["test"] if not g.startswith("real")]
    behaviour = metrics.get("behaviour")
    behaviour_rows = (
        [[g["kind"], g["group"], g["checks"], g["passed"], g["rate"]] for g in behaviour["groups"]]
        if behaviour
        else []
    )
    parity_rows = [
        [
            h,
            dev["torch_fp32_auroc"][h],
            dev["onnx_int8_auroc"][h],
            dev["torch_fp32_auroc"][h] - dev["onnx_int8_auroc"][h],
        ]
        for h in HEADS
    ]
    calibration_rows = [
        [h, manifest["calibration"]["temperature"][h], manifest["thresholds"][h], dev["dev_ece"][h]]
        for h in HEADS
    ]
    lines = [
        f"# Model card: {manifest['name']} {manifest['version']}",
        "",
        "all-MiniLM-L6-v2 (Apache-2.0) fine-tuned with one logit per head (frustration, boredom, "
        "complaint, legitimacy) over its mean-pooled output and eight tone features (capitals, "
        "repeated punctuation, elongation, emoji, ellipsis: `serving/core/text.py`), exported to "
        f"ONNX and quantised to int8 ({manifest['quantization']}: activation scales fixed at "
        "export, so a message gets the same scores alone, in any batch and in any engine). Text is "
        "normalised (NFKC, look-alike letters) before tokenizing; messages over "
        f"{manifest['max_length']} tokens keep their first and last tokens and say "
        "`truncated`. Scores are calibrated probabilities: sigmoid(logit / T), one temperature "
        "per head, fitted with the thresholds on "
        f"{manifest['calibration'].get('fitted_on', 'dev')}."
        + (
            f" It reads the thread: the message, then up to {manifest['context_length']} tokens "
            "of its earlier turns (most recent first, each after its role) as a second token "
            "segment; message and context tokens are pooled apart, so a message sent without "
            "history is read alone (docs/thread-model.md)."
            if manifest.get("context_length")
            else ""
        )
        + (
            f" The encoder was first adapted to customer messages by masked-language-model "
            f"training (`{training['encoder']}`, built by `python -m training.domain_adapt`)."
            if "dapt" in str(training.get("encoder", ""))
            else ""
        ),
        "",
        f"Training run: `{run_dir}`; data: `{manifest['training_data']['path']}` (sha256 "
        f"`{manifest['training_data']['sha256'][:16]}...`), built by `helpdesk-scorer prepare` "
        "from the sources in `data/sources.toml`, the project's gold and hand-written messages "
        "and the real customer messages labelled for training. "
        f"Training: {training['train_rows']} rows, {len(training['history'])} epochs, "
        f"{training['train_seconds_this_session'] / 60:.0f} minutes on this machine's 2 CPU "
        "cores.",
        "",
        "**Licence.** The training data includes TWCS-derived customer tweets (CC BY-NC-SA "
        "4.0, non-commercial): this model is for research and evaluation, not for a commercial "
        "release. `prepare --exclude-licence NC` builds the data without them (see the dataset "
        "card for every source's licence).",
        "",
        "## Test metrics on real customer text (int8 ONNX through the serving scorer)",
        "",
        "; ".join(f"`{g}`: {GROUP_NOTES.get(g, g)}" for g in real) + ". F1 at the release "
        "threshold and at the threshold best on the same group's dev rows. ECE: 10 equal-width "
        "bins. Intervals, message-length and TF-IDF comparisons are in the "
        "`helpdesk-scorer evaluate` report.",
        "",
        *table(header, _test_rows(metrics, real)),
        "## Behaviour tests (`python -m evaluation.behaviour`)",
        "",
        (
            f"{behaviour['pass_rate']:.1%} of {behaviour['checks']} CheckList checks pass "
            "(minimum functionality, invariance, direction; written from the guide, none "
            "copied from a test split)."
            if behaviour
            else "Not run for this model."
        ),
        "",
        *table(["kind", "group", "checks", "passed", "rate"], behaviour_rows),
        "## Test metrics on the other groups",
        "",
        "; ".join(f"`{g}`: {GROUP_NOTES.get(g, g)}" for g in others) + ".",
        "",
        *table(header, _test_rows(metrics, others)),
        "## Calibration",
        "",
        *table(["head", "temperature", "threshold", "dev ECE"], calibration_rows),
        f"Frustration level cut-offs: mild >= {manifest['frustration_levels']['mild']:.3f}, "
        f"strong >= {manifest['frustration_levels']['strong']:.3f}.",
        "",
        "## Export checks (dev split)",
        "",
        f"fp32 ONNX vs torch, max absolute probability difference: "
        f"{dev['fp32_onnx_max_prob_diff']:.2e}. int8, each dev message alone vs inside "
        f"mixed-length batches: max difference {dev['alone_vs_batched_max_prob_diff']:.2e}.",
        "",
        *table(["head", "torch fp32 AUROC", "int8 ONNX AUROC", "drop"], parity_rows),
        "## Known limitations",
        "",
        "- Every real-text label (the real gold set, the real training messages and the scaled "
        "real-text set of `data/real_scale/`) was given by AI labelling agents following "
        "`data/LABELLING.md`, with hidden check questions, an independent second pass on a "
        "sample and written adjudication (kappa in the dataset cards). Agreement between agents "
        "overstates what two human annotators would reach, and the labels encode this "
        "project's rules (e.g. a first polite problem report is not frustration).",
        "- Boredom is rare in real support traffic (about 2% of the real gold set): its "
        "real-text figures rest on a handful of positives and have wide intervals.",
        "- Legitimacy is judged from the text as written: the model cannot know whether a charge "
        "really happened. It is a triage signal, never a verdict on a customer.",
        "- English only; non-English messages are scored as if English. "
        + (
            f"The model reads the message and up to {manifest.get('context_length', 0)} tokens "
            "of its thread (most recent turn first); with no history it reads the message alone."
            if manifest.get("context_length")
            else "The model reads one message: the thread's earlier turns shape the route "
            "(sustained frustration) but are not model input."
        ),
        "",
    ]
    return "\n".join(lines)
