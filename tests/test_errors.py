"""The error model: one table from kind to HTTP status and exit code, used by server and CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import serving.core.errors as errors
from serving.cli import app as cli
from serving.core.cli_common import user_errors
from serving.core.errors import (
    KINDS,
    STATUS_KINDS,
    BadInput,
    HelpdeskError,
    Kind,
    ModelRefused,
    NotReady,
    ParityError,
    StoreUnavailable,
)
from serving.http.guard import ApiError, install_error_handlers

ROOT = Path(__file__).parents[1]
ROW = re.compile(r"^\| `(\w+)` \| (\d{3}) \| (\d) \| (.+) \|$", re.MULTILINE)
CAUSES = [BadInput, ModelRefused, ParityError, NotReady, StoreUnavailable]


def table(text: str) -> dict[str, tuple[int, int, str]]:
    return {
        kind: (int(status), int(code), cause) for kind, status, code, cause in ROW.findall(text)
    }


def test_every_kind_has_a_status_and_an_exit_code() -> None:
    assert set(KINDS) == set(Kind)
    for info in KINDS.values():
        assert 400 <= info.status < 600 and info.exit_code in (1, 2, 4)
    assert set(STATUS_KINDS) == {info.status for info in KINDS.values()}
    assert STATUS_KINDS[429] is Kind.OVERLOADED  # the first row of a shared status
    for cause in CAUSES:
        assert cause.default_kind in KINDS


def test_the_readme_table_is_the_table() -> None:
    expected = {str(kind): tuple(info) for kind, info in KINDS.items()}
    assert table((ROOT / "README.md").read_text()) == expected


def test_openapi_describes_each_error_status_by_its_kinds_causes() -> None:
    from serving.http.guard import error_responses

    described = error_responses(Kind.OVERLOADED, Kind.QUOTA_EXCEEDED, Kind.INVALID_INPUT)
    assert set(described) == {429, 422}
    for kind in (Kind.OVERLOADED, Kind.QUOTA_EXCEEDED):
        assert KINDS[kind].cause in described[429]["description"]


def test_client_classes_follow_the_table() -> None:
    """One client class per kind, caught by category as the exit code sorts the kind: 2 the
    caller's fault, 4 retry later, 1 the server's bug; the client docstring names each."""
    from serving import client

    category = {
        errors.CALLER_FAULT: client.CallerError,
        errors.RETRY_LATER: client.RetryableError,
        errors.OUR_BUG: client.ServerError,
    }
    assert set(client.BY_KIND) == set(Kind)
    for kind, cls in client.BY_KIND.items():
        assert issubclass(cls, category[KINDS[kind].exit_code]), kind
        assert f"`{cls.__name__}` ({KINDS[kind].status}" in " ".join(
            (client.__doc__ or "").split()
        ), cls.__name__
    assert len({cls.__name__ for cls in client.BY_KIND.values()}) == len(Kind)
    server_names = {n for n in dir(errors) if isinstance(getattr(errors, n), type)}
    assert not server_names & {cls.__name__ for cls in client.BY_KIND.values()}


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (BadInput("bad"), 422, "invalid_input"),
        (ModelRefused("refused"), 409, "model_refused"),
        (ParityError("differs"), 409, "model_refused"),
        (NotReady("not ready"), 503, "unavailable"),
        (StoreUnavailable("down"), 503, "unavailable"),
        (ApiError(Kind.QUOTA_EXCEEDED, "quota", {"Retry-After": "3"}), 429, "quota_exceeded"),
    ],
)
def test_http_answers_each_cause_from_the_table(
    error: HelpdeskError, status: int, kind: str
) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fail")
    async def fail() -> None:
        raise error

    response = TestClient(app).get("/fail")
    assert response.status_code == status == error.status
    assert response.json() == {"error": {"type": kind, "message": str(error)}}
    assert response.headers.get("retry-after") == getattr(error, "headers", {}).get("Retry-After")


@pytest.mark.parametrize("cause", CAUSES)
def test_the_cli_exits_with_the_kinds_code_in_one_line(cause: type[HelpdeskError]) -> None:
    app = typer.Typer()

    @app.command()
    def step() -> None:
        with user_errors():
            raise cause("the reason")

    result = CliRunner().invoke(app, [])
    assert result.exit_code == KINDS[cause.default_kind].exit_code
    assert result.output.strip().splitlines() == ["error: the reason"]


def test_an_unreachable_store_in_the_cli_is_one_line_and_retry_later() -> None:
    url = "postgresql+psycopg://u:s3cret@127.0.0.1:1/none?connect_timeout=2"
    result = CliRunner().invoke(cli, ["feedback", "migrate", "--url", url])
    assert result.exit_code == KINDS[Kind.UNAVAILABLE].exit_code == 4
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot open the feedback store")
    assert "s3cret" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("module", ["serving.core.errors", "serving.http.guard", "serving.client"])
def test_the_error_modules_and_the_client_do_not_load_the_runtime(module: str) -> None:
    """A calling service imports the client (and its errors) without onnxruntime."""
    code = f"import sys, {module}; print('onnxruntime' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.strip() == "False"
