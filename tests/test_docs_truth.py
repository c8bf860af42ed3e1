"""The newcomer-facing text that states facts of the code: held to the code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_the_operating_guide_says_what_truncation_keeps() -> None:
    from serving.core.text import TAIL_SHARE

    guide = " ".join((ROOT / "docs" / "operating.md").read_text().split())
    assert "scored on their first tokens" not in guide
    assert TAIL_SHARE == 0.25 and "their last quarter of the budget" in guide


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


SETTINGS_BEGIN = "<!-- settings table: tests/test_docs_truth.py checks it against Settings -->"


def settings_table() -> str:
    """The settings table of docs/operating.md, from `Settings`' fields: one row each."""
    from pydantic_core import PydanticUndefined

    from serving.http.settings import Settings

    rows = [SETTINGS_BEGIN, "", "| variable | default | what |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if field.default is PydanticUndefined:
            default = "see what" if name == "threads" else "`[]`"
        elif field.default is None:
            default = "unset"
        elif isinstance(field.default, Path):
            default = f"`{field.default.relative_to(ROOT)}`"
        elif isinstance(field.default, bool):
            default = f"`{str(field.default).lower()}`"
        else:
            default = f"`{field.default}`"
        what = (field.description or "").replace("|", "\\|")
        rows.append(f"| `HELPDESK_{name.upper()}` | {default} | {what} |")
    return "\n".join(rows) + "\n"


def test_the_settings_table_is_the_settings() -> None:
    """Every server setting is documented once, with its variable, default and meaning; on a
    change, paste the expected table printed here over the one in docs/operating.md."""
    from serving.http.settings import Settings

    assert all(field.description for field in Settings.model_fields.values())
    doc = (ROOT / "docs" / "operating.md").read_text()
    start = doc.index(SETTINGS_BEGIN)
    expected = settings_table()
    assert doc[start : start + len(expected)] == expected, expected


def test_the_readme_stays_a_front_page() -> None:
    """Quick start, the API, errors, the layout and links; the rest lives in docs/."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 250
    for link in re.findall(r"\]\(((?:docs|deploy)/[^)#]+)", readme):
        assert (ROOT / link).is_file(), link
