"""Batch scoring of a JSONL or CSV file: the `helpdesk-scorer score` command's engine.

A row is `text`, optional `id` and optional `history` (the API's: earlier turns, oldest first,
plain strings for the customer's and `{"role": "agent", "text": ...}` for the agent's; in a CSV
a column holding that JSON list). With history a result gains the API's `thread` object and
routing sees the frustration streak.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from pydantic import ValidationError
from tqdm import tqdm

from serving.core.contract import text_error
from serving.core.errors import BadInput
from serving.core.results import ResultBuilder
from serving.core.schemas import HISTORY, role_turns
from serving.core.scorer import Scorer
from serving.core.threads import flatten_threads, split_threads

__all__ = [
    "JSONL_SUFFIXES",
    "BatchReport",
    "Decoding",
    "Row",
    "check_record",
    "parse_stream",
    "read_rows",
    "score_file",
    "sniff_encoding",
    "text_stream",
]

JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}


@dataclass(frozen=True)
class Row:
    line: int
    id: str | None
    text: str
    history: tuple[tuple[str, str], ...] = ()  # earlier (role, text) turns, oldest first


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


#: Byte-order marks, longest first (a UTF-32 LE mark starts like a UTF-16 LE one).
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
#: Undecodable UTF-8 bytes are read as these lone surrogates ("surrogateescape"), then counted
#: and replaced by U+FFFD, so a Latin-1 byte is scored as U+FFFD with a warning, never silently.
_ESCAPED = re.compile("[\udc80-\udcff]")


@dataclass
class Decoding:
    """How a text input was read: its encoding and the lines where bytes were replaced."""

    encoding: str = "utf-8"
    replaced: int = 0
    lines: list[int] = field(default_factory=list)

    def repair(self, line: int, text: str) -> str:
        """`text` with each undecodable byte as U+FFFD, counted against `line`."""
        fixed, count = _ESCAPED.subn("\ufffd", text)
        if count:
            self.replaced += count
            self.lines.append(line)
        return fixed


@dataclass(frozen=True)
class BatchReport:
    scored: int
    rejected: int
    errors_path: Path | None
    decoding: Decoding


def sniff_encoding(head: bytes, name: str) -> str:
    """The encoding of a file that starts with `head`: its byte-order mark, else UTF-8. NUL
    bytes without a mark mean UTF-16 or UTF-32 without one: refused with that said."""
    for mark, encoding in _BOMS:
        if head.startswith(mark):
            return encoding
    if b"\x00" in head:
        raise BadInput(
            f"{name}: holds NUL bytes, so it looks like UTF-16 or UTF-32 without a byte-order "
            "mark; save it as UTF-8"
        )
    return "utf-8"


def text_stream(raw: BinaryIO, name: str) -> tuple[TextIO, Decoding]:
    """A text view of an open binary input in its sniffed encoding (UTF-8 with or without a
    BOM, or UTF-16/32 by their BOM); `raw` must be seekable."""
    encoding = sniff_encoding(raw.read(4096), name)
    raw.seek(0)
    errors = "surrogateescape" if encoding.startswith("utf-8") else "strict"
    handle = io.TextIOWrapper(raw, encoding=encoding, errors=errors, newline="")
    return handle, Decoding(encoding)


def _checked(line: int, parse: Callable[[Any], object], raw: object) -> Row | tuple[int, str]:
    """One row parsed and checked; any failure of this row is its rejection, never the file's."""
    try:
        checked = check_record(line, parse(raw))
    except json.JSONDecodeError as exc:
        checked = f"invalid JSON ({exc.msg})"
    except RecursionError:
        checked = "nested too deeply"
    except Exception as exc:  # a row that breaks a parser in any other way loses only itself
        checked = f"unreadable row ({type(exc).__name__}: {str(exc)[:200]})"
    return checked if isinstance(checked, Row) else (line, checked)


def parse_stream(
    handle: TextIO, name: str, decoding: Decoding | None = None
) -> Iterator[Row | tuple[int, str]]:
    """Rows of an open JSONL or CSV stream (`name` says which); bad rows as (line, why), with
    a CSV record's first file line. `decoding` counts replaced bytes, when given."""
    seen = decoding if decoding is not None else Decoding()
    if name.lower().endswith(".csv"):
        reader = csv.reader(handle)
        try:
            header = [seen.repair(1, cell) for cell in next(reader, [])]
        except csv.Error as exc:
            raise BadInput(f"{name}: the CSV header is unreadable ({exc})") from None
        if "text" not in header:
            raise BadInput(f"{name}: the CSV header needs a 'text' column")
        while True:
            first = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield first, f"unreadable CSV record ({exc})"
                continue
            if not cells:
                continue
            record = dict(zip(header, (seen.repair(first, c) for c in cells), strict=False))
            yield _checked(first, dict, record)
    elif name.lower().endswith(tuple(JSONL_SUFFIXES)):
        for line, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            text = seen.repair(line, raw)
            yield _checked(line, json.loads, text)
    else:
        raise BadInput(f"{name}: unknown input type; use .jsonl or .csv")


def read_rows(path: Path, decoding: Decoding | None = None) -> Iterator[Row | tuple[int, str]]:
    """Rows of a JSONL or CSV file with a `text` field (optional `id`, `history`); bad rows
    as (line, why). The encoding is sniffed (`text_stream`); `decoding` reports it."""
    if not path.is_file():
        raise BadInput(f"input file not found: {path}")
    with path.open("rb") as raw:
        handle, found = text_stream(raw, str(path))
        if decoding is not None:
            decoding.encoding = found.encoding
        try:
            yield from parse_stream(handle, str(path), decoding if decoding is not None else found)
        except UnicodeDecodeError as exc:
            raise BadInput(
                f"{path}: not valid {found.encoding} (byte {exc.start} of a read block: "
                f"{exc.reason}); save it as UTF-8"
            ) from None


def score_file(
    source: Path, target: Path, scorer: Scorer, results: ResultBuilder, batch_size: int = 64
) -> BatchReport:
    """Score every valid row of `source` into `target` (JSONL, input order); rejected rows
    go to `target`.errors.jsonl with their line and reason, so nothing is lost silently.

    The input is never written over: an output that is the input (by any path), a folder, or
    named for another format (`results.csv`) is refused. Both outputs are written to a
    temporary file beside them and renamed when complete, so a failed run leaves no half
    output, and a clean rerun removes a stale errors file."""
    errors_path = target.with_name(target.name + ".errors.jsonl")
    _check_target(source, target, errors_path)
    decoding = Decoding()
    rows = list(read_rows(source, decoding))
    valid = [r for r in rows if isinstance(r, Row)]
    rejected = [r for r in rows if not isinstance(r, Row)]
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        _replacing(target) as out,
        tqdm(total=len(valid), unit="msg", desc="score") as bar,
    ):
        for start in range(0, len(valid), batch_size):
            chunk = valid[start : start + batch_size]
            threads = [(r.history, r.text) for r in chunk]
            texts, contexts = flatten_threads(threads)
            scored = split_threads(scorer.score(texts, contexts=contexts), threads)
            for row, (earlier, own) in zip(chunk, scored, strict=True):
                result = results.result(row.id, row.text, own, earlier)
                out.write(json.dumps(result.record()) + "\n")
            bar.update(len(chunk))
    if rejected:
        with _replacing(errors_path) as out:
            for line, reason in rejected:
                out.write(json.dumps({"line": line, "error": reason}) + "\n")
    else:
        errors_path.unlink(missing_ok=True)
    return BatchReport(len(valid), len(rejected), errors_path if rejected else None, decoding)


def _check_target(source: Path, target: Path, errors_path: Path) -> None:
    if target.suffix.lower() not in JSONL_SUFFIXES:
        raise BadInput(
            f"{target}: the file engine writes JSON lines; name the output "
            f"{target.with_suffix('.jsonl').name} (or use --engine ray for Parquet)"
        )
    if target.is_dir():
        raise BadInput(f"{target}: is a folder; name an output file in it")
    for path in (target, errors_path):
        same = path.exists() and source.exists() and os.path.samefile(path, source)
        if same or path.resolve() == source.resolve():
            raise BadInput(f"{path}: is the input file; name another output")


@contextmanager
def _replacing(path: Path) -> Iterator[TextIO]:
    """A temporary file beside `path`, renamed over it only when the block completes."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with open(fd, "w", encoding="utf-8") as handle:
            yield handle
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)
