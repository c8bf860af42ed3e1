"""What every `helpdesk-scorer` command shares: one `error:` line and exit code 2 for expected
failures, and the install hint when a command's extra is missing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from pydantic import ValidationError

from serving.errors import UserError

__all__ = ["EXTRA_FOR", "fail", "user_errors"]

EXTRA_FOR = {
    "torch": "train",
    "transformers": "train",
    "pandas": "train",
    "sklearn": "train",
    "pyarrow": "train",
    "onnx": "train",
    "matplotlib": "eval",
    "cleanlab": "eval",
    "ray": "ray",
}


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@contextmanager
def user_errors(extra_hint: str | None = None) -> Iterator[None]:
    """Turn expected failures into one clear line and exit code 2; `extra_hint` names the
    extra to suggest for any known missing module (a command that lives in one extra)."""
    try:
        yield
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        extra = EXTRA_FOR.get(root)
        if extra is None:
            raise
        extra = extra_hint or extra
        fail(f"this command needs the '{extra}' extra: pip install 'helpdesk-scorer[{extra}]'")
    except UserError as exc:
        fail(str(exc))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        fail(f"invalid setting {where}: {first['msg']} (HELPDESK_* environment or options)")
