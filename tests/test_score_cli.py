"""`helpdesk-scorer score`: the contract's result objects, CSV and JSONL, bad rows, bad models."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from serving.core.contract import HEADS
from tests.test_server import RESULT_KEYS

ROOT = Path(__file__).parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def check_result(result: dict[str, object]) -> None:
    assert set(result) == RESULT_KEYS
    scores, labels, route = result["scores"], result["labels"], result["route"]
    assert isinstance(scores, dict) and set(scores) == set(HEADS)
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert isinstance(labels, dict) and set(labels) == set(HEADS)
    assert labels["frustration"] in ("none", "mild", "strong")
    assert isinstance(labels["boredom"], bool) and isinstance(labels["complaint"], bool)
    assert (
        labels["legitimacy"] is None
        if not labels["complaint"]
        else isinstance(labels["legitimacy"], bool)
    )
    assert isinstance(route, dict) and set(route) == {"name", "priority", "reason"}
    assert isinstance(result["phrasing"], list) and all(
        isinstance(p, str) for p in result["phrasing"]
    )
    assert isinstance(result["uncertain"], list) and set(result["uncertain"]) <= set(HEADS)
    assert isinstance(result["truncated"], bool)


def test_scores_jsonl_in_input_order(tiny_release: Path, jsonl, tmp_path: Path) -> None:
    rows = [
        {"id": "a", "text": "my order never arrived and i am angry"},
        {"text": "ok"},
        {"id": 7, "text": " ".join(["please"] * 100)},
    ]
    out = tmp_path / "out.jsonl"
    result = run_cli("score", str(jsonl(rows)), "-o", str(out), "--model", str(tiny_release))
    assert result.returncode == 0, result.stderr
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in results] == ["a", None, "7"]
    for r in results:
        check_result(r)
    assert results[2]["truncated"] and not results[0]["truncated"]


def test_scores_csv(tiny_release: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text('id,text\nx1,"charged twice, this is terrible"\nx2,fine whatever\n')
    out = tmp_path / "out.jsonl"
    result = run_cli("score", str(source), "-o", str(out), "--model", str(tiny_release))
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["x1", "x2"]


def test_bad_rows_are_listed_not_lost(tiny_release: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "ok"}\n{"text": ""}\nnot json\n{"text": 5}\n{"id": "z"}\n')
    out = tmp_path / "out.jsonl"
    result = run_cli("score", str(source), "-o", str(out), "--model", str(tiny_release))
    assert result.returncode == 3
    assert len(out.read_text().splitlines()) == 1
    errors = [
        json.loads(line) for line in (tmp_path / "out.jsonl.errors.jsonl").read_text().splitlines()
    ]
    assert [e["line"] for e in errors] == [2, 3, 4, 5]
    assert "Traceback" not in result.stderr


def test_tampered_model_is_one_clear_error(tiny_release: Path, jsonl, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_release, model)
    with (model / "model.onnx").open("r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    result = run_cli(
        "score",
        str(jsonl([{"text": "ok"}])),
        "-o",
        str(tmp_path / "o.jsonl"),
        "--model",
        str(model),
    )
    assert result.returncode == 2
    assert "checksum mismatch" in result.stderr and "model.onnx" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_input_and_unknown_type(tiny_release: Path, tmp_path: Path) -> None:
    result = run_cli(
        "score",
        str(tmp_path / "nope.jsonl"),
        "-o",
        str(tmp_path / "o.jsonl"),
        "--model",
        str(tiny_release),
    )
    assert result.returncode == 2 and "input file not found" in result.stderr
    other = tmp_path / "in.txt"
    other.write_text("hello\n")
    result = run_cli(
        "score", str(other), "-o", str(tmp_path / "o.jsonl"), "--model", str(tiny_release)
    )
    assert result.returncode == 2 and "use .jsonl or .csv" in result.stderr


def test_an_output_named_csv_is_refused_not_filled_with_jsonl(
    tiny_release: Path, jsonl, tmp_path: Path
) -> None:
    source = jsonl([{"text": "ok"}])
    out = tmp_path / "results.csv"
    result = run_cli("score", str(source), "-o", str(out), "--model", str(tiny_release))
    assert result.returncode == 2 and result.stderr.startswith("error:")
    assert "results.jsonl" in result.stderr and not out.exists()


def test_serving_imports_no_torch_or_training() -> None:
    """The root CLI merges the training and evaluation sub-apps, and nothing else of theirs."""
    code = (
        "import sys, serving.cli, serving.core.scorer, serving.bulk.file_engine;"
        "import serving.core.results;"
        "apps = ('training', 'training.cli', 'evaluation', 'evaluation.cli');"
        "bad = [m for m in sys.modules if m not in apps and m.split('.')[0] in "
        "('torch', 'transformers', 'training', 'evaluation', 'sklearn', 'pandas')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout


def test_help_lists_every_command() -> None:
    """The sub-apps' commands are top-level commands, as before they moved."""
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    listed = set(re.findall(r"^│ ([a-z][a-z-]*) ", result.stdout, re.MULTILINE))
    assert listed == {
        *("prepare", "train", "export", "score", "evaluate", "serve", "review"),
        *("hash-key", "feedback"),
    }
