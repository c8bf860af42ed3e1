"""Issue 14: the model folder's identity covers every file, manifest fields fit the graph, the
listed 500s are 4xx JSON errors, no slash redirects, a feedback quota, flat reload memory."""

from __future__ import annotations

import gc
import hashlib
import json
import re
import shutil
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from serving.core.artifact import ModelError, checksum_lines, folder_digest, seal, verify_folder
from serving.core.contract import CHECKSUMS_FILE, MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE
from serving.core.files import sha256_file
from serving.http.feedback_service import QUOTA_WINDOW_SECONDS, FeedbackQuota
from serving.http.settings import ApiKey
from tests.server_process import free_port, start, stop, wait_ready
from tests.test_server import error_of, make_client

OK = {"messages": [{"text": "ok"}]}


def edit_manifest(folder: Path) -> None:
    """The attack of the issue: thresholds at 0.99 route a furious complaint to `standard`."""
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    manifest["thresholds"] = dict.fromkeys(manifest["thresholds"], 0.99)
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))


def edit_tokenizer(folder: Path) -> None:
    (folder / TOKENIZER_FILE).write_text((folder / TOKENIZER_FILE).read_text() + "\n")


def edit_graph(folder: Path) -> None:
    data = bytearray((folder / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / MODEL_FILE).write_bytes(bytes(data))


EDITS: dict[str, Callable[[Path], None]] = {
    MANIFEST_FILE: edit_manifest,
    TOKENIZER_FILE: edit_tokenizer,
    MODEL_FILE: edit_graph,
}


def edited(release: Path, target: Path, victim: str) -> Path:
    shutil.copytree(release, target)
    EDITS[victim](target)
    return target


def resealed(release: Path, target: Path, change: Callable[[dict[str, object]], None]) -> Path:
    """A copy whose manifest was changed and SHA256SUMS rewritten (`sha256sum * > SHA256SUMS`),
    as a careful attacker would: only the digest changes, and the manifest's fields are
    checked."""
    shutil.copytree(release, target)
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    change(manifest)
    (target / MANIFEST_FILE).write_text(json.dumps(manifest))
    hashes = {p.name: sha256_file(p) for p in target.iterdir() if p.name != CHECKSUMS_FILE}
    (target / CHECKSUMS_FILE).write_text(checksum_lines(hashes))
    return target


@pytest.fixture
def client(tiny_release: Path, feedback_url: str) -> TestClient:
    with make_client(tiny_release, feedback_url=feedback_url, max_chars=30_000) as c:
        yield c


@pytest.mark.parametrize("victim", list(EDITS))
def test_an_edited_file_is_refused_at_start_naming_it(
    tiny_release: Path, tmp_path: Path, victim: str
) -> None:
    folder = edited(tiny_release, tmp_path / "model", victim)
    process = start(folder, free_port())
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        stop(process)
    assert process.returncode != 0
    assert f"checksum mismatch for {folder / victim}" in stderr and "Traceback" not in stderr


@pytest.mark.parametrize("victim", list(EDITS))
def test_an_edited_file_is_refused_at_reload_and_the_old_model_serves(
    client: TestClient, tiny_release: Path, tmp_path: Path, victim: str
) -> None:
    folder = edited(tiny_release, tmp_path / "model", victim)
    refused = client.post("/v1/admin/reload", json={"model_dir": str(folder)})
    assert refused.status_code == 409 and victim in error_of(refused)["message"]
    served = client.post("/v1/score", json=OK)
    assert served.status_code == 200
    assert served.json()["model"]["sha256"] == folder_digest(tiny_release)


def test_an_unsealed_or_unlisted_file_is_refused(tiny_release: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_release, folder)
    (folder / "notes.txt").write_text("hello")
    with pytest.raises(ModelError, match=r"notes\.txt"):
        verify_folder(folder)
    (folder / "notes.txt").unlink()
    (folder / CHECKSUMS_FILE).unlink()
    with pytest.raises(ModelError, match=CHECKSUMS_FILE):
        verify_folder(folder)
    edit_graph(folder)
    with pytest.raises(ModelError, match=re.escape(f"lists ['{MODEL_FILE}'] with another sha256")):
        seal(folder)  # sealing checks the manifest's own checksums first


GRAPH_FIELDS = ("inputs", "max_length 128")


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda m: m.update(max_length=4096), "max_length"),
        (lambda m: m["calibration"]["temperature"].update(boredom=240.0), "temperature.boredom"),
        (lambda m: m["thresholds"].update(complaint=1.5), "thresholds.complaint"),
        (lambda m: m["thresholds"].pop("legitimacy"), "thresholds"),
        (lambda m: m.update(heads=["frustration"]), "heads"),
        (lambda m: m.update(inputs=["input_ids", "attention_mask"]), "inputs"),
        (lambda m: m.update(max_length=128), "max_length 128"),  # > the graph's 64 positions
        (lambda m: m.update(uncertainty_margin=-1), "uncertainty_margin"),
        (lambda m: m.update(name="\ud800"), "name"),
        (lambda m: m["frustration_levels"].update(strong=0.01), "frustration_levels"),
    ],
)
def test_resealed_manifest_fields_are_checked_against_the_graph(
    tiny_release: Path, tmp_path: Path, change: Callable[[dict[str, object]], None], field: str
) -> None:
    from serving.core.scorer import Scorer

    folder = resealed(tiny_release, tmp_path / "model", change)
    with pytest.raises(ModelError, match=MANIFEST_FILE) as refused:
        Scorer.load(folder, threads=1)
    assert field in str(refused.value)
    if field not in GRAPH_FIELDS:  # what needs the graph is checked at load only
        with pytest.raises(ModelError, match=field):
            seal(folder)  # nor will `python -m serving.core.artifact` seal it


def test_a_resealed_manifest_without_golden_scores_is_refused_at_reload(
    client: TestClient, tiny_release: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_release, folder)
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    del manifest["golden"]
    manifest["calibration"]["temperature"] = dict.fromkeys(manifest["thresholds"], 20.0)
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    seal(folder)
    refused = client.post("/v1/admin/reload", json={"model_dir": str(folder)})
    assert refused.status_code == 409 and "no golden scores" in error_of(refused)["message"]


def test_a_resealed_tokenizer_the_graph_cannot_take_is_refused(
    tiny_release: Path, tmp_path: Path
) -> None:
    from tokenizers import Tokenizer

    from serving.core.scorer import Scorer

    folder = tmp_path / "model"
    shutil.copytree(tiny_release, folder)
    tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
    tokenizer.add_tokens([f"new{i}" for i in range(50)])  # ids past the word embeddings
    tokenizer.save(str(folder / TOKENIZER_FILE))
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    manifest["files"][TOKENIZER_FILE] = sha256_file(folder / TOKENIZER_FILE)
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    seal(folder)
    with pytest.raises(ModelError, match=f"{TOKENIZER_FILE}'s ids up to"):
        Scorer.load(folder, threads=1)


def test_a_pinned_digest_is_enforced_at_start_and_reload(
    tiny_release: Path, tmp_path: Path
) -> None:
    other = resealed(tiny_release, tmp_path / "other", lambda m: m.update(version="9.9.9"))
    pin = folder_digest(tiny_release)
    process = start(other, free_port(), HELPDESK_MODEL_SHA256=pin)
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        stop(process)
    assert process.returncode != 0 and f"is not the pinned {pin}" in stderr
    with make_client(tiny_release, model_sha256=pin) as pinned:
        refused = pinned.post("/v1/admin/reload", json={"model_dir": str(other)})
        assert refused.status_code == 409 and CHECKSUMS_FILE in error_of(refused)["message"]
        asked = {"model_dir": str(other), "sha256": folder_digest(other)}
        swapped = pinned.post("/v1/admin/reload", json=asked)
        assert swapped.status_code == 200 and swapped.json()["model"]["version"] == "9.9.9"
        wrong = {"model_dir": str(tiny_release), "sha256": "0" * 64}
        assert pinned.post("/v1/admin/reload", json=wrong).status_code == 409


def test_the_identity_shown_everywhere_is_the_folder_digest(
    client: TestClient, tiny_release: Path
) -> None:
    digest = hashlib.sha256((tiny_release / CHECKSUMS_FILE).read_bytes()).hexdigest()
    assert digest == folder_digest(tiny_release)
    assert (
        f"{hashlib.sha256((tiny_release / MANIFEST_FILE).read_bytes()).hexdigest()}  "
        in (tiny_release / CHECKSUMS_FILE).read_text()
    )
    assert client.post("/v1/score", json=OK).json()["model"]["sha256"] == digest
    assert client.get("/readyz").json()["model_sha256"] == digest
    assert client.get("/v1/info").json()["model"]["sha256"] == digest
    assert f'sha256="{digest}"' in client.get("/metrics").text
    reloaded = client.post("/v1/admin/reload", json={"model_dir": str(tiny_release)}).json()
    assert reloaded["previous"]["sha256"] == reloaded["model"]["sha256"] == digest


def judgement(**changes: object) -> dict[str, object]:
    return {"sample_id": "t-1", "head": "complaint", "label": 1, "text": "late parcel", **changes}


@pytest.mark.parametrize(
    "path, body, status",
    [
        ("/v1/score", {"messages": [{"id": "\ud800", "text": "ok"}]}, 422),
        ("/v1/admin/reload", {"model_dir": "m" * 5000}, 422),
        ("/v1/admin/reload", {"model_dir": "\ud800"}, 422),
        ("/v1/admin/reload", {"model_dir": "/tmp/" + "m" * 300}, 409),  # a name too long
        ("/v1/admin/reload", {"model_dir": "/tmp/a\x00b"}, 409),
        ("/v1/feedback", {"judgements": [judgement(sample_id="\ud800")]}, 422),
        ("/v1/feedback", {"judgements": [judgement(comment="\udfff")]}, 422),
        ("/v1/feedback", {"judgements": [judgement(text="x" * 30_001)]}, 413),
    ],
)
def test_the_listed_500s_are_json_4xx(
    client: TestClient, path: str, body: object, status: int
) -> None:
    content = json.dumps(body).encode()  # json.dumps escapes lone surrogates as JSON does
    response = client.post(path, content=content, headers={"content-type": "application/json"})
    assert response.status_code == status
    error_of(response)


def test_feedback_text_is_bounded_by_the_setting_alone(client: TestClient) -> None:
    long = judgement(text="refund " * 3_500)  # 24,500 characters: over the old 20,000 cap
    assert client.post("/v1/feedback", json={"judgements": [long]}).status_code == 201


def test_an_api_key_name_too_long_to_store_is_refused_in_settings() -> None:
    with pytest.raises(ValidationError, match="name"):
        ApiKey(name="n" * 101, sha256="0" * 64)


def test_no_slash_redirects(client: TestClient) -> None:
    response = client.post(
        "/v1/score/", json=OK, headers={"host": "evil.example"}, follow_redirects=False
    )
    assert response.status_code == 404 and "location" not in response.headers
    assert error_of(response)["type"] == "not_found"


def test_the_feedback_quota_is_a_json_429(tiny_release: Path, feedback_url: str) -> None:
    with make_client(tiny_release, feedback_url=feedback_url, feedback_quota_per_hour=3) as c:
        body = {"judgements": [judgement(), judgement(head="frustration")]}
        assert c.post("/v1/feedback", json=body).status_code == 201
        refused = c.post("/v1/feedback", json=body)
        assert refused.status_code == 429 and error_of(refused)["type"] == "quota_exceeded"
        assert 0 < int(refused.headers["retry-after"]) <= QUOTA_WINDOW_SECONDS + 1
        one = {"judgements": [judgement()]}
        assert c.post("/v1/feedback", json=one).status_code == 201


def test_the_quota_is_per_caller_over_a_rolling_hour() -> None:
    now = [0.0]
    quota = FeedbackQuota(10, clock=lambda: now[0])
    quota.take("crm", 10)
    quota.take("agents", 10)
    with pytest.raises(Exception, match="quota"):
        quota.take("crm", 1)
    now[0] = QUOTA_WINDOW_SECONDS + 1
    quota.take("crm", 10)
    FeedbackQuota(0).take("crm", 10**6)  # 0: no quota


def test_a_reload_releases_the_old_session(
    client: TestClient, tiny_release: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.http import runtime as runtime_module

    trims = []
    monkeypatch.setattr(runtime_module, "release_freed_memory", lambda: trims.append(1))
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    old = [weakref.ref(runtime.current().scorer.session)]
    for _ in range(5):
        reload = client.post("/v1/admin/reload", json={"model_dir": str(tiny_release)})
        assert reload.status_code == 200
        assert client.post("/v1/score", json=OK).status_code == 200
        old.append(weakref.ref(runtime.current().scorer.session))
    gc.collect()
    assert [ref() is not None for ref in old] == [False] * 5 + [True]
    assert len(trims) == 5  # the heap they leave is handed back (evaluation/bench/reloads.py)


def test_a_reload_on_an_idle_server_releases_the_old_session(
    client: TestClient, tiny_release: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch worker lets a model go when its last batch ends, not at the next batch: an
    idle server would otherwise hold two models (about 340 MB of the 400 MB limit)."""
    from serving.http import runtime as runtime_module

    monkeypatch.setattr(runtime_module, "release_freed_memory", lambda: None)
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    assert client.post("/v1/score", json=OK).status_code == 200  # a batch on the first model
    old = weakref.ref(runtime.current().scorer.session)
    assert client.post("/v1/admin/reload", json={"model_dir": str(tiny_release)}).status_code == 200
    gc.collect()
    assert old() is None


def test_reload_memory_stays_flat(tiny_release: Path) -> None:
    from evaluation.bench.reloads import reload_memory
    from evaluation.bench.server import Server

    port = free_port()
    process = start(tiny_release, port)
    try:
        wait_ready(port, process)
        server = Server("ours", process, f"http://127.0.0.1:{port}")  # type: ignore[arg-type]
        reload_memory(server, tiny_release, 10)  # heaps reach their size first
        report = reload_memory(server, tiny_release, 60)
    finally:
        stop(process)
    print(report)
    # Without malloc_trim after a swap the tiny model's 60 reloads keep ~7 MB; with it, ~2.
    assert report["rss_growth_mb"] <= 4.5, report
