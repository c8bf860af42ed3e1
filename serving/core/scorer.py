"""Load a released model folder and turn texts into calibrated scores (onnxruntime, no torch)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from serving.core.artifact import Manifest, ModelError, verify_folder
from serving.core.contract import HEADS, MANIFEST_FILE, MODEL_FILE, OUTPUT_NAME, TOKENIZER_FILE
from serving.core.score_cache import ScoreCache
from serving.core.text import TONE_FEATURES, Encoded, encode, load_tokenizer, token_counts

__all__ = [
    "Manifest",
    "ModelError",
    "Scorer",
    "Scores",
    "Timings",
    "verify_folder",
]


@dataclass
class Timings:
    """Seconds spent tokenizing and in the ONNX session, accumulated over batches, and the
    texts the score cache answered."""

    tokenize: float = 0.0
    inference: float = 0.0
    cached: int = 0  # texts answered from the score cache, not the model


@dataclass(frozen=True)
class Scores:
    """Calibrated probabilities for one message, and whether its text was cut to fit."""

    probabilities: dict[str, float]
    truncated: bool


#: A text must hold one character other than ASCII whitespace; spelled as a regex so the API
#: schema can state the same rule (engines disagree on what else counts as whitespace).
class Scorer:
    """Tokenize, run the ONNX graph in length-sorted batches, apply per-head temperatures."""

    def __init__(
        self,
        manifest: Manifest,
        session: ort.InferenceSession,
        tokenizer: Tokenizer,
        cache: ScoreCache[Scores] | None = None,
    ):
        self.manifest = manifest
        self.session = session
        self.tokenizer = tokenizer
        self.cache = cache  # `score` keeps and reuses scores here (serving.core.score_cache)
        #: The graph's inputs, read once: a model exported before tone features has two.
        self.input_names = [i.name for i in session.get_inputs()]

    @classmethod
    def load(
        cls,
        folder: Path,
        threads: int = 0,
        spin: bool = True,
        pinned: str | None = None,
        cache_size: int = 0,
    ) -> Scorer:
        """Verify and load `folder`; threads=0 lets onnxruntime use the CPUs this process may.

        spin=False stops onnxruntime's threads from busy-waiting for work between runs: in a
        server they would take the cores the event loop needs to parse the next requests.
        `pinned` is the folder digest the deployment expects (HELPDESK_MODEL_SHA256);
        `cache_size` > 0 gives `score` a score cache of that many entries.
        """
        manifest = verify_folder(folder, pinned)
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
        scorer = cls(manifest, session, tokenizer, ScoreCache(cache_size) if cache_size else None)
        scorer.check_fit(folder)
        return scorer

    def check_fit(self, folder: Path) -> None:
        """The manifest must fit the graph and the tokenizer: the graph's inputs are the
        manifest's, it takes `max_length` tokens of the tokenizer's highest id (position and
        word embeddings are large enough), and it has one output column per head."""
        where = folder / MANIFEST_FILE
        if tuple(self.input_names) != self.manifest.inputs:
            raise ModelError(
                f"{where}: inputs {list(self.manifest.inputs)} are not those of {MODEL_FILE} "
                f"{self.input_names}"
            )
        width = self.manifest.max_length + self.manifest.context_length
        top = self.tokenizer.get_vocab_size() - 1
        types = np.zeros((1, width), dtype=np.int64)
        types[0, self.manifest.max_length :] = 1
        probe = Encoded(
            np.full((1, width), top, dtype=np.int64),
            np.ones((1, width), dtype=np.int64),
            np.zeros((1, len(TONE_FEATURES)), dtype=np.float32),
            [False],
            types,
        )
        quiet = ort.RunOptions()
        quiet.log_severity_level = 4  # the failure is the ModelError below, not a log line
        try:
            (logits,) = self.session.run([OUTPUT_NAME], probe.inputs(self.input_names), quiet)
        except Exception as exc:  # onnxruntime's own error types
            reason = str(exc).splitlines()[0][:300]
            raise ModelError(
                f"{where}: max_length {width} with {TOKENIZER_FILE}'s ids up to {top} does not "
                f"fit {MODEL_FILE}: {reason}"
            ) from None
        if logits.shape != (1, len(HEADS)):
            raise ModelError(
                f"{where}: {MODEL_FILE} gives {logits.shape[1:]} outputs, not {len(HEADS)} heads"
            )

    def _run(
        self, texts: Sequence[str], contexts: Sequence[str], timings: Timings
    ) -> tuple[np.ndarray, list[bool]]:
        started = time.perf_counter()
        manifest = self.manifest
        encoded = encode(
            self.tokenizer, texts, manifest.max_length, contexts, manifest.context_length
        )
        tokenized = time.perf_counter()
        (logits,) = self.session.run([OUTPUT_NAME], encoded.inputs(self.input_names))
        timings.tokenize += tokenized - started
        timings.inference += time.perf_counter() - tokenized
        probs = 1.0 / (1.0 + np.exp(-logits / self.manifest.temperatures))
        return probs.astype(np.float64), encoded.truncated

    def probabilities_and_truncation(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        timings: Timings | None = None,
        contexts: Sequence[str] | None = None,
    ) -> tuple[np.ndarray, list[bool]]:
        """Calibrated probabilities, shape (len(texts), len(HEADS)), and a truncation flag each.

        `contexts` (one `serving.core.text.context_text` per text, "" for none) reach a model that
        reads context and are ignored by one that does not. Texts run in length-sorted batches
        of `batch_size` to limit padding; `timings`, when given, accumulates the seconds spent
        tokenizing and in the ONNX session.
        """
        timings = timings if timings is not None else Timings()
        context = self._read_contexts(len(texts), contexts)
        order = np.argsort(
            [len(t) + len(c) for t, c in zip(texts, context, strict=True)], kind="stable"
        )
        probs = np.zeros((len(texts), len(HEADS)))
        truncated = [False] * len(texts)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            batch_probs, batch_truncated = self._run(
                [texts[i] for i in rows], [context[i] for i in rows], timings
            )
            probs[rows] = batch_probs
            for i, flag in zip(rows, batch_truncated, strict=True):
                truncated[i] = flag
        return probs, truncated

    def _read_contexts(self, count: int, contexts: Sequence[str] | None) -> list[str]:
        """The contexts this model reads: as given for a thread-reading model, none ("")
        for one that reads the message alone, or when none were given."""
        if self.manifest.context_length > 0 and contexts is not None:
            return list(contexts)
        return [""] * count

    def token_counts(
        self, texts: Sequence[str], contexts: Sequence[str] | None = None
    ) -> list[int]:
        """The tokens each text (with its context, for a model that reads one) costs this
        model before padding: what admission and batching budget with."""
        manifest = self.manifest
        context = self._read_contexts(len(texts), contexts)
        return token_counts(
            self.tokenizer, texts, manifest.max_length, context, manifest.context_length
        )

    def probabilities(
        self, texts: Sequence[str], batch_size: int = 32, contexts: Sequence[str] | None = None
    ) -> np.ndarray:
        return self.probabilities_and_truncation(texts, batch_size, contexts=contexts)[0]

    def score(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        timings: Timings | None = None,
        contexts: Sequence[str] | None = None,
    ) -> list[Scores]:
        """Scores of `texts`, as `probabilities_and_truncation` computes them; with a cache,
        a (context, text) scored before is answered from it (`timings.cached` counts them)."""
        timings = timings if timings is not None else Timings()
        if self.cache is None:
            return self._scores(texts, batch_size, timings, contexts)
        context = self._read_contexts(len(texts), contexts)
        keys = [self.cache.key(t, c) for t, c in zip(texts, context, strict=True)]
        found = [self.cache.get(k) for k in keys]
        missing = [i for i, s in enumerate(found) if s is None]
        if missing:
            fresh = self._scores(
                [texts[i] for i in missing], batch_size, timings, [context[i] for i in missing]
            )
            for i, scores in zip(missing, fresh, strict=True):
                found[i] = scores
                self.cache.put(keys[i], scores)
        timings.cached += len(texts) - len(missing)
        return [s for s in found if s is not None]

    def _scores(
        self,
        texts: Sequence[str],
        batch_size: int,
        timings: Timings,
        contexts: Sequence[str] | None,
    ) -> list[Scores]:
        probs, truncated = self.probabilities_and_truncation(texts, batch_size, timings, contexts)
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
