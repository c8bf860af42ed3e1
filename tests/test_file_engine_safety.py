"""The file engine's data safety: it never writes over its input, one odd row loses only itself,
encodings are read or named, and a failed or clean rerun leaves no stale or half output."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.bulk.file_engine import Decoding, Row, read_rows
from serving.core.errors import BadInput
from tests.test_score_cli import run_cli


def _rows(path: Path) -> tuple[list[Row], list[tuple[int, str]], Decoding]:
    decoding = Decoding()
    rows = list(read_rows(path, decoding))
    return (
        [r for r in rows if isinstance(r, Row)],
        [r for r in rows if not isinstance(r, Row)],
        decoding,
    )


@pytest.mark.parametrize("target", ["in.jsonl", "sub/../in.jsonl", "link.jsonl"])
def test_the_input_is_never_the_output(tiny_release: Path, tmp_path: Path, target: str) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "hello"}\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.jsonl").symlink_to(source)
    result = run_cli(
        "score", str(source), "-o", str(tmp_path / target), "--model", str(tiny_release)
    )
    assert result.returncode == 2 and "is the input file" in result.stderr
    assert source.read_text() == '{"text": "hello"}\n'


def test_an_output_folder_is_one_clear_error(tiny_release: Path, jsonl, tmp_path: Path) -> None:
    folder = tmp_path / "out.jsonl"
    folder.mkdir()
    result = run_cli(
        "score", str(jsonl([{"text": "hi"}])), "-o", str(folder), "--model", str(tiny_release)
    )
    assert result.returncode == 2 and "is a folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_clean_rerun_removes_the_stale_errors_file(
    tiny_release: Path, jsonl, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    bad = jsonl([{"text": "hi"}, {"text": ""}], "bad.jsonl")
    assert run_cli("score", str(bad), "-o", str(out), "--model", str(tiny_release)).returncode == 3
    errors = tmp_path / "out.jsonl.errors.jsonl"
    assert errors.exists()
    good = jsonl([{"text": "hi"}], "good.jsonl")
    assert run_cli("score", str(good), "-o", str(out), "--model", str(tiny_release)).returncode == 0
    assert not errors.exists() and len(out.read_text().splitlines()) == 1
    assert not list(tmp_path.glob(".*.part"))  # no temporary file left behind


def test_odd_lines_lose_only_themselves(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    lines = [
        '{"text": "first"}',
        '{"text": "big", "id": ' + "9" * 5000 + "}",
        "[" * 100_000 + "]" * 100_000,
        '{"text": "last"}',
    ]
    source.write_text("\n".join(lines) + "\n")
    valid, rejected, _ = _rows(source)
    assert [r.text for r in valid] == ["first", "last"]
    assert [line for line, _ in rejected] == [2, 3]
    assert "digits" in rejected[0][1] and rejected[1][1] == "nested too deeply"


def test_a_bom_is_read_and_the_id_kept(tmp_path: Path) -> None:
    csv_path = tmp_path / "in.csv"
    csv_path.write_bytes("\ufeffid,text\n7,hello\n".encode())
    jsonl_path = tmp_path / "in.jsonl"
    jsonl_path.write_bytes('\ufeff{"id": 8, "text": "hi"}\n'.encode())
    assert [(r.id, r.text) for r in _rows(csv_path)[0]] == [("7", "hello")]
    assert [(r.id, r.text) for r in _rows(jsonl_path)[0]] == [("8", "hi")]


def test_utf16_with_a_bom_is_read_and_without_one_is_named(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes("id,text\n1,héllo\n".encode("utf-16"))
    valid, _, decoding = _rows(source)
    assert [r.text for r in valid] == ["héllo"] and decoding.encoding == "utf-16"
    source.write_bytes("id,text\n1,hello\n".encode("utf-16-le"))
    with pytest.raises(BadInput, match="UTF-16 or UTF-32 without a byte-order mark"):
        _rows(source)


def test_latin1_bytes_are_counted_with_their_lines(tiny_release: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9 cr\xe8me"}\n')
    valid, _, decoding = _rows(source)
    assert valid[1].text == "caf\ufffd cr\ufffdme"
    assert decoding.replaced == 2 and decoding.lines == [2]
    out = tmp_path / "out.jsonl"
    result = run_cli("score", str(source), "-o", str(out), "--model", str(tiny_release))
    assert result.returncode == 0
    assert "warning: 2 bytes were not valid utf-8" in result.stderr and "lines 2" in result.stderr


def test_csv_rejects_are_reported_by_file_line(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text('id,text\n1,"two\nlines"\n2,\n3,ok\n')
    valid, rejected, _ = _rows(source)
    assert [r.line for r in valid] == [2, 5]
    assert [line for line, _ in rejected] == [4]


def test_an_oversized_csv_field_loses_only_its_record(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id,text\n1,ok\n2," + "x" * 200_000 + "\n3,fine\n")
    valid, rejected, _ = _rows(source)
    assert [r.text for r in valid] == ["ok", "fine"]
    assert rejected[0][0] == 3 and "CSV record" in rejected[0][1]


def test_a_failed_run_leaves_no_half_output(tmp_path: Path) -> None:
    from serving.bulk.file_engine import _replacing

    out = tmp_path / "out.jsonl"
    out.write_text('{"kept": true}\n')
    with pytest.raises(RuntimeError), _replacing(out) as handle:
        handle.write('{"half": ')
        raise RuntimeError("the scorer failed mid-run")
    assert out.read_text() == '{"kept": true}\n'
    assert not list(tmp_path.glob(".*.part"))


def test_the_ray_engine_reads_a_bom_and_keeps_the_id() -> None:
    import pyarrow as pa

    from serving.bulk.ray_engine import _records

    rows = list(_records(pa.BufferReader("\ufeffid,text\n7,hello\n".encode()), "in.csv"))
    assert [(r.id, r.text) for r in rows if isinstance(r, Row)] == [("7", "hello")]
