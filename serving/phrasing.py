"""Suggested phrasing as data: a TOML phrase bank and a pure, deterministic choice."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from serving.errors import UserError
from serving.files import read_toml
from serving.references import Reference, ReferenceKind, acknowledge, load_references

__all__ = ["DEFAULT_PHRASES", "PhraseBank", "load_phrases", "suggest"]

DEFAULT_PHRASES = Path(__file__).with_name("phrases.toml")


@dataclass(frozen=True)
class PhraseBank:
    routes: dict[str, dict[str, tuple[str, ...]]]  # route -> {"open": ..., "next": ...}
    frustrated_open: tuple[str, ...]
    references: tuple[ReferenceKind, ...] = ()

    def all_phrases(self) -> list[str]:
        """Every sentence of the bank, acknowledgement templates with `{value}` unfilled."""
        every = [p for parts in self.routes.values() for ps in parts.values() for p in ps]
        return [*every, *self.frustrated_open, *(k.say for k in self.references)]


def load_phrases(path: Path = DEFAULT_PHRASES, routes: tuple[str, ...] = ()) -> PhraseBank:
    """Parse and validate a phrase bank; every route named in `routes` must have phrases."""
    raw = read_toml(path, "phrase bank")
    bank: dict[str, dict[str, tuple[str, ...]]] = {}
    for name, parts in raw.get("routes", {}).items():
        bank[name] = {}
        for part in ("open", "next"):
            phrases = parts.get(part)
            if not phrases or not all(isinstance(p, str) and p.strip() for p in phrases):
                raise UserError(f"{path}: routes.{name}.{part} needs a list of non-empty strings")
            bank[name][part] = tuple(phrases)
    missing = [r for r in routes if r not in bank]
    if missing:
        raise UserError(f"{path}: no phrases for routes {missing}")
    frustrated = tuple(raw.get("frustrated", {}).get("open", ()))
    if not frustrated:
        raise UserError(f"{path}: frustrated.open needs at least one phrase")
    return PhraseBank(bank, frustrated, load_references(raw.get("references", {}), path))


def _pick(options: tuple[str, ...], key: str, salt: str) -> str:
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return options[int.from_bytes(digest[:4], "big") % len(options)]


def suggest(
    bank: PhraseBank, route: str, frustrated: bool, key: str, refs: Sequence[Reference] = ()
) -> list[str]:
    """An opener and a next step for `route`, the same for the same message `key` every time;
    between them, when the customer gave a reference, a sentence that names the first one."""
    parts = bank.routes[route]
    opener = _pick(bank.frustrated_open if frustrated else parts["open"], key, "open")
    named = [acknowledge(bank.references, refs[0])] if refs else []
    return [opener, *named, _pick(parts["next"], key, "next")]
