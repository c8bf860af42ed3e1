"""The scoring server in-process (TestClient): every endpoint, limit, error, auth case, reload."""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.core.contract import HEADS
from serving.core.errors import BadInput
from serving.http.admission import QueueFull
from serving.http.app import create_app
from serving.http.auth import hash_key
from serving.http.settings import ApiKey, Settings

RESULT_KEYS = {
    "id",
    "scores",
    "labels",
    "route",
    "phrasing",
    "references",
    "uncertain",
    "truncated",
    "language",
}


def make_client(release: Path, **overrides: object) -> TestClient:
    settings = Settings(model_dir=release, threads=1, **overrides)  # type: ignore[arg-type]
    return TestClient(create_app(settings))


@pytest.fixture
def client(tiny_release: Path) -> Iterator[TestClient]:
    with make_client(
        tiny_release, max_messages=8, max_history=3, max_chars=500, max_body_bytes=20_000
    ) as c:
        yield c


def error_of(response) -> dict[str, str]:  # type: ignore[no-untyped-def]
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}
    return body["error"]


def test_score_returns_the_contract(client: TestClient) -> None:
    response = client.post(
        "/v1/score",
        json={
            "messages": [
                {"id": "a", "text": "my order never arrived and i am angry"},
                {"text": "ok"},
            ]
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"model", "results"}
    assert set(body["model"]) == {"name", "version", "sha256"}
    first, second = body["results"]
    assert set(first) == RESULT_KEYS and first["id"] == "a" and second["id"] is None
    assert set(first["scores"]) == set(HEADS) and set(first["labels"]) == set(HEADS)
    assert set(first["route"]) == {"name", "priority", "reason"}
    assert first["phrasing"] and "thread" not in first


def test_history_adds_a_thread(client: TestClient) -> None:
    response = client.post(
        "/v1/score",
        json={
            "messages": [
                {"id": 3, "text": "angry angry angry", "history": ["hello", "still waiting angry"]}
            ]
        },
    )
    result = response.json()["results"][0]
    assert result["id"] == "3"
    thread = result["thread"]
    assert len(thread["frustration"]) == 3
    assert thread["trend"] in ("rising", "steady", "falling")
    assert 0 <= thread["frustrated_in_a_row"] <= 3


def test_history_turns_with_roles(client: TestClient) -> None:
    """Plain strings stay customer turns; agent turns are context, not scored, not streaked."""
    plain = {"text": "angry angry angry", "history": ["hello", "still waiting angry"]}
    with_agent = {
        "text": "angry angry angry",
        "history": [
            {"role": "customer", "text": "hello"},
            {"role": "agent", "text": "please wait please wait"},
            "still waiting angry",
        ],
    }
    body = client.post("/v1/score", json={"messages": [plain, with_agent]}).json()
    first, second = body["results"]
    assert second["thread"] == first["thread"]
    assert len(second["thread"]["frustration"]) == 3
    assert second["scores"] == first["scores"]
    only_agent = {"text": "ok", "history": [{"role": "agent", "text": "anything else?"}]}
    result = client.post("/v1/score", json={"messages": [only_agent]}).json()["results"][0]
    assert "thread" not in result


@pytest.mark.parametrize(
    "turn, fragment",
    [
        ({"role": "boss", "text": "hi"}, "role"),
        ({"role": "agent", "text": ""}, "empty"),
        ({"role": "agent"}, "text"),
        ({"role": "agent", "text": "hi", "extra": 1}, "extra"),
        ({"role": "agent", "text": "a" * 501}, "characters"),
    ],
)
def test_bad_history_turns_are_clear_errors(
    client: TestClient, turn: dict[str, object], fragment: str
) -> None:
    response = client.post("/v1/score", json={"messages": [{"text": "ok", "history": [turn]}]})
    assert response.status_code in (413, 422)
    assert fragment in error_of(response)["message"]


def test_same_message_same_phrasing(client: TestClient) -> None:
    body = {"messages": [{"id": "x", "text": "charged twice this is terrible"}]}
    first = client.post("/v1/score", json=body).json()["results"][0]["phrasing"]
    assert client.post("/v1/score", json=body).json()["results"][0]["phrasing"] == first


def test_phrasing_names_the_customers_reference_from_this_message_only(
    client: TestClient,
) -> None:
    """The order the customer just named is acknowledged; one named only in history is not
    (an agent's turn could name anything, and an old reference may not be this one)."""
    messages = [
        {"text": "Order 4471 arrived with a cracked screen"},
        {
            "text": "still broken",
            "history": ["order 9911 is late", {"role": "agent", "text": "order 5522?"}],
        },
    ]
    named, earlier = client.post("/v1/score", json={"messages": messages}).json()["results"]
    assert any("order 4471" in p for p in named["phrasing"])
    assert named["references"] == [{"kind": "order", "value": "4471"}]
    assert earlier["references"] == [] and not any(
        c.isdigit() for p in earlier["phrasing"] for c in p
    )


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        ({"messages": []}, 422, "messages"),
        ({"messages": [{"text": ""}]}, 422, "empty"),
        ({"messages": [{"text": "   "}]}, 422, "empty"),
        ({"messages": [{"text": 42}]}, 422, "text"),
        ({"messages": [{"id": "a"}]}, 422, "text"),
        ({"messages": [{"text": "ok", "extra": 1}]}, 422, "extra"),
        ({"messages": "ok"}, 422, "messages"),
        ({"messages": [{"text": "ok", "history": ["fine", ""]}]}, 422, "history"),
        ({"messages": [{"text": "ok"}] * 9}, 413, "at most 8"),
        ({"messages": [{"text": "a" * 501}]}, 413, "characters"),
        ({"messages": [{"text": "ok", "history": ["x"] * 4}]}, 413, "turns"),
    ],
)
def test_bad_requests_are_clear_json_errors(
    client: TestClient, body: object, status: int, fragment: str
) -> None:
    response = client.post("/v1/score", json=body)
    assert response.status_code == status
    assert fragment in error_of(response)["message"]


def test_invalid_json_and_unknown_path(client: TestClient) -> None:
    response = client.post(
        "/v1/score", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and error_of(response)["type"] == "invalid_input"
    assert error_of(client.get("/nope"))["type"] == "not_found"
    assert client.get("/v1/score").status_code == 405


def test_body_size_limit(client: TestClient) -> None:
    response = client.post(
        "/v1/score", content=b"x" * 20_001, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and "larger than" in error_of(response)["message"]


def test_health_ready_info_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and len(ready["model_sha256"]) == 64
    info = client.get("/v1/info").json()
    assert info["heads"] == list(HEADS) and info["limits"]["max_messages"] == 8
    assert all(type(v) is int for v in info["limits"].values()), info["limits"]  # not 64.0
    assert set(info["thresholds"]) == set(HEADS)
    client.post("/v1/score", json={"messages": [{"text": "ok"}]})
    text = client.get("/metrics").text
    for needle in (
        'helpdesk_requests_total{route="/v1/score",status="200"}',
        'helpdesk_stage_seconds_count{stage="queue"}',
        'helpdesk_stage_seconds_count{stage="tokenize"}',
        'helpdesk_stage_seconds_count{stage="inference"}',
        "helpdesk_batch_texts_count",
        'helpdesk_score_count{head="boredom"}',
        "helpdesk_model_info",
    ):
        assert needle in text, needle


def test_overload_is_429_with_retry_after_and_health_is_never_shed(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    batcher = client.app.state.runtime.batcher  # type: ignore[attr-defined]

    async def full(texts: list[str], contexts: list[str] | None = None) -> None:
        raise QueueFull("queued ahead")

    monkeypatch.setattr(batcher, "submit", full)
    response = client.post("/v1/score", json={"messages": [{"text": "ok"}]})
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    assert error_of(response)["type"] == "overloaded"
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_draining_is_503_but_health_answers(client: TestClient) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    runtime.draining = True
    try:
        assert client.post("/v1/score", json={"messages": [{"text": "ok"}]}).status_code == 503
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
    finally:
        runtime.draining = False


def test_openapi_documents_examples_and_errors(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/v1/score"]["post"]
    assert {"200", "401", "413", "422", "429", "503"} <= set(operation["responses"])
    assert "examples" in schema["components"]["schemas"]["ScoreRequest"]


SCORE_KEY, ADMIN_KEY = "score-key-123", "admin-key-456"
KEYS = [
    ApiKey(name="crm", sha256=hash_key(SCORE_KEY), scopes=["score"]),
    ApiKey(name="ops", sha256=hash_key(ADMIN_KEY), scopes=["score", "admin"]),
]


@pytest.fixture
def secured(tiny_release: Path) -> Iterator[TestClient]:
    with make_client(tiny_release, api_keys=KEYS) as c:
        yield c


def test_auth(secured: TestClient, tiny_release: Path) -> None:
    body = {"messages": [{"text": "ok"}]}
    assert secured.post("/v1/score", json=body).status_code == 401
    assert secured.post("/v1/score", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
    ok = secured.post("/v1/score", json=body, headers={"Authorization": f"Bearer {SCORE_KEY}"})
    assert ok.status_code == 200
    reload = {"model_dir": str(tiny_release)}
    denied = secured.post("/v1/admin/reload", json=reload, headers={"X-API-Key": SCORE_KEY})
    assert denied.status_code == 403 and error_of(denied)["type"] == "forbidden"
    allowed = secured.post("/v1/admin/reload", json=reload, headers={"X-API-Key": ADMIN_KEY})
    assert allowed.status_code == 200
    assert secured.get("/healthz").status_code == 200  # probes need no key


def test_reload_swaps_and_a_bad_folder_keeps_the_old_model(
    client: TestClient, tiny_release: Path, tmp_path: Path
) -> None:
    good = tmp_path / "good"
    shutil.copytree(tiny_release, good)
    swapped = client.post("/v1/admin/reload", json={"model_dir": str(good)})
    assert swapped.status_code == 200 and swapped.json()["status"] == "swapped"
    bad = tmp_path / "bad"
    shutil.copytree(tiny_release, bad)
    (bad / "tokenizer.json").write_text("{}")
    refused = client.post("/v1/admin/reload", json={"model_dir": str(bad)})
    assert refused.status_code == 409 and "checksum" in error_of(refused)["message"]
    pickle = tmp_path / "pickle"
    shutil.copytree(tiny_release, pickle)
    (pickle / "extra.pkl").write_bytes(b"\x80\x04K\x01.")
    refused = client.post("/v1/admin/reload", json={"model_dir": str(pickle)})
    assert refused.status_code == 409 and "extra.pkl" in error_of(refused)["message"]
    assert client.post("/v1/score", json={"messages": [{"text": "ok"}]}).status_code == 200
    assert client.get("/readyz").status_code == 200


def test_info_reports_the_rules_the_scores_are_decided_by(
    tiny_release: Path, tmp_path: Path
) -> None:
    """A policy override of the frustration threshold is what /v1/info shows, as the threshold
    and as the mild level, and what labels and routing apply."""
    policy = tmp_path / "policy.toml"
    default = (
        Path(__file__).parents[1] / "serving" / "core" / "decision" / "policy.toml"
    ).read_text()
    policy.write_text("[thresholds]\nfrustration = 0.999\nuncertainty_margin = 0.0\n" + default)
    with make_client(tiny_release, policy_file=policy) as c:
        info = c.get("/v1/info").json()
        assert info["thresholds"]["frustration"] == 0.999
        assert info["frustration_levels"]["mild"] == 0.999
        assert info["frustration_levels"]["strong"] >= 0.999
        assert info["uncertainty_margin"] == 0.0
        result = c.post("/v1/score", json={"messages": [{"text": "angry angry angry"}]}).json()
        decided = result["results"][0]
        assert decided["labels"]["frustration"] == "none"
        assert not re.search(r"frustration [0-9.]+ >=", decided["route"]["reason"])


def test_broken_policy_fails_at_start(tiny_release: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[[rules]]\nname = 'x'\n")
    with pytest.raises(BadInput, match="policy"):
        create_app(Settings(model_dir=tiny_release, policy_file=policy))


def test_logs_never_contain_message_text(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = ["jane.doe@example.com", "4111 1111 1111 1111", "+44 7700 900123"]
    caplog.set_level(logging.DEBUG)
    client.post(
        "/v1/score",
        json={"messages": [{"text": f"my card {secrets[1]} mail {secrets[0]} call {secrets[2]}"}]},
    )
    client.post("/v1/score", json={"messages": [{"text": secrets[0] * 2000}]})  # 413
    records = [
        json.dumps({"msg": r.getMessage(), **getattr(r, "fields", {})}, default=str)
        for r in caplog.records
    ]
    assert any('"status": 200' in r for r in records)
    metrics = client.get("/metrics").text
    for secret in secrets:
        assert all(secret not in r for r in records)
        assert secret not in metrics


@pytest.mark.parametrize(
    "content, expected",
    [("50000 100000", 1), ("150000 100000", 2), ("max 100000", None), ("", None)],
)
def test_thread_budget_follows_the_cgroup_quota(
    tmp_path: Path, content: str, expected: int | None
) -> None:
    import os

    from serving.http.settings import _cpu_quota

    path = tmp_path / "cpu.max"
    path.write_text(content)
    cpus = len(os.sched_getaffinity(0))
    assert _cpu_quota(path) == (min(cpus, expected) if expected else cpus)


def test_serve_refuses_a_bad_model_folder_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "serving.cli", "serve", "--model", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[1],
    )
    assert result.returncode == 2 and "has no manifest.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_key_check_compares_every_stored_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Constant time: the same number of constant-time comparisons whichever key matches."""
    import hmac

    from serving.http import auth

    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: str, b: str) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    for presented in (SCORE_KEY, ADMIN_KEY, "wrong"):
        calls.clear()
        auth.authenticate(presented, KEYS)
        assert len(calls) == len(KEYS)
    assert auth.authenticate(ADMIN_KEY, KEYS) is KEYS[1]
    assert auth.authenticate(None, KEYS) is None


def test_the_default_model_is_the_checkouts_release_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`helpdesk-scorer score` run outside the checkout once looked for ./models/release; the
    default is now absolute, and a missing folder says how to point at another."""
    import subprocess
    import sys

    from serving.core.contract import RELEASE_DIR
    from serving.http.settings import Settings

    monkeypatch.chdir(tmp_path)
    assert RELEASE_DIR.is_absolute() and (RELEASE_DIR / "manifest.json").is_file()
    assert Settings().model_dir == RELEASE_DIR
    result = subprocess.run(
        [sys.executable, "-m", "serving.cli", "serve", "--model", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "--model or HELPDESK_MODEL_DIR" in result.stderr
