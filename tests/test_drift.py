"""Drift: PSI and its sliding window, the manifest's reference (export, the add command, older
models without one), and the per-head gauge on /metrics."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from serving.core.artifact import ModelError, seal, verify_folder
from serving.core.contract import HEADS, MANIFEST_FILE, RELEASE_DIR
from serving.core.drift import DRIFT_BINS, PSI_ALERT, DriftWindow, bin_counts, psi
from serving.core.files import sha256_file
from serving.core.scorer import Scorer
from serving.http.app import create_app
from serving.http.settings import Settings
from training.dataset_rules import calibration_rows

ROOT = Path(__file__).parents[1]
RNG = np.random.default_rng(0)


def draw(counts: list[int], n: int) -> np.ndarray:
    """`n` scores whose bins follow the histogram `counts`, uniform within a bin."""
    shares = np.asarray(counts, dtype=float) / sum(counts)
    bins = RNG.choice(DRIFT_BINS, size=n, p=shares)
    return (bins + RNG.random(n)) / DRIFT_BINS


def release_reference() -> dict[str, list[int]]:
    reference = verify_folder(RELEASE_DIR).reference
    assert reference is not None
    return reference


def test_bins_and_psi_basics() -> None:
    assert bin_counts([0.0, 0.05, 0.1, 0.55, 0.99, 1.0]) == [2, 1, 0, 0, 0, 1, 0, 0, 0, 2]
    assert psi([1, 2, 3, 4, 0, 0, 0, 0, 0, 0], [2, 4, 6, 8, 0, 0, 0, 0, 0, 0]) == pytest.approx(0)
    assert psi([10] + [0] * 9, [0] * 9 + [10]) > 1  # an empty bin is large but finite


def test_replaying_the_reference_is_near_zero_and_a_shift_raises_it() -> None:
    """Scores drawn from the release's reference: PSI near 0 per head; only strong complaints
    (complaint scores of 0.9 and above): complaint PSI above the alert threshold."""
    reference = release_reference()
    window = DriftWindow(1000, reference)
    window.add(np.stack([draw(reference[h], 1000) for h in HEADS], axis=1), np.zeros(1000, bool))
    replay = window.psi()
    assert replay is not None and max(replay.values()) < 0.05, replay
    shifted = np.stack([draw(reference[h], 1000) for h in HEADS], axis=1)
    shifted[:, HEADS.index("complaint")] = 0.9 + 0.1 * RNG.random(1000)
    window.add(shifted, np.zeros(1000, bool))
    after = window.psi()
    assert after is not None and after["complaint"] > PSI_ALERT, after


def test_window_keeps_exactly_the_last_messages() -> None:
    """Running counts after many wrapping adds equal a histogram of the last `size` rows."""
    window = DriftWindow(50, {h: [1] * DRIFT_BINS for h in HEADS})
    rows = RNG.random((237, len(HEADS)))
    flags = RNG.random(237) < 0.3
    for start, size in zip(range(0, 237, 7), [7] * 34, strict=True):
        window.add(rows[start : start + size], flags[start : start + size])
        assert window.psi() is None if start + size < 50 else window.psi() is not None
    window.add(rows[:120], flags[:120])  # more than the window at once: its last 50 count
    for i in range(len(HEADS)):
        assert window._counts[i].tolist() == bin_counts(rows[70:120, i])
    assert window.non_english_share() == pytest.approx(flags[70:120].mean())


def test_release_manifest_has_a_reference_of_real_dev_text() -> None:
    raw = verify_folder(RELEASE_DIR).raw["reference"]
    # the calibration rows: the scaled real-text dev split since 0.3.0 (real gold dev before)
    assert raw["split"] == "dev" and raw["rows"] == "real_scale" and raw["bins"] == DRIFT_BINS
    assert {sum(raw["counts"][h]) for h in HEADS} == {raw["messages"]}


def without_reference(release: Path, target: Path) -> Path:
    shutil.copytree(release, target)
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    manifest.pop("reference")
    (target / MANIFEST_FILE).write_text(json.dumps(manifest))
    seal(target)
    return target


def test_reference_is_optional_but_checked(tiny_release: Path, tmp_path: Path) -> None:
    assert verify_folder(tiny_release).reference is not None  # export wrote one
    old = without_reference(tiny_release, tmp_path / "old")
    assert verify_folder(old).reference is None
    manifest = json.loads((old / MANIFEST_FILE).read_text())
    manifest["reference"] = {"bins": 9, "counts": {h: [1] * 9 for h in HEADS}}
    (old / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="reference"):
        seal(old)


def test_reference_command_adds_it_without_touching_the_model(
    tiny_release: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    old = without_reference(tiny_release, tmp_path / "old")
    before = {name: sha256_file(old / name) for name in ("model.onnx", "tokenizer.json")}
    command = [sys.executable, "-m", "training.reference", str(old), "--dataset"]
    done = subprocess.run([*command, str(tiny_dataset)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    manifest = verify_folder(old)  # sealed again
    assert done.stdout.split()[0] == manifest.sha256
    assert manifest.reference == verify_folder(tiny_release).reference
    assert before == {name: sha256_file(old / name) for name in before}
    dev = pd.read_parquet(tiny_dataset).query("split == 'dev'")
    assert manifest.raw["reference"]["messages"] == calibration_rows(dev)[0].sum()
    missing = subprocess.run(
        [*command, str(tmp_path / "none.parquet")], capture_output=True, text=True, cwd=ROOT
    )
    assert missing.returncode == 1 and missing.stderr.startswith("error: cannot read dataset")
    assert "Traceback" not in missing.stderr


def gauges(client: TestClient) -> dict[str, dict[str, float]]:
    """name -> {head label or "": value} for the drift and language gauges."""
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name.startswith(("helpdesk_score_drift_psi", "helpdesk_non_english")):
                found.setdefault(sample.name, {})[sample.labels.get("head", "")] = sample.value
    return found


def post(client: TestClient, texts: list[str]) -> None:
    for start in range(0, len(texts), 8):
        chunk = texts[start : start + 8]
        response = client.post("/v1/score", json={"messages": [{"text": t} for t in chunk]})
        assert response.status_code == 200


def test_drift_gauge_replay_and_shift(tiny_release: Path, tiny_dataset: Path) -> None:
    """Replaying the reference's own dev messages gives PSI 0; replaying complaints only
    raises the complaint head's PSI above the alert threshold."""
    frame = pd.read_parquet(tiny_dataset)
    dev = frame[frame["split"] == "dev"].reset_index(drop=True)
    texts = dev.loc[calibration_rows(dev)[0], "text"].tolist()
    complaints = frame.loc[frame["complaint"] == 1, "text"].tolist()
    settings = Settings(model_dir=tiny_release, threads=1, drift_window=len(texts) * 3)
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/info").json()["drift_reference"] is True
        post(client, texts)
        assert "helpdesk_score_drift_psi" not in gauges(client)  # window not full yet
        post(client, texts * 2)
        replay = gauges(client)["helpdesk_score_drift_psi"]
        assert set(replay) == set(HEADS) and max(replay.values()) < 0.01, replay
        post(client, (complaints * 10)[: settings.drift_window])
        shifted = gauges(client)["helpdesk_score_drift_psi"]
        assert shifted["complaint"] > PSI_ALERT, shifted


def test_model_without_reference_has_no_drift_gauge_and_says_so(
    tiny_release: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    old = without_reference(tiny_release, tmp_path / "old")
    with TestClient(create_app(Settings(model_dir=old, threads=1, drift_window=10))) as client:
        post(client, ["my order never arrived and i am angry"] * 16)
        found = gauges(client)
        assert client.get("/v1/info").json()["drift_reference"] is False
    assert "helpdesk_score_drift_psi" not in found
    assert found["helpdesk_non_english_share"] == {"": 0.0}
    assert any("no drift metric" in r.getMessage() for r in caplog.records)


def test_drift_bench_reads_zero_on_the_reference_rows(
    tiny_release: Path, tiny_dataset: Path
) -> None:
    from evaluation.bench.drift import drift_by_slice

    rows = drift_by_slice(Scorer.load(tiny_release), pd.read_parquet(tiny_dataset))
    name, n, values = rows[0]
    assert name.startswith("real-text dev") and n > 0 and max(values.values()) < 1e-9
    assert any(max(v.values()) > 0 for _, _, v in rows[1:])  # other slices read their own
