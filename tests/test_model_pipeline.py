"""Train a tiny model, export it with parity checks, and score with the serving scorer."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from serving.core.contract import HEADS, MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE, mask_column

if TYPE_CHECKING:
    from training.config import TrainConfig

TEXTS = ["my order never arrived and i am angry", "ok", "how can i change my password"]


def test_training_writes_a_complete_run(tiny_run: Path) -> None:
    for name in ("config.toml", "best.pt", "checkpoint.pt", "calibration.json", "metrics.json"):
        assert (tiny_run / name).is_file(), name
    calibration = json.loads((tiny_run / "calibration.json").read_text())
    assert set(calibration["temperature"]) == set(HEADS)
    assert all(0.0 < t <= 20.0 for t in calibration["temperature"].values())
    levels = calibration["frustration_levels"]
    assert levels["mild"] <= levels["strong"]
    history = json.loads((tiny_run / "metrics.json").read_text())["history"]
    assert len(history) >= 1 and history[-1]["epoch"] >= 1


def test_tiny_model_learns_the_keywords(tiny_run: Path) -> None:
    history = json.loads((tiny_run / "metrics.json").read_text())["history"]
    assert max(h["mean"] for h in history) > 0.8


def variant(tiny_run: Path, folder: Path, **changes: object) -> TrainConfig:
    """The tiny run's config, living in `folder`, with `changes`."""
    from training.config import TrainConfig, load_config

    config = load_config(tiny_run / "config.toml").__dict__
    return TrainConfig(
        **{**config, "runs_dir": str(folder.parent), "run_name": folder.name, **changes}
    )


def test_resume_continues_after_the_last_epoch(tiny_run: Path, tmp_path: Path) -> None:
    from training.config import load_config
    from training.train import train

    config = load_config(tiny_run / "config.toml")
    copy = tmp_path / "resumed"
    shutil.copytree(tiny_run, copy)
    train(variant(tiny_run, copy, epochs=config.epochs + 1), resume=True)
    history = json.loads((copy / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == list(range(1, config.epochs + 2))


def test_resume_refuses_a_changed_config(tiny_run: Path, tmp_path: Path) -> None:
    """Resuming under another max_length (or data, lr, ...) would continue the checkpoint's
    weights and optimiser as a different experiment: refused, naming what changed."""
    from serving.core.errors import BadInput
    from training.train import train

    shutil.copytree(tiny_run, tmp_path / "changed")
    with pytest.raises(BadInput, match="max_length: 16 -> 32"):
        train(variant(tiny_run, tmp_path / "changed", max_length=32), resume=True)


def test_patience_stops_after_that_many_epochs_without_improvement(
    tiny_run: Path, tmp_path: Path
) -> None:
    """With nothing learnt (learning rates 0) the first epoch is the best and every later one
    is stale: patience 1 stops after one stale epoch, two epochs in all."""
    from training.train import train

    frozen = variant(tiny_run, tmp_path / "frozen", epochs=5, patience=1, lr=0.0, head_lr=0.0)
    history = json.loads((train(frozen) / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]


def test_a_distilled_student_learns_the_teachers_raw_scores_and_exports(
    tiny_run: Path, tiny_release: Path, tmp_path: Path
) -> None:
    """`encoder_layers` keeps fewer layers; `teacher` adds the release's scores (calibration
    undone) as soft targets for every train row; the student exports like any run."""
    from serving.core.scorer import Scorer
    from serving.core.text import encode
    from training.export import export
    from training.run_folder import TEACHER_TARGETS_FILE, load_run
    from training.train import load_splits, train

    student = variant(
        tiny_run, tmp_path / "student", epochs=3, encoder_layers=1, teacher=str(tiny_release)
    )
    run = train(student)
    assert len(load_run(run).model().encoder.encoder.layer) == 1
    targets = np.load(run / TEACHER_TARGETS_FILE)
    texts = load_splits(student)[0]["text"].tolist()[:8]
    teacher = Scorer.load(tiny_release)
    inputs = encode(teacher.tokenizer, texts, teacher.manifest.max_length).inputs(
        teacher.input_names
    )
    (logits,) = teacher.session.run(["logits"], inputs)
    assert targets.shape == (len(load_splits(student)[0]), 2, len(HEADS))
    assert np.abs(targets[:8, 0] - 1 / (1 + np.exp(-logits))).max() < 1e-4
    released = export(run, tmp_path / "student-release", min_behaviour=0.0)
    assert Scorer.load(released).probabilities(TEXTS).shape == (len(TEXTS), len(HEADS))


def test_export_writes_a_verified_release(tiny_release: Path) -> None:
    manifest = json.loads((tiny_release / MANIFEST_FILE).read_text())
    assert manifest["heads"] == list(HEADS)
    assert manifest["quantization"] == "int8-static-qdq"
    assert {MODEL_FILE, TOKENIZER_FILE, "MODEL_CARD.md"} <= set(manifest["files"])
    dev = manifest["metrics"]["dev"]
    assert dev["fp32_onnx_max_prob_diff"] <= 1e-4
    assert dev["alone_vs_batched_max_prob_diff"] <= 1e-4
    for head in HEADS:
        assert dev["torch_fp32_auroc"][head] - dev["onnx_int8_auroc"][head] <= 0.005
    assert not tiny_release.with_name(tiny_release.name + ".partial").exists()


def test_onnx_graph_has_named_dynamic_inputs(tiny_release: Path) -> None:
    import onnx

    graph = onnx.load(str(tiny_release / MODEL_FILE)).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "tone"]
    assert [o.name for o in graph.output] == ["logits"]
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_param == "sequence"


def fp32_folder(release: Path, run: Path, target: Path) -> Path:
    """The release with its int8 graph swapped for the run's fp32 export, re-hashed and sealed."""
    from serving.core.artifact import seal

    shutil.copytree(release, target)
    shutil.copy(run / "model.fp32.onnx", target / MODEL_FILE)
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    manifest["files"][MODEL_FILE] = hashlib.sha256((target / MODEL_FILE).read_bytes()).hexdigest()
    (target / MANIFEST_FILE).write_text(json.dumps(manifest))
    seal(target)
    return target


def test_scorer_returns_calibrated_probabilities(tiny_release: Path) -> None:
    from serving.core.scorer import Scorer

    probs = Scorer.load(tiny_release, threads=1).probabilities(TEXTS)
    assert probs.shape == (3, len(HEADS))
    assert np.all((probs >= 0) & (probs <= 1))
    assert probs[0, HEADS.index("frustration")] > probs[2, HEADS.index("frustration")]


@pytest.mark.parametrize("graph", ["int8", "fp32"])
def test_batching_and_padding_do_not_change_scores(
    tiny_release: Path, tiny_run: Path, tmp_path: Path, graph: str
) -> None:
    # The released int8 graph has its activation scales fixed at export (static QDQ), so a
    # message scores the same alone and beside longer or shorter batch-mates, like fp32.
    from serving.core.scorer import Scorer

    folder = (
        tiny_release if graph == "int8" else fp32_folder(tiny_release, tiny_run, tmp_path / "m")
    )
    scorer = Scorer.load(folder, threads=1)
    texts = [*TEXTS, " ".join(["please", "refund"] * 30), "ok"]
    batched = scorer.probabilities(texts)
    single = np.vstack([scorer.probabilities([t]) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_dynamic_int8_is_refused_by_the_consistency_gate(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training import export as export_module

    monkeypatch.setattr(export_module, "MAX_AUROC_DROP", 1.0)  # only the consistency gate
    with pytest.raises(export_module.ParityError, match="batch-mates"):
        export_module.export(
            tiny_run, tmp_path / "model", quantization="dynamic", min_behaviour=0.0
        )
    assert not (tmp_path / "model").exists()


def test_scorer_reports_truncation(tiny_release: Path) -> None:
    from serving.core.scorer import Scorer

    scorer = Scorer.load(tiny_release, threads=1)
    short, long = scorer.score(["ok", " ".join(["please"] * 200)])
    assert not short.truncated and long.truncated


@pytest.mark.parametrize("victim", [MODEL_FILE, TOKENIZER_FILE, "MODEL_CARD.md"])
def test_tampered_file_is_refused_naming_it(
    tiny_release: Path, tmp_path: Path, victim: str
) -> None:
    from serving.core.scorer import ModelError, Scorer

    copy = tmp_path / "model"
    shutil.copytree(tiny_release, copy)
    data = bytearray((copy / victim).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / victim).write_bytes(bytes(data))
    with pytest.raises(ModelError, match=victim):
        Scorer.load(copy)


def test_missing_file_and_manifest_are_refused(tiny_release: Path, tmp_path: Path) -> None:
    from serving.core.scorer import ModelError, Scorer

    copy = tmp_path / "model"
    shutil.copytree(tiny_release, copy)
    (copy / TOKENIZER_FILE).unlink()
    with pytest.raises(ModelError, match="missing"):
        Scorer.load(copy)
    (copy / MANIFEST_FILE).unlink()
    with pytest.raises(ModelError, match=MANIFEST_FILE):
        Scorer.load(copy)


def test_a_model_below_the_behaviour_gate_is_refused(tiny_run: Path, tmp_path: Path) -> None:
    from training import export as export_module

    with pytest.raises(export_module.ParityError, match="behaviour suite passes"):
        export_module.export(tiny_run, tmp_path / "model", min_behaviour=1.01)
    assert not (tmp_path / "model").exists()


def test_failed_int8_check_leaves_no_release(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training import export as export_module

    monkeypatch.setattr(export_module, "MAX_AUROC_DROP", -1.0)
    with pytest.raises(export_module.ParityError, match="AUROC"):
        export_module.export(tiny_run, tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_golden_scores_reproduce_and_catch_a_changed_model(tiny_release: Path) -> None:
    from serving.core.scorer import Scorer

    scorer = Scorer.load(tiny_release, threads=1)
    assert len(scorer.manifest.raw["golden"]) >= 5
    assert scorer.golden_mismatches() == []
    scorer.manifest.temperatures[:] *= 3.0  # a different calibration must be noticed
    assert scorer.golden_mismatches() != []


def test_calibrate_only_reproduces_the_run_calibration(tiny_run: Path, tmp_path: Path) -> None:
    from training.train import recalibrate

    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    (copy / "calibration.json").unlink()
    recalibrate(copy, "f1")
    fresh = json.loads((copy / "calibration.json").read_text())
    original = json.loads((tiny_run / "calibration.json").read_text())
    for head in HEADS:
        assert fresh["temperature"][head] == pytest.approx(original["temperature"][head], rel=1e-3)
    assert fresh["thresholds"] == pytest.approx(original["thresholds"], abs=1e-3)


def test_an_eager_attention_export_fuses_its_attention_with_parity(
    tiny_encoder: Path, tmp_path: Path
) -> None:
    """The speed lever of `evaluation.bench.experiments.levers`: onnxruntime's transformer
    optimizer fuses every layer's attention of an eager-attention export (none of an SDPA one),
    and the fused graph scores as the unfused one does."""
    import numpy as np
    import onnxruntime as ort

    from serving.core.text import TONE_FEATURES
    from training.export import onnx_fp32
    from training.model import MultiTaskModel
    from training.quantize import fuse

    model = MultiTaskModel.from_encoder(str(tiny_encoder), context=True).eval()
    sdpa, eager = tmp_path / "sdpa.onnx", tmp_path / "eager.onnx"
    onnx_fp32(model, sdpa, 16)
    counts_sdpa = fuse(sdpa, tmp_path / "sdpa.fused.onnx", num_heads=2, hidden_size=32)
    onnx_fp32(model.eager_attention(), eager, 16)
    counts = fuse(eager, tmp_path / "fused.onnx", num_heads=2, hidden_size=32)
    assert counts_sdpa.get("Attention", 0) == 0 and counts["Attention"] == 2
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 40, size=(3, 16)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 9:] = 0
    types = np.zeros_like(ids)
    types[:, 12:] = 1
    tone = rng.random((3, len(TONE_FEATURES))).astype(np.float32)
    feeds = {"input_ids": ids, "attention_mask": mask, "tone": tone, "token_type_ids": types}
    scores = [
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
        for p in (sdpa, tmp_path / "fused.onnx")
    ]
    np.testing.assert_allclose(scores[0], scores[1], atol=1e-5)


def test_a_fused_export_passes_every_gate(tiny_context_run: Path, tmp_path: Path) -> None:
    from training.export import export

    folder = export(tiny_context_run, tmp_path / "fused", min_behaviour=0.0, fused=True)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["graph"] == "fused" and manifest["quantization"] == "int8-static-qdq"
    assert {"Attention"} <= {n.op_type for n in _graph_nodes(folder / "model.onnx")}


def _graph_nodes(path: Path) -> list[object]:
    import onnx

    return list(onnx.load(str(path)).graph.node)


def test_unlabelled_messages_skip_held_back_threads_known_texts_and_repeats(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Distillation's unlabelled rows: no message from a held-back (dev/test) thread, none whose
    text the dataset already has, no repeat; every head masked so only the teacher teaches."""
    import pandas as pd

    from training import distill

    pool = pd.DataFrame(
        {
            "thread_id": ["t1", "t2", "t3", "t4", "t5"],
            "text": ["still waiting", "held back text", "already labelled", "ok.", "ok."],
            "history": ["[]"] * 5,
        }
    )
    monkeypatch.setattr(distill, "real_pool", lambda mirror: pool)
    monkeypatch.setattr(distill, "held_back_threads", lambda root: {"t2"})
    rows = distill.unlabelled_messages(Path("mirror"), 10, 13, {"already labelled"})
    assert sorted(rows["text"]) == ["ok.", "still waiting"]
    assert (rows["source"] == distill.UNLABELLED_SOURCE).all()
    assert (rows[[mask_column(h) for h in HEADS]] == 0).all().all()
    assert len(distill.unlabelled_messages(Path("mirror"), 1, 13, set())) == 1


def test_token_counts_are_the_tokens_the_model_reads(tiny_context_release: Path) -> None:
    """Admission prices a text with `Scorer.token_counts`: exactly the unpadded row `encode`
    builds (message after truncation, then the context segment), for short, truncated and
    threaded texts alike."""
    from serving.core.scorer import Scorer
    from serving.core.text import encode

    scorer = Scorer.load(tiny_context_release)
    manifest = scorer.manifest
    texts = ["ok", " ".join(["order"] * 40), "my parcel never arrived"]
    contexts = ["", "agent: can you help with the order number", "customer: " + "late " * 40]
    encoded = encode(
        scorer.tokenizer, texts, manifest.max_length, contexts, manifest.context_length
    )
    counts = scorer.token_counts(texts, contexts)
    assert counts == encoded.attention_mask.sum(axis=1).tolist()
    assert counts[1] > manifest.max_length - 1 and len(set(counts)) == 3
