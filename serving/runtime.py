"""What the running server holds: the loaded model state, the batcher, metrics, and limits."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from serving.batcher import MicroBatcher
from serving.errors import UserError
from serving.observability import Metrics
from serving.phrasing import PhraseBank, load_phrases
from serving.results import Decider
from serving.routing import Policy, load_policy
from serving.scorer import ModelError, Scorer
from serving.settings import Settings

__all__ = ["ModelState", "Runtime", "load_model_state", "load_rules"]


@dataclass(frozen=True)
class ModelState:
    scorer: Scorer
    decider: Decider

    @property
    def ref(self) -> dict[str, str]:
        manifest = self.scorer.manifest
        return {"name": manifest.name, "version": manifest.version, "sha256": manifest.sha256}


def load_rules(settings: Settings) -> tuple[Policy, PhraseBank]:
    """The routing policy and phrase bank, validated together (every route needs phrases)."""
    policy = load_policy(settings.policy_file)
    return policy, load_phrases(settings.phrases_file, tuple(r.name for r in policy.rules))


def load_model_state(
    folder: Path, settings: Settings, policy: Policy, phrases: PhraseBank
) -> ModelState:
    """Verify checksums, load, warm up, and check the golden scores; raise ModelError if not."""
    scorer = Scorer.load(folder, settings.threads, settings.spin)
    scorer.score(["warm-up", "a slightly longer warm-up message to size the buffers"])
    mismatches = scorer.golden_mismatches()
    if mismatches:
        raise ModelError(f"{folder}: golden check failed on {len(mismatches)} message(s)")
    return ModelState(scorer, Decider(scorer.manifest, policy, phrases))


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
            raise UserError("no model loaded")
        return self.model

    def swap(self, state: ModelState) -> None:
        """Atomic: the next batch uses the new model; batches in flight finish on the old."""
        self.model = state
        self.metrics.model.info(state.ref)
