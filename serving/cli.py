"""The `helpdesk-scorer` console script: one subcommand per pipeline step.

Serving's commands (score, serve, hash-key, feedback) live here; training's (prepare, train,
export) in `training/cli.py` and evaluation's (evaluate, review) in `evaluation/cli.py`, merged
in below. Each imports its heavy modules only when run, so the serving install stays small and
a missing extra prints the install hint instead of a trace.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from evaluation.cli import evaluation_app
from serving.cli_feedback import feedback_app
from serving.core.cli_common import fail, user_errors
from serving.core.contract import RELEASE_DIR
from serving.core.decision.phrasing import DEFAULT_PHRASES
from serving.core.decision.route_policy import DEFAULT_POLICY
from training.cli import training_app

__all__ = ["app"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Score helpdesk messages; prepare data, train and release the models.",
)


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
        from serving.bulk.file_engine import score_file
        from serving.core.decision.phrasing import load_phrases
        from serving.core.decision.route_policy import load_policy
        from serving.core.results import ResultBuilder
        from serving.core.scorer import Scorer

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
    decoding = report.decoding
    if decoding.replaced:
        lines = ", ".join(map(str, decoding.lines[:10]))
        lines += " ..." if len(decoding.lines) > 10 else ""
        typer.echo(
            f"warning: {decoding.replaced} bytes were not valid {decoding.encoding} and were "
            f"scored as U+FFFD (lines {lines}); save the input as UTF-8",
            err=True,
        )
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

        from serving.bulk.ray_engine import prepare_job, ray_session, score_archive
        from serving.core.decision.phrasing import load_phrases
        from serving.core.decision.route_policy import load_policy

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
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [HELPDESK_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [HELPDESK_PORT].")] = None,
    model: Annotated[Path | None, typer.Option(help="Model folder [HELPDESK_MODEL_DIR].")] = None,
) -> None:
    """Start the scoring server (all settings: HELPDESK_* environment variables, see README)."""
    with user_errors():
        from serving.http.server import run_server
        from serving.http.settings import Settings

        overrides = {"host": host, "port": port, "model_dir": model}
        settings = Settings().model_copy(
            update={k: v for k, v in overrides.items() if v is not None}
        )
        if not run_server(settings):
            raise typer.Exit(3)  # the lifespan refused the model or the port was taken


@app.command("hash-key")
def hash_key(key: Annotated[str, typer.Argument(help="The API key to store.")]) -> None:
    """Print the sha256 to put in HELPDESK_API_KEYS (the server never stores the key)."""
    from serving.http.auth import hash_key as digest

    typer.echo(digest(key))


app.add_typer(training_app)
app.add_typer(evaluation_app)
app.add_typer(feedback_app, name="feedback")


if __name__ == "__main__":
    app(prog_name="helpdesk-scorer")
