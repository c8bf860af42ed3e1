"""The scaled real-text draw: ten thousand more real customer messages, stratified, to label.

`python -m training.real_scale_draw` draws (seeded) from the real sources one message per thread,
from threads no earlier real gold or real training row uses, in recorded strata. A stratum says
why a message was drawn, never what its label is:

- `random`: uniform over threads, so prevalence is estimated honestly;
- targeted strata for what the 0.2.0 release misses (`STRATUM_CUES`): sarcasm cues, repetition
  and waiting, minimal or resigned replies after an agent turn, complaints likely without merit,
  anger without a concrete object;
- `uncertain`: messages where the release sits near a threshold or its heads contradict.

It writes the labellers' batches (text and thread only, with hidden check questions from the
adjudicated real gold dev split) under `data/real_scale/to_label/` (git-ignored: raw text), and
the committed `data/real_scale/drawn.jsonl` (id, source, thread, stratum, batch; no text).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from serving.core.errors import BadInput
from training.gold import jsonl_records
from training.real_gold import MAX_DRAW_CHARS, REAL_GOLD_DIR, real_pool
from training.real_scale import scale_split
from training.real_scale_labels import read_key
from training.sources import DEFAULT_MIRROR

__all__ = [
    "BATCH_SIZE",
    "CHECKS_PER_BATCH",
    "QUOTAS",
    "SCALE_DIR",
    "STRATUM_CUES",
    "draw",
    "render_batch",
]

SCALE_DIR = Path("data/real_scale")
SEED = 2027
#: Messages per stratum; the order is the order of drawing (a thread is drawn once).
QUOTAS: Mapping[str, int] = {
    "random": 3600,
    "sarcasm": 1100,
    "repetition": 1100,
    "minimal": 1300,
    "no_merit": 1400,
    "anger_no_object": 800,
    "uncertain": 1200,
}
BATCH_SIZE = 250
#: Hidden check questions per batch (>= 5%), drawn from the real gold dev split.
CHECKS_PER_BATCH = 14
#: Share of the new rows that a second, independent labeller labels.
SECOND_PASS_SHARE = 0.10

_FAILURE = (
    r"delay\w*|cancel\w*|bag\w*|luggage|refund\w*|charg\w*|flight|seat|order|deliver\w*|"
    r"package|app|account|card|payment|ticket|booking|reservation|wifi|wi-fi|phone|service|"
    r"hold|wait\w*|upgrade|miles|points|crew|staff|agent|gate|broken|lost|missing|wrong|error"
)
_ANGER = (
    r"\b(worst|hate|suck\w*|garbage|trash|pathetic|joke|disgust\w*|horrible|terrible|awful|"
    r"fuck\w*|shit\w*|wtf|damn|idiot\w*|useless|ridiculous|unacceptable|furious|angry)\b|!{3,}|"
    r"\b[A-Z]{4,}\b.*\b[A-Z]{4,}\b"
)
#: Regex cues of each targeted stratum (a cue only decides where to look, never the label).
STRATUM_CUES: Mapping[str, re.Pattern[str]] = {
    "sarcasm": re.compile(
        r"(thanks? (a lot|for nothing|so much for)|\bgreat\b|\blove\b|\blovely\b|\bawesome\b|"
        r"\bfantastic\b|\bbrilliant\b|\bwonderful\b|\bamazing\b|(very|so|super) helpful|"
        r"\bnice\b|well done|good job|#not\b|\byay\b|\bcongrat\w*|\bkudos\b|"
        r"[\"\u201c\u2018'][^\"\u201d\u2019']{3,40}[\"\u201d\u2019']|🙄|😒|🙃|👏)",
        re.IGNORECASE,
    ),
    "repetition": re.compile(
        r"\b(again|still|(second|third|fourth|2nd|3rd|4th|\d+(st|nd|rd|th)) time|no (reply|"
        r"response|answer|one)|haven'?t heard|yet another|keep (getting|asking|saying)|"
        r"how many times|on hold|waiting|waited|for (hours|days|weeks)|since (yesterday|monday|"
        r"tuesday|wednesday|thursday|friday|saturday|sunday|last)|already (told|sent|asked|dm))\b",
        re.IGNORECASE,
    ),
    "minimal": re.compile(
        r"\b(never ?mind|nvm|forget (it|about it)|whatever|doesn'?t matter|don'?t care|"
        r"give up|i'?m done|fine\.?$|ok\.?$|okay\.?$|k\.?$|sure\.?$)\b",
        re.IGNORECASE,
    ),
    "no_merit": re.compile(
        r"\b(price\w*|fee|fees|expensive|overpriced|cost\w*|policy|policies|rules?|"
        r"my (fault|mistake|bad)|i (forgot|missed|accidentally|typed|booked the wrong|overslept)|"
        r"weather|snow\w*|storm\w*|hurricane|fog|ice|passenger\w*|the (guy|lady|woman|man|kid|"
        r"baby|family) (next|behind|in front)|reclin\w*|crying|smell\w*|upgrade\w*|free|"
        r"compensat\w*|voucher|miles|points)\b",
        re.IGNORECASE,
    ),
    "anger_no_object": re.compile(_ANGER, re.IGNORECASE),
}
_NOT_OBJECT = re.compile(_FAILURE, re.IGNORECASE)
_PLUMBING = re.compile(r"(@\w+|__\w+__|https?://\S+)")


def _words(text: str) -> int:
    return len(_PLUMBING.sub(" ", text).split())


def _after_agent(history: str) -> bool:
    turns = json.loads(history)
    return bool(turns) and turns[-1]["role"] == "agent"


def _matches(stratum: str) -> Callable[[pd.Series], bool]:
    """Whether a pool row falls in a targeted stratum."""
    cue = STRATUM_CUES[stratum]
    if stratum == "minimal":
        return lambda row: (
            _after_agent(row["history"])
            and (_words(row["text"]) <= 4 or bool(cue.search(row["text"])))
        )
    if stratum == "anger_no_object":
        return lambda row: bool(cue.search(row["text"])) and not _NOT_OBJECT.search(row["text"])
    return lambda row: bool(cue.search(row["text"]))


def uncertainty(probs: np.ndarray, thresholds: np.ndarray, margin: float = 0.08) -> np.ndarray:
    """Per row, how unsure the release is: the count of heads within `margin` of their
    threshold plus one for each contradiction (frustrated but no complaint; a complaint whose
    legitimacy sits under its threshold while frustration is high; bored and frustrated).
    probs and thresholds are (n, 4) and (4,) in HEADS order."""
    near = (np.abs(probs - thresholds) < margin).sum(axis=1)
    above = probs >= thresholds
    frustrated, bored, complaint, legit = above.T
    contradictions = (
        (frustrated & ~complaint).astype(int)
        + (complaint & frustrated & ~legit).astype(int)
        + (bored & frustrated).astype(int)
    )
    return near + contradictions


def draw(
    pool: pd.DataFrame,
    used_threads: set[str],
    score: Callable[[list[str]], tuple[np.ndarray, np.ndarray]],
    seed: int = SEED,
) -> pd.DataFrame:
    """The draw: one row per thread, `QUOTAS` per stratum, no thread in `used_threads`.

    `score(texts)` returns the release's (probs (n, 4), thresholds (4,)) for the uncertainty
    stratum; it runs on a seeded candidate sample of what the other strata left.
    """
    rng = np.random.default_rng(seed)
    pool = pool[(pool["text"].str.len() <= MAX_DRAW_CHARS) & ~pool["thread_id"].isin(used_threads)]
    pool = pool.iloc[rng.permutation(len(pool))].reset_index(drop=True)
    taken: set[str] = set()
    parts = []
    for stratum, quota in QUOTAS.items():
        free = pool[~pool["thread_id"].isin(taken)]
        if stratum == "random":
            picked = free.drop_duplicates("thread_id").head(quota)
        elif stratum == "uncertain":
            candidates = free.drop_duplicates("thread_id").head(quota * 8)
            probs, thresholds = score(candidates["text"].tolist())
            unsure = uncertainty(probs, thresholds)
            order = np.lexsort((rng.random(len(candidates)), -unsure))
            picked = candidates.iloc[order[:quota]]
        else:
            hit = free[free.apply(_matches(stratum), axis=1)]
            picked = hit.drop_duplicates("thread_id").head(quota)
        taken.update(picked["thread_id"])
        parts.append(picked.assign(stratum=stratum))
    columns = ["id", "source", "thread_id", "stratum", "history", "text"]
    return pd.concat(parts)[columns].reset_index(drop=True)


def pick_checks(dev: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """`n` check questions from the adjudicated gold dev rows, so each head's rarer class
    appears: 2 disengaged, 3 frustrated, 2 complaints without merit, the rest at random."""
    wanted = [
        (dev["boredom"] == 1, 2),
        (dev["frustration"] == 1, 3),
        ((dev["complaint"] == 1) & (dev["legitimacy"] == 0), 2),
    ]
    chosen: list[int] = []
    for mask, k in wanted:
        options = [i for i in np.flatnonzero(mask.to_numpy()) if i not in chosen]
        chosen += list(rng.choice(options, size=min(k, len(options)), replace=False))
    rest = [i for i in rng.permutation(len(dev)) if i not in chosen]
    chosen += rest[: n - len(chosen)]
    return dev.iloc[chosen]


def render_batch(rows: pd.DataFrame) -> str:
    """A batch as the labeller reads it: numbered items, each with its thread, oldest first."""
    blocks = []
    for n, row in enumerate(rows.itertuples(), 1):
        lines = [f"=== {n} ==="]
        for turn in json.loads(row.history):
            text = " ".join(str(turn["text"]).split())
            lines.append(f"  [earlier {turn['role']}] {text}")
        lines.append(f"MESSAGE: {' '.join(str(row.text).split())}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def thread_block(pool: pd.DataFrame, message_id: str) -> str:
    """One message's thread and MESSAGE line as `render_batch` shows them, without the item
    header: for review and adjudication batches, which number their items their own way."""
    row = pool.loc[pool["id"] == message_id, ["id", "history", "text"]]
    return render_batch(row.reset_index(drop=True)).split("\n", 1)[1].rstrip()


def write_batches(drawn: pd.DataFrame, dev: pd.DataFrame, root: Path, seed: int = SEED) -> None:
    """First-pass batches (shuffled strata, hidden checks), the second-pass sample in its own
    batches, and the key that maps each batch's item numbers to ids (never shown to labellers)."""
    rng = np.random.default_rng(seed + 1)
    out = root / "to_label"
    out.mkdir(parents=True, exist_ok=True)
    shuffled = drawn.iloc[rng.permutation(len(drawn))].reset_index(drop=True)
    keys: list[dict[str, object]] = []
    batch_of: dict[str, str] = {}

    def emit(name: str, rows: pd.DataFrame, checks: pd.DataFrame) -> None:
        items = pd.concat([rows.assign(check=False), checks.assign(check=True)])
        items = items.iloc[rng.permutation(len(items))].reset_index(drop=True)
        (out / f"{name}.txt").write_text(render_batch(items), encoding="utf-8")
        for n, row in enumerate(items.itertuples(), 1):
            keys.append({"batch": name, "item": n, "id": row.id, "check": bool(row.check)})
            if not row.check:
                batch_of.setdefault(str(row.id), name)

    for k, start in enumerate(range(0, len(shuffled), BATCH_SIZE), 1):
        emit(
            f"p{k:02d}",
            shuffled.iloc[start : start + BATCH_SIZE],
            pick_checks(dev, CHECKS_PER_BATCH, rng),
        )
    second = shuffled.iloc[
        np.sort(rng.permutation(len(shuffled))[: round(SECOND_PASS_SHARE * len(shuffled))])
    ]
    second = second.iloc[rng.permutation(len(second))]
    for k, start in enumerate(range(0, len(second), BATCH_SIZE), 1):
        emit(
            f"s{k:02d}",
            second.iloc[start : start + BATCH_SIZE],
            pick_checks(dev, CHECKS_PER_BATCH, rng),
        )
    with (root / "key.jsonl").open("w", encoding="utf-8") as handle:
        for record in keys:
            handle.write(json.dumps(record) + "\n")
    with (root / "drawn.jsonl").open("w", encoding="utf-8") as handle:
        for row in drawn.itertuples():
            record = {
                "id": row.id,
                "source": row.source,
                "thread_id": row.thread_id,
                "stratum": row.stratum,
                "batch": batch_of[str(row.id)],
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def render_batches(root: Path, pool: pd.DataFrame, names: list[str]) -> list[Path]:
    """Write `to_label/<batch>.txt` again from the committed key (the raw text is never
    committed), item for item as the draw wrote it, for relabelling on another machine."""
    texts = pool.set_index("id")[["history", "text"]]
    items = {b: [str(k["id"]) for k in key] for b, key in read_key(root).items()}
    unknown = sorted(set(names) - set(items))
    if unknown:
        raise BadInput(f"no such batch in {root / 'key.jsonl'}: {unknown}")
    (root / "to_label").mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        path = root / "to_label" / f"{name}.txt"
        path.write_text(render_batch(texts.loc[items[name]].reset_index()), encoding="utf-8")
        written.append(path)
    return written


#: Parents offered for counterfactual edits (the labellers write one edit for each).
COUNTERFACTUAL_PARENTS = 1200
COUNTERFACTUAL_BATCH = 300


def write_counterfactual_batches(drawn: pd.DataFrame, root: Path, seed: int = SEED) -> None:
    """Batches of train-split messages (by thread) for labellers to write one minimal edit of
    each; `counterfactual_key.jsonl` maps batch items to parent ids."""

    rng = np.random.default_rng(seed + 2)
    train = drawn[drawn["thread_id"].map(scale_split) == "train"]
    parents = train.iloc[rng.permutation(len(train))[:COUNTERFACTUAL_PARENTS]]
    keys = []
    for k, start in enumerate(range(0, len(parents), COUNTERFACTUAL_BATCH), 1):
        part = parents.iloc[start : start + COUNTERFACTUAL_BATCH]
        name = f"c{k:02d}"
        (root / "to_label" / f"{name}.txt").write_text(render_batch(part), encoding="utf-8")
        keys += [{"batch": name, "item": n, "id": i} for n, i in enumerate(part["id"], 1)]
    with (root / "counterfactual_key.jsonl").open("w", encoding="utf-8") as handle:
        for record in keys:
            handle.write(json.dumps(record) + "\n")


def write_counterfactual_patches(root: Path, pool: pd.DataFrame) -> int:
    """`counterfactual/<batch>.jsonl` (labellers' edits, with text) -> the committed
    `counterfactual_edits/<batch>.jsonl` (the same records with a patch against the parent in
    place of the text). Returns the number of edits written."""
    from training.text_patch import parent_text, text_patch

    parents = {
        (r["batch"], r["item"]): str(r["id"])
        for _, r in jsonl_records(root / "counterfactual_key.jsonl")
    }
    texts = dict(zip(pool["id"].astype(str), pool["text"], strict=True))
    out_dir = root / "counterfactual_edits"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for path in sorted((root / "counterfactual").glob("*.jsonl")):
        records = []
        for _, record in jsonl_records(path):
            parent = parent_text(texts[parents[(path.stem, record["item"])]])
            edited = " ".join(str(record.pop("text")).split())
            records.append({**record, "patch": text_patch(parent, edited)})
        with (out_dir / path.name).open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        written += len(records)
    return written


def _release_scorer(folder: Path) -> Callable[[list[str]], tuple[np.ndarray, np.ndarray]]:
    from serving.core.contract import HEADS
    from serving.core.scorer import Scorer

    scorer = Scorer.load(folder)
    thresholds = np.array([scorer.manifest.thresholds[h] for h in HEADS])
    return lambda texts: (scorer.probabilities(texts), thresholds)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR)
    parser.add_argument("--release", type=Path, default=Path("models/release"))
    parser.add_argument("--root", type=Path, default=SCALE_DIR)
    parser.add_argument(
        "--patch-counterfactuals",
        action="store_true",
        help="only turn the labellers' counterfactual edits into committed patches",
    )
    parser.add_argument(
        "--render",
        nargs="+",
        metavar="BATCH",
        help="only write these batches' to_label/ text again from the committed key",
    )
    args = parser.parse_args()
    if args.render:
        try:
            paths = render_batches(args.root, real_pool(args.mirror), args.render)
        except BadInput as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        print(f"wrote {len(paths)} batches in {args.root / 'to_label'}")
        return
    if not args.patch_counterfactuals and (args.root / "drawn.jsonl").exists():
        print(
            f"error: {args.root / 'drawn.jsonl'} exists: the labels are keyed to that draw "
            "(to draw again, move the folder aside first)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    pool = real_pool(args.mirror)
    if args.patch_counterfactuals:
        print(f"wrote {write_counterfactual_patches(args.root, pool)} counterfactual patches")
        return
    used: set[str] = set()
    labelled = []
    for name in ("real_gold.jsonl", "train.jsonl"):
        for _, record in jsonl_records(REAL_GOLD_DIR / name):
            used.add(str(record["thread_id"]))
            labelled.append(record)
    drawn = draw(pool, used, _release_scorer(args.release))
    gold = pd.DataFrame([r for r in labelled if r.get("split") == "dev"])
    dev = gold.merge(pool[["id", "history", "text"]], on="id", how="inner")
    write_batches(drawn, dev, args.root)
    write_counterfactual_batches(drawn, args.root)
    print(drawn.groupby(["stratum", "source"]).size().unstack(fill_value=0).to_string())
    print(f"drew {len(drawn)} messages; batches in {args.root / 'to_label'}")


if __name__ == "__main__":
    main()
