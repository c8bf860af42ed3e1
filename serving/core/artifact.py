"""A released model folder: its validated manifest, its checksums and its identity (digest).

`CHECKSUMS_FILE` (SHA256SUMS, the `sha256sum` format, one "<sha256>  <name>" line per file,
sorted) lists every other file of the folder, manifest.json included. The model's identity is
the sha256 of that file: a changed byte anywhere fails a checksum or changes the identity, and a
deployment can pin it (HELPDESK_MODEL_SHA256). Seal a folder after editing it on purpose:

    python -m serving.core.artifact models/release
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from serving.core.contract import (
    CHECKSUMS_FILE,
    FRUSTRATION_LEVELS,
    HEADS,
    INPUT_NAMES,
    MANIFEST_FILE,
    MAX_LENGTH_TOKENS,
    MODEL_FILE,
    RELEASE_DIR,
    TOKENIZER_FILE,
)
from serving.core.drift import DRIFT_BINS
from serving.core.errors import HelpdeskError, ModelRefused
from serving.core.files import sha256_file

__all__ = [
    "TEMPERATURE_RANGE",
    "Manifest",
    "ModelError",
    "checksum_lines",
    "folder_digest",
    "seal",
    "verify_folder",
]

#: Calibration temperatures outside this range flatten every score to 0.5 or to 0/1.
TEMPERATURE_RANGE = (0.05, 20.0)
_LINE = re.compile(r"([0-9a-f]{64})  ([^/\\\x00-\x1f]+)")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"
_V = TypeVar("_V")


class ModelError(ModelRefused):
    """A model folder that cannot be trusted or loaded: names the file and the reason."""


Probability = Annotated[float, Field(gt=0, lt=1)]
Temperature = Annotated[float, Field(ge=TEMPERATURE_RANGE[0], le=TEMPERATURE_RANGE[1])]


def _per_head(value: dict[str, _V]) -> dict[str, _V]:
    if sorted(value) != sorted(HEADS):
        raise ValueError(f"needs exactly the heads {list(HEADS)}, has {sorted(value)}")
    return value


class _Calibration(BaseModel):
    model_config = ConfigDict(extra="allow")

    temperature: Annotated[dict[str, Temperature], AfterValidator(_per_head)]


class _Golden(BaseModel):
    text: str = Field(min_length=1)
    probabilities: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        min_length=len(HEADS), max_length=len(HEADS)
    )


def _histogram(value: list[int]) -> list[int]:
    if len(value) != DRIFT_BINS or sum(value) == 0:
        raise ValueError(f"needs {DRIFT_BINS} bin counts, not all zero")
    return value


class _Reference(BaseModel):
    """Score histograms per head of the dev messages export saw (serving/core/drift.py)."""

    model_config = ConfigDict(extra="allow")  # where the messages came from: free text

    bins: int
    counts: Annotated[
        dict[str, Annotated[list[Annotated[int, Field(ge=0)]], AfterValidator(_histogram)]],
        AfterValidator(_per_head),
    ]

    @field_validator("bins")
    @classmethod
    def same_bins(cls, value: int) -> int:
        if value != DRIFT_BINS:
            raise ValueError(f"must be {DRIFT_BINS}, the bins serving/core/drift.py defines")
        return value


class _ManifestFile(BaseModel):
    """manifest.json as written by training/export.py; other fields (metrics...) pass through."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(max_length=100, pattern=_NAME)  # shown in responses, logs and metrics
    version: str = Field(max_length=50, pattern=_NAME)
    heads: list[str]
    inputs: list[str] = Field(min_length=1)
    output: Literal["logits"]
    max_length: int = Field(ge=4, le=MAX_LENGTH_TOKENS)
    #: Tokens of thread context after the message (0: the model reads the message alone).
    context_length: int = Field(0, ge=0, le=MAX_LENGTH_TOKENS)
    calibration: _Calibration
    thresholds: Annotated[dict[str, Probability], AfterValidator(_per_head)]
    frustration_levels: dict[str, Probability]
    uncertainty_margin: float = Field(0.05, ge=0, lt=0.5)
    files: dict[str, str]
    golden: list[_Golden] = Field(default_factory=list)
    reference: _Reference | None = None  # older models have none: no drift metric

    @field_validator("heads")
    @classmethod
    def same_heads(cls, value: list[str]) -> list[str]:
        if value != list(HEADS):
            raise ValueError(f"must be {list(HEADS)}")
        return value

    @field_validator("inputs")
    @classmethod
    def known_inputs(cls, value: list[str]) -> list[str]:
        if not set(value) <= set(INPUT_NAMES) or len(set(value)) != len(value):
            raise ValueError(f"must be distinct names among {list(INPUT_NAMES)}")
        return value

    @field_validator("frustration_levels")
    @classmethod
    def ordered_levels(cls, value: dict[str, float]) -> dict[str, float]:
        levels = [level for level in FRUSTRATION_LEVELS if level != "none"]
        if sorted(value) != sorted(levels) or value["mild"] > value["strong"]:
            raise ValueError(f"needs {levels} with mild <= strong")
        return value


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    sha256: str  # the folder digest: the model's identity
    inputs: tuple[str, ...]
    max_length: int
    context_length: int
    temperatures: np.ndarray  # shape (len(HEADS),)
    thresholds: dict[str, float]
    frustration_levels: dict[str, float]
    uncertainty_margin: float
    raw: dict[str, Any]
    #: Reference score histogram per head (bin counts), None for a model exported without one.
    reference: dict[str, list[int]] | None = None


def checksum_lines(hashes: dict[str, str]) -> str:
    return "".join(f"{hashes[name]}  {name}\n" for name in sorted(hashes))


def _hash_folder(folder: Path) -> dict[str, str]:
    """sha256 of every file of `folder` but SHA256SUMS; a subfolder is refused."""
    hashes = {}
    for path in sorted(folder.iterdir()):
        if path.name == CHECKSUMS_FILE:
            continue
        if not path.is_file():
            raise ModelError(f"model folder {folder} holds {path.name}, which is not a file")
        hashes[path.name] = sha256_file(path)
    return hashes


def _read_checksums(folder: Path) -> dict[str, str]:
    path = folder / CHECKSUMS_FILE
    if not path.is_file():
        raise ModelError(
            f"model folder {folder} has no {CHECKSUMS_FILE}; "
            "seal it: python -m serving.core.artifact"
        )
    listed: dict[str, str] = {}
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        match = _LINE.fullmatch(line)
        if match is None or match[2] in listed:
            raise ModelError(f"{path} line {number} is not '<sha256>  <file name>' (once each)")
        listed[match[2]] = match[1]
    return listed


def _parse_manifest(folder: Path) -> _ManifestFile:
    path = folder / MANIFEST_FILE
    try:
        return _ManifestFile.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'manifest'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ModelError(f"{path} is not a valid manifest: {problems}") from None


def _check_files(folder: Path, listed: dict[str, str]) -> None:
    """Every file listed in SHA256SUMS is there with that sha256, and nothing else is."""
    for required in (MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE):
        if required not in listed:
            raise ModelError(f"{folder / CHECKSUMS_FILE} does not list {required}")
    actual = _hash_folder(folder)
    unexpected = sorted(set(actual) - set(listed))
    if unexpected:
        raise ModelError(
            f"model folder {folder} has files {CHECKSUMS_FILE} does not list: {unexpected}"
        )
    for name, expected in listed.items():
        if name not in actual:
            raise ModelError(f"model file missing: {folder / name}")
        if actual[name] != expected:
            raise ModelError(
                f"checksum mismatch for {folder / name}: the file was changed or corrupted"
            )


def _check_manifest_files(folder: Path, listed: dict[str, str], files: dict[str, str]) -> None:
    """The manifest's own per-file checksums agree with SHA256SUMS."""
    wrong = sorted(name for name, sha256 in files.items() if listed.get(name) != sha256)
    if wrong:
        raise ModelError(f"{folder / MANIFEST_FILE} lists {wrong} with another sha256")


def folder_digest(folder: Path) -> str:
    """The model's identity: sha256 of its SHA256SUMS file."""
    return hashlib.sha256((folder / CHECKSUMS_FILE).read_bytes()).hexdigest()


def verify_folder(folder: Path, pinned: str | None = None) -> Manifest:
    """Check every file against SHA256SUMS, the digest against `pinned` (if given) and the
    manifest's fields; raise ModelError naming the file (and field) if not."""
    try:
        if not folder.is_dir():
            raise ModelError(
                f"model folder {folder} does not exist (point at one with --model or "
                "HELPDESK_MODEL_DIR)"
            )
        if not (folder / MANIFEST_FILE).is_file():
            raise ModelError(f"model folder {folder} has no {MANIFEST_FILE}")
        listed = _read_checksums(folder)
        digest = folder_digest(folder)
        if pinned is not None and digest != pinned:
            raise ModelError(
                f"{folder / CHECKSUMS_FILE}: model digest {digest} is not the pinned {pinned} "
                "(HELPDESK_MODEL_SHA256)"
            )
        _check_files(folder, listed)  # before the manifest is parsed: it may be an attack
        parsed = _parse_manifest(folder)
        _check_manifest_files(folder, listed, parsed.files)
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte, a lone surrogate
        raise ModelError(f"cannot read model folder {folder!r}: {exc}") from None
    return Manifest(
        name=parsed.name,
        version=parsed.version,
        sha256=digest,
        inputs=tuple(parsed.inputs),
        max_length=parsed.max_length,
        context_length=parsed.context_length,
        temperatures=np.array([parsed.calibration.temperature[h] for h in HEADS], dtype=np.float32),
        thresholds={h: parsed.thresholds[h] for h in HEADS},
        frustration_levels=parsed.frustration_levels,
        uncertainty_margin=parsed.uncertainty_margin,
        raw=parsed.model_dump(mode="json"),
        reference=None if parsed.reference is None else parsed.reference.counts,
    )


def seal(folder: Path) -> str:
    """Write SHA256SUMS for `folder` after checking the manifest (fields and its per-file
    checksums); return the new digest. For an edit made on purpose, and for export."""
    parsed = _parse_manifest(folder)
    hashes = _hash_folder(folder)
    _check_manifest_files(folder, hashes, parsed.files)
    (folder / CHECKSUMS_FILE).write_text(checksum_lines(hashes))
    return folder_digest(folder)


if __name__ == "__main__":
    for argument in sys.argv[1:] or [str(RELEASE_DIR)]:
        try:
            print(f"{seal(Path(argument))}  {argument}")
        except HelpdeskError as exc:
            sys.exit(f"error: {exc}")
