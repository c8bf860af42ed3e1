"""Real-text gold set: real customer messages drawn once, labelled by the guide, split by thread.

`python -m training.real_gold draw` draws (seeded, stratified by source and by a crude stratum so
disengaged, complaining and calm messages all appear) the messages to label from the real
sources, one message per thread: the gold draw and, from other threads, a labelled-training draw.
It writes `data/real_gold/to_label/*.jsonl` (id, source, thread, context, text) for the labellers.
Labellers write only labels keyed by id (`data/real_gold/labels/*.jsonl`); `build` joins them to
the drawn text, so no label file can change a message. `build` also computes Cohen's kappa
against the independent second pass, applies the adjudication and splits dev/test by a hash of
the thread id: no thread is in both.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from serving.core.errors import BadInput
from training.dataset_rules import REAL_GOLD_SALT, REAL_GOLD_SPLITS, hash_split
from training.gold import LABEL_KEYS, agreement, jsonl_records, validate
from training.real_sources import REAL_CUSTOMER_SOURCES, REAL_LOADERS
from training.sources import DEFAULT_MIRROR, load_sources, resolve

__all__ = ["REAL_GOLD_DIR", "ROUTES", "assign_thread_split", "build", "draw", "stratum"]

REAL_GOLD_DIR = Path("data/real_gold")
ROUTES = ("escalate_senior", "supervisor_support", "complaint_desk", "re_engage", "standard")

#: Messages drawn per source: (gold, labelled training). One message per thread.
QUOTAS = {
    "twcs_airlines": (300, 420),
    "twcs_tweetsumm": (190, 180),
    "twcs_samples": (150, 120),
    "twitter_cdp_ibm": (160, 150),
    "cfpb_narratives": (80, 30),
}
#: Share of each stratum in a Twitter source's draw (CFPB narratives are drawn plainly).
STRATA = {"minimal": 0.25, "cue": 0.40, "other": 0.35}
#: Longest text drawn from CFPB (characters): labellers read every word of every message.
MAX_DRAW_CHARS = 2000

_HANDLE_OR_URL = re.compile(r"(@\w+|__\w+__|https?://\S+)")
_CUE = re.compile(
    r"(!{2,}|\?{2,}|\b(still|never|worst|ridiculous|again|delay\w*|cancel\w*|"
    r"refund\w*|waiting|broken|charged|lost|rude|terrible|awful|disappoint\w*|unacceptable|"
    r"complain\w*|why|hours?|days?)\b)",
    re.IGNORECASE,
)
_SHOUT = re.compile(r"\b[A-Z]{4,}\b")


def stratum(text: str) -> str:
    """A crude sampling stratum (never a label): very short, carries a complaint cue, or other."""
    words = _HANDLE_OR_URL.sub(" ", text).split()
    if len(words) <= 4:
        return "minimal"
    return "cue" if _CUE.search(text) or _SHOUT.search(text) else "other"


def real_pool(mirror: Path, sources_toml: Path = Path("data/sources.toml")) -> pd.DataFrame:
    """Every real customer message of the real sources, checksum-verified."""
    manifest = load_sources(sources_toml)
    frames = []
    for name in REAL_CUSTOMER_SOURCES:
        paths = {f.path: resolve(f, mirror, Path("data/cache")) for f in manifest[name]}
        frames.append(REAL_LOADERS[name](paths))
    pool = pd.concat(frames, ignore_index=True)
    pool["history"] = pool["history"].fillna("[]")
    return pool


def _pick(frame: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    return frame.iloc[rng.permutation(len(frame))[: min(n, len(frame))]]


def draw(pool: pd.DataFrame, seed: int = 2026) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(gold, train) draws: one message per thread, no thread in both, seeded."""
    rng = np.random.default_rng(seed)
    pool = pool[pool["text"].str.len() <= MAX_DRAW_CHARS].copy()
    pool["stratum"] = pool["text"].map(stratum)
    one_per_thread = _pick(pool, len(pool), rng).drop_duplicates("thread_id")
    gold_parts, train_parts = [], []
    for source, (n_gold, n_train) in QUOTAS.items():
        rows = one_per_thread[one_per_thread["source"] == source]
        shares = {"all": 1.0} if source == "cfpb_narratives" else STRATA
        for name, share in shares.items():
            group = rows if name == "all" else rows[rows["stratum"] == name]
            picked = _pick(group, round(share * (n_gold + n_train)), rng)
            cut = round(share * n_gold)
            gold_parts.append(picked.iloc[:cut])
            train_parts.append(picked.iloc[cut:])
    columns = ["id", "source", "thread_id", "stratum", "history", "text"]
    return (
        pd.concat(gold_parts)[columns].reset_index(drop=True),
        pd.concat(train_parts)[columns].reset_index(drop=True),
    )


def _write_jsonl(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for record in frame.to_dict("records"):
            record["history"] = json.loads(str(record["history"]))
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_batches(
    gold: pd.DataFrame, train: pd.DataFrame, out: Path, seed: int = 2026, second: int = 240
) -> None:
    """Shuffled labelling batches: gold in 4, train in 3, and a second-pass sample of gold."""
    rng = np.random.default_rng(seed + 1)
    gold = gold.iloc[rng.permutation(len(gold))].reset_index(drop=True)
    train = train.iloc[rng.permutation(len(train))].reset_index(drop=True)
    for k, part in enumerate(np.array_split(np.arange(len(gold)), 4)):
        _write_jsonl(gold.iloc[part], out / f"gold_{k + 1}.jsonl")
    for k, part in enumerate(np.array_split(np.arange(len(train)), 3)):
        _write_jsonl(train.iloc[part], out / f"train_{k + 1}.jsonl")
    sample = gold.iloc[np.sort(rng.permutation(len(gold))[:second])]
    _write_jsonl(sample, out / "second_pass.jsonl")


def assign_thread_split(thread_id: str) -> str:
    """dev or test for a thread: a salted hash, so every message of a thread shares a split."""
    return hash_split(thread_id, REAL_GOLD_SALT, REAL_GOLD_SPLITS)


def _labels(paths: list[Path], drawn: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    """Label records joined to the drawn message (text, source, thread, context), each checked
    against the guide's rules (`training.gold.validate`); an id twice is an error."""
    joined = {}
    for path in paths:
        for where, record in jsonl_records(path):
            message = drawn.get(str(record.get("id")))
            if message is None:
                raise BadInput(f"{where}: id {record.get('id')!r} was not drawn")
            if record.get("route") not in ROUTES:
                raise BadInput(
                    f"{where}: route must be one of {ROUTES}, got {record.get('route')!r}"
                )
            if str(record["id"]) in joined:
                raise BadInput(f"{where}: duplicate id {record['id']!r}")
            joined[str(record["id"])] = validate(
                {
                    **message,
                    **{k: record.get(k) for k in (*LABEL_KEYS, "route")},
                    "note": record.get("note", ""),
                },
                where,
            )
    return joined


def _without_text(record: dict[str, object]) -> dict[str, object]:
    """A gold record as committed: source, id, thread and labels; `prepare` reads the text and
    context from the verified source by id (raw data is never committed)."""
    return {k: v for k, v in record.items() if k not in ("text", "history")}


def build(root: Path = REAL_GOLD_DIR) -> dict[str, object]:
    """Write real_gold.jsonl, train.jsonl and agreement.json from the drawn batches and labels."""
    drawn = {}
    for path in sorted((root / "to_label").glob("*.jsonl")):
        for line in path.read_text("utf-8").splitlines():
            record = json.loads(line)
            drawn[str(record["id"])] = record
    first_gold = _labels(sorted((root / "labels").glob("gold_*.jsonl")), drawn)
    train = _labels(sorted((root / "labels").glob("train_*.jsonl")), drawn)
    second = _labels([root / "labels" / "second_pass.jsonl"], drawn)
    adjudication_path = root / "labels" / "adjudication.jsonl"
    adjudicated = _labels([adjudication_path], drawn) if adjudication_path.exists() else {}
    keys = (*LABEL_KEYS, "route")
    disagreements = [i for i in second if any(first_gold[i][k] != second[i][k] for k in keys)]
    missing = [i for i in disagreements if i not in adjudicated]
    if missing:
        raise BadInput(f"{len(missing)} disagreements are not adjudicated, e.g. {missing[:5]}")
    gold = {
        i: {**r, **{k: adjudicated[i][k] for k in keys}} if i in adjudicated else r
        for i, r in first_gold.items()
    }
    with (root / "real_gold.jsonl").open("w", encoding="utf-8") as out:
        for record in gold.values():
            split = assign_thread_split(str(record["thread_id"]))
            out.write(
                json.dumps({**_without_text(record), "split": split}, ensure_ascii=False) + "\n"
            )
    with (root / "train.jsonl").open("w", encoding="utf-8") as out:
        for record in train.values():
            out.write(
                json.dumps({**_without_text(record), "split": "train"}, ensure_ascii=False) + "\n"
            )
    route_pairs = [(first_gold[i]["route"], second[i]["route"]) for i in second]
    from sklearn.metrics import cohen_kappa_score

    per_label = agreement(first_gold, second)
    per_label["route"] = {
        "n": len(route_pairs),
        "kappa": float(cohen_kappa_score(*zip(*route_pairs, strict=True))),
        "agreement": sum(a == b for a, b in route_pairs) / len(route_pairs),
    }
    report: dict[str, object] = {
        "first_pass": len(first_gold),
        "second_pass": len(second),
        "train_labelled": len(train),
        "disagreements": len(disagreements),
        "changed_by_adjudication": sum(
            any(first_gold[i][k] != adjudicated[i][k] for k in keys) for i in disagreements
        ),
        "per_label": per_label,
        "splits": pd.Series([assign_thread_split(str(r["thread_id"])) for r in gold.values()])
        .value_counts()
        .to_dict(),
    }
    (root / "agreement.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["draw", "build"])
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR)
    parser.add_argument("--root", type=Path, default=REAL_GOLD_DIR)
    args = parser.parse_args()
    if args.command == "draw":
        gold, train = draw(real_pool(args.mirror))
        write_batches(gold, train, args.root / "to_label")
        print(
            f"drew {len(gold)} gold and {len(train)} training messages "
            f"into {args.root / 'to_label'}"
        )
    else:
        print(json.dumps(build(args.root), indent=2))


if __name__ == "__main__":
    main()
