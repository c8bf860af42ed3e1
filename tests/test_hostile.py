"""Hostile input, one case per test: a clear 4xx JSON error or a correct result, never a 500,
never a hang (each request runs under a timeout)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from serving.http.app import create_app
from serving.http.settings import Settings

TIMEOUT = 60


@pytest.fixture(scope="module")
def client(tiny_release: Path) -> Iterator[TestClient]:
    app = create_app(Settings(model_dir=tiny_release, threads=1))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def post(client: TestClient, body: bytes) -> httpx.Response:
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(
            client.post, "/v1/score", content=body, headers={"content-type": "application/json"}
        )
        return future.result(timeout=TIMEOUT)


def as_json(obj: object) -> bytes:
    return json.dumps(obj).encode()


def one(text: object, **extra: object) -> bytes:
    return as_json({"messages": [{"text": text, **extra}]})


CASES = {
    "empty text": (one(""), 422),
    "whitespace only": (one(" \t\n "), 422),
    "1 MB message": (one("a" * 1_000_000), 413),
    "10,000 short messages": (as_json({"messages": [{"text": "ok"}] * 10_000}), 413),
    "null bytes": (one("refund\x00please\x00"), 200),
    "invalid UTF-8 bytes": (b'{"messages": [{"text": "\xff\xfe\xfd"}]}', 400),
    "lone surrogate escape": (b'{"messages": [{"text": "\\ud800 hi"}]}', 422),
    "lone surrogate in history": (
        b'{"messages": [{"text": "hi", "history": ["ok", "\\ud800 earlier"]}]}',
        422,
    ),
    "zero-width and bidi override": (one("re\u200bfund \u202edesrever\u202c now\u2066"), 200),
    "homoglyphs": (one("I want my r\u0435fund, \u0430ccount 4471"), 200),
    "emoji only": (one("\U0001f621\U0001f621\U0001f525\U0001f44e"), 200),
    "mixed scripts": (one("Hello 你好 مرحبا Привет where is my order?"), 200),
    "deeply nested arrays": (b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400),
    "deeply nested objects": (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, 400),
    "text is a number": (one(42), 422),
    "text is a list": (one(["a", "b"]), 422),
    "messages is an object": (as_json({"messages": {"text": "ok"}}), 422),
    "id is a list": (one("ok", id=[1, 2]), 422),
    "huge integer id": (b'{"messages": [{"id": ' + b"9" * 5000 + b', "text": "ok"}]}', 400),
    "missing text": (as_json({"messages": [{"id": "a"}]}), 422),
    "missing messages": (as_json({}), 422),
    "not JSON": (b"text=hello", 422),
    "empty body": (b"", 422),
    "huge history": (one("ok", history=["earlier turn"] * 1000), 413),
    "history of numbers": (one("ok", history=[1, 2]), 422),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input(client: TestClient, name: str) -> None:
    body, expected = CASES[name]
    response = post(client, body)
    assert response.status_code == expected, response.text[:300]
    payload = response.json()
    if expected >= 400:
        assert set(payload) == {"error"} and payload["error"]["message"]
    else:
        result = payload["results"][0]
        assert set(result["scores"]) == {"frustration", "boredom", "complaint", "legitimacy"}


def test_duplicate_ids_each_get_a_result(client: TestClient) -> None:
    body = as_json({"messages": [{"id": "a", "text": "ok"}, {"id": "a", "text": "angry"}]})
    response = post(client, body)
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == ["a", "a"]


def test_server_still_scores_after_the_corpus(client: TestClient) -> None:
    """Readiness alone reads flags no request changes; a normal message scored after the whole
    corpus shows the batcher and the model survived it."""
    for name in CASES:
        post(client, CASES[name][0])
    response = post(client, one("my order is late again"))
    assert response.status_code == 200
    (result,) = response.json()["results"]
    assert set(result["scores"]) == {"frustration", "boredom", "complaint", "legitimacy"}
