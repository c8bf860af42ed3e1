"""What the running server holds: the loaded model state, the batcher, metrics, and limits."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from serving.core.contract import MANIFEST_FILE
from serving.core.decision.phrasing import PhraseBank, load_phrases
from serving.core.decision.route_policy import Policy, load_policy
from serving.core.errors import NotReady
from serving.core.language import language_of
from serving.core.results import ResultBuilder
from serving.core.scorer import ModelError, Scorer
from serving.http.batcher import MicroBatcher
from serving.http.observability import Metrics, log
from serving.http.settings import Settings

__all__ = ["ModelState", "Runtime", "load_model_state", "load_rules", "release_freed_memory"]

_LIBC = ctypes.CDLL(ctypes.util.find_library("c"))


@dataclass(frozen=True)
class ModelState:
    scorer: Scorer
    results: ResultBuilder  # the decision rules in force for this model, and the phrases

    @property
    def ref(self) -> dict[str, str]:
        manifest = self.scorer.manifest
        return {"name": manifest.name, "version": manifest.version, "sha256": manifest.sha256}


def load_rules(settings: Settings) -> tuple[Policy, PhraseBank]:
    """The routing policy and phrase bank, validated together (every route needs phrases)."""
    policy = load_policy(settings.policy_file)
    return policy, load_phrases(settings.phrases_file, tuple(r.name for r in policy.rules))


def load_model_state(
    folder: Path,
    settings: Settings,
    policy: Policy,
    phrases: PhraseBank,
    pinned: str | None = None,
) -> ModelState:
    """Verify checksums (and the digest: `pinned`, else HELPDESK_MODEL_SHA256), load, warm up,
    and check the golden scores (a served model must have some); raise ModelError if not."""
    pinned = pinned or settings.model_sha256
    scorer = Scorer.load(folder, settings.threads, settings.spin, pinned, settings.score_cache_size)
    if not scorer.manifest.raw["golden"]:
        raise ModelError(f"{folder / MANIFEST_FILE}: no golden scores to check the model against")
    scorer.score(["warm-up", "a slightly longer warm-up message to size the buffers"])
    language_of("warm-up: the language detector loads its model on first use")
    mismatches = scorer.golden_mismatches()
    if mismatches:
        raise ModelError(f"{folder}: golden check failed on {len(mismatches)} message(s)")
    return ModelState(scorer, ResultBuilder.create(scorer.manifest, policy, phrases))


def release_freed_memory() -> None:
    """Hand the heap a freed model leaves behind back to the OS: glibc keeps the pages of a
    freed session in its arenas, so without this each reload of the release model would add
    ~2 MB of resident memory for good (see evaluation/bench/reloads.py)."""
    gc.collect()
    trim = getattr(_LIBC, "malloc_trim", None)  # glibc only; elsewhere nothing to do
    if trim is not None:
        trim(0)


def _release_soon(loop: asyncio.AbstractEventLoop) -> None:
    """Trim on the event loop once the dealloc that called this (a retired model) is done."""
    if not loop.is_closed():
        loop.call_soon_threadsafe(release_freed_memory)


@dataclass
class Runtime:
    settings: Settings
    policy: Policy
    phrases: PhraseBank
    metrics: Metrics = field(default_factory=Metrics)
    model: ModelState | None = None
    batcher: MicroBatcher[ModelState] | None = None
    draining: bool = False
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def current(self) -> ModelState:
        if self.model is None:
            raise NotReady("no model loaded")
        return self.model

    def swap(self, state: ModelState) -> None:
        """Atomic: the next batch uses the new model; batches in flight finish on the old, and
        when the last of them lets it go (a batch worker may hold it until its next batch), its
        memory is handed back to the OS. Called on the event loop."""
        retired, self.model = self.model, state
        if retired is not None:
            finalizer = weakref.finalize(retired, _release_soon, asyncio.get_running_loop())
            finalizer.atexit = False
        self.metrics.model.info(state.ref)
        self.metrics.set_reference(state.scorer.manifest.reference)
        if state.scorer.manifest.reference is None:
            log("no reference score distribution in the manifest: no drift metric", model=state.ref)
