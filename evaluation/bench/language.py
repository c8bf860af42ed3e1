"""How often the language guard (serving/core/language.py) flags messages, per language.

    python -m evaluation.bench.language [--dataset data/processed/dataset.parquet] [--per 300]

Corpora, all real human-written text:
- English: every customer message of the prepared dataset's real sources (REAL_SOURCES): the
  dev split, on which the guard's cut-offs were chosen, and the test split, which gives the
  reported English false-flag rate (messages not used for the choice);
- German, Spanish, Portuguese, Italian: the Debian fortune databases (`apt-get install fortunes-de
  fortunes-es fortunes-br fortunes-it`), entries split on `%` lines, attribution lines dropped;
- French: Debian has no French fortunes, so the paragraphs of the French man pages
  (`apt-get install manpages-fr`, translated by people, not machines).
The other corpora keep their prose entries (MIN_CHARS..MAX_CHARS characters, mostly letters):
the first `--per` were looked at while the cut-offs were set, the next `--per` are held out and
give the reported figures. The time per message (held out) is indicative only: a shared
machine, one pass.
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from serving.core.errors import BadInput
from serving.core.language import language_of

__all__ = ["Corpus", "corpora", "measure"]

#: Dataset sources of real customer messages (tweets to support accounts, bank queries,
#: CFPB narratives).
REAL_SOURCES = ("real_gold", "complaints", "banking77", "cfpb_narratives")
FORTUNES = Path("/usr/share/games/fortunes")
#: Language -> its fortune file, or a folder of them.
FORTUNE_SOURCES = {
    "de": FORTUNES / "de",
    "es": FORTUNES / "es",
    "it": FORTUNES / "it",
    "pt": FORTUNES / "brasil",
}
MAN_FR = Path("/usr/share/man/fr")
MIN_CHARS, MAX_CHARS = 40, 600
COLUMNS = ("held-out messages", "flagged", "looked-at messages", "flagged", "ms per message")
#: Share of an entry's visible characters that must be letters.
PROSE_LETTERS = 0.8
_ATTRIBUTION = re.compile(r"^\s*(--|—)")
_ROFF_ESCAPE = re.compile(r"\\f[BIRP]|\\\(..|\\[-&e ]|\\s[-+]?\d")

#: Language, where its texts come from, texts looked at while choosing cut-offs, held-out texts.
Corpus = tuple[str, str, list[str], list[str]]


def _fortune_entries(files: list[Path]) -> Iterator[str]:
    for path in files:
        text = path.read_text(errors="replace")
        for entry in re.split(r"^%\s*$", text, flags=re.M):
            lines = [line for line in entry.splitlines() if not _ATTRIBUTION.match(line)]
            yield " ".join(" ".join(lines).split())


def _fortune_files(path: Path) -> list[Path]:
    """A fortune file, or the files of a folder but their index (.dat) and link (.u8)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix not in (".dat", ".u8"))


def _man_paragraphs(folder: Path) -> Iterator[str]:
    """Prose paragraphs of roff man pages: text lines between macro lines."""
    for path in sorted(folder.glob("man1/*.gz")):
        paragraph: list[str] = []
        with gzip.open(path, "rt", errors="replace") as page:
            lines = page.readlines()
        for line in lines:
            if line.startswith((".", "'")):
                if paragraph:
                    yield " ".join(" ".join(paragraph).split())
                paragraph = []
            else:
                paragraph.append(_ROFF_ESCAPE.sub("", line))
        if paragraph:
            yield " ".join(" ".join(paragraph).split())


def _prose(text: str) -> bool:
    """Of reasonable length, and mostly letters (not ASCII art or a table)."""
    visible = [c for c in text if not c.isspace()]
    letters = sum(c.isalpha() for c in visible)
    return MIN_CHARS <= len(text) <= MAX_CHARS and letters >= PROSE_LETTERS * len(visible)


def _slices(texts: Iterator[str], per: int) -> tuple[list[str], list[str]]:
    """The first `per` prose entries (looked at while choosing the cut-offs) and the next
    `per` (held out: the reported figures)."""
    kept: list[str] = []
    for text in texts:
        if _prose(text):
            kept.append(text)
            if len(kept) == 2 * per:
                break
    return kept[:per], kept[per:]


def corpora(dataset: Path, per: int) -> list[Corpus]:
    """(language, source, texts looked at, held-out texts) for every corpus installed; a
    missing one is skipped with a note on stderr. English: every real message of dev (looked
    at) and test (held out), whatever its length."""
    frame = pd.read_parquet(dataset, columns=["text", "source", "split"])
    real = frame[frame["source"].isin(REAL_SOURCES)]
    split = {name: real.loc[real["split"] == name, "text"].tolist() for name in ("dev", "test")}
    found: list[Corpus] = [
        ("en", f"dataset {'/'.join(REAL_SOURCES)}, dev / test split", split["dev"], split["test"])
    ]
    for code, path in FORTUNE_SOURCES.items():
        if path.exists():
            texts = _slices(_fortune_entries(_fortune_files(path)), per)
            found.append((code, f"Debian fortunes {path}", *texts))
        else:
            print(f"skipped {code}: {path} is not installed", file=sys.stderr)
    if MAN_FR.is_dir():
        texts = _slices(_man_paragraphs(MAN_FR), per)
        found.append(("fr", f"French man pages {MAN_FR}/man1", *texts))
    else:
        print(f"skipped fr: {MAN_FR} is not installed", file=sys.stderr)
    return found


def measure(texts: list[str]) -> tuple[float, float]:
    """Share of `texts` flagged unsupported, and mean seconds per message."""
    language_of("warm-up: the detector's model loads on first use")
    start = time.perf_counter()
    flagged = sum(not language_of(t)["supported"] for t in texts)
    seconds = time.perf_counter() - start
    return flagged / max(len(texts), 1), seconds / max(len(texts), 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=Path("data/processed/dataset.parquet"))
    parser.add_argument("--per", type=int, default=300, help="messages per corpus")
    args = parser.parse_args(argv)
    if not args.dataset.is_file():
        sys.exit(f"error: no dataset at {args.dataset}; run `helpdesk-scorer prepare` first")
    try:
        found = corpora(args.dataset, args.per)
    except (OSError, ValueError, BadInput) as exc:
        sys.exit(f"error: {exc}")
    print(f"| language | {' | '.join(COLUMNS)} | source |")
    print(f"|---|{'---:|' * len(COLUMNS)}---|")
    for name, where, looked_at, held_out in found:
        share, seconds = measure(held_out)
        seen, _ = measure(looked_at)
        print(
            f"| {name} | {len(held_out)} | {share:.1%} | {len(looked_at)} | {seen:.1%} "
            f"| {seconds * 1000:.2f} | {where} |"
        )


if __name__ == "__main__":
    main()
