"""serving.client: retries on 429/503 against a scripted HTTP stub (the waits recorded, not
slept), one error class per kind, and typed results and errors from the real server process."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from serving.client import (
    BY_KIND,
    DeadlineExceeded,
    Forbidden,
    InvalidInput,
    Overloaded,
    QuotaExceeded,
    ScorerClient,
    ScorerError,
    TransportError,
    Unauthorized,
    Unavailable,
    error_for,
)
from serving.core.contract import HEADS
from serving.core.errors import KINDS, STATUS_KINDS, Kind
from serving.core.schemas import Message, ScoreResponse, Turn
from serving.http.auth import hash_key
from serving.http.guard import error_response
from serving.http.settings import Settings
from tests.server_process import free_port, start, stop, wait_ready
from tests.test_server_process import wait_in_flight

RESULT: dict[str, object] = {
    "id": None,
    "scores": dict.fromkeys(HEADS, 0.1),
    "labels": {"frustration": "none", "boredom": False, "complaint": False, "legitimacy": None},
    "route": {"name": "standard", "priority": "normal", "reason": "stub"},
    "phrasing": [],
    "uncertain": [],
    "truncated": False,
    "language": {"supported": True, "detected": "en"},
}
OK = {"model": {"name": "stub", "version": "0", "sha256": "0" * 64}, "results": [RESULT]}


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def body(self) -> bytes:
        if self.status == 200:
            return json.dumps(OK).encode()
        return bytes(error_response(STATUS_KINDS[self.status], "scripted").body)


@dataclass
class Stub:
    """A real HTTP server answering from a script (its last answer repeats)."""

    script: list[Answer]
    requests: list[dict[str, str]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def stub() -> Iterator[Stub]:
    state = Stub(script=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append(dict(self.headers))
            answer = state.script[min(len(state.requests), len(state.script)) - 1]
            time.sleep(answer.delay)
            body = answer.body()
            self.send_response(answer.status)
            for name, value in {**answer.headers, "Content-Type": "application/json"}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def client_for(
    stub: Stub, waits: list[float], max_retries: int = 3, max_wait: float = 30
) -> ScorerClient:
    return ScorerClient(stub.url, sleep=waits.append, max_retries=max_retries, max_wait=max_wait)


def test_429_is_retried_after_each_retry_after(stub: Stub) -> None:
    stub.script = [
        Answer(429, {"Retry-After": "2"}),
        Answer(429, {"Retry-After": "1"}),
        Answer(200),
    ]
    waits: list[float] = []
    with client_for(stub, waits) as client:
        result = client.score_one("late parcel")
    assert result.route.name == "standard"
    assert len(stub.requests) == 3
    assert waits == [2.0, 1.0]


def test_retries_stop_at_max_retries(stub: Stub) -> None:
    stub.script = [Answer(429, {"Retry-After": "1"})]
    waits: list[float] = []
    with client_for(stub, waits, max_retries=2) as client, pytest.raises(Overloaded) as caught:
        client.score(["late parcel"])
    assert len(stub.requests) == 3 and waits == [1.0, 1.0]
    assert (caught.value.status, caught.value.kind) == (429, Kind.OVERLOADED)
    assert caught.value.retry_after == 1.0


def test_retries_stop_before_the_total_wait_exceeds_max_wait(stub: Stub) -> None:
    stub.script = [Answer(429, {"Retry-After": "10"})]
    waits: list[float] = []
    with client_for(stub, waits, max_retries=5, max_wait=15) as client, pytest.raises(Overloaded):
        client.score(["late parcel"])
    assert len(stub.requests) == 2 and waits == [10.0]


def test_503_without_retry_after_backs_off_exponentially(stub: Stub) -> None:
    stub.script = [Answer(503), Answer(503), Answer(200)]
    waits: list[float] = []
    with client_for(stub, waits) as client:
        assert isinstance(client.score(["late parcel"]), ScoreResponse)
    assert waits == [0.5, 1.0]


@pytest.mark.parametrize("status", [s for s in STATUS_KINDS if s not in (429, 503)])
def test_other_errors_are_raised_without_retry(stub: Stub, status: int) -> None:
    stub.script = [Answer(status, {"Retry-After": "1"}), Answer(200)]
    waits: list[float] = []
    with client_for(stub, waits) as client, pytest.raises(BY_KIND[STATUS_KINDS[status]]) as caught:
        client.score(["late parcel"])
    assert len(stub.requests) == 1 and waits == []
    assert caught.value.status == status and caught.value.message == "scripted"


def test_api_key_is_sent_as_a_bearer_token(stub: Stub) -> None:
    stub.script = [Answer(200)]
    with ScorerClient(stub.url, api_key="k-123") as client:
        client.score([Message(id=7, text="hi", history=[Turn(role="agent", text="hello")])])
    assert stub.requests[0]["Authorization"] == "Bearer k-123"


def test_a_slow_answer_is_a_transport_error(stub: Stub) -> None:
    stub.script = [Answer(200, delay=1.0)]
    timeout = httpx.Timeout(0.2, connect=2.0)
    with ScorerClient(stub.url, timeout=timeout) as client, pytest.raises(TransportError) as caught:
        client.score(["late parcel"])
    assert caught.value.status is None


def test_no_server_is_a_transport_error() -> None:
    with ScorerClient(f"http://127.0.0.1:{free_port()}") as client, pytest.raises(TransportError):
        client.score(["late parcel"])


def test_every_server_error_type_has_its_own_class() -> None:
    assert set(BY_KIND) == set(KINDS)
    assert len(set(BY_KIND.values())) == len(BY_KIND)
    for kind, info in KINDS.items():
        answer = httpx.Response(info.status, json={"error": {"type": kind, "message": "m"}})
        error = error_for(answer)
        assert type(error) is BY_KIND[kind] and error.kind == kind and error.status == info.status
    quota = error_for(
        httpx.Response(429, json={"error": {"type": Kind.QUOTA_EXCEEDED, "message": "m"}})
    )
    assert type(quota) is QuotaExceeded and isinstance(quota, Overloaded)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (httpx.Response(422, json={"error": {"type": "brand_new", "message": "m"}}), ScorerError),
        (
            httpx.Response(504, json={"error": {"type": "deadline", "message": "m"}}),
            DeadlineExceeded,
        ),
        (httpx.Response(503, text="<html>upstream down</html>"), Unavailable),
        (httpx.Response(502, text="bad gateway"), ScorerError),
    ],
    ids=["unknown-type", "504-by-status", "no-body-by-status", "unknown-status"],
)
def test_unlisted_errors_fall_back(response: httpx.Response, expected: type[ScorerError]) -> None:
    assert type(error_for(response)) is expected


SCORE_KEY, FEEDBACK_KEY = "score-key", "feedback-only-key"


@pytest.fixture(scope="module")
def server(tiny_release: Path) -> Iterator[str]:
    """The real server, with keys, a queue limit one short request fills (a second one gets
    429) and a batching wait that keeps a request queued long enough to be overtaken."""
    keys = [
        {"name": "crm", "sha256": hash_key(SCORE_KEY), "scopes": ["score"]},
        {"name": "agent-tool", "sha256": hash_key(FEEDBACK_KEY), "scopes": ["feedback"]},
    ]
    port = free_port()
    process = start(
        tiny_release,
        port,
        HELPDESK_API_KEYS=json.dumps(keys),
        HELPDESK_MAX_QUEUED_TOKENS="8",
        HELPDESK_MAX_BATCH_WAIT_MS="1500",
        HELPDESK_LOG_LEVEL="WARNING",  # stderr is a pipe nobody reads until the end
    )
    try:
        wait_ready(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def test_real_server_scores_into_typed_results(server: str) -> None:
    with ScorerClient(server, api_key=SCORE_KEY) as client:
        response = client.score(["my order never arrived and i am angry", Message(id=2, text="ok")])
        threaded = client.score_one("still waiting angry", history=["hello", "late parcel"])
        explained = client.score_one("late parcel angry", explain=True)
        info = client.info()
    assert [r.id for r in response.results] == [None, "2"]
    assert response.results[0].explanation is None
    assert explained.explanation is not None
    assert response.model == info.model and set(info.heads) == set(HEADS)
    assert threaded.thread is not None and len(threaded.thread.frustration) == 3


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [
        (SCORE_KEY, "   ", InvalidInput),
        ("not-a-key", "late parcel", Unauthorized),
        (FEEDBACK_KEY, "late parcel", Forbidden),
    ],
    ids=["blank-text", "unknown-key", "missing-scope"],
)
def test_real_server_errors_are_typed(
    server: str, key: str, text: str, expected: type[ScorerError]
) -> None:
    with ScorerClient(server, api_key=key) as client, pytest.raises(expected) as caught:
        client.score_one(text)
    assert caught.value.kind in KINDS and caught.value.message


def test_real_server_429_is_retried_after_its_retry_after(server: str) -> None:
    """A request holds the only in-flight slot; the client's first try gets 429, and its retry
    (the injected sleep returns once the slot is free) is scored."""
    body = {"messages": [{"text": "holding the slot"}]}
    headers = {"Authorization": f"Bearer {SCORE_KEY}"}
    done = threading.Event()
    statuses: list[int] = []

    def hold() -> None:
        statuses.append(
            httpx.post(f"{server}/v1/score", json=body, headers=headers, timeout=30).status_code
        )
        done.set()

    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        assert done.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    wait_in_flight(int(server.rsplit(":", 1)[1]), 1)
    with ScorerClient(server, api_key=SCORE_KEY, sleep=sleep) as client:
        result = client.score_one("late parcel")
    holder.join()
    assert statuses == [200]
    assert waits == [Settings.model_fields["retry_after_seconds"].default]
    assert set(result.scores.model_dump()) == set(HEADS)
