"""POST /v1/feedback in-process (TestClient), on SQLite and PostgreSQL: stored records, retries,
auth and scopes, limits, JSON errors, a store that is off, down, or back up."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from evaluation.review.api import JudgementIn
from serving.feedback import FeedbackIn, FeedbackStore
from serving.feedback.schemas import Judgement
from serving.http.auth import hash_key
from serving.http.settings import ApiKey
from tests.test_server import error_of, make_client

TEXT = "charged twice this is terrible"


def flag(**changes: object) -> dict[str, object]:
    return {"sample_id": "ticket-1", "head": "frustration", "label": 1, "text": TEXT, **changes}


def limits(field: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema property's length bounds, also when it is nullable (anyOf)."""
    parts = [field, *field.get("anyOf", [])]
    return {k: v for part in parts for k, v in part.items() if k in ("minLength", "maxLength")}


@pytest.mark.parametrize("model", [Judgement, JudgementIn])
def test_api_models_take_the_stores_field_limits(model: type[BaseModel]) -> None:
    stored = FeedbackIn.model_json_schema()["properties"]
    sent = model.model_json_schema()["properties"]
    for field in ("sample_id", "key", "comment"):
        assert limits(sent[field]) == limits(stored[field]) != {}, field


@pytest.fixture
def client(tiny_release: Path, feedback_url: str) -> Iterator[TestClient]:
    with make_client(tiny_release, feedback_url=feedback_url, max_judgements=3, max_chars=500) as c:
        yield c


@pytest.fixture
def store(client: TestClient, feedback_url: str) -> Iterator[FeedbackStore]:
    opened = FeedbackStore.open(feedback_url)
    yield opened
    opened.close()


def test_flags_are_stored_as_api_feedback(client: TestClient, store: FeedbackStore) -> None:
    body = {
        "judgements": [
            flag(key="ticket-1-frus", model_score=0.12, comment="clearly upset"),
            flag(head="legitimacy", label=None, model_sha256="a" * 64),
        ]
    }
    response = client.post("/v1/feedback", json=body)
    assert response.status_code == 201
    records = response.json()["records"]
    assert [r["head"] for r in records] == ["frustration", "legitimacy"]
    assert {(r["channel"], r["action"], r["author"]) for r in records} == {
        ("api", "flag", "anonymous")
    }
    stored = store.records(channel="api")
    assert [(r.sample_id, r.head, r.label, r.text) for r in stored] == [
        ("ticket-1", "frustration", 1, TEXT),
        ("ticket-1", "legitimacy", None, TEXT),
    ]
    assert stored[0].model_score == 0.12 and stored[0].comment == "clearly upset"


def test_nul_characters_are_stored_as_replacement_characters(
    client: TestClient, store: FeedbackStore
) -> None:
    body = {"judgements": [flag(text="ok\x00", comment="a\x00b", sample_id="t\x00")]}
    assert client.post("/v1/feedback", json=body).status_code == 201
    (stored,) = store.records()
    assert (stored.text, stored.comment, stored.sample_id) == ("ok\ufffd", "a\ufffdb", "t\ufffd")


def test_retries_with_a_key_are_stored_once_and_counted(
    client: TestClient, store: FeedbackStore
) -> None:
    body = {"judgements": [flag(key="retry-key-1")]}
    first = client.post("/v1/feedback", json=body).json()["records"]
    again = client.post("/v1/feedback", json=body).json()["records"]
    assert first == again and len(store.records()) == 1
    client.post("/v1/feedback", json={"judgements": [flag()]})  # no key: a new record
    assert len(store.records()) == 2
    metrics = client.get("/metrics").text
    assert 'helpdesk_feedback_judgements_total{outcome="stored"} 2.0' in metrics
    assert 'helpdesk_feedback_judgements_total{outcome="repeated"} 1.0' in metrics


KEYS = {"crm-key": ["score"], "agent-key": ["feedback"], "ops-key": ["admin"]}


def test_auth_scopes_and_authors(tiny_release: Path, feedback_url: str, tmp_path: Path) -> None:
    keys = [
        ApiKey(name=k.split("-")[0], sha256=hash_key(k), scopes=scopes)
        for k, scopes in KEYS.items()
    ]
    body = {"judgements": [flag(key="same-client-key")]}
    with make_client(tiny_release, api_keys=keys, feedback_url=feedback_url) as c:
        assert c.post("/v1/feedback", json=body).status_code == 401
        denied = c.post("/v1/feedback", json=body, headers={"X-API-Key": "ops-key"})
        assert denied.status_code == 403 and "scope" in error_of(denied)["message"]
        authors = []
        for key in ("crm-key", "agent-key"):
            response = c.post("/v1/feedback", json=body, headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 201
            authors.append(response.json()["records"][0]["author"])
        # the same client key from two callers: two records, never one caller's answer
        assert authors == ["crm", "agent"]
        assert (
            c.post(
                "/v1/score", json={"messages": [{"text": "ok"}]}, headers={"X-API-Key": "agent-key"}
            ).status_code
            == 403
        )


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        ({"judgements": []}, 422, "judgements"),
        ({"judgements": [flag(head="anger")]}, 422, "unknown head"),
        ({"judgements": [flag(label=2)]}, 422, "label"),
        ({"judgements": [flag(label=True)]}, 422, "label"),
        ({"judgements": [flag(text="  ")]}, 422, "empty"),
        ({"judgements": [{"sample_id": "a", "head": "boredom", "label": 1}]}, 422, "text"),
        ({"judgements": [flag(action="correct")]}, 422, "action"),
        ({"judgements": [flag(author="someone else")]}, 422, "author"),
        ({"judgements": [flag(key="short")]}, 422, "key"),
        ({"judgements": [flag(sample_id="\ud800")]}, 422, "sample_id"),
        ({"judgements": [flag(text="ok \ud800")]}, 422, "text"),
        ({"judgements": [flag()] * 4}, 413, "at most 3"),
        ({"judgements": [flag(text="a" * 501)]}, 413, "characters"),
    ],
)
def test_bad_feedback_is_a_clear_json_error(
    client: TestClient, store: FeedbackStore, body: object, status: int, fragment: str
) -> None:
    raw = json.dumps(body)  # ASCII escapes carry the lone surrogate
    response = client.post(
        "/v1/feedback", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    assert fragment in error_of(response)["message"]
    assert store.records() == []


def test_empty_url_turns_feedback_off(tiny_release: Path) -> None:
    with make_client(tiny_release, feedback_url="") as c:
        response = c.post("/v1/feedback", json={"judgements": [flag()]})
        assert response.status_code == 404 and "turned off" in error_of(response)["message"]
        assert c.post("/v1/score", json={"messages": [{"text": "ok"}]}).status_code == 200


def test_store_down_is_503_then_recovers(tiny_release: Path, tmp_path: Path) -> None:
    folder = tmp_path / "not-yet"
    with make_client(tiny_release, feedback_url=f"sqlite:///{folder / 'f.db'}") as c:
        down = c.post("/v1/feedback", json={"judgements": [flag()]})
        assert down.status_code == 503
        assert "feedback store unavailable" in error_of(down)["message"]
        assert "Traceback" not in down.text
        assert c.post("/v1/score", json={"messages": [{"text": "ok"}]}).status_code == 200
        folder.mkdir()
        assert c.post("/v1/feedback", json={"judgements": [flag()]}).status_code == 201


def test_database_lost_after_start_stores_nothing(
    client: TestClient, store: FeedbackStore, feedback_url: str
) -> None:
    from sqlalchemy import create_engine

    service = client.app.state.feedback  # type: ignore[attr-defined]
    opened = service.get()
    working = opened.engine
    opened.engine = create_engine("sqlite:////nonexistent-dir/feedback.db")
    try:
        body = {"judgements": [flag(key="lost-key-1"), flag(key="lost-key-2")]}
        response = client.post("/v1/feedback", json=body)
        assert response.status_code == 503 and "nothing was stored" in error_of(response)["message"]
    finally:
        opened.engine = working
    assert store.records() == []


def test_openapi_documents_feedback(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/v1/feedback"]["post"]
    assert {"201", "401", "404", "413", "422", "503"} <= set(operation["responses"])
    components = schema["components"]["schemas"]
    assert components["FeedbackRequest"]["properties"]["judgements"]["maxItems"] == 3
    assert components["FeedbackRequest"]["examples"][0]["judgements"][0]["head"] == "frustration"
