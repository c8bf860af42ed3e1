"""Domain-adaptive pretraining (Gururangan et al., ACL 2020): continue masked-language-model
training of the encoder on unlabelled real customer messages before fine-tuning.

`python -m training.domain_adapt --out models/runs/dapt` writes a Hugging Face encoder folder that
`train --set encoder=models/runs/dapt` fine-tunes. The text is every real customer message of
the real sources (Twitter support threads, IBM threads, CFPB narratives) whose thread is in no
dev or test split (old real gold, new real-scale dev/test): held-back text is never read. One
linear loop, like `train`; the adapted encoder is a run artifact built once and reused.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import (
    AutoTokenizer,
    BertForMaskedLM,
    DataCollatorForLanguageModeling,
    get_linear_schedule_with_warmup,
)

from serving.core.text import normalise
from training.real_gold import REAL_GOLD_DIR, real_pool
from training.real_scale import held_back_threads
from training.sources import DEFAULT_MIRROR

__all__ = ["adapt"]


def adapt_texts(mirror: Path, limit: int, seed: int) -> list[str]:
    """A seeded sample of `limit` real customer messages from threads outside every held-back
    split, normalised as the scorer normalises them."""
    pool = real_pool(mirror)
    held = held_back_threads(REAL_GOLD_DIR)
    pool = pool[~pool["thread_id"].isin(held)]
    picked = np.random.default_rng(seed).permutation(len(pool))[:limit]
    return [normalise(t) for t in pool["text"].iloc[picked]]


def adapt(
    encoder: str,
    texts: list[str],
    out: Path,
    *,
    max_length: int = 64,
    batch_size: int = 32,
    lr: float = 5e-5,
    seed: int = 13,
) -> dict[str, float]:
    """One epoch of MLM (15% masking) over `texts`; the encoder (without its MLM head) is saved
    in `out` with its tokenizer. Returns the first and last 50-step mean losses and seconds."""
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    model = BertForMaskedLM.from_pretrained(encoder)
    collate = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = (len(texts) + batch_size - 1) // batch_size
    scheduler = get_linear_schedule_with_warmup(optimizer, steps // 16, steps)
    order = np.random.default_rng(seed).permutation(len(texts))
    losses: list[float] = []
    started = time.time()
    model.train()
    for start in tqdm(range(0, len(texts), batch_size), desc="mlm", unit="batch"):
        rows = [texts[i] for i in order[start : start + batch_size]]
        encoded = tokenizer(rows, truncation=True, max_length=max_length)
        batch = collate([{"input_ids": ids} for ids in encoded["input_ids"]])
        loss = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.item()))
    out.mkdir(parents=True, exist_ok=True)
    model.bert.save_pretrained(out)
    tokenizer.save_pretrained(out)
    report = {
        "messages": len(texts),
        "first_loss": float(np.mean(losses[:50])),
        "last_loss": float(np.mean(losses[-50:])),
        "seconds": round(time.time() - started, 1),
    }
    (out / "adaptation.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


@torch.no_grad()
def _embed(encoder: str, texts: list[str], max_length: int = 128) -> np.ndarray:
    """Mean-pooled last hidden states of a frozen encoder, (len(texts), hidden)."""
    from transformers import AutoModel

    tokenizer = AutoTokenizer.from_pretrained(encoder)
    model = AutoModel.from_pretrained(encoder).eval()
    out = []
    for start in tqdm(range(0, len(texts), 64), desc="embed", unit="batch", leave=False):
        batch = tokenizer(
            texts[start : start + 64],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        out.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
    return np.concatenate(out)


def probe(encoder: str, dataset: Path) -> dict[str, float]:
    """How much each head can read from a frozen encoder: a logistic regression per head on
    the real labelled train rows, AUROC on the real dev rows calibration uses. Cheap enough to
    compare an adapted encoder with the original before paying for a fine-tuning run."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from serving.core.contract import HEADS, mask_column
    from training.dataset_rules import calibration_rows

    data = pd.read_parquet(dataset)
    real = data["source"].isin(["real_scale", "real_train", "real_gold"])
    train = data[real & (data["split"] == "train")].reset_index(drop=True)
    dev = data[data["split"] == "dev"].reset_index(drop=True)
    dev = dev[calibration_rows(dev)[0]].reset_index(drop=True)
    x_train = _embed(encoder, [normalise(t) for t in train["text"]])
    x_dev = _embed(encoder, [normalise(t) for t in dev["text"]])
    report = {}
    for head in HEADS:
        rows = train[mask_column(head)].to_numpy() == 1
        dev_rows = dev[mask_column(head)].to_numpy() == 1
        fit = LogisticRegression(max_iter=2000, C=1.0, class_weight="balanced")
        fit.fit(x_train[rows], train.loc[rows, head].to_numpy() >= 0.5)
        scores = fit.predict_proba(x_dev[dev_rows])[:, 1]
        report[head] = float(roc_auc_score(dev.loc[dev_rows, head].to_numpy() >= 0.5, scores))
    return report


def main() -> None:
    from training.config import default_encoder

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("models/runs/dapt"))
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR)
    parser.add_argument("--messages", type=int, default=24000)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument(
        "--probe",
        type=Path,
        default=None,
        help="a prepared dataset: compare the adapted encoder in --out with the original by a "
        "frozen linear probe on real dev instead of adapting",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.probe is not None:
        report = {
            "original": probe(default_encoder(), args.probe),
            "adapted": probe(str(args.out), args.probe),
        }
        print(json.dumps(report, indent=2))
        return
    texts = adapt_texts(args.mirror, args.messages, seed=13)
    print(json.dumps(adapt(default_encoder(), texts, args.out), indent=2))


if __name__ == "__main__":
    main()
