"""`helpdesk-scorer evaluate | review`: reports on a model and the QA review page.

The root CLI merges this app into its own. The `eval` extra (pandas, matplotlib, ...) loads
only inside a command, so a serving install prints the install hint instead of a trace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from serving.core.cli_common import user_errors
from serving.core.decision.phrasing import DEFAULT_PHRASES
from serving.core.decision.route_policy import DEFAULT_POLICY
from serving.core.errors import BadInput

__all__ = ["evaluation_app"]

evaluation_app = typer.Typer()


@evaluation_app.command()
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
            raise BadInput("give a MODEL folder to evaluate, or --compare A B")
        from evaluation.evaluate import Options
        from evaluation.evaluate import evaluate as run_evaluation

        options = Options(
            model=model,
            data=data,
            split=split,
            out=out or Path("reports") / f"{model.resolve().name}-{split}",
            run=run,
            policy=policy,
            phrases=phrases,
            resamples=resamples,
            seed=seed,
        )
        folder = run_evaluation(options)
    typer.echo(f"wrote {folder / 'report.html'} and {folder / 'misclassified.jsonl'}")


@evaluation_app.command()
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
        from serving.core.scorer import verify_folder
        from serving.feedback import FeedbackStore
        from serving.http.server import LOOPBACK

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
        load_report(settings.report_dir)  # fail fast, before the server starts
        verify_folder(settings.model_dir)
        FeedbackStore.open(settings.store_url).close()
        if settings.host not in LOOPBACK:
            typer.echo(
                f"warning: the review page has no login; {settings.host} exposes it", err=True
            )
        typer.echo(f"review page: http://{settings.host}:{settings.port}/", err=True)
        uvicorn.run(create_review_app(settings), host=settings.host, port=settings.port)
