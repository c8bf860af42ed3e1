"""The newcomer-facing text that states facts of the code: held to the code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_the_readme_says_what_truncation_keeps() -> None:
    from serving.text import TAIL_SHARE

    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "scored on their first tokens" not in readme
    assert TAIL_SHARE == 0.25 and "their last quarter of the budget" in readme


def test_the_makefile_comment_names_every_extra_make_test_installs() -> None:
    makefile = (ROOT / "Makefile").read_text()
    installed = re.search(r'pip install --quiet -e "\.\[([a-z,]+)\]"', makefile)
    assert installed is not None
    comment = " ".join(line for line in makefile.splitlines() if line.startswith("#"))
    for extra in installed.group(1).split(","):
        assert re.search(rf"\b{extra}\b", comment), extra


def test_skipped_tests_are_named_in_the_summary() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "tests/test_feedback_store.py",
            "-k",
            "postgresql",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "tests not run on this machine" in done.stdout, done.stdout[-2000:]
    assert "HELPDESK_TEST_POSTGRES_URL is not set" in done.stdout
