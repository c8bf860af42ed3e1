"""Bulk scoring of archives on Ray: `helpdesk-scorer score INPUT -o OUTPUT --engine ray`.

Ray Data reads Parquet, CSV or JSONL files (one file or a folder of shards) through one
datasource that applies the local engine's row rules (serving/bulk/file_engine.py), so both engines
reject the same rows; an actor pool scores the valid rows, each with its `history` as in the
API, with the serving Scorer and ResultBuilder (one ONNX session per actor, `threads` intra-op
threads each) and writes the flattened result objects as a folder of Parquet shards. Rejected
rows go to OUTPUT.errors.jsonl with file, line and reason.

Only the CLI's ray path imports this module: the server never pulls in Ray.
"""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray
from ray.data import ActorPoolStrategy, DataContext
from ray.data.datasource import FileBasedDatasource
from ray.data.expressions import col
from ray.exceptions import RayTaskError
from ray.util.annotations import RayDeprecationWarning

from serving.bulk.file_engine import JSONL_SUFFIXES, Row, check_record, parse_stream
from serving.core.contract import HEADS
from serving.core.decision.phrasing import PhraseBank
from serving.core.decision.route_policy import Policy
from serving.core.errors import BadInput, HelpdeskError
from serving.core.results import ResultBuilder
from serving.core.scorer import Scorer, verify_folder
from serving.core.threads import flatten_threads, split_threads

__all__ = [
    "RESULT_SCHEMA",
    "BulkReport",
    "Job",
    "flatten",
    "input_files",
    "prepare_job",
    "ray_session",
    "score_archive",
]

SUFFIXES = (".parquet", ".csv", *sorted(JSONL_SUFFIXES))
BLOCK_ROWS = 4096  # rows per block the reader yields: small enough to stream, big enough to batch

#: What the reader yields per input row; rejected rows carry `error` and no text.
READ_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("line", pa.int64()),
        ("id", pa.string()),
        ("text", pa.string()),
        # earlier turns of the thread, oldest first, with their role
        ("history", pa.list_(pa.struct([("role", pa.string()), ("text", pa.string())]))),
        ("error", pa.string()),
    ]
)

#: One Parquet column per field of the contract's result object (see docs/bulk.md); explicit
#: so that a batch where a nullable column is all null still writes the same schema.
RESULT_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("line", pa.int64()),
        ("id", pa.string()),
        *[(f"score_{h}", pa.float64()) for h in HEADS],
        # frustration is a level (none/mild/strong); the other labels are booleans, and
        # legitimacy is null when the message is not a complaint.
        *[(f"label_{h}", pa.string() if h == "frustration" else pa.bool_()) for h in HEADS],
        ("route_name", pa.string()),
        ("route_priority", pa.string()),
        ("route_reason", pa.string()),
        ("phrasing", pa.list_(pa.string())),
        ("uncertain", pa.list_(pa.string())),
        ("truncated", pa.bool_()),
        # the `thread` object, null when the row had no history
        ("thread_frustration", pa.list_(pa.float64())),
        ("thread_trend", pa.string()),
        ("thread_frustrated_in_a_row", pa.int64()),
        ("language_supported", pa.bool_()),
        ("language_detected", pa.string()),
    ]
)


@dataclass(frozen=True)
class Job:
    """Checked inputs of a run: made before Ray starts, so bad input costs no cluster time."""

    files: list[Path]
    target: Path
    model: Path


@dataclass(frozen=True)
class BulkReport:
    read: int
    scored: int
    rejected: int
    errors_path: Path | None


def input_files(source: Path) -> list[Path]:
    """The files to score: `source` itself, or every .parquet/.csv/.jsonl under a folder
    (sorted; other files are ignored). Checks each header up front so a bad shard is one
    clear error before any work starts, not a failed Ray task."""
    if source.is_file():
        files = [source]
    elif source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and _suffix(p) in SUFFIXES)
        if not files:
            raise BadInput(f"{source}: no {'/'.join(SUFFIXES)} files in this folder")
    else:
        raise BadInput(f"input not found: {source}")
    for file in files:
        if _suffix(file) not in SUFFIXES:
            raise BadInput(f"{file}: unknown input type; use {', '.join(SUFFIXES)}")
        if _suffix(file) == ".parquet":
            try:
                names = pq.read_schema(file).names
            except (OSError, pa.ArrowException) as exc:
                raise BadInput(f"{file}: not a readable Parquet file ({exc})") from None
            if "text" not in names:
                raise BadInput(f"{file}: the Parquet schema needs a 'text' column")
        elif _suffix(file) == ".csv":
            with file.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
                next(parse_stream(handle, file.name), None)  # raises on a header without text
    return files


def _suffix(path: Path | str) -> str:
    return os.path.splitext(str(path))[1].lower()


def _records(f: pa.NativeFile, path: str) -> Iterator[Row | tuple[int, str]]:
    """Checked rows of one file; Parquet rows are numbered from 1 like lines."""
    if _suffix(path) != ".parquet":
        handle = io.TextIOWrapper(f, encoding="utf-8-sig", errors="replace", newline="")
        yield from parse_stream(handle, path)
        return
    table = pq.ParquetFile(pa.BufferReader(f.readall()))
    columns = [c for c in ("id", "text", "history") if c in table.schema_arrow.names]
    number = 0
    for batch in table.iter_batches(batch_size=BLOCK_ROWS, columns=columns):
        for record in batch.to_pylist():
            number += 1
            checked = check_record(number, record)
            yield checked if isinstance(checked, Row) else (number, checked)


class ArchiveSource(FileBasedDatasource):
    """Ray Data reader for the archive: every row, valid or not, with where it came from."""

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        rows: list[dict[str, Any]] = []
        try:
            for checked in _records(f, path):
                if isinstance(checked, Row):
                    row = {
                        "line": checked.line,
                        "id": checked.id,
                        "text": checked.text,
                        "history": [{"role": r, "text": t} for r, t in checked.history],
                    }
                else:
                    row = {"line": checked[0], "error": checked[1]}
                rows.append({"source": path, **row})
                if len(rows) == BLOCK_ROWS:
                    yield pa.Table.from_pylist(rows, schema=READ_SCHEMA)
                    rows = []
        except (OSError, pa.ArrowException) as exc:  # a corrupt shard: name it, no trace
            raise BadInput(f"{path}: cannot read ({exc})") from None
        if rows:
            yield pa.Table.from_pylist(rows, schema=READ_SCHEMA)


def flatten(result: dict[str, Any]) -> dict[str, Any]:
    """One result object of the contract as one row of RESULT_SCHEMA (without source/line)."""
    thread = result.get("thread", {})
    return {
        "id": result["id"],
        **{f"score_{h}": result["scores"][h] for h in HEADS},
        **{f"label_{h}": result["labels"][h] for h in HEADS},
        **{f"route_{k}": result["route"][k] for k in ("name", "priority", "reason")},
        "phrasing": result["phrasing"],
        "uncertain": result["uncertain"],
        "truncated": result["truncated"],
        **{f"thread_{k}": thread.get(k) for k in ("frustration", "trend", "frustrated_in_a_row")},
        **{f"language_{k}": result["language"][k] for k in ("supported", "detected")},
    }


class ScoreBatch:
    """Actor of the pool: loads the model once, then scores batches of valid rows."""

    def __init__(self, model: str, policy: Policy, phrases: PhraseBank, threads: int) -> None:
        self.scorer = Scorer.load(Path(model), threads=threads)
        self.results = ResultBuilder.create(self.scorer.manifest, policy, phrases)

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Like the local engine: the batch is sorted by length and run in sub-batches of the
        scorer's default size, so both engines pad alike."""
        rows = batch.select(["source", "line", "id", "text", "history"]).to_pylist()
        threads = [([(t["role"], t["text"]) for t in r["history"] or []], r["text"]) for r in rows]
        texts, contexts = flatten_threads(threads)
        scored = split_threads(self.scorer.score(texts, contexts=contexts), threads)
        return pa.Table.from_pylist(
            [
                {
                    "source": r["source"],
                    "line": r["line"],
                    **flatten(self.results.result(r["id"], r["text"], own, earlier).record()),
                }
                for r, (earlier, own) in zip(rows, scored, strict=True)
            ],
            schema=RESULT_SCHEMA,
        )


@contextmanager
def ray_session(address: str | None, num_cpus: int | None = None) -> Iterator[int]:
    """Connect to the cluster at `address`, or start a local Ray with `num_cpus` (default: the
    CPUs this process may use); yields the cluster's CPU count. Ray's own logs stay quiet, its
    progress bars stay on."""
    common: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address:
        ray.init(address=address, **common)
    else:
        cpus = num_cpus or len(os.sched_getaffinity(0))
        ray.init(num_cpus=cpus, include_dashboard=False, **common)
    # Ray Data logs a failed task's trace itself; the CLI reports it in one line instead
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)
    # without a terminal Ray Data logs its progress every 10 s instead of drawing bars
    logging.getLogger("ray.data._internal.progress.logging_progress").setLevel(logging.INFO)
    DataContext.get_current().print_on_execution_start = False
    try:
        yield int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
    finally:
        ray.shutdown()


def prepare_job(source: Path, target: Path, model: Path) -> Job:
    """Check the input files, that the output folder is new or empty, and the model's
    checksums; every problem is one BadInput."""
    files = input_files(source)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BadInput(f"output {target} exists and is not an empty folder; choose another")
    verify_folder(model)
    return Job(files, target, model)


def score_archive(
    job: Job,
    policy: Policy,
    phrases: PhraseBank,
    *,
    workers: int,
    threads: int = 1,
    batch_size: int = 64,
) -> BulkReport:
    """Score every valid row of the job's files into its Parquet folder with `workers` actors
    of `threads` CPUs each, inside a running Ray session (see ray_session). Two passes over
    the input: the first counts rows and lists the rejected ones, the second scores."""
    try:
        return _run(job, policy, phrases, workers, threads, batch_size)
    except RayTaskError as exc:  # an expected error inside a task (a corrupt shard) is one line
        if isinstance(exc.cause, HelpdeskError):
            raise type(exc.cause)(str(exc.cause).splitlines()[0]) from None
        raise


def _run(
    job: Job, policy: Policy, phrases: PhraseBank, workers: int, threads: int, batch_size: int
) -> BulkReport:
    ds = ray.data.read_datasource(ArchiveSource([str(f.resolve()) for f in job.files]), num_cpus=0)
    target = job.target
    errors_path = target.with_name(target.name + ".errors.jsonl")
    target.parent.mkdir(parents=True, exist_ok=True)
    read = rejected = 0
    with errors_path.open("w", encoding="utf-8") as out:
        for block in ds.select_columns(["source", "line", "error"]).iter_batches(
            batch_format="pyarrow", batch_size=None
        ):
            read += block.num_rows
            for row in block.filter(pc.is_valid(block["error"])).to_pylist():
                out.write(json.dumps(row) + "\n")
                rejected += 1
    # Reading, filtering and writing take no CPU slot: the actors hold them all, and a task
    # waiting for a free CPU would wait forever. max_restarts (below) is only reachable
    # through the deprecated remote-args route in this Ray version.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RayDeprecationWarning)
        scoring = ds.filter(expr=col("error").is_null(), num_cpus=0).map_batches(
            ScoreBatch,
            fn_constructor_kwargs={
                "model": str(job.model.resolve()),
                "policy": policy,
                "phrases": phrases,
                "threads": threads,
            },
            compute=ActorPoolStrategy(size=workers),
            num_cpus=threads,
            batch_size=batch_size,
            batch_format="pyarrow",
            max_restarts=0,  # a dead actor fails the run loudly; Ray would log noise about restarts
        )
    scoring.write_parquet(str(target), ray_remote_args={"num_cpus": 0})
    scored = sum(pq.ParquetFile(p).metadata.num_rows for p in target.glob("*.parquet"))
    if scored != read - rejected:
        raise BadInput(f"wrote {scored} results for {read - rejected} valid rows into {target}")
    if not rejected:
        errors_path.unlink()
    return BulkReport(read, scored, rejected, errors_path if rejected else None)
