"""What every `helpdesk-scorer` command shares: one `error:` line for an expected failure, with
its kind's exit code (`serving.core.errors.KINDS`), and the install hint when an extra is
missing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from pydantic import ValidationError

from serving.core.errors import KINDS, HelpdeskError, Kind

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


#: A mistake in the command itself: a missing extra, an option or setting out of range.
BAD_INPUT_EXIT = KINDS[Kind.INVALID_INPUT].exit_code


def fail(message: str, exit_code: int = BAD_INPUT_EXIT) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(exit_code)


@contextmanager
def user_errors(extra_hint: str | None = None) -> Iterator[None]:
    """Turn expected failures into one clear line and their kind's exit code; `extra_hint`
    names the extra to suggest for any known missing module (a command in one extra)."""
    try:
        yield
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        extra = EXTRA_FOR.get(root)
        if extra is None:
            raise
        extra = extra_hint or extra
        fail(f"this command needs the '{extra}' extra: pip install 'helpdesk-scorer[{extra}]'")
    except HelpdeskError as exc:
        fail(str(exc), exc.exit_code)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        fail(f"invalid setting {where}: {first['msg']} (HELPDESK_* environment or options)")
