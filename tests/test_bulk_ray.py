"""`score --engine ray`: every result equals the single-process scorer's, the same rows are
rejected by both engines, and bad input or a missing extra is one error line.

One local Ray (num_cpus=2) serves the whole module; the CLI tests start their own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from serving.bulk.file_engine import Row, check_record, read_rows, score_file
from serving.bulk.ray_engine import flatten, input_files, prepare_job, ray_session, score_archive
from serving.core.contract import HEADS
from serving.core.decision.phrasing import load_phrases
from serving.core.decision.route_policy import load_policy
from serving.core.errors import BadInput
from serving.core.results import ResultBuilder
from serving.core.scorer import Scorer
from tests.conftest import TINY_ROWS

ROOT = Path(__file__).parents[1]
TEXTS = [row[0] for row in TINY_ROWS]
LONG = " ".join(["please"] * 100)  # past the tiny model's 16 tokens: truncated


@pytest.fixture(scope="module")
def ray_cpus() -> Iterator[int]:
    with ray_session(None, num_cpus=2) as cpus:
        yield cpus


@pytest.fixture(scope="module")
def rule_parts() -> tuple[Any, Any]:
    policy = load_policy()
    return policy, load_phrases(routes=tuple(r.name for r in policy.rules))


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """JSONL, CSV and Parquet shards (one in a subfolder), each with malformed rows."""
    folder = tmp_path / "archive"
    (folder / "2026").mkdir(parents=True)
    jsonl = [json.dumps({"id": f"j{i}", "text": t}) for i, t in enumerate(TEXTS)]
    jsonl += [
        json.dumps({"text": LONG}),
        "not json",
        json.dumps({"text": "   "}),
        '{"id": "s", "text": "\\ud800 lone"}',
        json.dumps({"id": 1.5, "text": "ok"}),
        json.dumps([1, 2]),
        "",
        json.dumps({"id": 42, "text": "charged twice"}),
    ]
    (folder / "a.jsonl").write_text("\n".join(jsonl) + "\n")
    (folder / "b.csv").write_text(
        "id,text\n" + "".join(f'c{i},"{t}"\n' for i, t in enumerate(TEXTS[:6])) + "c9,\nshort\n"
    )
    pd.DataFrame(
        {
            "id": ["p1", None, "p3", "p4"],
            "text": [TEXTS[3], TEXTS[9], None, "\t"],
        }
    ).to_parquet(folder / "2026" / "c.parquet", index=False)
    (folder / "README.txt").write_text("not an input shard")
    return folder


def expected(archive: Path, release: Path, rule_parts: tuple[Any, Any]) -> dict:
    """(file, line) -> flattened result by the single-process scorer (one message a batch),
    and (file, line) -> reason for the rejected rows."""
    scorer = Scorer.load(release, threads=1)
    builder = ResultBuilder.create(scorer.manifest, *rule_parts)
    results, rejected = {}, {}
    for file in input_files(archive):
        if file.suffix == ".parquet":
            records = pd.read_parquet(file).replace({np.nan: None}).to_dict("records")
            checked = [check_record(n, r) for n, r in enumerate(records, 1)]
            rows: list[Row | tuple[int, str]] = [
                c if isinstance(c, Row) else (n, c) for n, c in enumerate(checked, 1)
            ]
        else:
            rows = list(read_rows(file))
        valid = [r for r in rows if isinstance(r, Row)]
        scored = scorer.score([r.text for r in valid], batch_size=1)
        for row, scores in zip(valid, scored, strict=True):
            results[(str(file.resolve()), row.line)] = flatten(
                builder.result(row.id, row.text, scores).record()
            )
        rejected.update({(str(file.resolve()), r[0]): r[1] for r in rows if not isinstance(r, Row)})
    return {"results": results, "rejected": rejected}


def test_every_result_matches_the_single_process_scorer(
    ray_cpus: int, tiny_release: Path, archive: Path, rule_parts, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job = prepare_job(archive, out, tiny_release)
    # the int8 graph's activation scales are fixed at export: the Ray engine's batches of 8
    # give each message the same scores as the local scorer alone
    report = score_archive(job, *rule_parts, workers=ray_cpus, batch_size=8)
    want = expected(archive, tiny_release, rule_parts)
    got = pq.read_table(out).to_pylist()
    assert len(got) == report.scored == len(want["results"]) == 26
    assert report.rejected == len(want["rejected"]) == 9
    assert report.read == report.scored + report.rejected
    for row in got:
        wanted = want["results"][(row["source"], row["line"])]
        assert {k: row[k] for k in wanted} == wanted
    assert sum(row["truncated"] for row in got) == 1
    errors = [json.loads(line) for line in report.errors_path.read_text().splitlines()]
    assert {(e["source"], e["line"]): e["error"] for e in errors} == want["rejected"]


def test_rejects_the_same_rows_as_the_local_engine(
    ray_cpus: int, tiny_release: Path, archive: Path, rule_parts, tmp_path: Path
) -> None:
    report = score_archive(
        prepare_job(archive / "a.jsonl", tmp_path / "ray", tiny_release),
        *rule_parts,
        workers=1,
    )
    scorer = Scorer.load(tiny_release, threads=1)
    local = score_file(
        archive / "a.jsonl",
        tmp_path / "local.jsonl",
        scorer,
        ResultBuilder.create(scorer.manifest, *rule_parts),
    )
    assert report.errors_path is not None and local.errors_path is not None
    ray_errors = [json.loads(x) for x in report.errors_path.read_text().splitlines()]
    local_errors = [json.loads(x) for x in local.errors_path.read_text().splitlines()]
    assert sorted((e["line"], e["error"]) for e in ray_errors) == [
        (e["line"], e["error"]) for e in local_errors
    ]
    assert report.scored == local.scored == len(TEXTS) + 2


def test_schema_holds_when_a_column_is_all_null(
    ray_cpus: int, tiny_release: Path, rule_parts, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in ("ok", "k", "fine")))
    report = score_archive(
        prepare_job(source, tmp_path / "out", tiny_release), *rule_parts, workers=1
    )
    got = pd.read_parquet(tmp_path / "out")
    assert report.errors_path is None and len(got) == 3
    assert got["id"].isna().all() and str(got["label_boredom"].dtype) == "bool"
    assert [c for c in got.columns if c.startswith("score_")] == [f"score_{h}" for h in HEADS]


def test_bad_input_is_a_user_error_before_ray_runs(tiny_release: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="input not found"):
        prepare_job(tmp_path / "missing", tmp_path / "out", tiny_release)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match=r"no \.parquet"):
        input_files(tmp_path / "empty")
    pd.DataFrame({"body": ["hello"]}).to_parquet(tmp_path / "x.parquet")
    pd.DataFrame({"text": ["hello"]}).to_parquet(tmp_path / "ok.parquet")
    with pytest.raises(BadInput, match="needs a 'text' column"):
        input_files(tmp_path / "x.parquet")
    (tmp_path / "y.csv").write_text("body\nhello\n")
    with pytest.raises(BadInput, match="CSV header needs a 'text' column"):
        input_files(tmp_path / "y.csv")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.parquet").write_text("")
    with pytest.raises(BadInput, match="not an empty folder"):
        prepare_job(tmp_path / "ok.parquet", tmp_path / "out", tiny_release)


def test_a_corrupt_shard_is_one_user_error(
    ray_cpus: int, tiny_release: Path, rule_parts, tmp_path: Path
) -> None:
    shard = tmp_path / "x.parquet"
    pd.DataFrame({"text": [f"order {i} " * 20 for i in range(500)]}).to_parquet(shard)
    data = bytearray(shard.read_bytes())
    data[100:1000] = bytes(b ^ 0x5A for b in data[100:1000])  # pages broken, footer intact
    shard.write_bytes(bytes(data))
    job = prepare_job(shard, tmp_path / "out", tiny_release)
    with pytest.raises(BadInput, match=r"x\.parquet: cannot read") as caught:
        score_archive(job, *rule_parts, workers=1)
    assert "\n" not in str(caught.value)


def run_cli(*args: str, block_ray: bool = False) -> subprocess.CompletedProcess[str]:
    prefix = "import sys; sys.modules['ray'] = None; " if block_ray else "import sys; "
    code = prefix + "from serving.cli import app; app(sys.argv[1:], prog_name='helpdesk-scorer')"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def test_cli_reports_counts_and_exits_3_on_rejected_rows(
    tiny_release: Path, archive: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run_cli(
        "score", str(archive), "-o", str(out), "--engine", "ray", "--model", str(tiny_release)
    )
    assert result.returncode == 3, result.stderr
    assert "read 35 rows, scored 26, rejected 9" in result.stdout
    assert len((tmp_path / "out.errors.jsonl").read_text().splitlines()) == 9
    assert len(pd.read_parquet(out)) == 26
    assert "Traceback" not in result.stderr


def test_cli_one_error_line_for_bad_input_and_missing_extra(
    tiny_release: Path, tmp_path: Path
) -> None:
    missing = run_cli("score", str(tmp_path / "nope"), "-o", str(tmp_path / "o"), "--engine", "ray")
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: input not found: {tmp_path / 'nope'}"
    no_ray = run_cli(
        "score", str(tmp_path), "-o", str(tmp_path / "o"), "--engine", "ray", block_ray=True
    )
    assert no_ray.returncode == 2
    assert "pip install 'helpdesk-scorer[ray]'" in no_ray.stderr
    assert "Traceback" not in no_ray.stderr
    local = run_cli(
        "score", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "o"), "--workers", "2"
    )
    assert local.returncode == 2 and "need --engine ray" in local.stderr


def test_server_and_local_score_never_import_ray() -> None:
    code = (
        "import sys, serving.http.app, serving.cli, serving.bulk.file_engine;"
        "sys.exit(1 if 'ray' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


#: One thread: the customer's two earlier turns around an agent reply, then the message.
THREAD_TEXT = "angry angry angry"
HISTORY = ["hello", {"role": "agent", "text": "sorry about that"}, "still waiting angry"]


@pytest.mark.parametrize("release_name", ["tiny_release", "tiny_context_release"])
def test_every_engine_decides_a_thread_alike(
    ray_cpus: int, release_name: str, request: pytest.FixtureRequest, rule_parts, tmp_path: Path
) -> None:
    """The API, the file engine (JSONL list, CSV cell of JSON) and the Ray engine (the same
    plus a Parquet list column) give one message with one history the same thread, route and
    scores; the thread-reading model reads the history as context in every engine."""
    from fastapi.testclient import TestClient

    from serving.http.app import create_app
    from serving.http.settings import Settings

    tiny_release: Path = request.getfixturevalue(release_name)

    with TestClient(create_app(Settings(model_dir=tiny_release, threads=1))) as client:
        body = {"messages": [{"id": "t", "text": THREAD_TEXT, "history": HISTORY}]}
        api = client.post("/v1/score", json=body).json()["results"][0]
    assert len(api["thread"]["frustration"]) == 3  # two customer turns and the message
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.jsonl").write_text(
        json.dumps({"id": "t", "text": THREAD_TEXT, "history": HISTORY})
    )
    pd.DataFrame({"id": ["t"], "text": [THREAD_TEXT], "history": [json.dumps(HISTORY)]}).to_csv(
        inputs / "b.csv", index=False
    )
    turns = [t if isinstance(t, dict) else {"role": "customer", "text": t} for t in HISTORY]
    pd.DataFrame({"id": ["t"], "text": [THREAD_TEXT], "history": [turns]}).to_parquet(
        inputs / "c.parquet", index=False
    )
    scorer = Scorer.load(tiny_release, threads=1)
    builder = ResultBuilder.create(scorer.manifest, *rule_parts)
    for name in ("a.jsonl", "b.csv"):
        score_file(inputs / name, tmp_path / f"{name}.out.jsonl", scorer, builder)
        local = json.loads((tmp_path / f"{name}.out.jsonl").read_text())
        assert {k: local[k] for k in ("thread", "labels", "route", "uncertain", "scores")} == {
            k: api[k] for k in ("thread", "labels", "route", "uncertain", "scores")
        }
    score_archive(prepare_job(inputs, tmp_path / "ray", tiny_release), *rule_parts, workers=1)
    rows = pq.read_table(tmp_path / "ray").to_pylist()
    assert len(rows) == 3
    for row in rows:
        assert row["thread_frustration"] == api["thread"]["frustration"]
        assert row["thread_trend"] == api["thread"]["trend"]
        assert row["thread_frustrated_in_a_row"] == api["thread"]["frustrated_in_a_row"]
        assert (row["route_name"], row["route_reason"]) == (
            api["route"]["name"],
            api["route"]["reason"],
        )
        assert row["uncertain"] == api["uncertain"]
        assert all(abs(row[f"score_{h}"] - api["scores"][h]) <= 1e-4 for h in HEADS)


@pytest.mark.parametrize(
    "history, reason",
    [
        ("not json", "'history' is not a JSON list"),
        ('"a string"', "'history'"),
        ([{"role": "boss", "text": "hi"}], "'history' 0"),
        (["   "], "'history' 0"),
    ],
)
def test_a_bad_history_rejects_its_row(history: object, reason: str) -> None:
    checked = check_record(1, {"text": "ok", "history": history})
    assert isinstance(checked, str) and checked.startswith(reason), checked
    assert check_record(1, {"text": "ok", "history": ""}) == Row(1, None, "ok")
