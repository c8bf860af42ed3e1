"""The one error type the CLI turns into a single clear line instead of a traceback."""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """Bad input from the user (missing file, wrong checksum, bad config): say what and where."""
