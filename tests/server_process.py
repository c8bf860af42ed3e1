"""Start the real server (`helpdesk-scorer serve`) as a subprocess on a free loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evaluation.bench.server import free_port, poll_ready

__all__ = ["ROOT", "free_port", "running", "start", "stop", "wait_ready"]

ROOT = Path(__file__).parents[1]


def start(
    model: Path, port: int, command: list[str] | None = None, cwd: Path = ROOT, **env: str
) -> subprocess.Popen[str]:
    command = command or [sys.executable, "-m", "serving.cli"]
    return subprocess.Popen(
        [*command, "serve", "--model", str(model), "--port", str(port)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HELPDESK_THREADS": "1", **env},
    )


def wait_ready(port: int, process: subprocess.Popen[str], timeout: float = 60) -> None:
    if poll_ready(f"http://127.0.0.1:{port}", process, timeout):
        return
    if process.poll() is not None:
        raise AssertionError(f"server exited: {process.communicate()[1][-2000:]}")
    process.kill()
    raise AssertionError("server did not become ready")


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def running(model: Path, **env: str) -> Iterator[int]:
    """A ready server on a free port with these HELPDESK_* settings; its port."""
    port = free_port()
    process = start(model, port, **env)
    try:
        wait_ready(port, process)
        yield port
    finally:
        stop(process)
