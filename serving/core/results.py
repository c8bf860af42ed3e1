"""The contract's result object (DESIGN.md) from a message's scores and its decision: built once
here as the pydantic `Result` and validated, for the HTTP server, both bulk engines and
evaluation alike."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from serving.core.contract import HEADS
from serving.core.decision.decide import Decision, DecisionRules, decide, rules_in_force
from serving.core.decision.phrasing import PhraseBank, facts_of, suggest
from serving.core.decision.references import find_references
from serving.core.decision.route_policy import Policy
from serving.core.language import language_of
from serving.core.schemas import Result
from serving.core.scorer import Manifest, Scores

__all__ = ["ResultBuilder"]


@dataclass(frozen=True)
class ResultBuilder:
    """Everything after the model, for one loaded model: the decision rules in force (made
    once, see serving/core/decision/decide.py) and the phrase bank. Pure given its inputs."""

    rules: DecisionRules
    phrases: PhraseBank

    @classmethod
    def create(cls, manifest: Manifest, policy: Policy, phrases: PhraseBank) -> ResultBuilder:
        return cls(rules_in_force(manifest, policy), phrases)

    def result(
        self,
        message_id: str | None,
        text: str,
        scores: Scores,
        history: Sequence[Scores] = (),
        *,
        language: dict[str, Any] | None = None,
    ) -> Result:
        """The contract's result object; with `history` (the customer's earlier turns, oldest
        first) it gains a `thread` object and routing sees how long the customer has been
        frustrated. `language`: `language_of(text)` if the caller already has it (the server
        detects it off the event loop, while the model runs)."""
        return self.decided(message_id, text, scores, history, language=language)[1]

    def decided(
        self,
        message_id: str | None,
        text: str,
        scores: Scores,
        history: Sequence[Scores] = (),
        *,
        language: dict[str, Any] | None = None,
    ) -> tuple[Decision, Result]:
        """The decision and the result object made from it (evaluate records both)."""
        p = scores.probabilities
        decision = decide(p, self.rules, [turn.probabilities for turn in history])
        key = message_id if message_id is not None else hashlib.sha256(text.encode()).hexdigest()
        frustrated = decision.labels["frustration"] != "none"
        refs = find_references(self.phrases.references, text)  # this message only, not history
        route = decision.route
        result = {
            "id": message_id,
            "scores": {h: round(p[h], 4) for h in HEADS},
            "labels": decision.labels,
            "route": {"name": route.name, "priority": route.priority, "reason": route.reason},
            "phrasing": suggest(
                self.phrases,
                route.name,
                frustrated,
                key,
                refs,
                facts_of(text, len(history), len(refs)),
            ),
            "references": [{"kind": r.kind, "value": r.value} for r in refs],
            "uncertain": decision.uncertain,
            "truncated": scores.truncated,
            # still scored when unsupported, but marked
            "language": language_of(text) if language is None else language,
            **({"thread": decision.thread} if decision.thread else {}),
        }
        return decision, Result.model_validate(result)
