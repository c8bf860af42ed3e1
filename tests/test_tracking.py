"""Experiment tracking on the tiny model: train logs its config, data digest, per-epoch metrics,
calibration and time; export logs the release it made and its gates; evaluate logs its figures;
tracking can be turned off."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.core.artifact import verify_folder
from training.tracking import MLFLOW_RUN_FILE, tracking_uri


@pytest.fixture
def client(tiny_run: Path):  # type: ignore[no-untyped-def]
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri(tiny_run.parent))


def test_train_and_export_log_one_traceable_run(tiny_run: Path, tiny_release: Path, client) -> None:  # type: ignore[no-untyped-def]
    run = client.get_run((tiny_run / MLFLOW_RUN_FILE).read_text().strip())
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["max_length"] == "16" and len(params["dataset_sha256"]) == 64
    assert {"dev_auroc_frustration", "dev_auroc_mean", "train_loss"} <= set(metrics)
    assert "calibration_temperature_frustration" in metrics
    assert "run_train_seconds_this_session" in metrics
    history = client.get_metric_history(run.info.run_id, "dev_auroc_mean")
    assert [m.step for m in history] == list(range(1, len(history) + 1)) and len(history) >= 2
    # every release made from this run is traced to it under its digest (card, manifest), and
    # the tags name the latest candidate's digest, data and gates
    digest = verify_folder(tiny_release).sha256
    logged = {a.path for a in client.list_artifacts(run.info.run_id, f"release/{digest[:16]}")}
    assert {
        f"release/{digest[:16]}/MODEL_CARD.md",
        f"release/{digest[:16]}/manifest.json",
    } <= logged
    assert len(tags["release_sha256"]) == 64
    assert tags["release_dataset_sha256"] == params["dataset_sha256"]
    assert "behaviour" in tags["release_gates"] and "release_fp32_max_prob_diff" in metrics
    assert "run/config.toml" in {a.path for a in client.list_artifacts(run.info.run_id, "run")}


def test_evaluate_logs_to_the_run_it_evaluates(
    tiny_run: Path, tiny_release: Path, tiny_dataset: Path, tmp_path: Path, client
) -> None:  # type: ignore[no-untyped-def]
    from evaluation.evaluate import Options, evaluate
    from serving.core.decision.phrasing import DEFAULT_PHRASES
    from serving.core.decision.route_policy import DEFAULT_POLICY

    options = Options(
        tiny_release,
        tiny_dataset,
        "test",
        tmp_path / "report",
        tiny_run,
        DEFAULT_POLICY,
        DEFAULT_PHRASES,
        resamples=20,
    )
    evaluate(options)
    run = client.get_run((tiny_run / MLFLOW_RUN_FILE).read_text().strip())
    assert "evaluate_test_behaviour_pass_rate" in run.data.metrics
    assert any(k.startswith("evaluate_test_auroc_real_") for k in run.data.metrics)
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "evaluate_test")}
    assert "evaluate_test/report.html" in logged


def test_tracking_can_be_turned_off(tiny_run: Path, tmp_path: Path) -> None:
    from tests.test_model_pipeline import variant
    from training.train import train

    config = variant(tiny_run, tmp_path / "untracked", epochs=1, track=0)
    assert not (train(config) / MLFLOW_RUN_FILE).exists()
