"""The server a user would otherwise write: a plain FastAPI app around a transformers `pipeline`
on the same fine-tuned torch model, the baseline of the server benchmark.

    python -m evaluation.bench.pipeline_server --run models/runs/v3 --port 8001

Kept honest and typical: the fine-tuned encoder and tokenizer are saved in Hugging Face format,
a `feature-extraction` pipeline embeds each text, the run's own mean pooling, linear head and
temperatures turn that into the four calibrated scores; a sync endpoint (FastAPI runs it in its
thread pool), default uvicorn, one worker, torch on `--threads` threads. It accepts the same
request body as ours so the load generator drives both alike.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from serving.contract import HEADS
from serving.text import TONE_FEATURES

__all__ = ["create_app", "save_hf_model"]


class Message(BaseModel):
    text: str
    id: str | None = None


class ScoreRequest(BaseModel):
    messages: list[Message]


def save_hf_model(run: Path, folder: Path) -> tuple[Any, dict[str, Any]]:
    """Save the run's fine-tuned encoder and tokenizer in HF format; return the head (a torch
    Linear) and the run's calibration."""
    import torch

    from training.config import load_config
    from training.model import MultiTaskModel
    from training.train import default_encoder

    config = load_config(run / "config.toml")
    model = MultiTaskModel.from_encoder(config.encoder or default_encoder(), 0.0)
    model.load_state_dict(torch.load(run / "best.pt"))
    model.encoder.save_pretrained(folder)
    for file in (run / "tokenizer").iterdir():
        shutil.copy(file, folder / file.name)
    calibration = json.loads((run / "calibration.json").read_text())
    calibration["max_length"] = config.max_length
    return model.heads.eval(), calibration


def create_app(run: Path, threads: int, folder: Path) -> Any:
    import torch
    from fastapi import FastAPI
    from transformers import pipeline

    torch.set_num_threads(threads)
    head, calibration = save_hf_model(run, folder)
    extractor = pipeline("feature-extraction", model=str(folder), device="cpu")
    temperatures = torch.tensor([calibration["temperature"][h] for h in HEADS])
    thresholds = calibration["thresholds"]
    tokenize = {"truncation": True, "max_length": calibration["max_length"]}

    app = FastAPI(title="transformers pipeline baseline")

    @app.post("/v1/score")
    def score(body: ScoreRequest) -> dict[str, Any]:
        texts = [m.text for m in body.messages]
        with torch.inference_mode():
            hidden = extractor(texts, return_tensors=True, tokenize_kwargs=tokenize)
            pooled = torch.stack([h[0].mean(0) for h in hidden])  # no padding: a plain mean
            tone = torch.zeros((len(pooled), len(TONE_FEATURES)))  # a plain pipeline has none
            probs = torch.sigmoid(head(torch.cat([pooled, tone], -1)) / temperatures).tolist()
        return {
            "results": [
                {
                    "id": m.id,
                    "scores": dict(zip(HEADS, p, strict=True)),
                    "labels": {h: p[i] >= thresholds[h] for i, h in enumerate(HEADS)},
                }
                for m, p in zip(body.messages, probs, strict=True)
            ]
        }

    @app.get("/readyz")
    def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="training run folder")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    import uvicorn

    with tempfile.TemporaryDirectory(prefix="pipeline-model-") as folder:
        app = create_app(args.run, args.threads, Path(folder))
        uvicorn.run(app, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
