"""Merge exported feedback (`helpdesk-scorer feedback export`) into the prepared dataset.

Rules (the judgement in force per sample and head is decided over all files by
`serving.feedback.schemas.in_force`, the store's rule: latest `created_at`, then highest id):
- A judgement whose `sample_id` is a dataset id overrides that head's label (label null: the
  head does not apply, so its mask becomes 0). When it carries a text that differs from the
  row's, the id is someone else's (an agent's ticket id) and it is treated as unknown.
- An unknown id with a text that matches a dataset row (normalised) corrects that row.
- An unknown id with a new text becomes a new row of source "feedback" (id: the sample_id, or
  "feedback:<sample_id>" when a dataset row has that id), split by the same text hash as the
  public pool, so one text never lands in two splits. Without a text it is skipped.
- Every corrected head keeps who and when (`<head>_corrected_by`, `<head>_corrected_at`) and the
  label it replaced (`<head>_before`). Frustration levels follow the label (0: none; 1: mild
  unless the row already said mild or strong). Legitimacy stays masked wherever complaint is
  not 1 after the merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ValidationError

from serving.core.contract import HEADS, mask_column
from serving.core.errors import BadInput
from serving.feedback import FeedbackRecord
from serving.feedback.schemas import in_force
from training.dataset_rules import match_key, pool_split
from training.loaders import clean_text

__all__ = ["CORRECTION_COLUMNS", "apply_corrections", "load_corrections"]

CORRECTION_COLUMNS = [
    f"{head}_{suffix}" for head in HEADS for suffix in ("before", "corrected_by", "corrected_at")
]


def load_corrections(paths: Sequence[Path]) -> list[FeedbackRecord]:
    """The judgements in force over these JSONL files (`in_force`), by time, then sample and
    head: the order in which new feedback rows are added."""
    records: list[FeedbackRecord] = []
    for path in paths:
        if not path.is_file():
            raise BadInput(f"corrections file not found: {path}")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(FeedbackRecord.model_validate_json(line))
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "line"
                raise BadInput(f"{path}:{number}: {where}: {first['msg']}") from None
    return sorted(in_force(records), key=lambda r: (r.created_at, r.sample_id, r.head))


def _set_label(data: pd.DataFrame, row: int, record: FeedbackRecord) -> bool:
    """Write one judgement into `row`; True when the label changed."""
    head = record.head
    before = data.at[row, head]
    value = np.nan if record.label is None else float(record.label)
    data.at[row, head] = value
    data.at[row, mask_column(head)] = 0.0 if record.label is None else 1.0
    data.at[row, f"{head}_before"] = before
    data.at[row, f"{head}_corrected_by"] = record.author
    data.at[row, f"{head}_corrected_at"] = record.created_at.isoformat()
    if head == "frustration":
        level = data.at[row, "frustration_level"]
        if record.label is None:
            data.at[row, "frustration_level"] = None
        elif record.label == 0:
            data.at[row, "frustration_level"] = "none"
        elif level not in ("mild", "strong"):
            data.at[row, "frustration_level"] = "mild"
    same = (pd.isna(before) and pd.isna(value)) or before == value
    return not same


def apply_corrections(
    data: pd.DataFrame, records: Sequence[FeedbackRecord], seed: int
) -> tuple[pd.DataFrame, dict[str, object]]:
    """`data` with the judgements merged in (rules above) and a summary for the card; `seed`
    is prepare's split seed."""
    data = data.reset_index(drop=True).copy()
    for column in CORRECTION_COLUMNS:
        if column not in data:
            data[column] = pd.Series([None] * len(data), dtype=object)
    existing = len(data)
    by_id = {sample_id: i for i, sample_id in reversed(list(enumerate(data["id"])))}
    texts = [match_key(text) for text in data["text"]]
    by_text = {text: i for i, text in reversed(list(enumerate(texts)))}

    def find(record: FeedbackRecord) -> tuple[int | None, str]:
        text = None if record.text is None else match_key(clean_text(record.text))
        row = by_id.get(record.sample_id)
        if row is not None and (text is None or text == texts[row]):
            return row, "by_id"
        return (by_text.get(text), "by_text") if text else (None, "skipped")

    # first pass: one new row per unknown text, so that every judgement can find it after
    new: list[dict[str, str]] = []
    for record in records:
        row, how = find(record)
        if row is None and how == "by_text" and record.text is not None:
            text = clean_text(record.text)
            taken = record.sample_id in by_id  # the id names another message
            row_id = f"feedback:{record.sample_id}" if taken else record.sample_id
            by_id.setdefault(row_id, existing + len(new))
            by_text[match_key(text)] = existing + len(new)
            texts.append(match_key(text))
            new.append({"id": row_id, "text": text, "source": "feedback"})
    if new:
        frame = pd.DataFrame(new)
        frame["split"] = [pool_split(t, seed) for t in frame["text"]]
        for head in HEADS:
            frame[head] = np.nan
            frame[mask_column(head)] = 0.0
        data = pd.concat([data, frame], ignore_index=True)
    counts = {"judgements": len(records), "by_id": 0, "by_text": 0, "changed": 0, "skipped": 0}
    touched = set()
    for record in records:
        row, how = find(record)
        if row is None:
            counts["skipped"] += 1
            continue
        changed = _set_label(data, row, record)
        if row < existing:
            counts[how] += 1
            counts["changed"] += changed
        touched.add(row)
    rows = sorted(touched)
    not_complaint = data.loc[rows, "complaint"].fillna(0).to_numpy(dtype=float) < 0.5
    masked = [r for r, off in zip(rows, not_complaint, strict=True) if off]
    legit_masked = int((data.loc[masked, mask_column("legitimacy")] == 1).sum())
    data.loc[masked, "legitimacy"] = np.nan
    data.loc[masked, mask_column("legitimacy")] = 0.0
    splits = data.loc[existing:, "split"].value_counts()
    return data, {
        **counts,
        "new_rows": len(new),
        "new_rows_by_split": {str(k): int(v) for k, v in splits.items()},
        "legitimacy_masked": legit_masked,
    }
