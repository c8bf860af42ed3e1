"""A synthetic edit of a real message, stored as a patch against the message, never as text.

Counterfactual rows (minimal edits of real customer messages) are near-copies of raw text, and
raw text is never committed. `text_patch` keeps only what the edit changed (character spans of
the parent and their replacement) with the sha256 of the result; `apply_patch` rebuilds the
edited text from the verified source's parent message and checks the digest.
"""

from __future__ import annotations

import hashlib
from difflib import SequenceMatcher

from serving.core.errors import BadInput

__all__ = ["Patch", "apply_patch", "parent_text", "text_patch"]

#: [[start, end, replacement], ...] over the parent's characters, in order.
Patch = list[list[object]]


def parent_text(text: str) -> str:
    """A parent message as the labellers saw it (runs of whitespace collapsed)."""
    return " ".join(text.split())


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def text_patch(parent: str, edited: str) -> dict[str, object]:
    """{ops, sha256}: the spans of `parent` that `edited` replaces, and the edit's digest."""
    matcher = SequenceMatcher(None, parent, edited, autojunk=False)
    ops: Patch = [
        [i1, i2, edited[j1:j2]] for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"
    ]
    return {"ops": ops, "sha256": _digest(edited)}


def apply_patch(parent: str, patch: dict[str, object], where: str) -> str:
    """The edited text; a parent that changed since the patch was made is a BadInput."""
    out, cursor = [], 0
    ops = patch["ops"]
    assert isinstance(ops, list)
    for start, end, replacement in ops:
        out.append(parent[cursor : int(start)] + str(replacement))
        cursor = int(end)
    edited = "".join(out) + parent[cursor:]
    if _digest(edited) != patch["sha256"]:
        raise BadInput(f"{where}: the patch does not rebuild its edit (the parent changed?)")
    return edited
