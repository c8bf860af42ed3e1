"""The review page's JSON API on a hand-written report and the tiny model, with the feedback
store on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from evaluation.review import ReviewSettings, create_review_app
from evaluation.review.predictions import confusion, load_report
from serving.cli import app as cli
from serving.core.errors import BadInput
from serving.feedback import FeedbackStore
from tests.review_fixture import QUEUE, agent_flag, write_report

PAGE = "http://127.0.0.1:8100"  # the page's own default host and port


@pytest.fixture
def settings(tmp_path: Path, tiny_release: Path, feedback_url: str) -> ReviewSettings:
    return ReviewSettings(
        report_dir=write_report(tmp_path / "report"),
        model_dir=tiny_release,
        store_url=feedback_url,
        reviewer="qa-test",
    )


@pytest.fixture
def client(settings: ReviewSettings) -> Iterator[TestClient]:
    with TestClient(create_review_app(settings), base_url=PAGE) as test_client:
        yield test_client


def ids(client: TestClient, **params: object) -> list[str]:
    response = client.get("/api/queue", params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_queue_filters(client: TestClient) -> None:
    assert ids(client) == QUEUE
    assert ids(client, head="complaint") == ["a1"]
    assert ids(client, kind="uncertain") == ["a4"]
    assert ids(client, head="frustration") == ["a3", "a4"]
    assert ids(client, head="frustration", kind="false_positive") == ["a3"]
    assert ids(client, source="complaints") == ["a2", "a4"]
    assert ids(client, head="frustration", score_min=0.6) == ["a3"]
    # without a head the range applies to the heads each sample is in the queue for
    assert ids(client, score_max=0.35) == ["a1", "a2"]
    page = client.get("/api/queue", params={"offset": 2, "limit": 1}).json()
    assert page["total"] == 4 and [i["id"] for i in page["items"]] == ["a2"]


def test_confusion_counts_and_cells(client: TestClient) -> None:
    counts = client.get("/api/confusion").json()
    assert counts["frustration"] == {"tp": 2, "fp": 1, "fn": 0, "tn": 3, "unlabelled": 0}
    assert counts["complaint"] == {"tp": 2, "fp": 0, "fn": 1, "tn": 3, "unlabelled": 0}
    assert counts["legitimacy"] == {"tp": 3, "fp": 0, "fn": 0, "tn": 0, "unlabelled": 3}
    # a cell lists every evaluated sample in it, not only the queue
    assert ids(client, head="frustration", cell="tn") == ["a2", "a5", "a6"]
    assert ids(client, head="complaint", cell="fn") == ["a1"]


def test_confusion_reads_the_decisions_serving_made(tmp_path: Path) -> None:
    """The page counts `predicted` as written by evaluate, not score >= threshold again: a
    policy override can put a decision on the other side of the manifest's threshold."""
    folder = write_report(tmp_path / "report")
    for path in (folder / "predictions.jsonl", folder / "misclassified.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for row in rows:
            if row["id"] == "a3":  # frustration 0.7 >= 0.5, yet decided "not frustrated"
                row["predicted"]["frustration"] = False
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    counts = confusion(load_report(folder).samples.values())
    assert counts["frustration"] == {"tp": 2, "fp": 0, "fn": 0, "tn": 4, "unlabelled": 0}


def test_judgement_is_stored_and_in_force(client: TestClient, settings: ReviewSettings) -> None:
    response = client.post(
        "/api/judgements", json={"sample_id": "a1", "head": "complaint", "label": 0}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["record"]["action"] == "correct"
    assert body["progress"] == {"reviewed": 1, "total": 4}
    detail = client.get("/api/samples/a1").json()
    force = detail["in_force"]["complaint"]
    assert (force["label"], force["author"], force["channel"]) == (0, "qa-test", "review")
    assert ids(client, status="reviewed") == ["a1"]
    assert ids(client, status="pending") == ["a3", "a2", "a4"]

    again = client.post(
        "/api/judgements", json={"sample_id": "a1", "head": "complaint", "label": 1}
    )
    assert again.json()["record"]["action"] == "confirm"
    assert client.get("/api/samples/a1").json()["in_force"]["complaint"]["label"] == 1

    store = FeedbackStore.open(settings.store_url)
    stored = store.records(sample_ids=["a1"])
    assert [(r.action, r.label, r.previous_label) for r in stored] == [
        ("correct", 0, 1.0),
        ("confirm", 1, 1.0),
    ]
    assert stored[0].model_score == pytest.approx(0.2)
    assert stored[0].text == "my order never arrived and i am angry"


def test_agent_flags_are_listed(client: TestClient, settings: ReviewSettings) -> None:
    FeedbackStore.open(settings.store_url).add([agent_flag("crm-1")])
    client.post("/api/judgements", json={"sample_id": "a3", "head": "frustration", "label": 1})
    flags = client.get("/api/feedback", params={"channel": "api"}).json()["items"]
    assert [(f["sample_id"], f["channel"], f["action"]) for f in flags] == [
        ("crm-1", "api", "flag")
    ]
    everything = client.get("/api/feedback").json()["items"]
    assert [f["sample_id"] for f in everything] == ["a3", "crm-1"]  # newest first


def test_sample_detail_has_attribution(client: TestClient) -> None:
    detail = client.get("/api/samples/a4").json()
    assert detail["sample"]["text"] == "charged twice this is terrible"
    assert detail["hard_labels"]["legitimacy"] == 1
    assert detail["cells"]["frustration"] == "tp"
    attribution = detail["attribution"]
    assert len(attribution["spans"]) == 5
    assert {h: len(v) for h, v in attribution["drops"].items()} == dict.fromkeys(
        ["frustration", "boredom", "complaint", "legitimacy"], 5
    )


@pytest.mark.parametrize(
    ("method", "path", "payload", "status"),
    [
        ("get", "/api/queue?head=anger", None, 422),
        ("get", "/api/queue?kind=bogus", None, 422),
        ("get", "/api/queue?score_min=0.8&score_max=0.2", None, 422),
        ("get", "/api/queue?score_min=2", None, 422),
        ("get", "/api/queue?cell=tp", None, 422),
        ("get", "/api/queue?limit=0", None, 422),
        ("get", "/api/samples/nope", None, 404),
        ("get", "/api/nothing", None, 404),
        ("post", "/api/judgements", {"sample_id": "a1", "head": "complaint", "label": 2}, 422),
        ("post", "/api/judgements", {"sample_id": "a1", "head": "anger", "label": 1}, 422),
        ("post", "/api/judgements", {"sample_id": "a1", "head": "complaint"}, 422),
        ("post", "/api/judgements", {"sample_id": "zz", "head": "complaint", "label": 1}, 404),
        (
            "post",
            "/api/judgements",
            {"sample_id": "a1", "head": "complaint", "label": 1, "author": "x"},
            422,
        ),
    ],
)
def test_bad_input_is_a_json_error(
    client: TestClient, method: str, path: str, payload: object, status: int
) -> None:
    response = client.request(method.upper(), path, json=payload)
    assert response.status_code == status
    assert set(response.json()["error"]) == {"type", "message"}


def test_malformed_json_body_is_refused(client: TestClient) -> None:
    response = client.post(
        "/api/judgements", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert "error" in response.json()


def test_page_and_assets_are_served_locally(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # no external requests
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200


def _two_objects_on_one_line(folder: Path) -> None:
    path = folder / "misclassified.jsonl"
    path.write_text(path.read_text().splitlines()[0] * 2)


def _line_without_labels(folder: Path) -> None:
    (folder / "predictions.jsonl").write_text(json.dumps({"id": "x", "text": "t"}) + "\n")


BREAKAGES = {
    "report file missing": lambda f: (f / "misclassified.jsonl").unlink(),
    "predictions.jsonl:1: not JSON": lambda f: (f / "predictions.jsonl").write_text("{oops\n"),
    "predictions.jsonl:1: labels: Field required": _line_without_labels,
    "misclassified.jsonl:1: not JSON": _two_objects_on_one_line,
}


@pytest.mark.parametrize("message", BREAKAGES)
def test_broken_report_is_one_clear_error(tmp_path: Path, message: str) -> None:
    folder = write_report(tmp_path / "report")
    BREAKAGES[message](folder)
    with pytest.raises(BadInput, match=message):
        load_report(folder)


def test_repeated_id_is_refused(tmp_path: Path) -> None:
    folder = write_report(tmp_path / "report")
    path = folder / "misclassified.jsonl"
    first = path.read_text().splitlines()[0]
    path.write_text(f"{first}\n{first}\n")
    with pytest.raises(BadInput, match=r"misclassified.jsonl:2: id 'a3' appears twice"):
        load_report(folder)


def test_cli_names_a_missing_report_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["review", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: report folder not found: {tmp_path / 'missing'}"
    ]


def test_cli_names_a_malformed_line_in_one_line(tmp_path: Path) -> None:
    folder = write_report(tmp_path / "report")
    (folder / "predictions.jsonl").write_text('{"id": "x"}\n')
    result = CliRunner().invoke(cli, ["review", str(folder)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {folder / 'predictions.jsonl'}:1: text: Field required"
    ]


@pytest.mark.parametrize(
    "host, origin, status",
    [
        ("127.0.0.1:8100", None, 200),
        ("localhost:8100", "http://localhost:8100", 200),
        ("attacker.example:8100", None, 403),  # DNS rebinding: another name, this address
        ("127.0.0.1:8100", "http://attacker.example:8100", 403),  # a cross-origin write
    ],
)
def test_the_page_answers_only_its_own_host_and_origin(
    settings: ReviewSettings, host: str, origin: str | None, status: int
) -> None:
    headers = {"Host": host, **({"Origin": origin} if origin else {})}
    judgement = {"sample_id": "a1", "head": "complaint", "label": 1}
    with TestClient(create_review_app(settings), base_url=PAGE) as client:
        response = client.post("/api/judgements", json=judgement, headers=headers)
        assert response.status_code == status, response.text
        read = client.get("/api/feedback", headers={"Host": host})
        assert read.status_code == (403 if host.startswith("attacker") else 200)
    if status == 403:
        assert response.json()["error"]["type"] == "forbidden"


def test_allowed_hosts_can_be_set(settings: ReviewSettings) -> None:
    from evaluation.review.settings import allowed_host_headers

    assert "127.0.0.1:8100" in allowed_host_headers(settings)
    settings.allowed_hosts = ["review.internal"]
    assert allowed_host_headers(settings) == {"review.internal", "review.internal:8100"}
