"""The dataset card that `prepare` writes beside the dataset: counts, shortcuts, LFs, agreement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from serving.core.contract import HEADS, SPLITS, mask_column

__all__ = ["length_auroc", "lf_summary_lines", "table", "write_card"]


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


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
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
    return table(["head", "split", "labelled", "positive (>=0.5)", "negative", "by source"], rows)


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
    return table(
        ["head", "real-text gold test", "project-written gold test", "all test rows"], rows
    )


def _lftable(summary: dict[str, Any]) -> list[str]:
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
    lines = table(
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
        *table(["source", "licence"], rows),
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
        *table(["label", "n", "Cohen's kappa", "raw agreement"], rows),
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
        *_lftable(stats["boredom_lfs"]),
        "## Weak supervision: legitimacy (complaints only)",
        "",
        *_lftable(stats["legitimacy_lfs"]),
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
        *table(["source", *sources.columns], [[s, *map(int, r)] for s, r in sources.iterrows()]),
        "## Labels per head and split",
        "",
        *_head_counts(data),
        "## Frustration level",
        "",
        *table(["level", *levels.columns], [[s, *map(int, r)] for s, r in levels.iterrows()]),
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
        *table(["file", "sha256"], [[k, v] for k, v in stats["source_sha256"].items()]),
    ]
    path.write_text("\n".join(lines) + "\n")
