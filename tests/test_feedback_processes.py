"""Two real server processes share one feedback database (PostgreSQL, and a SQLite file):
started together (concurrent first migrations), hit concurrently by two callers whose every
request is also retried, with the same key, on the other server. Nothing lost, nothing twice,
and the review page on the same database lists every flag."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from evaluation.review import ReviewSettings, create_review_app
from serving.feedback import FeedbackStore
from serving.http.auth import hash_key
from tests.review_fixture import write_report
from tests.server_process import free_port, start, stop, wait_ready

CALLERS = {"agent-a": "key-of-agent-a", "agent-b": "key-of-agent-b"}
REQUESTS_PER_CALLER = 30  # of 2 judgements each, each request sent to both servers


def stored_count(metrics: str, outcome: str) -> float:
    found = re.search(rf'helpdesk_feedback_judgements_total{{outcome="{outcome}"}} (\S+)', metrics)
    return float(found.group(1)) if found else 0.0


def test_two_servers_store_every_judgement_once(
    tiny_release: Path, feedback_url: str, tmp_path: Path
) -> None:
    keys = [
        {"name": name, "sha256": hash_key(key), "scopes": ["feedback"]}
        for name, key in CALLERS.items()
    ]
    env = {
        "HELPDESK_FEEDBACK_URL": feedback_url,
        "HELPDESK_API_KEYS": json.dumps(keys),
        "HELPDESK_LOG_LEVEL": "WARNING",  # stderr is a pipe nobody reads until the end
    }
    ports = [free_port(), free_port()]
    servers = [start(tiny_release, port, **env) for port in ports]  # both migrate at once
    try:
        for port, server in zip(ports, servers, strict=True):
            wait_ready(port, server)
        urls = [f"http://127.0.0.1:{port}/v1/feedback" for port in ports]
        jobs = []
        for c, (name, key) in enumerate(CALLERS.items()):
            for i in range(REQUESTS_PER_CALLER):
                body = {
                    "judgements": [
                        {
                            "sample_id": f"{name}-ticket-{i}",
                            "head": head,
                            "label": i % 2,
                            "text": f"message {i} from {name}",
                            "key": f"{name}-{i}-{head}",
                        }
                        for head in ("frustration", "complaint")
                    ]
                }
                first = urls[(c + i) % 2]  # each caller starts on both servers in turn
                retry = urls[(c + i + 1) % 2]
                jobs += [(first, key, body), (retry, key, body)]

        def send(job: tuple[str, str, dict[str, object]]) -> tuple[int, list[dict[str, object]]]:
            url, key, body = job
            response = httpx.post(url, json=body, headers={"X-API-Key": key}, timeout=60)
            return response.status_code, response.json().get("records", [])

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(send, jobs))
        assert {status for status, _ in answers} == {201}
        # a request and its retry on the other server answer with the very same records
        for first, retry in zip(answers[::2], answers[1::2], strict=True):
            assert first[1] == retry[1]
        metrics = [httpx.get(url.replace("/v1/feedback", "/metrics")).text for url in urls]
        expected = len(CALLERS) * REQUESTS_PER_CALLER * 2
        assert sum(stored_count(m, "stored") for m in metrics) == expected
        assert sum(stored_count(m, "repeated") for m in metrics) == expected
        assert all(stored_count(m, "stored") > 0 for m in metrics)  # both servers wrote
    finally:
        for server in servers:
            stop(server)
    store = FeedbackStore.open(feedback_url)
    records = store.records(channel="api")
    store.close()
    assert len(records) == expected
    assert len({r.key for r in records}) == expected
    assert len({(r.sample_id, r.head) for r in records}) == expected
    assert {r.author for r in records} == set(CALLERS)
    assert {(r.author, r.sample_id) for r in records} == {
        (name, f"{name}-ticket-{i}") for name in CALLERS for i in range(REQUESTS_PER_CALLER)
    }
    review = ReviewSettings(
        report_dir=write_report(tmp_path / "report"), model_dir=tiny_release, store_url=feedback_url
    )
    with TestClient(create_review_app(review), base_url="http://127.0.0.1:8100") as page:
        listed = page.get("/api/feedback", params={"channel": "api", "limit": 1000}).json()
    assert sorted(item["key"] for item in listed["items"]) == sorted(r.key for r in records)
