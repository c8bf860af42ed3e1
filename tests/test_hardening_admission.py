"""Issue 14 hardening: fair, work-counting admission; a batcher that cannot die quietly;
deadlines; and connection hygiene (stalled heads and bodies closed, a connection cap)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from serving.core.scorer import Scores, Timings
from serving.http.admission import Admission, QueueFull
from serving.http.app import create_app
from serving.http.auth import hash_key
from serving.http.batcher import MAX_RESTARTS, BatcherDown, BatchFailed, MicroBatcher
from serving.http.settings import Settings
from tests.server_process import free_port, running, start, stop, wait_ready


class Panic(BaseException):
    """Like pyo3's PanicException (the tokenizer's): not an Exception."""


@dataclass
class SlowScorer:
    """Records every batch; each text takes `seconds`; `panic` makes the next batch raise."""

    seconds: float = 0.0
    name: str = "a"
    batches: list[list[str]] = field(default_factory=list)
    panic: bool = False

    def score(
        self, texts: list[str], batch_size: int, timings: Timings, contexts: list[str]
    ) -> list[Scores]:
        if self.panic:
            self.panic = False
            raise Panic("tokenizer panicked")
        self.batches.append(list(texts))
        time.sleep(self.seconds * len(texts))
        return [Scores({"frustration": float(len(t))}, False) for t in texts]


@dataclass
class State:
    scorer: SlowScorer


def batcher_for(state: list[State], **options: object) -> MicroBatcher[State]:
    return MicroBatcher(lambda: state[0], max_batch=64, max_wait=0.0, **options)  # type: ignore[arg-type]


def test_a_single_behind_a_large_request_waits_at_most_one_batch() -> None:
    scorer = SlowScorer(seconds=0.005)

    def cost(text: str) -> int:
        return 4 if text.startswith("big") else 1

    async def main() -> None:
        batcher = batcher_for(
            [State(scorer)],
            max_tokens=16,
            admission=Admission(count=lambda texts, contexts: [cost(t) for t in texts]),
        )
        batcher.start()
        big = asyncio.ensure_future(batcher.submit([f"big {i}" for i in range(64)]))
        await asyncio.sleep(0.01)  # the first batch of the big request is running
        await batcher.submit(["single"])
        await big
        await batcher.stop()

    asyncio.run(main())
    single_in = next(i for i, batch in enumerate(scorer.batches) if "single" in batch)
    assert single_in == 1  # the batch right after the one running when it arrived
    assert scorer.batches[1] == ["single", "big 4", "big 5", "big 6"]  # padded: 4 x 4 tokens
    assert all(len(batch) * max(map(cost, batch)) <= 16 for batch in scorer.batches)
    assert len(scorer.batches) == 17


def test_admission_counts_work_ahead_and_admits_a_request_alone() -> None:
    scorer = SlowScorer(seconds=0.01)

    async def main() -> list[str]:
        batcher = batcher_for([State(scorer)], max_tokens=4, admission=Admission(20))
        batcher.start()
        outcomes = []
        alone = asyncio.ensure_future(batcher.submit(["x"] * 30))  # over the limit, alone
        await asyncio.sleep(0)
        for texts in (["y"] * 20, ["z"]):
            try:
                await batcher.submit(texts)
                outcomes.append("scored")
            except QueueFull:
                outcomes.append("429")
        await alone
        outcomes.append("alone scored")
        await batcher.stop()
        return outcomes

    # 20 texts behind 30: 20 ahead + 20 own > 20; one text behind 30: 1 ahead + 1 own
    assert asyncio.run(main()) == ["429", "scored", "alone scored"]


def test_a_request_is_scored_by_one_model_across_a_reload() -> None:
    old, new = State(SlowScorer(seconds=0.002, name="old")), State(SlowScorer(name="new"))
    current = [old]

    async def main() -> str:
        batcher = batcher_for(current, max_tokens=4)
        batcher.start()
        pending = asyncio.ensure_future(batcher.submit([f"t{i}" for i in range(16)]))
        await asyncio.sleep(0.005)
        current[0] = new  # hot reload while the request is half done
        _, state = await pending
        after, later = await batcher.submit(["after"])
        await batcher.stop()
        return f"{state.scorer.name}/{later.scorer.name}/{len(after)}"

    assert asyncio.run(main()) == "old/new/1"
    assert sum(len(b) for b in old.scorer.batches) == 16 and not new.scorer.batches[1:]


def test_a_panicking_batch_fails_only_its_requests_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scorer = SlowScorer()

    async def main() -> list[str]:
        batcher = batcher_for([State(scorer)])
        batcher.start()
        scorer.panic = True
        outcomes = []
        try:
            await batcher.submit(["first"])
        except BatchFailed as exc:
            outcomes.append(f"failed: {exc}")
        scores, _ = await batcher.submit(["next"])
        outcomes.append(f"scored {len(scores)}, alive {batcher.alive}")
        await batcher.stop()
        return outcomes

    with caplog.at_level(logging.ERROR, logger="helpdesk_scorer"):
        assert asyncio.run(main()) == ["failed: Panic", "scored 1, alive True"]
    failed = [r for r in caplog.records if r.getMessage() == "batch failed"]
    assert len(failed) == 1 and failed[0].fields["error"] == "Panic"  # type: ignore[attr-defined]
    assert "first" not in caplog.text


def test_a_dead_worker_is_restarted_and_given_up_on_if_it_keeps_dying(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> list[str]:
        batcher = batcher_for([State(SlowScorer())])
        batcher.start()
        real_pick = batcher._pick
        deaths = {"left": 1}

        def dying_pick():  # type: ignore[no-untyped-def]
            if deaths["left"]:
                deaths["left"] -= 1
                raise Panic("outside any batch")
            return real_pick()

        monkeypatch.setattr(batcher, "_pick", dying_pick)
        outcomes = [f"scored {len((await batcher.submit(['a']))[0])}"]  # after one restart
        deaths["left"] = MAX_RESTARTS + 10
        try:
            await batcher.submit(["b"])
        except BatcherDown:
            outcomes.append("down")
        outcomes.append(f"alive {batcher.alive}")
        with pytest.raises(BatcherDown):
            await batcher.submit(["c"])
        return outcomes

    with caplog.at_level(logging.ERROR, logger="helpdesk_scorer"):
        assert asyncio.run(main()) == ["scored 1", "down", "alive False"]
    assert sum(r.getMessage() == "batch worker died" for r in caplog.records) == MAX_RESTARTS + 1


def make_client(release: Path, **overrides: object) -> TestClient:
    settings = Settings(model_dir=release, threads=1, **overrides)  # type: ignore[arg-type]
    return TestClient(create_app(settings))


def test_readiness_and_liveness_fail_when_the_worker_is_gone(
    tiny_release: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_client(tiny_release) as client:
        assert client.head("/healthz").status_code == 200
        assert client.head("/readyz").status_code == 200
        batcher = client.app.state.runtime.batcher  # type: ignore[attr-defined]

        def dying_pick():  # type: ignore[no-untyped-def]
            raise Panic("the worker dies for good")

        monkeypatch.setattr(batcher, "_pick", dying_pick)
        response = client.post("/v1/score", json={"messages": [{"text": "hello"}]})
        assert response.status_code == 503 and response.json()["error"]["type"] == "unavailable"
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "batch worker" in ready.json()["error"]["message"]
        assert client.get("/healthz").status_code == 503  # so the liveness probe restarts it
        assert client.head("/readyz").status_code == 503
        metrics = client.get("/metrics").text
        assert f'helpdesk_batcher_failures_total{{what="worker"}} {MAX_RESTARTS + 1}.0' in metrics


def test_a_failed_batch_is_a_json_500_and_the_next_request_succeeds(tiny_release: Path) -> None:
    with make_client(tiny_release) as client:
        state = client.app.state.runtime.model  # type: ignore[attr-defined]
        real_score = state.scorer.score
        calls = {"n": 0}

        def panicking_once(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            if calls["n"] == 1:
                raise Panic("injected")
            return real_score(*args, **kwargs)

        object.__setattr__(state.scorer, "score", panicking_once)
        failed = client.post("/v1/score", json={"messages": [{"text": "hello"}]})
        assert failed.status_code == 500 and failed.json()["error"]["type"] == "internal_error"
        assert client.post("/v1/score", json={"messages": [{"text": "again"}]}).status_code == 200
        assert client.get("/readyz").status_code == 200


def test_a_score_request_past_its_deadline_is_a_json_504(tiny_release: Path) -> None:
    # a 3 s wait for batch-mates holds the request in the queue past its 0.5 s deadline
    with make_client(tiny_release, request_deadline_seconds=0.5, max_batch_wait_ms=3000) as c:
        started = time.perf_counter()
        response = c.post("/v1/score", json={"messages": [{"text": "hello"}]})
        assert time.perf_counter() - started < 2.5
        assert response.status_code == 504
        assert response.json()["error"]["type"] == "deadline_exceeded"
        assert "helpdesk_deadline_expired_total 1.0" in c.get("/metrics").text


def test_a_chunked_body_over_the_limit_is_413(tiny_release: Path) -> None:
    with make_client(tiny_release, max_body_bytes=1000) as client:
        body = json.dumps({"messages": [{"text": "x" * 2000}]}).encode()
        response = client.post(
            "/v1/score",
            content=iter([body[:500], body[500:]]),
            headers={"content-type": "application/json"},
        )
        assert "content-length" not in response.request.headers  # sent chunked
        assert response.status_code == 413 and response.json()["error"]["type"] == "too_large"


KEY = "test-key-for-hardening"
TIMEOUT = 3.0  # header and body timeouts of the server below


@pytest.fixture(scope="module")
def keyed_server(tiny_release: Path) -> Iterator[int]:
    keys = json.dumps([{"name": "crm", "sha256": hash_key(KEY), "scopes": ["score"]}])
    with running(
        tiny_release,
        HELPDESK_API_KEYS=keys,
        HELPDESK_TIMEOUT_HEADER_SECONDS=str(TIMEOUT),
        HELPDESK_TIMEOUT_BODY_SECONDS=str(TIMEOUT),
        HELPDESK_TIMEOUT_KEEP_ALIVE_SECONDS="1",
        HELPDESK_MAX_QUEUED_TOKENS="2048",
        HELPDESK_LOG_LEVEL="WARNING",
    ) as port:
        yield port


def open_stalled(port: int, first_bytes: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if first_bytes:
        sock.sendall(first_bytes)
    return sock


def read_to_close(sock: socket.socket, until: float) -> tuple[float | None, bytes]:
    """When the server closed the socket (None: still open at `until`), and what it sent."""
    data = b""
    while (left := until - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return time.monotonic(), data
        if not chunk:
            return time.monotonic(), data
        data += chunk
    return None, data


# keyed: a keyless body is answered 401 from its head at once (tests/test_auth_before_body.py)
STALLED_BODY = (
    b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    + f"X-API-Key: {KEY}\r\n".encode()
    + b'Content-Length: 1000\r\n\r\n{"messages": ['
)


def test_stalled_connections_lock_no_one_out_and_are_closed(
    keyed_server: int,
) -> None:
    port = keyed_server
    opened = time.monotonic()
    # more stalled bodies than the 64 request slots the server used to count before the body
    stalled = [open_stalled(port, STALLED_BODY) for _ in range(70)]
    stalled += [open_stalled(port, b"POST /v1/sco") for _ in range(40)]
    stalled += [open_stalled(port, b"") for _ in range(20)]
    statuses = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        for i in range(20):  # 20 requests/s while every stalled connection is held
            body = {"messages": [{"text": f"keyed request {i}"}]}
            statuses.append(client.post("/v1/score", json=body, headers={"X-API-Key": KEY}))
            time.sleep(0.05)
    assert time.monotonic() - opened < TIMEOUT  # the stalls were all held meanwhile
    assert [r.status_code for r in statuses] == [200] * 20
    closes = [read_to_close(sock, opened + TIMEOUT + 3) for sock in stalled]
    for sock in stalled:
        sock.close()
    assert all(at is not None for at, _ in closes), "a stalled connection stayed open"
    assert min(at for at, _ in closes if at) - opened >= TIMEOUT - 0.5  # held, then closed
    for _, data in closes[:70]:  # the stalled bodies got a JSON 408 first
        assert data.startswith(b"HTTP/1.1 408") and b'"body_timeout"' in data
    assert all(data == b"" for _, data in closes[70:])


def test_an_idle_keep_alive_connection_is_closed(keyed_server: int) -> None:
    sock = open_stalled(keyed_server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    sent = time.monotonic()
    closed, data = read_to_close(sock, sent + 4)
    sock.close()
    assert data.startswith(b"HTTP/1.1 200") and closed is not None and closed - sent < 3


def test_singles_get_no_429_behind_large_requests(keyed_server: int) -> None:
    url = f"http://127.0.0.1:{keyed_server}/v1/score"
    headers = {"X-API-Key": KEY}
    large = {"messages": [{"text": "my parcel is late again " * 800}] * 64}
    results: dict[str, list[int]] = {"large": [], "single": []}

    def send(kind: str, body: dict[str, object]) -> None:
        response = httpx.post(url, json=body, headers=headers, timeout=30)
        results[kind].append(response.status_code)

    threads = [threading.Thread(target=send, args=("large", large)) for _ in range(5)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    for i in range(20):
        send("single", {"messages": [{"text": f"single {i}"}]})
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    assert results["single"] == [200] * 20
    assert set(results["large"]) <= {200, 429} and 200 in results["large"]


def test_over_the_cap_the_longest_idle_connection_makes_room(tiny_release: Path) -> None:
    port = free_port()
    process = start(tiny_release, port, HELPDESK_MAX_CONNECTIONS="10")
    try:
        wait_ready(port, process)
        idle = []
        for _ in range(15):
            idle.append(open_stalled(port, b""))
            time.sleep(0.02)  # an order of arrival the server can see
        # a probe still gets in: its connection closes the longest idle one
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        now = time.monotonic()
        closed = [read_to_close(sock, now + 1.0)[0] is not None for sock in idle]
        for sock in idle:
            sock.close()
        assert closed == [True] * 6 + [False] * 9
    finally:
        stop(process)


def test_idle_connections_past_the_file_limit_do_not_exhaust_descriptors(
    tiny_release: Path,
) -> None:
    """The issue's 1100 idle connections with the limit at 1024, scaled to 400 and 256."""
    port = free_port()
    command = ["prlimit", "--nofile=256", sys.executable, "-m", "serving.cli"]
    process = start(tiny_release, port, command, HELPDESK_LOG_LEVEL="WARNING")
    try:
        wait_ready(port, process)
        idle = [open_stalled(port, b"") for _ in range(400)]
        started = time.perf_counter()
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        assert time.perf_counter() - started < 2
        for sock in idle:
            sock.close()
    finally:
        stop(process)
    stderr = process.communicate()[1]
    assert "connection cap lowered to the open-file limit" in stderr
    assert "out of system resource" not in stderr
