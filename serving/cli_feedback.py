"""`helpdesk-scorer feedback`: export the corrections in force, upgrade the store's schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from serving.core.cli_common import user_errors
from serving.feedback.store import DEFAULT_URL as DEFAULT_FEEDBACK_URL

__all__ = ["feedback_app"]

feedback_app = typer.Typer(
    no_args_is_help=True, help="The feedback store: export corrections, upgrade its schema."
)
StoreUrl = Annotated[
    str,
    typer.Option(
        envvar="HELPDESK_FEEDBACK_URL",
        help="SQLAlchemy URL: sqlite:///feedback.db or postgresql+psycopg://user:pw@host/db.",
    ),
]


@feedback_app.command("export")
def feedback_export(
    output: Annotated[Path, typer.Option("-o", "--output", help="Corrections JSONL.")],
    url: StoreUrl = DEFAULT_FEEDBACK_URL,
) -> None:
    """Write the judgements in force (latest per sample and head) for `prepare --corrections`."""
    with user_errors():
        from serving.feedback import FeedbackStore

        store = FeedbackStore.open(url)
        count = store.export_jsonl(output)
        store.close()
    typer.echo(f"exported {count} judgements into {output}")


@feedback_app.command("migrate")
def feedback_migrate(url: StoreUrl = DEFAULT_FEEDBACK_URL) -> None:
    """Create or upgrade the store's schema to the latest migration (servers also do it)."""
    with user_errors():
        from serving.feedback import FeedbackStore
        from serving.feedback.store import safe_url

        FeedbackStore.open(url).close()
    typer.echo(f"feedback store {safe_url(url)} is at the latest schema")
