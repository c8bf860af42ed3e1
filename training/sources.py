"""Resolve the public sources in data/sources.toml to verified local files."""

from __future__ import annotations

import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from serving.core.errors import BadInput
from serving.core.files import read_toml, sha256_file

__all__ = ["DEFAULT_MIRROR", "SourceFile", "load_licences", "load_sources", "resolve"]

#: The local mirror of the raw sources (../shared/data beside the project root).
DEFAULT_MIRROR = Path("../shared/data")


@dataclass(frozen=True)
class SourceFile:
    source: str
    path: str
    url: str
    sha256: str


def load_sources(manifest: Path) -> dict[str, list[SourceFile]]:
    """Files of every source, keyed by source name, as pinned in the manifest."""
    spec = read_toml(manifest, "source manifest")
    return {
        name: [SourceFile(name, f["path"], f["url"], f["sha256"]) for f in entry["files"]]
        for name, entry in spec["sources"].items()
    }


def load_licences(manifest: Path) -> dict[str, str]:
    """The licence of every source, keyed by source name."""
    spec = read_toml(manifest, "source manifest")
    return {name: str(entry.get("licence", "unknown")) for name, entry in spec["sources"].items()}


def _download(url: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise BadInput(f"could not download {url}: {exc}") from None
    partial.replace(target)


def resolve(file: SourceFile, mirror: Path | None, cache: Path) -> Path:
    """Local path of `file`, from the mirror or downloaded into the cache, checksum verified."""
    if mirror is not None:
        path = mirror / file.path
        if not path.is_file():
            raise BadInput(f"missing file in mirror {mirror}: {file.path}")
    else:
        path = cache / file.path
        if not path.is_file():
            _download(file.url, path)
    actual = sha256_file(path)
    if actual != file.sha256:
        raise BadInput(f"checksum mismatch for {path}: expected sha256 {file.sha256}, got {actual}")
    return path
