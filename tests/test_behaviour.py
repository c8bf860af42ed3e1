"""The behaviour suite: the case file's size and kinds, each check kind's rule, and a report
on the tiny model through the serving scorer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evaluation.behaviour import Check, behaviour_report, load_checks, run_checks
from serving.core.errors import BadInput

CUT = {"frustration": 0.5, "boredom": 0.5, "complaint": 0.5, "legitimacy": 0.5}


def test_the_suite_has_300_checks_of_every_kind() -> None:
    checks = load_checks()
    assert len(checks) >= 300
    assert {c.kind for c in checks} == {"mft", "inv", "dir"}
    assert any(c.contexts[0] for c in checks)  # some checks read a thread
    groups = {c.group for c in checks}
    for needed in (
        "sarcasm",
        "repetition_and_waiting",
        "anger_without_object",
        "polite_first_report",
        "disengaged_after_agent",
        "engaged_short_answer",
        "praise",
        "tone_keeps_legitimacy_and_complaint",
        "reference_keeps_frustration_and_complaint",
        "repetition_raises_frustration",
        "fix_lowers_complaint",
    ):
        assert needed in groups


def _probs(*rows: list[float]) -> np.ndarray:
    return np.array(rows, dtype=float)


def test_each_kind_passes_and_fails_by_its_rule() -> None:
    mft = Check("mft", "g", ("a",), ("",), {"frustration": True, "complaint": False})
    inv = Check("inv", "g", ("a", "b"), ("", ""), {"legitimacy": True})
    up = Check("dir", "g", ("a", "b"), ("", ""), {"frustration": True})
    down = Check("dir", "g", ("a", "b"), ("", ""), {"complaint": False})
    checks = [mft, mft, inv, inv, up, up, up, down, down]
    probs = [
        _probs([0.7, 0, 0.2, 0]),  # frustrated, no complaint: pass
        _probs([0.7, 0, 0.6, 0]),  # complaint above: fail
        _probs([0, 0, 0, 0.6], [0, 0, 0, 0.9]),  # same side: pass
        _probs([0, 0, 0, 0.6], [0, 0, 0, 0.4]),  # crosses the threshold: fail
        _probs([0.3, 0, 0, 0], [0.35, 0, 0, 0]),  # up by 0.05: pass
        _probs([0.3, 0, 0, 0], [0.31, 0, 0, 0]),  # up by 0.01 only: fail
        _probs([0.985, 0, 0, 0], [0.99, 0, 0, 0]),  # already near 1: pass
        _probs([0, 0, 0.8, 0], [0, 0, 0.9, 0]),  # the wrong way: fail
        _probs([0, 0, 0.8, 0], [0, 0, 0.1, 0]),  # down: pass
    ]
    assert run_checks(checks, probs, CUT) == [
        True,
        False,
        True,
        False,
        True,
        False,
        True,
        False,
        True,
    ]
    with pytest.raises(ValueError):
        run_checks(checks, probs[:2], CUT)


def test_a_malformed_case_file_is_one_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "cases.toml"
    bad.write_text('[[mft]]\ngroup = "x"\ntexts = ["a"]\n')  # no expect
    with pytest.raises(BadInput, match="malformed"):
        load_checks(bad)
    bad.write_text('[[mft]]\ngroup = "x"\nexpect = { anger = true }\ntexts = ["a"]\n')
    with pytest.raises(BadInput, match="unknown heads"):
        load_checks(bad)


def test_report_on_the_tiny_models(tiny_release: Path, tiny_context_release: Path) -> None:
    from serving.core.scorer import Scorer

    for release in (tiny_release, tiny_context_release):
        report = behaviour_report(Scorer.load(release, threads=1))
        assert report["checks"] == len(load_checks())
        assert 0.0 <= report["pass_rate"] <= 1.0
        assert sum(g["checks"] for g in report["groups"]) == report["checks"]
        assert len(report["failed"]) == report["checks"] - sum(
            g["passed"] for g in report["groups"]
        )


def test_the_command_prints_rates_and_writes_json(tiny_release: Path, tmp_path: Path) -> None:
    out = tmp_path / "behaviour.json"
    done = subprocess.run(
        [sys.executable, "-m", "evaluation.behaviour", str(tiny_release), "--json", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "overall:" in done.stdout and "sarcasm" in done.stdout
    assert json.loads(out.read_text())["checks"] >= 300
    missing = subprocess.run(
        [sys.executable, "-m", "evaluation.behaviour", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2 and missing.stderr.startswith("error:")
