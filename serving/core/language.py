"""Is a message mostly not English? The model was trained on English only, so such a message is
still scored but marked `"language": {"supported": false, ...}` instead of passing silently.

Detection is py3langid (a maintained fork of langid.py: naive Bayes over byte n-grams, model
bundled in the wheel, numpy only), decided conservatively, since a false flag on an English
message is the costly mistake:

- only the first `DETECT_CHARS` characters are read (the model itself reads fewer), so a long
  message costs no more than a paragraph;
- URLs, e-mail addresses, @handles, #tags and __placeholders__ are removed (not language);
- a text with fewer than `MIN_LETTERS` letters is too short to judge: supported, detected null;
- a text whose letters are mostly outside the Latin script (Cyrillic, CJK, Arabic...) is not
  English whatever its length beyond `MIN_SCRIPT_LETTERS`;
- otherwise it is unsupported only when the detector names another language with probability
  at least `MIN_CONFIDENCE`.

The cut-offs were chosen on the dev split; the measured flag rates per language are in
docs/language-and-drift.md (`python -m evaluation.bench.language`).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from py3langid.langid import MODEL_FILE, LanguageIdentifier

__all__ = ["MIN_CONFIDENCE", "MIN_LETTERS", "NON_ENGLISH_ALERT", "SUPPORTED", "language_of"]

#: The one language the model was trained on.
SUPPORTED = "en"
#: Fewer letters than this (after removing URLs and handles) are too few to judge.
MIN_LETTERS = 20
#: Letters needed to call a mostly non-Latin text non-English.
MIN_SCRIPT_LETTERS = 4
#: The detector's normalised probability for another language needed to flag a text.
MIN_CONFIDENCE = 0.5
#: Share of recent messages flagged above which deploy/monitoring/prometheusrule.yaml alerts.
NON_ENGLISH_ALERT = 0.05
#: Characters of a message the decision reads: its beginning, as the model does.
DETECT_CHARS = 1000
#: Last code point of Latin Extended-B: letters above it are another script.
_LATIN_END = 0x024F
_NOT_LANGUAGE = re.compile(r"https?://\S+|www\.\S+|\S+@\S+|[@#]\w+|__\w+__")


@cache
def _identifier() -> LanguageIdentifier:
    """Loaded once per process on first use (about a second; the model is ~4 MB)."""
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def language_of(text: str) -> dict[str, Any]:
    """`{"supported": bool, "detected": code or None}` for one message (see the module doc)."""
    cleaned = _NOT_LANGUAGE.sub(" ", text[:DETECT_CHARS])
    letters = [c for c in cleaned if c.isalpha()]
    latin = sum(ord(c) <= _LATIN_END for c in letters)
    other_script = len(letters) >= MIN_SCRIPT_LETTERS and latin < len(letters) / 2
    if len(letters) < MIN_LETTERS and not other_script:
        return {"supported": True, "detected": None}
    detected, confidence = _identifier().classify(cleaned)
    flagged = other_script or (detected != SUPPORTED and confidence >= MIN_CONFIDENCE)
    return {"supported": not flagged, "detected": detected}
