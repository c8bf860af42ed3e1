"""`helpdesk-scorer prepare`: verified sources + gold set -> one multi-task dataset and its card."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from serving.core.contract import HEADS, mask_column
from serving.core.errors import BadInput
from training.card import write_card
from training.corrections import apply_corrections, load_corrections
from training.dataset_rules import HAND_SOURCES, match_key, pool_split
from training.gold import jsonl_records, load_labelled, validate
from training.label_model import fit_label_model, lf_summary
from training.labelling import BOREDOM_LFS, LEGITIMACY_LFS, LabellingFunction, apply_lfs
from training.loaders import LOADERS, clean_text
from training.real_gold import REAL_GOLD_DIR
from training.real_scale import SCALE_DIR
from training.real_sources import REAL_CUSTOMER_SOURCES, REAL_LOADERS
from training.sources import load_licences, load_sources, resolve
from training.text_patch import apply_patch, parent_text

__all__ = ["PrepareConfig", "prepare"]

ALL_LOADERS = {**LOADERS, **REAL_LOADERS}


@dataclass
class PrepareConfig:
    mirror: Path | None
    out: Path = Path("data/processed")
    sources: Path = Path("data/sources.toml")
    gold_dir: Path = Path("data/gold")
    handwritten_dir: Path = Path("data/handwritten")
    cache: Path = Path("data/cache")
    seed: int = 13
    real_gold_dir: Path = REAL_GOLD_DIR
    real_scale_dir: Path = SCALE_DIR
    corrections: list[Path] = field(default_factory=list)
    #: Sources whose licence contains one of these strings (case-insensitive) are left out,
    #: e.g. "NC" drops the non-commercial TWCS text, real-text gold rows drawn from it included.
    exclude_licences: list[str] = field(default_factory=list)
    near_duplicate_cosine: float = 0.9
    max_rows: dict[str, int] = field(
        default_factory=lambda: {
            "goemotions": 6000,
            "complaints": 100_000,
            "banking77": 3000,
            "emobank": 3000,
            "cfpb": 100_000,
            "twcs_airlines": 2500,
            "twcs_tweetsumm": 1500,
            "twcs_samples": 1200,
            "twitter_cdp_ibm": 800,
            "cfpb_narratives": 1000,
            "tweeteval": 2000,
            "semeval2018_ec": 2000,
        }
    )


def excluded_sources(config: PrepareConfig) -> set[str]:
    """Sources left out by `exclude_licences`."""
    licences = load_licences(config.sources)
    needles = [n.lower() for n in config.exclude_licences]
    return {name for name, lic in licences.items() if any(n in lic.lower() for n in needles)}


def load_pool(config: PrepareConfig) -> tuple[pd.DataFrame, dict[str, str], pd.DataFrame]:
    """All public sources, checksum-verified and capped per source; the sha256 of each; and
    every real customer message (uncapped: id, origin, text, thread, history) for the real-text
    gold set, which names its messages by source and id and never stores their text.

    Real customer messages carry no label of their own (but boredom from the labelling
    functions, and complaint for CFPB): they go to train only, as weakly labelled in-domain text.
    """
    excluded = excluded_sources(config)
    manifest = {k: v for k, v in load_sources(config.sources).items() if k not in excluded}
    files = [f for fs in manifest.values() for f in fs]
    checksums, frames, real = {}, [], []
    paths = {}
    for file in tqdm(files, desc="verify sources", unit="file"):
        paths[file.path] = resolve(file, config.mirror, config.cache)
        checksums[file.path] = file.sha256
    for name in tqdm(manifest, desc="read sources", unit="source"):
        frame = ALL_LOADERS[name](paths)
        if name in REAL_CUSTOMER_SOURCES:
            messages = frame.reindex(columns=REAL_KEYS)
            real.append(messages.assign(history=messages["history"].astype(object).fillna("[]")))
        limit = config.max_rows.get(name, len(frame))
        if len(frame) > limit:
            frame = frame.sample(n=limit, random_state=config.seed)
        frames.append(frame)
    pool = pd.concat(frames, ignore_index=True)
    pool["split"] = [pool_split(t, config.seed) for t in pool["text"]]
    unlabelled = pool["source"].isin(REAL_CUSTOMER_SOURCES) & (pool["source"] != "cfpb_narratives")
    pool.loc[unlabelled, "split"] = "train"
    messages = pd.concat(real, ignore_index=True) if real else pd.DataFrame(columns=REAL_KEYS)
    return pool, checksums, messages.rename(columns={"source": "origin"})


REAL_KEYS = ["source", "id", "text", "thread_id", "history"]


def load_hand_labelled(config: PrepareConfig, real_messages: pd.DataFrame) -> pd.DataFrame:
    gold_path = config.gold_dir / "gold.jsonl"
    if not gold_path.is_file():
        raise BadInput(f"gold set not found: {gold_path}")
    gold = pd.DataFrame(load_labelled([gold_path])).assign(source="gold")
    hand_paths = sorted(config.handwritten_dir.glob("*.jsonl"))
    frames = [gold]
    if hand_paths:
        frames.append(
            pd.DataFrame(load_labelled(hand_paths)).assign(source="handwritten", split="train")
        )
    frames.extend(load_real_labelled(config, real_messages))
    hand = pd.concat(frames, ignore_index=True)
    hand["text"] = hand["text"].map(clean_text)
    for head in HEADS:
        hand[head] = hand[head].astype(float)
    return hand


def load_real_labelled(config: PrepareConfig, real_messages: pd.DataFrame) -> list[pd.DataFrame]:
    """The real-text gold set (dev/test), the real messages labelled for training, the scaled
    real-text set (train/dev/test by thread) and its synthetic counterfactual edits (train).

    Their files hold labels keyed by source (`origin` here) and id; the text and thread context
    come from the checksum-verified source itself, so the project never stores or alters a real
    message. A counterfactual row carries its own (synthetic, labeller-written) text and its
    real parent's context. Rows of excluded sources are left out; an id the source lacks is an
    error.
    """
    excluded = excluded_sources(config)
    # a few IBM tweets sit in two of its files under one id: the first copy names the message
    index = real_messages.drop_duplicates(["origin", "id"]).set_index(["origin", "id"])
    files = (
        (config.real_gold_dir / "real_gold.jsonl", "real_gold"),
        (config.real_gold_dir / "train.jsonl", "real_train"),
        (config.real_scale_dir / "labelled.jsonl", "real_scale"),
        (config.real_scale_dir / "counterfactual.jsonl", "real_counterfactual"),
    )
    frames = []
    for path, source in files:
        if not path.is_file():
            continue
        records = []
        for where, record in jsonl_records(path):
            if record["source"] in excluded:
                continue
            key = (record["source"], record.get("parent_id", record["id"]))
            if key not in index.index:
                raise BadInput(f"{where}: {key[0]} has no message with id {key[1]!r}")
            message = index.loc[key]
            own = message["text"]
            if "patch" in record:  # a synthetic edit: rebuilt from its parent, never stored
                own = apply_patch(parent_text(own), record["patch"], where)
            text = {"text": own, "history": message["history"]}
            dropped = ("tags", "parent_id", "edit", "patch", "synthetic")
            labels = {k: v for k, v in record.items() if k not in dropped}
            records.append(validate({**labels, **text}, where))
        if records:
            frame = pd.DataFrame(records).rename(columns={"source": "origin"})
            frames.append(frame.assign(source=source))
    return frames


def drop_thread_mates(data: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Pool rows from a thread that has a real-text gold (dev or test) message: a thread is in
    one split only, so the model never trains on the turns around a message it is judged on."""
    held = data["source"].isin(["real_gold", "real_scale"]) & data["split"].isin(["dev", "test"])
    threads = set(data.loc[held, "thread_id"].dropna())
    mates = ~data["source"].isin(HAND_SOURCES) & data["thread_id"].isin(threads)
    return data[~mates].reset_index(drop=True), int(mates.sum())


def drop_duplicates(data: pd.DataFrame, cosine: float) -> tuple[pd.DataFrame, dict[str, int]]:
    """Exact duplicates (normalised) keep their first row, so gold wins over the public pool;
    train rows near-identical (char n-gram cosine) to a dev or test row are dropped."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    key = data["text"].map(match_key)
    exact = key.duplicated(keep="first") | (key == "")
    data = data[~exact].reset_index(drop=True)
    vectors = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=2).fit_transform(
        data["text"]
    )
    train = np.flatnonzero(data["split"].to_numpy() == "train")
    held = np.flatnonzero(data["split"].to_numpy() != "train")
    near = np.zeros(len(data), dtype=bool)
    for start in tqdm(range(0, len(held), 2000), desc="near-duplicates", unit="block"):
        sims = vectors[train] @ vectors[held[start : start + 2000]].T
        near[train[np.asarray(sims.max(axis=1).todense()).ravel() >= cosine]] = True
    return data[~near].reset_index(drop=True), {"exact": int(exact.sum()), "near": int(near.sum())}


def weak_labels(
    data: pd.DataFrame,
    head: str,
    lfs: Sequence[LabellingFunction],
    applies: np.ndarray,
) -> dict[str, object]:
    """Fill `head` with label-model probabilities on public rows where a function voted.

    applies: bool mask (n_rows,) of rows the functions are meant for. The class balance is the
    one of the hand-labelled train rows (in-domain; dev and test are not looked at). Returns
    the summary.
    """
    public = ~data["source"].isin(HAND_SOURCES).to_numpy()
    metas = data.to_dict("records")
    votes = apply_lfs(lfs, data["text"].tolist(), metas)
    train = (data["split"] == "train").to_numpy()
    fit_rows = applies & public & train
    hand_train = applies & ~public & train
    model = fit_label_model(votes[fit_rows], prior=float(data.loc[hand_train, head].mean()))
    probs = model.predict_proba(votes)
    fill = applies & public & (votes != -1).any(axis=1)
    data.loc[fill, head] = probs[fill]
    checked_on = "real_gold" if (data["source"] == "real_gold").any() else "gold"
    gold_dev = ((data["source"] == checked_on) & (data["split"] == "dev")).to_numpy() & applies
    gold_labels = data.loc[gold_dev, head].to_numpy()
    stats = lf_summary(votes[fit_rows], votes[gold_dev], gold_labels)
    summary: dict[str, object] = {
        "functions": [
            {"name": lf.name, "doc": lf.doc, "learned_accuracy": float(acc), **s}
            for lf, acc, s in zip(lfs, model.accuracies, stats, strict=True)
        ],
        "prior": model.prior,
        "rows_labelled": int(fill.sum()),
        "checked_on": f"{checked_on} dev",
    }
    voted_gold = (votes[gold_dev] != -1).any(axis=1)
    if voted_gold.any() and len(set(gold_labels[voted_gold])) > 1:
        from sklearn.metrics import roc_auc_score

        summary["label_model_gold_dev_auroc"] = float(
            roc_auc_score(gold_labels[voted_gold], probs[gold_dev][voted_gold])
        )
        summary["label_model_gold_dev_coverage"] = float(voted_gold.mean())
    return summary


@dataclass(frozen=True)
class Prepared:
    """What `prepare` wrote, for its caller to report without reading the files back."""

    folder: Path
    stats: dict[str, Any]  # as in stats.json: duplicates, sources, weak labels, corrections

    @property
    def dataset(self) -> Path:
        return self.folder / "dataset.parquet"

    @property
    def card(self) -> Path:
        return self.folder / "DATASET_CARD.md"


def prepare(config: PrepareConfig) -> Prepared:
    """Build dataset.parquet, DATASET_CARD.md and stats.json in config.out."""
    if config.mirror is not None and not config.mirror.is_dir():
        raise BadInput(f"mirror folder not found: {config.mirror}")
    corrections = load_corrections(config.corrections)  # bad files fail before the long work
    pool, checksums, real_messages = load_pool(config)
    hand = load_hand_labelled(config, real_messages)
    data = pd.concat([hand, pool], ignore_index=True)
    if "thread_id" not in data:
        data["thread_id"] = None
    data, mates = drop_thread_mates(data)
    data, removed = drop_duplicates(data, config.near_duplicate_cosine)
    removed["thread_mates_of_real_gold"] = mates
    for head in HEADS:
        if head not in data:
            data[head] = np.nan
    stats: dict[str, Any] = {
        "removed_duplicates": removed,
        "source_sha256": checksums,
        "excluded_sources": sorted(excluded_sources(config)),
        "licences": load_licences(config.sources),
    }
    everyone = np.ones(len(data), dtype=bool)
    stats["boredom_lfs"] = weak_labels(data, "boredom", BOREDOM_LFS, everyone)
    complaints = (data["complaint"] == 1).to_numpy()
    stats["legitimacy_lfs"] = weak_labels(data, "legitimacy", LEGITIMACY_LFS, complaints)
    for head in HEADS:
        data[mask_column(head)] = data[head].notna().astype("float32")
    columns = [
        "id",
        "text",
        "source",
        "origin",
        "thread_id",
        "history",
        *HEADS,
        "route",
        "frustration_level",
        "split",
        *(mask_column(h) for h in HEADS),
    ]
    data["origin"] = (
        data["origin"].astype(object).fillna(data["source"]) if "origin" in data else data["source"]
    )
    data = data.reindex(columns=columns)
    data["id"] = data["id"].fillna(pd.Series([f"row-{i}" for i in range(len(data))]))
    data, applied = apply_corrections(data, corrections, config.seed)
    stats["corrections"] = {**applied, "files": [str(p) for p in config.corrections]}
    config.out.mkdir(parents=True, exist_ok=True)
    result = Prepared(config.out, stats)
    data.to_parquet(result.dataset, index=False)
    agreement_path = config.gold_dir / "agreement.json"
    stats["agreement"] = json.loads(agreement_path.read_text()) if agreement_path.exists() else {}
    real_agreement = config.real_gold_dir / "agreement.json"
    if real_agreement.exists():
        stats["real_agreement"] = json.loads(real_agreement.read_text())
    (config.out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    write_card(data, stats, result.card)
    return result
