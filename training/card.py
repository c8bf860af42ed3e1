"""The dataset card that `prepare` writes beside the dataset: counts, shortcuts, LFs, agreement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from serving.contract import HEADS, SPLITS, mask_column

__all__ = ["length_auroc", "lf_summary_lines", "model_card", "write_card"]


def length_auroc(texts: pd.Series, labels: pd.Series) -> float:
    """AUROC of message length (characters) alone as a score; NaN when one class is missing.

    Below 0.5 means shorter messages are the positives (boredom): the shortcut strength is
    max(a, 1 - a).
    """
    from sklearn.metrics import roc_auc_score

    y = (labels.to_numpy(dtype=float) >= 0.5).astype(int)
    if len(set(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, texts.str.len().to_numpy()))


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def fmt(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def _head_counts(data: pd.DataFrame) -> list[str]:
    rows = []
    for head in HEADS:
        labelled = data[data[mask_column(head)] == 1]
        for split in SPLITS:
            part = labelled[labelled["split"] == split]
            hard = part[head].to_numpy(dtype=float) >= 0.5
            by_source = ", ".join(f"{s} {n}" for s, n in part["source"].value_counts().items())
            rows.append([head, split, len(part), int(hard.sum()), int((~hard).sum()), by_source])
    return _table(["head", "split", "labelled", "positive (>=0.5)", "negative", "by source"], rows)


def _shortcuts(data: pd.DataFrame) -> list[str]:
    rows = []
    for head in HEADS:
        labelled = data[(data[mask_column(head)] == 1) & (data["split"] == "test")]
        gold = labelled[labelled["source"] == "gold"]
        real = labelled[labelled["source"] == "real_gold"]
        rows.append(
            [
                head,
                length_auroc(real["text"], real[head]),
                length_auroc(gold["text"], gold[head]),
                length_auroc(labelled["text"], labelled[head]),
            ]
        )
    return _table(
        ["head", "real-text gold test", "project-written gold test", "all test rows"], rows
    )


def _lf_table(summary: dict[str, Any]) -> list[str]:
    rows = [
        [
            f["name"],
            f["doc"],
            f["coverage"],
            f["overlap"],
            f["conflict"],
            f["learned_accuracy"],
            f.get("gold_coverage", float("nan")),
            f.get("gold_accuracy", float("nan")),
        ]
        for f in summary["functions"]
    ]
    lines = _table(
        [
            "function",
            "votes",
            "coverage",
            "overlap",
            "conflict",
            "learned accuracy",
            "gold dev coverage",
            "gold dev accuracy",
        ],
        rows,
    )
    lines.append(
        f"Label model: class prior {summary['prior']:.3f}; {summary['rows_labelled']} public rows "
        f"labelled; AUROC on the gold dev rows where a function voted "
        f"{summary.get('label_model_gold_dev_auroc', float('nan')):.3f} (coverage "
        f"{summary.get('label_model_gold_dev_coverage', float('nan')):.2f})."
    )
    return [*lines, ""]


def _licences(stats: dict[str, Any]) -> list[str]:
    rows = [[name, licence] for name, licence in stats.get("licences", {}).items()]
    excluded = ", ".join(stats.get("excluded_sources", [])) or "none"
    return [
        "Every source's licence (`data/sources.toml`). TWCS-derived text (twcs_airlines, "
        "twcs_tweetsumm, twcs_samples, and the real-text gold and training rows drawn from them) "
        "is CC BY-NC-SA 4.0: **non-commercial**. A model trained on it is for research and "
        "evaluation; `prepare --exclude-licence NC` builds a dataset without it. "
        f"Left out in this build: {excluded}.",
        "",
        *_table(["source", "licence"], rows),
    ]


def _real_gold(stats: dict[str, Any]) -> list[str]:
    agreement = stats.get("real_agreement")
    if not agreement:
        return ["No real-text gold set found (data/real_gold/real_gold.jsonl).", ""]
    return [
        f"{agreement['first_pass']} real customer messages (never rewritten: each keeps its "
        "source, id and thread) drawn by `python -m training.real_gold draw` (seeded, one message "
        "per thread, stratified by source and by a crude stratum: very short / complaint cue / "
        "other) from five real sources, labelled for the four heads and the expected route by "
        "`data/LABELLING.md` with the thread context shown, and split once into dev and test by "
        f"a hash of the thread id ({agreement['splits']}); {agreement['train_labelled']} more "
        "messages from other threads were labelled the same way for training (`real_train`). "
        "Labellers were AI agents reading each message; where the guide and real messages "
        "disagreed (a polite problem report, short informative replies, sarcastic thanks) the "
        "rules were decided and written into the guide's section 'Real customer messages' "
        "before labelling.",
        "",
        *_agreement(agreement),
    ]


def _agreement(agreement: dict[str, Any]) -> list[str]:
    if not agreement:
        return ["No second labelling pass found.", ""]
    rows = [[k, v["n"], v["kappa"], v["agreement"]] for k, v in agreement["per_label"].items()]
    return [
        f"Second, independent pass over {agreement['second_pass']} of {agreement['first_pass']} "
        f"gold messages; {agreement['disagreements']} disagreed on at least one label and were "
        f"adjudicated ({agreement['changed_by_adjudication']} changed the first-pass label).",
        "",
        *_table(["label", "n", "Cohen's kappa", "raw agreement"], rows),
    ]


def _corrections(summary: dict[str, Any]) -> list[str]:
    """How `prepare --corrections` changed the data (training/corrections.py has the rules)."""
    if not summary.get("files"):
        return ["No corrections merged (`prepare --corrections FILE` merges an export).", ""]
    splits = ", ".join(f"{k} {v}" for k, v in sorted(summary["new_rows_by_split"].items()))
    return [
        f"From {', '.join(f'`{f}`' for f in summary['files'])}: {summary['judgements']} "
        f"judgements in force; **{summary['by_id'] + summary['by_text']} corrections applied** "
        f"to existing rows ({summary['by_id']} by id, {summary['by_text']} by matching text), "
        f"{summary['changed']} of which changed a label; {summary['new_rows']} new rows of "
        f"source `feedback` ({splits or 'none'}); {summary['skipped']} skipped (unknown id, no "
        f"text); legitimacy masked on {summary['legitimacy_masked']} rows no longer "
        "complaints. Corrected heads keep `<head>_before`, `<head>_corrected_by` and "
        "`<head>_corrected_at`.",
        "",
    ]


def lf_summary_lines(stats: dict[str, Any]) -> list[str]:
    """The labelling-function summary: in the card, and printed by `prepare`."""
    return [
        "## Weak supervision: boredom",
        "",
        *_lf_table(stats["boredom_lfs"]),
        "## Weak supervision: legitimacy (complaints only)",
        "",
        *_lf_table(stats["legitimacy_lfs"]),
    ]


def write_card(data: pd.DataFrame, stats: dict[str, Any], path: Path) -> None:
    sources = data.groupby(["source", "split"]).size().unstack(fill_value=0)
    levels = data.groupby(["frustration_level", "split"]).size().unstack(fill_value=0)
    lines = [
        "# Dataset card: helpdesk-scorer multi-task dataset",
        "",
        "Written by `helpdesk-scorer prepare`. One row per message; a head whose `has_<head>` is 0 "
        "has no label from that row's source (a missing label is not a 0). Boredom and legitimacy "
        "on public rows are label-model probabilities (soft labels); gold and hand-written rows "
        "carry human labels.",
        "",
        f"Rows: {len(data)}. Duplicates removed: {stats['removed_duplicates']['exact']} exact, "
        f"{stats['removed_duplicates']['near']} near (train rows near-identical to a "
        "dev/test row).",
        "",
        "## Rows per source and split",
        "",
        *_table(["source", *sources.columns], [[s, *map(int, r)] for s, r in sources.iterrows()]),
        "## Labels per head and split",
        "",
        *_head_counts(data),
        "## Frustration level",
        "",
        *_table(["level", *levels.columns], [[s, *map(int, r)] for s, r in levels.iterrows()]),
        "## Length-only baseline (AUROC of character count)",
        "",
        "What message length alone achieves on the test split; below 0.5 means short messages "
        "are the positives. A model is only as good as its margin over max(a, 1 - a).",
        "",
        *_shortcuts(data),
        "## Real-text gold set (the yardstick)",
        "",
        *_real_gold(stats),
        "## Project-written gold set agreement",
        "",
        *_agreement(stats.get("agreement", {})),
        "## Licences",
        "",
        *_licences(stats),
        "## Corrections from the feedback store",
        "",
        *_corrections(stats.get("corrections", {})),
        *lf_summary_lines(stats),
        "## Source files (sha256)",
        "",
        *_table(["file", "sha256"], [[k, v] for k, v in stats["source_sha256"].items()]),
    ]
    path.write_text("\n".join(lines) + "\n")


def model_card(manifest: dict[str, Any], run_dir: Path) -> str:
    """MODEL_CARD.md for a release folder: data, metrics per head and split, calibration, limits."""
    metrics = manifest["metrics"]
    training = json.loads((run_dir / "metrics.json").read_text())
    test_rows = [
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
        for group, heads in metrics["test"].items()
        for head, m in heads.items()
    ]
    dev = metrics["dev"]
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
        "complaint, legitimacy), exported to ONNX and quantised to int8 (dynamic). Scores are "
        "calibrated probabilities: sigmoid(logit / T) with one temperature per head fitted on the "
        "gold dev split.",
        "",
        f"Training run: `{run_dir}`; data: `{manifest['training_data']['path']}` (sha256 "
        f"`{manifest['training_data']['sha256'][:16]}...`), built by `helpdesk-scorer prepare` "
        "from the public sources in `data/sources.toml` and the project's gold and hand-written "
        "messages. Max sequence length "
        f"{manifest['max_length']} tokens; longer messages are truncated and say so. "
        f"Training: {training['train_rows']} rows, {len(training['history'])} epochs, "
        f"{training['train_seconds_this_session'] / 60:.0f} minutes on this machine's 2 CPU "
        "cores.",
        "",
        "## Test metrics (int8 ONNX through the serving scorer)",
        "",
        "Groups: `gold` is the project's hand-labelled helpdesk test split (never trained or "
        "tuned on); `complaints` is the complaints corpus test split; `goemotions` the Reddit "
        "test split. F1 at the release threshold (chosen on gold dev), and at the threshold "
        "best on the same group's dev rows (what a deployment on that kind of text would "
        "choose). ECE: 10 equal-width bins.",
        "",
        *_table(
            ["group", "head", "n", "positives", "AUROC", "F1", "F1 (group dev threshold)", "ECE"],
            test_rows,
        ),
        "## Calibration (fitted on gold dev)",
        "",
        *_table(["head", "temperature", "threshold", "dev ECE"], calibration_rows),
        f"Frustration level cut-offs: mild >= {manifest['frustration_levels']['mild']:.3f}, "
        f"strong >= {manifest['frustration_levels']['strong']:.3f}.",
        "",
        "## Export parity (dev split)",
        "",
        f"fp32 ONNX vs torch, max absolute probability difference: "
        f"{dev['fp32_onnx_max_prob_diff']:.2e}.",
        "",
        *_table(["head", "torch fp32 AUROC", "int8 ONNX AUROC", "drop"], parity_rows),
        "## Known limitations",
        "",
        "- Boredom and legitimacy have no large human-labelled public corpus. Their training "
        "labels are weak (labelling functions + a label model over public messages) plus a few "
        "hundred hand-written messages. The gold set that judges them was written and labelled "
        "by the project's own developers (AI agents), like the hand-written training messages "
        "and the gold train split: test messages share their authors' style with what the "
        "model saw in training, so the gold figures above are likely optimistic for real "
        "customer traffic, and the test split is small (confidence intervals of several "
        "points). The second labelling pass (kappa in the dataset card) was also done by an AI "
        "agent, so agreement overstates what two human annotators would reach.",
        "- Legitimacy is judged from the text as written: the model cannot know whether a charge "
        "really happened. It is a triage signal, never a verdict on a customer.",
        "- English only. Frustration was learned largely from Reddit (GoEmotions); sarcasm and "
        "very long messages (past the token limit) are weak spots. The tokenizer is uncased, so "
        "shouting in capitals is invisible to the model.",
        "- Seen in hand checks outside the test set: angry wording pulls legitimacy down even "
        'when the failure is concrete ("This is ridiculous, I have been waiting three weeks for '
        'my refund!!" scores legitimacy 0.05 with the released model), and a calm repeat '
        'request ("Third time I am asking: where is my refund?") scores low frustration. Route '
        "on legitimacy with a human in the loop.",
        "",
    ]
    return "\n".join(lines)
