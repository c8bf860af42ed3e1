"""The `helpdesk-scorer` console script: one subcommand per pipeline step.

Heavy steps (prepare, train, export) live in the `train` extra and are imported only when run,
so the serving install stays small; a missing extra prints the install hint instead of a trace.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from serving.cli_common import fail, user_errors
from serving.cli_feedback import feedback_app
from serving.contract import RELEASE_DIR
from serving.errors import UserError
from serving.phrasing import DEFAULT_PHRASES
from serving.route_policy import DEFAULT_POLICY

__all__ = ["app"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Score helpdesk messages; prepare data, train and release the models.",
)

DEFAULT_MIRROR = Path("../shared/data")


@app.command()
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
    with user_errors():
        from training.prepare import PrepareConfig
        from training.prepare import prepare as run

        if mirror is None and DEFAULT_MIRROR.is_dir():
            mirror = DEFAULT_MIRROR
        import json

        from training.card import lf_summary_lines

        config = PrepareConfig(
            mirror=mirror,
            out=out,
            seed=seed,
            corrections=corrections or [],
            exclude_licences=exclude_licence or [],
        )
        folder = run(config)
        stats = json.loads((folder / "stats.json").read_text())
        typer.echo("\n".join(lf_summary_lines(stats)))
        merged = stats["corrections"]
        if corrections:
            typer.echo(
                f"corrections: {merged['by_id'] + merged['by_text']} applied, "
                f"{merged['new_rows']} new rows, {merged['skipped']} skipped"
            )
        typer.echo(f"wrote {folder / 'dataset.parquet'} and {folder / 'DATASET_CARD.md'}")


@app.command()
def train(
    config: Annotated[Path | None, typer.Option(help="TOML config over the defaults.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override one config key: --set epochs=2 (repeatable)."),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the run's last checkpoint.")] = False,
    calibrate_only: Annotated[
        bool, typer.Option(help="Only refit calibration.json of the finished run run_name.")
    ] = False,
) -> None:
    """Fine-tune the multi-task model; the run goes to models/runs/<run_name>/."""
    with user_errors():
        from training.config import load_config
        from training.train import recalibrate
        from training.train import train as run

        resolved = load_config(config, set_)
        folder = recalibrate(resolved.run_dir) if calibrate_only else run(resolved, resume=resume)
        typer.echo(f"run finished: {folder}")


class Quantization(StrEnum):
    static = "static"
    dynamic = "dynamic"


@app.command()
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
) -> None:
    """Export a run to int8 ONNX with parity checks, manifest and model card."""
    with user_errors():
        from training.export import export as run_export

        folder = run_export(run, out, version=version, quantization=str(quantization))
        typer.echo(f"exported {folder}")


class Engine(StrEnum):
    local = "local"
    ray = "ray"


@app.command()
def score(
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help="JSONL or CSV with 'text'; with --engine ray also Parquet or a folder of shards.",
        ),
    ],
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="Output JSONL; with --engine ray a Parquet folder."),
    ],
    model: Annotated[Path, typer.Option(help="Model folder.")] = RELEASE_DIR,
    policy: Annotated[Path, typer.Option(help="Routing policy TOML.")] = DEFAULT_POLICY,
    phrases: Annotated[Path, typer.Option(help="Phrase bank TOML.")] = DEFAULT_PHRASES,
    batch_size: Annotated[int, typer.Option(min=1, max=1024)] = 64,
    engine: Annotated[Engine, typer.Option(help="local: this process; ray: Ray Data.")] = (
        Engine.local
    ),
    address: Annotated[
        str | None, typer.Option(help="Ray cluster to run on (ray engine); default a local Ray.")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Scoring actors (ray engine); default CPUs // threads."),
    ] = None,
    threads_per_worker: Annotated[
        int, typer.Option(min=1, help="ONNX threads and Ray CPUs per actor (ray engine).")
    ] = 1,
) -> None:
    """Score a file of messages; one result object (the API's) per output line, or with
    --engine ray one Parquet row per message (columns: docs/bulk.md).

    Rows without usable text are listed in OUTPUT.errors.jsonl and the exit code is 3.
    """
    if engine is Engine.ray:
        score_ray(
            input_path,
            output,
            model,
            policy,
            phrases,
            batch_size,
            address,
            workers,
            threads_per_worker,
        )
        return
    if address is not None or workers is not None:
        fail("--address and --workers need --engine ray")
    with user_errors():
        from serving.bulk_file import score_file
        from serving.phrasing import load_phrases
        from serving.results import ResultBuilder
        from serving.route_policy import load_policy
        from serving.scorer import Scorer

        loaded_policy = load_policy(policy)
        bank = load_phrases(phrases, tuple(r.name for r in loaded_policy.rules))
        scorer = Scorer.load(model)
        report = score_file(
            input_path,
            output,
            scorer,
            ResultBuilder.create(scorer.manifest, loaded_policy, bank),
            batch_size,
        )
    typer.echo(f"scored {report.scored} messages into {output}")
    if report.rejected:
        typer.echo(f"rejected {report.rejected} rows, listed in {report.errors_path}", err=True)
        raise typer.Exit(3)


def score_ray(
    source: Path,
    output: Path,
    model: Path,
    policy: Path,
    phrases: Path,
    batch_size: int,
    address: str | None,
    workers: int | None,
    threads: int,
) -> None:
    """The ray engine of `score`: counts read/scored/rejected at the end, exit 3 on rejects."""
    with user_errors():
        import ray.data  # noqa: F401  (first: a missing extra is named 'ray', not pyarrow's)

        from serving.bulk_ray import prepare_job, ray_session, score_archive
        from serving.phrasing import load_phrases
        from serving.route_policy import load_policy

        loaded_policy = load_policy(policy)
        bank = load_phrases(phrases, tuple(r.name for r in loaded_policy.rules))
        job = prepare_job(source, output, model)
        with ray_session(address) as cpus:
            report = score_archive(
                job,
                loaded_policy,
                bank,
                workers=workers or max(1, cpus // threads),
                threads=threads,
                batch_size=batch_size,
            )
    typer.echo(
        f"read {report.read} rows, scored {report.scored}, rejected {report.rejected}; "
        f"results in {output}/"
    )
    if report.rejected:
        typer.echo(f"rejected rows are listed in {report.errors_path}", err=True)
        raise typer.Exit(3)


@app.command()
def evaluate(
    model: Annotated[
        Path | None, typer.Argument(help="Model folder to evaluate (not with --compare).")
    ] = None,
    split: Annotated[str, typer.Option(help="Dataset split to evaluate.")] = "test",
    data: Annotated[Path, typer.Option(help="Dataset parquet.")] = Path(
        "data/processed/dataset.parquet"
    ),
    run: Annotated[
        Path | None, typer.Option(help="Training run with model.fp32.onnx: adds fp32 figures.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Report folder; default reports/<model>-<split>.")
    ] = None,
    compare: Annotated[
        tuple[Path, Path] | None,
        typer.Option(help="Two report folders written by evaluate: side by side, B - A."),
    ] = None,
    policy: Annotated[Path, typer.Option(help="Routing policy TOML.")] = DEFAULT_POLICY,
    phrases: Annotated[Path, typer.Option(help="Phrase bank TOML.")] = DEFAULT_PHRASES,
    resamples: Annotated[int, typer.Option(min=0, help="Bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap and baseline seed.")] = 0,
) -> None:
    """Evaluate a model on a split (metrics.json, report.html, misclassified.jsonl), or
    compare two reports with --compare A B."""
    with user_errors("eval"):
        if compare is not None:
            from evaluation.compare import compare_reports

            first, second = compare
            target = out or Path("reports") / f"compare-{first.name}-vs-{second.name}"
            folder = compare_reports(first, second, target, resamples, seed)
            typer.echo(f"wrote {folder / 'report.html'}")
            return
        if model is None:
            raise UserError("give a MODEL folder to evaluate, or --compare A B")
        from evaluation.evaluate import Options
        from evaluation.evaluate import evaluate as run_evaluation

        target = out or Path("reports") / f"{model.resolve().name}-{split}"
        folder = run_evaluation(
            Options(model, data, split, target, run, policy, phrases, resamples, seed)
        )
        typer.echo(f"wrote {folder / 'report.html'} and {folder / 'misclassified.jsonl'}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [HELPDESK_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [HELPDESK_PORT].")] = None,
    model: Annotated[Path | None, typer.Option(help="Model folder [HELPDESK_MODEL_DIR].")] = None,
) -> None:
    """Start the scoring server (all settings: HELPDESK_* environment variables, see README)."""
    with user_errors():
        from serving.server import run_server
        from serving.settings import Settings

        overrides = {"host": host, "port": port, "model_dir": model}
        settings = Settings().model_copy(
            update={k: v for k, v in overrides.items() if v is not None}
        )
        if not run_server(settings):
            raise typer.Exit(3)  # the lifespan refused the model or the port was taken


@app.command()
def review(
    report: Annotated[
        Path, typer.Argument(help="Report folder with predictions.jsonl and misclassified.jsonl.")
    ],
    model: Annotated[Path | None, typer.Option(help="Model folder, for attribution.")] = None,
    store: Annotated[str | None, typer.Option(help="Feedback store SQLAlchemy URL.")] = None,
    reviewer: Annotated[str | None, typer.Option(help="Author of the judgements.")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8100).")] = None,
) -> None:
    """Open the QA review page on a report (settings: HELPDESK_REVIEW_* environment)."""
    with user_errors():
        import uvicorn

        from evaluation.review import ReviewSettings, create_review_app
        from evaluation.review.predictions import load_report
        from serving.feedback import FeedbackStore
        from serving.scorer import verify_folder

        overrides = {
            "report_dir": report,
            "model_dir": model,
            "store_url": store,
            "reviewer": reviewer,
            "host": host,
            "port": port,
        }
        settings = ReviewSettings.model_validate(
            {
                **ReviewSettings().model_dump(),
                **{k: v for k, v in overrides.items() if v is not None},
            }
        )
        from serving.server import LOOPBACK

        load_report(settings.report_dir)  # fail fast, before the server starts
        verify_folder(settings.model_dir)
        FeedbackStore.open(settings.store_url).close()
        if settings.host not in LOOPBACK:
            typer.echo(
                f"warning: the review page has no login; {settings.host} exposes it", err=True
            )
        typer.echo(f"review page: http://{settings.host}:{settings.port}/", err=True)
        uvicorn.run(create_review_app(settings), host=settings.host, port=settings.port)


@app.command("hash-key")
def hash_key(key: Annotated[str, typer.Argument(help="The API key to store.")]) -> None:
    """Print the sha256 to put in HELPDESK_API_KEYS (the server never stores the key)."""
    from serving.auth import hash_key as digest

    typer.echo(digest(key))


app.add_typer(feedback_app, name="feedback")


if __name__ == "__main__":
    app(prog_name="helpdesk-scorer")
