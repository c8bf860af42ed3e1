"""`helpdesk-scorer prepare | train | export`: the training pipeline's commands.

The root CLI merges this app into its own. Torch, pandas and the rest of the `train` extra
load only inside a command, so every other command starts fast and a serving install, which
ships this package without its extra, prints the install hint instead of a trace.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from serving.core.cli_common import user_errors

__all__ = ["training_app"]

training_app = typer.Typer()


@training_app.command()
def prepare(
    mirror: Annotated[
        Path | None,
        typer.Option(
            help="Local copy of the public sources; default ../shared/data when present, "
            "else download each file into data/cache."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("data/processed"),
    seed: Annotated[int, typer.Option(help="Seed for sampling and splits.")] = 13,
    corrections: Annotated[
        list[Path] | None,
        typer.Option(
            help="Feedback export (JSONL) to merge: corrections override labels (repeatable)."
        ),
    ] = None,
    exclude_licence: Annotated[
        list[str] | None,
        typer.Option(
            help="Leave out every source whose licence contains this text, e.g. NC for the "
            "non-commercial TWCS text, its real-text gold rows included (repeatable)."
        ),
    ] = None,
) -> None:
    """Build the multi-task dataset (parquet) and its dataset card from the sources + gold set."""
    with user_errors("train"):
        from training.card import lf_summary_lines
        from training.prepare import PrepareConfig
        from training.prepare import prepare as run
        from training.sources import DEFAULT_MIRROR

        if mirror is None and DEFAULT_MIRROR.is_dir():
            mirror = DEFAULT_MIRROR
        config = PrepareConfig(
            mirror=mirror,
            out=out,
            seed=seed,
            corrections=corrections or [],
            exclude_licences=exclude_licence or [],
        )
        result = run(config)
    typer.echo("\n".join(lf_summary_lines(result.stats)))
    merged = result.stats["corrections"]
    if corrections:
        typer.echo(
            f"corrections: {merged['by_id'] + merged['by_text']} applied, "
            f"{merged['new_rows']} new rows, {merged['skipped']} skipped"
        )
    typer.echo(f"wrote {result.dataset} and {result.card}")


@training_app.command()
def train(
    config: Annotated[Path | None, typer.Option(help="TOML config over the defaults.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override one config key: --set epochs=2 (repeatable)."),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the run's last checkpoint.")] = False,
    calibrate_only: Annotated[
        bool,
        typer.Option(
            help="Only refit calibration.json of the finished run run_name (with the "
            "threshold_rule of --config / --set)."
        ),
    ] = False,
) -> None:
    """Fine-tune the multi-task model; the run goes to models/runs/<run_name>/."""
    with user_errors("train"):
        from training.config import load_config
        from training.train import recalibrate
        from training.train import train as run

        resolved = load_config(config, set_)
        folder = (
            recalibrate(resolved.run_dir, resolved.threshold_rule)
            if calibrate_only
            else run(resolved, resume=resume)
        )
    typer.echo(f"run finished: {folder}")


class Quantization(StrEnum):
    static = "static"
    dynamic = "dynamic"


@training_app.command()
def export(
    run: Annotated[Path, typer.Argument(help="A finished training run folder.")],
    out: Annotated[Path, typer.Option(help="Release folder to write.")] = Path("models/candidate"),
    version: Annotated[str, typer.Option(help="Model version for the manifest.")] = "0.1.0",
    quantization: Annotated[
        Quantization,
        typer.Option(
            help="static: activation scales fixed at export, scores independent of batch-mates "
            "(default); dynamic: scales per batch (faster, batch-dependent)."
        ),
    ] = "static",  # type: ignore[assignment]
    min_behaviour: Annotated[
        float | None,
        typer.Option(
            help="Refuse a model whose behaviour-suite pass rate is below this "
            "(default: training.export.BEHAVIOUR_GATE, set from the best model so far)."
        ),
    ] = None,
    fused: Annotated[
        bool,
        typer.Option(
            help="Export with eager attention and fuse the graph (Attention, LayerNorm, GELU) "
            "before quantization; measured in docs/benchmark-profiling.md."
        ),
    ] = False,
) -> None:
    """Export a run to int8 ONNX with parity checks, manifest and model card."""
    with user_errors("train"):
        from training.export import BEHAVIOUR_GATE
        from training.export import export as run_export

        folder = run_export(
            run,
            out,
            version=version,
            quantization=str(quantization),
            min_behaviour=BEHAVIOUR_GATE if min_behaviour is None else min_behaviour,
            fused=fused,
        )
    typer.echo(f"exported {folder}")
