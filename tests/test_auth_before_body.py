"""Nothing reachable without a key: authentication before the body, failed keys slowed per
address, bodies in flight bounded, TE with CL refused and closed, requests that cannot finish
refused up front, offline docs, and metrics without per-head score histograms."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.http.auth import hash_key
from serving.http.auth_gate import FailureBuckets
from serving.http.settings import ApiKey
from tests.server_process import running
from tests.test_hardening_admission import make_client, read_to_close

SCORE_KEY, ADMIN_KEY = "score-key-for-the-gate", "admin-key-for-the-gate"
KEYS = [
    ApiKey(name="crm", sha256=hash_key(SCORE_KEY), scopes=["score"]),
    ApiKey(name="ops", sha256=hash_key(ADMIN_KEY), scopes=["admin"]),
]


def test_a_keyless_reload_with_a_broken_body_is_401_not_422(tiny_release: Path) -> None:
    with make_client(tiny_release, api_keys=KEYS) as client:
        response = client.post(
            "/v1/admin/reload", content=b"{", headers={"content-type": "application/json"}
        )
        assert response.status_code == 401 and response.json()["error"]["type"] == "unauthorized"
        scoped = client.post(
            "/v1/admin/reload",
            content=b"{",
            headers={"content-type": "application/json", "X-API-Key": SCORE_KEY},
        )
        assert scoped.status_code == 403 and "'admin' scope" in scoped.json()["error"]["message"]
        keyed = client.post(
            "/v1/admin/reload",
            content=b"{",
            headers={"content-type": "application/json", "X-API-Key": ADMIN_KEY},
        )
        assert keyed.status_code == 422  # past the gate, the body is read and refused
        assert client.get("/healthz").status_code == 200  # open routes need no key


def test_failed_keys_are_slowed_per_address_but_a_valid_key_passes(tiny_release: Path) -> None:
    with make_client(
        tiny_release, api_keys=KEYS, auth_failure_burst=3, auth_failure_rate=0.5
    ) as client:
        wrong = [
            client.get("/v1/info", headers={"X-API-Key": f"guess-{i}"}).status_code
            for i in range(5)
        ]
        assert wrong == [401, 401, 401, 429, 429]
        throttled = client.get("/v1/info", headers={"X-API-Key": "guess-5"})
        assert throttled.json()["error"]["type"] == "quota_exceeded"
        assert int(throttled.headers["Retry-After"]) >= 1
        assert client.get("/v1/info", headers={"X-API-Key": SCORE_KEY}).status_code == 200


def test_the_failure_buckets_refill_and_stay_bounded() -> None:
    buckets = FailureBuckets(burst=2, per_second=1.0, max_clients=3)
    assert [buckets.retry_after("a", now=0.0) for _ in range(3)] == [0, 0, 1]
    assert buckets.retry_after("a", now=1.5) == 0  # a token came back
    for client in "bcde":
        buckets.retry_after(client, now=2.0)
    assert len(buckets._buckets) == 3 and "a" not in buckets._buckets


def test_a_request_that_cannot_finish_is_refused_up_front(tiny_release: Path) -> None:
    with make_client(tiny_release, max_texts_per_request=10) as client:
        history = [f"turn {i}" for i in range(5)]
        messages = [{"text": "hi", "history": history} for _ in range(2)]  # 12 texts to score
        response = client.post("/v1/score", json={"messages": messages})
        assert response.status_code == 413
        assert "texts to score" in response.json()["error"]["message"]
        assert client.post("/v1/score", json={"messages": messages[:1]}).status_code == 200


def test_docs_load_their_assets_from_the_package(tiny_release: Path) -> None:
    with make_client(tiny_release) as client:
        for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
            html = client.get(page).text
            assert f"/static-offline-docs/{asset}" in html and "cdn." not in html
            assert client.get(f"/static-offline-docs/{asset}").status_code == 200


@pytest.mark.parametrize("histograms", [True, False])
def test_score_histograms_can_be_left_out_of_metrics(tiny_release: Path, histograms: bool) -> None:
    with make_client(tiny_release, metrics_score_histograms=histograms) as client:
        assert client.post("/v1/score", json={"messages": [{"text": "hello"}]}).status_code == 200
        text = client.get("/metrics").text
        assert ("helpdesk_score_bucket" in text) is histograms
        assert "helpdesk_requests_total" in text


@pytest.fixture(scope="module")
def gated_server(tiny_release: Path) -> Iterator[int]:
    with running(
        tiny_release,
        HELPDESK_API_KEYS=json.dumps([k.model_dump() for k in KEYS]),
        HELPDESK_MAX_BODY_BYTES_IN_FLIGHT="1000",
        HELPDESK_TIMEOUT_BODY_SECONDS="5",
        HELPDESK_LOG_LEVEL="WARNING",
    ) as port:
        yield port


def _send(port: int, head: bytes, body: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head + body)
    return sock


def test_a_keyless_body_is_never_waited_for(gated_server: int) -> None:
    head = (
        b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1900000\r\n\r\n"
    )
    sent = time.monotonic()
    sock = _send(gated_server, head, b'{"messages": [')  # the rest of the body never comes
    closed, data = read_to_close(sock, sent + 4)
    sock.close()
    assert data.startswith(b"HTTP/1.1 401") and b'"unauthorized"' in data
    assert closed is not None and closed - sent < 2  # answered and closed at once, no 408 wait


def test_transfer_encoding_with_content_length_is_400_and_closed(gated_server: int) -> None:
    head = (
        b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"X-API-Key: {SCORE_KEY}\r\n".encode()
        + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    sent = time.monotonic()
    sock = _send(gated_server, head, b"0\r\n\r\n")
    closed, data = read_to_close(sock, sent + 4)
    sock.close()
    assert data.startswith(b"HTTP/1.1 400") and closed is not None and closed - sent < 2


def test_bodies_in_flight_are_bounded_across_connections(gated_server: int) -> None:
    key = f"X-API-Key: {SCORE_KEY}\r\n".encode()
    head = b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + key
    held = _send(gated_server, head + b"Content-Length: 900\r\n\r\n", b"{" + b" " * 799)
    time.sleep(0.5)  # the server now holds 800 body bytes of the 1000-byte cap
    body = json.dumps({"messages": [{"text": "x" * 400}]}).encode()
    second = _send(gated_server, head + f"Content-Length: {len(body)}\r\n\r\n".encode(), body)
    _, data = read_to_close(second, time.monotonic() + 4)
    second.close()
    assert data.startswith(b"HTTP/1.1 429") and b"in flight" in data
    held.close()
    time.sleep(0.5)  # the held request ended: its bytes are released
    third = _send(gated_server, head + f"Content-Length: {len(body)}\r\n\r\n".encode(), body)
    _, data = read_to_close(third, time.monotonic() + 4)
    third.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
