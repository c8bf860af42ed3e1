"""Load a released model folder and turn texts into calibrated scores (onnxruntime, no torch)."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from serving.contract import (
    HEADS,
    MANIFEST_FILE,
    MODEL_FILE,
    OUTPUT_NAME,
    TOKENIZER_FILE,
)
from serving.errors import UserError
from serving.files import sha256_file
from serving.text import encode, load_tokenizer

__all__ = [
    "Manifest",
    "ModelError",
    "Scorer",
    "Scores",
    "Timings",
    "text_error",
    "verify_folder",
]


class ModelError(UserError):
    """A model folder that cannot be trusted or loaded: names the file and the reason."""


@dataclass
class Timings:
    """Seconds spent tokenizing and in the ONNX session, accumulated over batches."""

    tokenize: float = 0.0
    inference: float = 0.0


@dataclass(frozen=True)
class Scores:
    """Calibrated probabilities for one message, and whether its text was cut to fit."""

    probabilities: dict[str, float]
    truncated: bool


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    sha256: str  # of the ONNX file
    max_length: int
    temperatures: np.ndarray  # shape (len(HEADS),)
    thresholds: dict[str, float]
    frustration_levels: dict[str, float]
    uncertainty_margin: float
    raw: dict[str, Any]


def verify_folder(folder: Path) -> Manifest:
    """Read the manifest and check the sha256 of every file it lists; raise ModelError if not."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise ModelError(f"model folder {folder} has no {MANIFEST_FILE}")
    try:
        raw = json.loads(path.read_text())
        files: dict[str, str] = raw["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ModelError(f"{path} is not a valid manifest: {exc}") from None
    for required in (MODEL_FILE, TOKENIZER_FILE):
        if required not in files:
            raise ModelError(f"{path} does not list {required}")
    unexpected = sorted(
        p.name for p in folder.iterdir() if p.name not in files and p.name != MANIFEST_FILE
    )
    if unexpected:
        raise ModelError(
            f"model folder {folder} has files its manifest does not list: {unexpected}"
        )
    for name, expected in files.items():
        file = folder / name
        if not file.is_file():
            raise ModelError(f"model file missing: {file}")
        if sha256_file(file) != expected:
            raise ModelError(f"checksum mismatch for {file}: the file was changed or corrupted")
    if list(raw.get("heads", [])) != list(HEADS):
        raise ModelError(f"{path} heads {raw.get('heads')} do not match {list(HEADS)}")
    try:
        return Manifest(
            name=str(raw["name"]),
            version=str(raw["version"]),
            sha256=files[MODEL_FILE],
            max_length=int(raw["max_length"]),
            temperatures=np.array(
                [raw["calibration"]["temperature"][h] for h in HEADS], dtype=np.float32
            ),
            thresholds={h: float(raw["thresholds"][h]) for h in HEADS},
            frustration_levels={k: float(v) for k, v in raw["frustration_levels"].items()},
            uncertainty_margin=float(raw.get("uncertainty_margin", 0.05)),
            raw=raw,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path} is missing a field or has a wrong type: {exc}") from None


#: A text must hold one character other than ASCII whitespace; spelled as a regex so the API
#: schema can state the same rule (engines disagree on what else counts as whitespace).
NOT_BLANK_PATTERN = r"[^ \t\n\r\f\v]"
NOT_BLANK = re.compile(NOT_BLANK_PATTERN)


def text_error(text: str) -> str | None:
    """Why `text` cannot be scored, or None: blank text, or a lone surrogate (from a JSON
    escape such as "\\ud800"), which is not valid Unicode and which the tokenizer rejects."""
    if not NOT_BLANK.search(text):
        return "empty or whitespace-only text"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text is not valid Unicode (lone surrogate)"
    return None


class Scorer:
    """Tokenize, run the ONNX graph in length-sorted batches, apply per-head temperatures."""

    def __init__(self, manifest: Manifest, session: ort.InferenceSession, tokenizer: Tokenizer):
        self.manifest = manifest
        self.session = session
        self.tokenizer = tokenizer
        #: The graph's inputs, read once: a model exported before tone features has two.
        self.input_names = [i.name for i in session.get_inputs()]

    @classmethod
    def load(cls, folder: Path, threads: int = 0, spin: bool = True) -> Scorer:
        """Verify and load `folder`; threads=0 lets onnxruntime use the CPUs this process may.

        spin=False stops onnxruntime's threads from busy-waiting for work between runs: in a
        server they would take the cores the event loop needs to parse the next requests.
        """
        manifest = verify_folder(folder)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
        options.inter_op_num_threads = 1
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(
                str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"]
            )
            tokenizer = load_tokenizer(folder / TOKENIZER_FILE)
        except Exception as exc:  # onnxruntime and tokenizers raise their own base types
            raise ModelError(f"cannot load model from {folder}: {exc}") from None
        return cls(manifest, session, tokenizer)

    def _run(self, texts: Sequence[str], timings: Timings) -> tuple[np.ndarray, list[bool]]:
        started = time.perf_counter()
        encoded = encode(self.tokenizer, texts, self.manifest.max_length)
        tokenized = time.perf_counter()
        (logits,) = self.session.run([OUTPUT_NAME], encoded.inputs(self.input_names))
        timings.tokenize += tokenized - started
        timings.inference += time.perf_counter() - tokenized
        probs = 1.0 / (1.0 + np.exp(-logits / self.manifest.temperatures))
        return probs.astype(np.float64), encoded.truncated

    def probabilities_and_truncation(
        self, texts: Sequence[str], batch_size: int = 32, timings: Timings | None = None
    ) -> tuple[np.ndarray, list[bool]]:
        """Calibrated probabilities, shape (len(texts), len(HEADS)), and a truncation flag each.

        Texts run in length-sorted batches of `batch_size` to limit padding; `timings`, when
        given, accumulates the seconds spent tokenizing and in the ONNX session.
        """
        timings = timings if timings is not None else Timings()
        order = np.argsort([len(t) for t in texts], kind="stable")
        probs = np.zeros((len(texts), len(HEADS)))
        truncated = [False] * len(texts)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            batch_probs, batch_truncated = self._run([texts[i] for i in rows], timings)
            probs[rows] = batch_probs
            for i, flag in zip(rows, batch_truncated, strict=True):
                truncated[i] = flag
        return probs, truncated

    def probabilities(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return self.probabilities_and_truncation(texts, batch_size)[0]

    def score(
        self, texts: Sequence[str], batch_size: int = 32, timings: Timings | None = None
    ) -> list[Scores]:
        probs, truncated = self.probabilities_and_truncation(texts, batch_size, timings)
        return [
            Scores({h: float(p[j]) for j, h in enumerate(HEADS)}, t)
            for p, t in zip(probs, truncated, strict=True)
        ]

    def golden_mismatches(self, tolerance: float = 1e-3) -> list[str]:
        """Texts of the manifest's golden set whose scores differ from export time."""
        golden = self.manifest.raw.get("golden", [])
        return [
            g["text"]
            for g in golden
            if np.abs(self.probabilities([g["text"]])[0] - np.array(g["probabilities"])).max()
            > tolerance
        ]
