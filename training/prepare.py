"""`helpdesk-scorer prepare`: verified sources + gold set -> one multi-task dataset and its card."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from serving.contract import HEADS, mask_column
from serving.errors import UserError
from training.card import write_card
from training.corrections import apply_corrections, load_corrections
from training.gold import load_labelled
from training.label_model import fit_label_model, lf_summary
from training.labelling import BOREDOM_LFS, LEGITIMACY_LFS, LabellingFunction, apply_lfs
from training.loaders import LOADERS, clean_text
from training.sources import load_sources, resolve

__all__ = ["PrepareConfig", "prepare"]

POOL_SPLITS = (("train", 0.8), ("dev", 0.1), ("test", 0.1))
HAND_SOURCES = ("gold", "handwritten")  # human-labelled rows: never given weak labels


@dataclass
class PrepareConfig:
    mirror: Path | None
    out: Path = Path("data/processed")
    sources: Path = Path("data/sources.toml")
    gold_dir: Path = Path("data/gold")
    handwritten_dir: Path = Path("data/handwritten")
    cache: Path = Path("data/cache")
    seed: int = 13
    corrections: list[Path] = field(default_factory=list)
    near_duplicate_cosine: float = 0.9
    max_rows: dict[str, int] = field(
        default_factory=lambda: {
            "goemotions": 9000,
            "complaints": 100_000,
            "banking77": 3000,
            "emobank": 3000,
            "cfpb": 100_000,
        }
    )


def normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def pool_split(text: str, seed: int) -> str:
    """Split by a hash of the normalised text: identical texts always land in one split."""
    bucket = int(hashlib.sha256(f"{seed}:{normalise(text)}".encode()).hexdigest(), 16) % 1000
    edge = 0.0
    for split, share in POOL_SPLITS:
        edge += share * 1000
        if bucket < edge:
            return split
    return "train"


def load_pool(config: PrepareConfig) -> tuple[pd.DataFrame, dict[str, str]]:
    """All public sources, checksum-verified and capped per source; also the sha256 of each."""
    manifest = load_sources(config.sources)
    files = [f for fs in manifest.values() for f in fs]
    checksums, frames = {}, []
    paths = {}
    for file in tqdm(files, desc="verify sources", unit="file"):
        paths[file.path] = resolve(file, config.mirror, config.cache)
        checksums[file.path] = file.sha256
    for name in tqdm(manifest, desc="read sources", unit="source"):
        frame = LOADERS[name](paths)
        limit = config.max_rows.get(name, len(frame))
        if len(frame) > limit:
            frame = frame.sample(n=limit, random_state=config.seed)
        frames.append(frame)
    pool = pd.concat(frames, ignore_index=True)
    pool["split"] = [pool_split(t, config.seed) for t in pool["text"]]
    return pool, checksums


def load_hand_labelled(config: PrepareConfig) -> pd.DataFrame:
    gold_path = config.gold_dir / "gold.jsonl"
    if not gold_path.is_file():
        raise UserError(f"gold set not found: {gold_path}")
    gold = pd.DataFrame(load_labelled([gold_path])).assign(source="gold")
    hand_paths = sorted(config.handwritten_dir.glob("*.jsonl"))
    frames = [gold]
    if hand_paths:
        frames.append(
            pd.DataFrame(load_labelled(hand_paths)).assign(source="handwritten", split="train")
        )
    hand = pd.concat(frames, ignore_index=True)
    hand["text"] = hand["text"].map(clean_text)
    for head in HEADS:
        hand[head] = hand[head].astype(float)
    return hand


def drop_duplicates(data: pd.DataFrame, cosine: float) -> tuple[pd.DataFrame, dict[str, int]]:
    """Exact duplicates (normalised) keep their first row, so gold wins over the public pool;
    train rows near-identical (char n-gram cosine) to a dev or test row are dropped."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    key = data["text"].map(normalise)
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
    gold_dev = ((data["source"] == "gold") & (data["split"] == "dev")).to_numpy() & applies
    gold_labels = data.loc[gold_dev, head].to_numpy()
    stats = lf_summary(votes[fit_rows], votes[gold_dev], gold_labels)
    summary: dict[str, object] = {
        "functions": [
            {"name": lf.name, "doc": lf.doc, "learned_accuracy": float(acc), **s}
            for lf, acc, s in zip(lfs, model.accuracies, stats, strict=True)
        ],
        "prior": model.prior,
        "rows_labelled": int(fill.sum()),
    }
    voted_gold = (votes[gold_dev] != -1).any(axis=1)
    if voted_gold.any() and len(set(gold_labels[voted_gold])) > 1:
        from sklearn.metrics import roc_auc_score

        summary["label_model_gold_dev_auroc"] = float(
            roc_auc_score(gold_labels[voted_gold], probs[gold_dev][voted_gold])
        )
        summary["label_model_gold_dev_coverage"] = float(voted_gold.mean())
    return summary


def prepare(config: PrepareConfig) -> Path:
    """Build dataset.parquet, DATASET_CARD.md and stats.json in config.out; return the folder."""
    if config.mirror is not None and not config.mirror.is_dir():
        raise UserError(f"mirror folder not found: {config.mirror}")
    corrections = load_corrections(config.corrections)  # bad files fail before the long work
    pool, checksums = load_pool(config)
    hand = load_hand_labelled(config)
    data = pd.concat([hand, pool], ignore_index=True)
    data, removed = drop_duplicates(data, config.near_duplicate_cosine)
    for head in HEADS:
        if head not in data:
            data[head] = np.nan
    stats: dict[str, object] = {"removed_duplicates": removed, "source_sha256": checksums}
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
        *HEADS,
        "frustration_level",
        "split",
        *(mask_column(h) for h in HEADS),
    ]
    data = data.reindex(columns=columns)
    data["id"] = data["id"].fillna(pd.Series([f"row-{i}" for i in range(len(data))]))
    data, applied = apply_corrections(data, corrections, config.seed)
    stats["corrections"] = {**applied, "files": [str(p) for p in config.corrections]}
    config.out.mkdir(parents=True, exist_ok=True)
    data.to_parquet(config.out / "dataset.parquet", index=False)
    agreement_path = config.gold_dir / "agreement.json"
    stats["agreement"] = json.loads(agreement_path.read_text()) if agreement_path.exists() else {}
    (config.out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    write_card(data, stats, config.out / "DATASET_CARD.md")
    return config.out
