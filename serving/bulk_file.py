"""Batch scoring of a JSONL or CSV file: the `helpdesk-scorer score` command's engine.

A row is `text`, optional `id` and optional `history` (the API's: earlier turns, oldest first,
plain strings for the customer's and `{"role": "agent", "text": ...}` for the agent's; in a CSV
a column holding that JSON list). With history a result gains the API's `thread` object and
routing sees the frustration streak.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError
from tqdm import tqdm

from serving.contract import text_error
from serving.errors import UserError
from serving.results import ResultBuilder
from serving.schemas import HISTORY, role_turns
from serving.scorer import Scorer
from serving.threads import flatten_threads, split_threads

__all__ = [
    "JSONL_SUFFIXES",
    "BatchReport",
    "Row",
    "check_record",
    "parse_stream",
    "read_rows",
    "score_file",
]

JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}


@dataclass(frozen=True)
class Row:
    line: int
    id: str | None
    text: str
    history: tuple[tuple[str, str], ...] = ()  # earlier (role, text) turns, oldest first


@dataclass(frozen=True)
class BatchReport:
    scored: int
    rejected: int
    errors_path: Path | None


def check_record(line: int, record: object) -> Row | str:
    """A valid row, or the reason it is rejected: one rule for every engine and input type."""
    if not isinstance(record, dict):
        return "not an object"
    text = record.get("text")
    if not isinstance(text, str):
        return "missing or non-string 'text'"
    problem = text_error(text)
    if problem:
        return problem
    message_id = record.get("id")
    if message_id is not None and not isinstance(message_id, str | int):
        return "'id' must be a string or number"
    history = _history(record.get("history"))
    if isinstance(history, str):
        return history
    return Row(line, None if message_id in (None, "") else str(message_id), text, history)


def _history(raw: object) -> tuple[tuple[str, str], ...] | str:
    """A row's `history` as (role, text) turns, or why it is rejected; a CSV cell holds the
    list as JSON, a missing or empty one means no history."""
    if raw is None or raw == "":
        return ()
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            return f"'history' is not a JSON list ({exc.msg})"
    try:
        return tuple(role_turns(HISTORY.validate_python(raw)))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        return f"'history' {where}: {error['msg']}" if where else f"'history': {error['msg']}"


def parse_stream(handle: TextIO, name: str) -> Iterator[Row | tuple[int, str]]:
    """Rows of an open JSONL or CSV stream (`name` says which); bad rows as (line, why)."""
    if name.lower().endswith(".csv"):
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "text" not in reader.fieldnames:
            raise UserError(f"{name}: the CSV header needs a 'text' column")
        for line, record in enumerate(reader, 2):
            checked = check_record(line, record)
            yield checked if isinstance(checked, Row) else (line, checked)
    elif name.lower().endswith(tuple(JSONL_SUFFIXES)):
        for line, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                checked = check_record(line, json.loads(raw))
            except json.JSONDecodeError as exc:
                checked = f"invalid JSON ({exc.msg})"
            yield checked if isinstance(checked, Row) else (line, checked)
    else:
        raise UserError(f"{name}: unknown input type; use .jsonl or .csv")


def read_rows(path: Path) -> Iterator[Row | tuple[int, str]]:
    """Rows of a JSONL or CSV file with a `text` field (optional `id`, `history`); bad rows
    as (line, why)."""
    if not path.is_file():
        raise UserError(f"input file not found: {path}")
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        yield from parse_stream(handle, str(path))


def score_file(
    source: Path, target: Path, scorer: Scorer, results: ResultBuilder, batch_size: int = 64
) -> BatchReport:
    """Score every valid row of `source` into `target` (JSONL, input order); rejected rows
    go to `target`.errors.jsonl with their line and reason, so nothing is lost silently. An
    output named for another format (`results.csv`) is refused: this engine writes JSONL."""
    if target.suffix.lower() not in JSONL_SUFFIXES:
        raise UserError(
            f"{target}: the file engine writes JSON lines; name the output "
            f"{target.with_suffix('.jsonl').name} (or use --engine ray for Parquet)"
        )
    rows = list(read_rows(source))
    valid = [r for r in rows if isinstance(r, Row)]
    rejected = [r for r in rows if not isinstance(r, Row)]
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        target.open("w", encoding="utf-8") as out,
        tqdm(total=len(valid), unit="msg", desc="score") as bar,
    ):
        for start in range(0, len(valid), batch_size):
            chunk = valid[start : start + batch_size]
            threads = [(r.history, r.text) for r in chunk]
            texts, contexts = flatten_threads(threads)
            scored = split_threads(scorer.score(texts, contexts=contexts), threads)
            for row, (earlier, own) in zip(chunk, scored, strict=True):
                out.write(json.dumps(results.result(row.id, row.text, own, earlier)) + "\n")
            bar.update(len(chunk))
    errors_path = None
    if rejected:
        errors_path = target.with_name(target.name + ".errors.jsonl")
        with errors_path.open("w", encoding="utf-8") as out:
            for line, reason in rejected:
                out.write(json.dumps({"line": line, "error": reason}) + "\n")
    return BatchReport(len(valid), len(rejected), errors_path)
