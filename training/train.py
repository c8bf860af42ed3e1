"""`helpdesk-scorer train`: fine-tune the multi-task model, calibrate it on gold dev.

One linear loop: load data -> build model -> for each epoch train, evaluate on dev, checkpoint,
stop early -> calibrate the best weights on in-domain dev -> write the run folder:
the files of `training.run_folder` (config, checkpoint for resume, best weights and their dev
logits, calibration, metrics, tokenizer). A resume refuses a config that changed beyond
RESUME_MAY_CHANGE.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm
from transformers import AutoTokenizer, get_linear_schedule_with_warmup

from serving.core.contract import HEADS, TOKENIZER_FILE, mask_column
from serving.core.errors import BadInput
from serving.core.files import sha256_file
from serving.core.text import load_tokenizer, normalise
from training.calibrate import fit_calibration, sigmoid
from training.config import TrainConfig, default_encoder, load_config, to_toml
from training.counterfactual import ALL_EDITS, parent_and_edit, parent_positions
from training.dataset_rules import HAND_SOURCES, calibration_rows
from training.distill import distillation_loss, teacher_targets, unlabelled_messages
from training.model import MultiTaskModel
from training.predict import auroc_by_head, contexts_of, encode, predict_dev
from training.route_selection import check_run_rules, dev_route_agreement, selection_score
from training.run_folder import (
    BEST_DEV_LOGITS_FILE,
    BEST_WEIGHTS_FILE,
    CALIBRATION_FILE,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    TEACHER_TARGETS_FILE,
    TOKENIZER_DIR,
    load_run,
)
from training.tracking import Tracker

__all__ = ["recalibrate", "train"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_splits(config: TrainConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    path = Path(config.data)
    if not path.is_file():
        raise BadInput(f"dataset not found: {path} (run `helpdesk-scorer prepare` first)")
    data = pd.read_parquet(path)
    train = data[data["split"] == "train"].reset_index(drop=True)
    public = ~train["source"].isin(HAND_SOURCES)
    if config.max_public_rows and public.sum() > config.max_public_rows:
        keep = train[public].sample(n=config.max_public_rows, random_state=config.seed).index
        dropped = train.index[public & ~train.index.isin(keep)]
        train, public = train.drop(dropped), public.drop(dropped)
    left_out = [e.strip() for e in config.leave_out_edits.split(",") if e.strip()]
    if left_out:
        unknown = sorted(set(left_out) - set(ALL_EDITS))
        if unknown:
            raise BadInput(f"leave_out_edits: no such edits {unknown} (known: {ALL_EDITS})")
        dropped = train["id"].astype(str).map(lambda i: parent_and_edit(i)[1] in left_out)
        train, public = train[~dropped], public[~dropped]
    if not config.weak_legitimacy:
        train.loc[public, mask_column("legitimacy")] = 0.0
    if config.max_train_rows and len(train) > config.max_train_rows:
        train = train.sample(n=config.max_train_rows, random_state=config.seed)
    if config.teacher and config.distill_messages:
        avoid = {normalise(t) for t in data["text"]}
        mirror, n = Path(config.mirror), config.distill_messages
        train = pd.concat(
            [train, unlabelled_messages(mirror, n, config.seed, avoid)], ignore_index=True
        )
    return train.reset_index(drop=True), data[data["split"] == "dev"].reset_index(drop=True)


#: The graded frustration target (LABELLING.md): a polite problem report ranks above a plain
#: question and below a mildly frustrated message, which ranks below a strong one.
GRADED_FRUSTRATION = {"polite_complaint": 0.25, "mild": 0.8, "strong": 1.0}


def targets(frame: pd.DataFrame, graded: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft labels and label masks, each (n_rows, len(HEADS)); NaN labels become 0 but masked.

    With `graded`, frustration targets follow GRADED_FRUSTRATION where a row's level (and, for
    the polite problem report, its complaint label) is known.
    """
    labels = np.nan_to_num(np.array(frame[list(HEADS)], dtype=np.float32))
    masks = np.array(frame[[mask_column(h) for h in HEADS]], dtype=np.float32)
    if graded:
        j = HEADS.index("frustration")
        level = frame["frustration_level"].to_numpy(dtype=object)
        polite = (level == "none") & (frame["complaint"].to_numpy(dtype=float) == 1)
        labels[polite, j] = GRADED_FRUSTRATION["polite_complaint"]
        for name in ("mild", "strong"):
            labels[(level == name) & (labels[:, j] >= 0.5), j] = GRADED_FRUSTRATION[name]
    return torch.from_numpy(labels), torch.from_numpy(masks)


def positive_weights(labels: torch.Tensor, masks: torch.Tensor, cap: float) -> torch.Tensor:
    """Per-head weight on positives: negatives/positives among labelled rows, capped."""
    positives = (labels * masks).sum(0)
    negatives = ((1 - labels) * masks).sum(0)
    return (negatives / positives.clamp(min=1.0)).clamp(min=1.0, max=cap)


def masked_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    masks: torch.Tensor,
    row_weights: torch.Tensor,
    pos_weight: torch.Tensor,
) -> torch.Tensor:
    """Soft-target BCE averaged over the labelled cells of each head, summed over heads."""
    cell = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, labels, pos_weight=pos_weight, reduction="none"
    )
    weights = masks * row_weights[:, None]
    per_head = (cell * weights).sum(0) / weights.sum(0).clamp(min=1e-6)
    return per_head[masks.sum(0) > 0].sum()


def pair_loss(child: torch.Tensor, parent: torch.Tensor, agree: torch.Tensor) -> torch.Tensor:
    """Counterfactual logit pairing (Kaushik et al., ICLR 2020; Garg et al., AIES 2019): the
    mean squared gap between an edit's logits and its parent's, (pairs, heads) each, over the
    heads whose labels the edit left unchanged (`agree`, 1/0). Tone, a name or a reference that
    does not change a label should not change its score either."""
    return ((child - parent) ** 2 * agree).sum() / agree.sum().clamp(min=1.0)


def length_batches(lengths: list[int], size: int, seed: int) -> list[np.ndarray]:
    """Shuffled batches of similar-length texts: the order is random, but each batch draws from
    a window of neighbours by length, so little compute is spent on padding."""
    rng = np.random.default_rng(seed)
    noisy = np.asarray(lengths, dtype=float) * rng.uniform(0.8, 1.25, len(lengths))
    order = np.argsort(noisy, kind="stable")
    chunks = [order[start : start + size] for start in range(0, len(order), size)]
    return [chunks[i] for i in rng.permutation(len(chunks))]


def write_calibration(
    run_dir: Path, dev_rows: pd.DataFrame, dev_logits: np.ndarray, threshold_rule: str
) -> None:
    np.save(run_dir / BEST_DEV_LOGITS_FILE, dev_logits)
    calibration = fit_calibration(dev_rows, dev_logits, threshold_rule)
    (run_dir / CALIBRATION_FILE).write_text(json.dumps(calibration, indent=2) + "\n")


def recalibrate(run_dir: Path, threshold_rule: str) -> Path:
    """Refit calibration.json of a finished run from its best weights, without training, by
    `threshold_rule`, which its config.toml then records."""
    run = load_run(run_dir)
    check_run_rules(run.config.select_on, threshold_rule)
    config = dataclasses.replace(run.config, threshold_rule=threshold_rule)
    tokenizer = load_tokenizer(run.tokenizer_file)
    _, dev_rows = load_splits(config)
    logits = predict_dev(run.model(), tokenizer, dev_rows, config, "calibrate")
    write_calibration(run_dir, dev_rows, logits, threshold_rule)
    (run_dir / CONFIG_FILE).write_text(to_toml(config))
    return run_dir


#: Config keys a resumed run may change (where it lives, how long and how fast it runs); any
#: other difference makes it a different run.
RESUME_MAY_CHANGE = (
    "runs_dir",
    "run_name",
    "epochs",
    "patience",
    "eval_batch_size",
    "threads",
    "track",
    "threshold_rule",  # only the calibration after the last epoch reads it
)


def check_resume(saved: dict[str, object], config: TrainConfig) -> None:
    """Refuse to resume a checkpoint under a config that differs beyond RESUME_MAY_CHANGE (as
    nanoGPT refuses a resume whose model arguments differ): the weights and optimiser state
    would silently continue a different experiment."""
    wanted = dataclasses.asdict(config)
    changed = sorted(
        k for k in wanted if k not in RESUME_MAY_CHANGE and saved.get(k, wanted[k]) != wanted[k]
    )
    if changed:
        said = ", ".join(f"{k}: {saved[k]!r} -> {wanted[k]!r}" for k in changed)
        raise BadInput(f"cannot resume {config.run_dir}: its checkpoint was trained with {said}")


def train(config: TrainConfig, resume: bool = False) -> Path:
    check_run_rules(config.select_on, config.threshold_rule)
    seed_everything(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    encoder = config.encoder or default_encoder()
    run_dir = config.run_dir
    checkpoint = run_dir / CHECKPOINT_FILE
    resuming = resume and checkpoint.is_file()
    state = torch.load(checkpoint, weights_only=False) if resuming else {}
    if resuming:
        check_resume(state.get("config") or vars(load_config(run_dir / CONFIG_FILE)), config)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(to_toml(config))
    train_rows, dev_rows = load_splits(config)
    AutoTokenizer.from_pretrained(encoder).save_pretrained(run_dir / TOKENIZER_DIR)
    tokenizer = load_tokenizer(run_dir / TOKENIZER_DIR / TOKENIZER_FILE)
    labels, masks = targets(train_rows, bool(config.graded_frustration))
    row_weights = torch.from_numpy(
        np.where(train_rows["source"].isin(HAND_SOURCES), config.hand_weight, 1.0).astype("f4")
    )
    pos_weight = positive_weights(labels, masks, config.pos_weight_cap)
    parent_of = parent_positions(train_rows["id"].astype(str).tolist())
    texts = train_rows["text"].tolist()
    thread_contexts = contexts_of(train_rows)  # each row's thread, for the model and the teacher
    contexts = thread_contexts if config.context_length else [""] * len(texts)
    lengths = [len(t) + len(c) for t, c in zip(texts, contexts, strict=True)]
    dropout_rng = np.random.default_rng(config.seed)
    teacher = (
        teacher_targets(
            Path(config.teacher), texts, thread_contexts, run_dir / TEACHER_TARGETS_FILE
        )
        if config.teacher
        else None
    )

    model = MultiTaskModel.from_encoder(
        encoder, config.dropout, config.encoder_layers, context=config.context_length > 0
    )
    optimizer = torch.optim.AdamW(
        [
            {"params": model.encoder.parameters(), "lr": config.lr},
            {"params": model.heads.parameters(), "lr": config.head_lr},
        ],
        weight_decay=config.weight_decay,
    )
    steps = config.epochs * math.ceil(len(train_rows) / config.batch_size)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * steps), steps)
    history: list[dict[str, object]] = []
    start_epoch, best, stale = 0, -math.inf, 0
    if resuming:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best, stale, history = (
            state["epoch"] + 1,
            state["best"],
            state["stale"],
            state["history"],
        )
        torch.set_rng_state(state["rng"])

    tracker = Tracker.start(
        run_dir,
        Path(config.runs_dir),
        {**dataclasses.asdict(config), "dataset_sha256": sha256_file(Path(config.data))},
        bool(config.track),
    )
    best_logits: np.ndarray | None = None
    started = time.time()
    for epoch in range(start_epoch, config.epochs):
        if config.patience and stale >= config.patience:
            break
        model.train()
        progress = tqdm(
            length_batches(lengths, config.batch_size, config.seed + epoch),
            desc=f"epoch {epoch + 1}/{config.epochs}",
            unit="batch",
        )
        losses: list[float] = []
        for idx in progress:
            # context dropout: some rows train as lone messages, so a message sent without
            # history still scores well
            shown = dropout_rng.random(len(idx)) >= config.context_dropout
            batch_contexts = [
                contexts[i] if keep else "" for i, keep in zip(idx, shown, strict=True)
            ]
            inputs = encode(
                tokenizer,
                [texts[i] for i in idx],
                config.max_length,
                batch_contexts,
                config.context_length,
            )
            logits = model(**inputs)
            loss = masked_loss(logits, labels[idx], masks[idx], row_weights[idx], pos_weight)
            kids = np.flatnonzero(parent_of[idx] >= 0) if config.pair_weight else np.empty(0, "i8")
            if len(kids):
                # each edit's parent, read with the same context choice as the edit
                parents = parent_of[idx[kids]]
                parent_inputs = encode(
                    tokenizer,
                    [texts[p] for p in parents],
                    config.max_length,
                    [contexts[p] if shown[k] else "" for p, k in zip(parents, kids, strict=True)],
                    config.context_length,
                )
                child, parent = torch.from_numpy(idx[kids]), torch.from_numpy(parents)
                agree = masks[child] * masks[parent] * (labels[child] == labels[parent])
                loss = loss + config.pair_weight * pair_loss(
                    logits[torch.from_numpy(kids)], model(**parent_inputs), agree
                )
            if teacher is not None:
                # the teacher's score for what the student saw: with its context or alone
                seen = torch.from_numpy((shown & (config.context_length > 0)).astype(np.int64))
                w = config.distill_weight
                soft = teacher[torch.from_numpy(idx), seen]
                loss = (1 - w) * loss + w * distillation_loss(logits, soft)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            progress.set_postfix(loss=f"{losses[-1]:.3f}")
        dev_logits = predict_dev(model, tokenizer, dev_rows, config, "dev")
        picked, picked_group = calibration_rows(dev_rows)
        per_head = auroc_by_head(dev_rows[picked], sigmoid(dev_logits[picked]))
        mean = float(np.nanmean(list(per_head.values())))
        report: dict[str, object] = {
            "epoch": epoch + 1,
            "judged_on": picked_group,
            **per_head,
            "mean": mean,
            "all_dev": auroc_by_head(dev_rows, sigmoid(dev_logits)),
        }
        if config.context_length:
            alone = predict_dev(model, tokenizer, dev_rows, config, "dev alone", False)
            report["without_context"] = auroc_by_head(dev_rows[picked], sigmoid(alone[picked]))
        calibration = fit_calibration(dev_rows, dev_logits, config.threshold_rule)
        routes = dev_route_agreement(dev_rows, dev_logits, calibration)
        report["route_agreement"] = routes
        history.append(report)
        tqdm.write(json.dumps(report))
        tracker.epoch(epoch + 1, report, float(np.mean(losses)) if losses else float("nan"))
        if (score := selection_score(config.select_on, mean, routes)) > best:
            best, stale = score, 0
            torch.save(model.state_dict(), run_dir / BEST_WEIGHTS_FILE)
            best_logits = dev_logits
        else:
            stale += 1
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "best": best,
                "stale": stale,
                "history": history,
                "rng": torch.get_rng_state(),
                "config": dataclasses.asdict(config),
            },
            checkpoint,
        )

    if best_logits is None:  # resumed after the best epoch: predict it again
        model.load_state_dict(torch.load(run_dir / BEST_WEIGHTS_FILE))
        best_logits = predict_dev(model, tokenizer, dev_rows, config, "calibrate")
    write_calibration(run_dir, dev_rows, best_logits, config.threshold_rule)
    metrics = {
        "history": history,
        "train_rows": len(train_rows),
        "dev_rows": len(dev_rows),
        "train_seconds_this_session": round(time.time() - started, 1),
        "encoder": encoder,
    }
    (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    calibration = json.loads((run_dir / CALIBRATION_FILE).read_text())
    tracker.finish(run_dir, calibration, {k: metrics[k] for k in metrics if k != "history"})
    return run_dir
