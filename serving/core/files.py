"""File helpers shared by every package: checksums and TOML files with clear errors."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any

from serving.core.errors import BadInput

__all__ = ["read_toml", "sha256_file"]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """Parse a TOML file; a missing or broken file is a BadInput that names `what` and path."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BadInput(f"{what} not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{what} {path} is not valid TOML: {exc}") from None
