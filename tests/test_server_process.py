"""The server as a real process: graceful shutdown under load, JSON logs, and the serving-only
install (what the Docker image does) in a fresh virtualenv without torch."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import venv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.server_process import ROOT, free_port, start, stop, wait_ready


def wait_in_flight(port: int, count: int, timeout: float = 10.0) -> None:
    """Block until the server reports `count` score requests in flight (a busy machine connects
    slowly, so a fixed sleep could signal before every request has arrived)."""
    deadline = time.monotonic() + timeout
    line = f"helpdesk_in_flight {float(count)}"
    while line not in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text:
        assert time.monotonic() < deadline, f"never saw {count} requests in flight"
        time.sleep(0.02)


def test_sigterm_finishes_in_flight_requests(tiny_release: Path) -> None:
    port = free_port()
    # a long batching wait keeps requests in flight when SIGTERM arrives
    process = start(tiny_release, port, HELPDESK_MAX_BATCH_WAIT_MS="3000")
    try:
        wait_ready(port, process)
        url = f"http://127.0.0.1:{port}/v1/score"

        def call(i: int) -> int:
            body = {"messages": [{"id": str(i), "text": f"request {i} is still waiting"}]}
            return httpx.post(url, json=body, timeout=30).status_code

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(call, i) for i in range(8)]
            wait_in_flight(port, 8)
            process.send_signal(signal.SIGTERM)
            statuses = [f.result() for f in futures]
        assert statuses == [200] * 8
        # uvicorn re-raises the captured SIGTERM after its graceful shutdown
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
        with pytest.raises(httpx.TransportError):
            httpx.post(url, json={"messages": [{"text": "late"}]}, timeout=2)
        stderr = process.communicate()[1]
        events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
        assert any(e.get("event") == "ready" for e in events)
        assert any(e.get("event") == "stopped" for e in events)  # lifespan shutdown completed
        assert sum(e.get("event") == "request" and e.get("status") == 200 for e in events) >= 8
        assert "request 3 is still waiting" not in stderr
    finally:
        if process.poll() is None:
            process.kill()


def test_serving_install_alone_runs_without_torch(tiny_release: Path, tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the work tree
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "serving", "training", "evaluation"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name)
        else:
            shutil.copy(ROOT / name, source / name)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    assert subprocess.run([python, "-c", "import torch"], capture_output=True).returncode != 0
    client = subprocess.run(
        [python, "-c", "import serving.client"], capture_output=True, text=True, cwd=tmp_path
    )
    assert client.returncode == 0, client.stderr[-2000:]  # httpx is a serving dependency
    hint = subprocess.run(
        [str(env_dir / "bin" / "helpdesk-scorer"), "prepare"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert hint.returncode == 2 and "pip install 'helpdesk-scorer[train]'" in hint.stderr
    port = free_port()
    process = start(tiny_release, port, [str(env_dir / "bin" / "helpdesk-scorer")], tmp_path)
    try:
        wait_ready(port, process)
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/score", json={"messages": [{"text": "ok"}]}, timeout=10
        )
        assert response.status_code == 200 and response.json()["results"][0]["route"]["name"]
    finally:
        stop(process)
