"""Counterfactual rows of the scaled real-text set: synthetic minimal edits of train messages.

Labelling agents write them, keyed by their real parent in `counterfactual_key.jsonl`:
- c-batches: the labeller picks one edit of EDITS for each parent (tone, a reference, a name,
  typos);
- t-batches (`training.counterfactual_draw`): the key names the edit, one of TARGETED_EDITS (what
  release 0.4.0 reads wrong: a calm first report of a failure, sarcastic thanks, a request told
  again), and the batch comes with check questions from the real gold dev split, answered in
  `counterfactual_checks/<batch>.tsv`. Its edits count only when those answers agree with gold
  as a first-pass batch's must (`passes_checks`).

Each edit is labelled by the guide for its own side, stored as a patch against its parent (never
as text), marked synthetic, and train only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from serving.core.errors import BadInput
from training.gold import LABEL_KEYS, jsonl_records
from training.real_scale_labels import (
    IncompleteAnswers,
    agreement,
    gold_dev,
    parse_answers,
    parse_line,
    passes_checks,
    read_key,
)

__all__ = [
    "ALL_EDITS",
    "CHECKS_DIR",
    "CHECKS_KEY",
    "EDITS",
    "ID_MARKER",
    "KEY_FILE",
    "TARGETED_EDITS",
    "counterfactual_id",
    "counterfactual_rows",
    "edit_batch_gates",
    "edit_labels",
    "parent_and_edit",
    "parent_positions",
]

KEY_FILE = "counterfactual_key.jsonl"
CHECKS_KEY = "counterfactual_checks_key.jsonl"
CHECKS_DIR = "counterfactual_checks"
EDITS = ("tone_calm", "tone_angry", "reference_added", "reference_removed", "name", "typos")
#: The edit a t-batch asks for, and what the labeller is told to change (data/LABELLING.md).
TARGETED_EDITS: Mapping[str, str] = {
    "polite_report": "the same failure told calmly, politely and for the first time",
    "sarcastic": "the same failure told as sarcastic thanks or praise",
    "repeated": "the same request told as asked before or long waited for",
    "plain_request": "the same matter as a plain request or question, with nothing gone wrong",
    "sincere_thanks": "the same matter told as sincere thanks, where it went well",
}
ALL_EDITS = (*EDITS, *TARGETED_EDITS)
#: A counterfactual row's id is its parent's id, this marker and the edit.
ID_MARKER = "#cf-"


def counterfactual_id(parent_id: str, edit: str) -> str:
    return f"{parent_id}{ID_MARKER}{edit}"


def parent_and_edit(row_id: str) -> tuple[str, str]:
    """(parent id, edit) of a counterfactual row's id; ("", "") for a real row's."""
    parent, marker, edit = row_id.partition(ID_MARKER)
    return (parent, edit) if marker else ("", "")


def parent_positions(ids: Sequence[str]) -> np.ndarray:
    """(n,) int: for each row, the position of its parent among `ids`, or -1 (a real row, or
    an edit whose parent is not among them)."""
    where = {row_id: i for i, row_id in enumerate(ids)}
    parents = [parent_and_edit(row_id)[0] for row_id in ids]
    return np.array([where.get(p, -1) if p else -1 for p in parents], dtype=np.int64)


def edit_labels(record: Mapping[str, Any], where: str) -> dict[str, object]:
    """An edit record's labels as an answer line gives them (binary heads, level, route,
    tags), checked by the same rules."""
    fields = [
        "-" if record.get(k) is None else str(record[k])
        for k in ("frustration_level", "boredom", "complaint", "legitimacy", "route")
    ]
    tags = str(record.get("tags") or "-")
    note = " ".join(str(record.get("note", "")).split())
    return parse_line("\t".join(["0", *fields, tags, note]), where)[1]


def edit_batch_gates(root: Path, real_gold_dir: Path) -> dict[str, dict[str, Any]]:
    """batch -> {status: passed / relabel / pending, checks: agreement with gold} for every
    edit batch that has check questions."""
    if not (root / CHECKS_KEY).is_file():
        return {}
    gold = gold_dev(real_gold_dir)
    gates: dict[str, dict[str, Any]] = {}
    for batch, items in sorted(read_key(root, CHECKS_KEY).items()):
        path = root / CHECKS_DIR / f"{batch}.tsv"
        try:
            answers = parse_answers(path, len(items)) if path.is_file() else {}
        except IncompleteAnswers:
            answers = {}
        if not answers:
            gates[batch] = {"status": "pending"}
            continue
        report = agreement([(answers[k["item"]], gold[str(k["id"])]) for k in items])
        status = "passed" if passes_checks(report) else "relabel"
        gates[batch] = {"status": status, "checks": report}
    return gates


def counterfactual_rows(
    root: Path, labelled: dict[str, dict[str, Any]], gates: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Synthetic minimal edits of train messages, each with the labels of its own side.

    A labeller writes `counterfactual/<batch>.jsonl` lines {item, edit, text, frustration_level,
    boredom, complaint, legitimacy, route, note} (git-ignored: near-copies of raw text);
    `python -m training.real_scale_draw --patch-counterfactuals` turns each into
    `counterfactual_edits/<batch>.jsonl` with a `patch` against its parent instead of the text
    (`training.text_patch`), which is what is committed and read here. Edits of parents whose
    batch is not (yet) in the labelled set wait, and so do the edits of a t-batch whose check
    questions have not passed (`gates`: `edit_batch_gates`).
    """
    key_path = root / KEY_FILE
    if not key_path.is_file():
        return []
    keys = {(r["batch"], r["item"]): r for _, r in jsonl_records(key_path)}
    rows: list[dict[str, Any]] = []
    for path in sorted((root / "counterfactual_edits").glob("*.jsonl")):
        if path.stem in gates and gates[path.stem]["status"] != "passed":
            continue
        for where, record in jsonl_records(path):
            key = keys.get((path.stem, record.get("item")))
            if key is None:
                raise BadInput(f"{where}: item {record.get('item')!r} is not in {path.stem}")
            parent_id = str(key["id"])
            parent = labelled.get(parent_id)
            if parent is None:
                continue
            if parent["split"] != "train":
                raise BadInput(f"{where}: parent {parent_id} is not a train message")
            if record.get("edit") not in ALL_EDITS:
                raise BadInput(f"{where}: edit must be one of {ALL_EDITS}")
            if "edit" in key and record["edit"] != key["edit"]:
                raise BadInput(f"{where}: this item asks for the edit {key['edit']!r}")
            patch = record.get("patch")
            if not isinstance(patch, dict) or not patch.get("ops"):
                raise BadInput(f"{where}: needs a non-empty patch against its parent")
            labels = edit_labels(record, where)
            rows.append(
                {
                    "id": counterfactual_id(parent_id, record["edit"]),
                    "parent_id": parent_id,
                    "source": parent["source"],
                    "thread_id": parent["thread_id"],
                    "edit": record["edit"],
                    "synthetic": True,
                    "patch": patch,
                    **{k: labels[k] for k in (*LABEL_KEYS, "route")},
                    "split": "train",
                }
            )
    return rows
