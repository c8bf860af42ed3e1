"""Experiment tracking with MLflow: a training run, its evaluation and its release in one place.

`train` opens one MLflow run per training run and writes its id into the run folder
(`MLFLOW_RUN_FILE`); `evaluate --run` and `export` find it there and log to the same run, so a
release can be traced to its run, its data and its gates. The store is `MLFLOW_TRACKING_URI`
when set, else a local SQLite file beside the runs (`<runs_dir>/mlflow.db`, artifacts in
`<runs_dir>/mlartifacts`). `track = 0` in the training config, or `HELPDESK_TRACKING=0`, turns
it off; without the mlflow package (the `train` extra) it is off with one log line.

Browse: `mlflow ui --backend-store-uri sqlite:///models/runs/mlflow.db` (the `mlflow` package
with its server; see the README).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["EXPERIMENT", "MLFLOW_RUN_FILE", "Tracker", "log_to_run", "tracking_uri"]

EXPERIMENT = "helpdesk-scorer"
#: In a training run folder: the MLflow run id its evaluation and export log to.
MLFLOW_RUN_FILE = "mlflow_run_id"
_log = logging.getLogger("helpdesk_scorer")


def tracking_uri(runs_dir: Path) -> str:
    """MLFLOW_TRACKING_URI, or the SQLite store beside the training runs."""
    return (
        os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(runs_dir / 'mlflow.db').resolve()}"
    )


def _mlflow(runs_dir: Path) -> Any:
    """The mlflow module pointed at the store, or None when tracking is off or not installed."""
    if os.environ.get("HELPDESK_TRACKING", "1") == "0":
        return None
    try:
        import mlflow
    except ModuleNotFoundError:
        _log.warning("experiment tracking off: mlflow is not installed (pip install '.[train]')")
        return None
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri(runs_dir))
    client = mlflow.tracking.MlflowClient()
    if client.get_experiment_by_name(EXPERIMENT) is None:
        artifacts = (runs_dir / "mlartifacts").resolve()
        client.create_experiment(EXPERIMENT, artifact_location=artifacts.as_uri())
    mlflow.set_experiment(EXPERIMENT)
    return mlflow


def _flat(prefix: str, values: Mapping[str, Any]) -> dict[str, float]:
    """Numeric leaves of a nested mapping as `prefix_key_subkey` metrics."""
    out: dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}_{key}".replace(" ", "_").replace("(", "").replace(")", "")
        if isinstance(value, Mapping):
            out.update(_flat(name, value))
        elif isinstance(value, int | float) and not isinstance(value, bool) and value == value:
            out[name] = float(value)
    return out


def _known(mlflow: Any, run_id: str) -> bool:
    try:
        mlflow.tracking.MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return False
    return True


class Tracker:
    """One training run's MLflow run: params at the start, metrics per epoch, the result at
    the end. A no-op when tracking is off."""

    def __init__(self, mlflow: Any, run_id: str | None) -> None:
        self._mlflow = mlflow
        self.run_id = run_id

    @classmethod
    def start(
        cls, run_dir: Path, runs_dir: Path, params: Mapping[str, Any], enabled: bool
    ) -> Tracker:
        """A tracker for `run_dir`, resuming its MLflow run when the folder names one."""
        mlflow = _mlflow(runs_dir) if enabled else None
        if mlflow is None:
            return cls(None, None)
        saved = run_dir / MLFLOW_RUN_FILE
        run_id = saved.read_text().strip() if saved.is_file() else None
        if run_id is not None and not _known(mlflow, run_id):
            run_id = None  # a run folder copied from another store: a new run here
        run = mlflow.start_run(run_id=run_id, run_name=None if run_id else run_dir.name)
        if run_id is None:
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            saved.write_text(run.info.run_id + "\n")
        return cls(mlflow, run.info.run_id)

    def epoch(self, epoch: int, report: Mapping[str, Any], loss: float) -> None:
        if self._mlflow is not None:
            self._mlflow.log_metrics({**_flat("dev_auroc", report), "train_loss": loss}, step=epoch)

    def finish(
        self, run_dir: Path, calibration: Mapping[str, Any], summary: Mapping[str, Any]
    ) -> None:
        """The calibration, the training time and the run folder's small files, then close."""
        if self._mlflow is None:
            return
        self._mlflow.log_metrics({**_flat("calibration", calibration), **_flat("run", summary)})
        for path in sorted(run_dir.iterdir()):
            if path.is_file() and path.suffix in (".json", ".toml", ".npy"):
                self._mlflow.log_artifact(str(path), "run")
        self._mlflow.end_run()


def log_to_run(
    run_dir: Path,
    *,
    prefix: str,
    metrics: Mapping[str, Any],
    tags: Mapping[str, str] | None = None,
    artifacts: tuple[Path, ...] = (),
    artifact_dir: str = "",
) -> str | None:
    """Log `prefix_...` metrics, tags and artifacts (under `artifact_dir`) to the MLflow run of
    the training run in `run_dir` (its MLFLOW_RUN_FILE); return the run id, or None when the
    folder has none or tracking is off."""
    saved = run_dir / MLFLOW_RUN_FILE
    if not saved.is_file():
        return None
    mlflow = _mlflow(run_dir.parent)
    if mlflow is None or not _known(mlflow, saved.read_text().strip()):
        return None
    with mlflow.start_run(run_id=saved.read_text().strip()) as run:
        mlflow.log_metrics(_flat(prefix, metrics))
        mlflow.set_tags(dict(tags or {}))
        for path in artifacts:
            mlflow.log_artifact(str(path), artifact_dir or None)
        return str(run.info.run_id)
