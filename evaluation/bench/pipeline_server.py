"""The server a user would otherwise write: a plain FastAPI app around a transformers `pipeline`
on the same fine-tuned torch model, the baseline of the server benchmark.

    python -m evaluation.bench.pipeline_server --run models/runs/v3 --port 8001
    python -m evaluation.bench.pipeline_server --port 8001   # no run: the shipped encoder

Kept honest and typical: the fine-tuned encoder and tokenizer are saved in Hugging Face format,
a `feature-extraction` pipeline embeds each text, the run's own mean pooling, linear head and
temperatures turn that into the four calibrated scores (without a run: the shipped encoder
package and a head of the same shape, so the same cost; see `evaluation.bench.torch_model`);
a sync endpoint (FastAPI runs it in its thread pool), default uvicorn, one worker, torch on
`--threads` threads. It accepts the same request body as ours so the load generator drives
both alike. For a model that reads the thread it reads the same tokens as ours: the message,
then its history written as ours writes it (`context_text`) after a [SEP], cut at the same
`max_length` + `context_length` tokens (one plain string, as a pipeline user would send it).
A plain pipeline has no token segments, so it pools the whole text and gives the head a zero
context vector: the cost of the model, not its scores.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from evaluation.bench.torch_model import load_torch_model
from serving.core.contract import HEADS, RELEASE_DIR
from serving.core.text import TONE_FEATURES, context_text

__all__ = ["create_app"]

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


class Message(BaseModel):
    text: str
    id: str | None = None
    history: list[str | dict[str, str]] = []

    def with_context(self, reads_context: bool) -> str:
        if not (reads_context and self.history):
            return self.text
        turns = [
            ("customer", t) if isinstance(t, str) else (t["role"], t["text"]) for t in self.history
        ]
        return f"{self.text} [SEP] {context_text(turns)}"


class ScoreRequest(BaseModel):
    messages: list[Message]


def create_app(run: Path | None, release: Path, threads: int, folder: Path) -> Any:
    """The baseline app; the encoder is saved in Hugging Face format into `folder`."""
    import torch
    from fastapi import FastAPI
    from transformers import pipeline

    torch.set_num_threads(threads)
    loaded = load_torch_model(run, release)
    loaded.model.encoder.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        if (loaded.tokenizer_dir / name).is_file():
            shutil.copy(loaded.tokenizer_dir / name, folder / name)
    head = loaded.model.heads
    extractor = pipeline("feature-extraction", model=str(folder), device="cpu")
    temperatures = torch.tensor([loaded.temperature[h] for h in HEADS])
    thresholds = loaded.thresholds
    tokenize = {"truncation": True, "max_length": loaded.max_length + loaded.context_length}
    reads_context = loaded.model.context  # its head also takes a context vector

    app = FastAPI(title="transformers pipeline baseline")

    @app.post("/v1/score")
    def score(body: ScoreRequest) -> dict[str, Any]:
        texts = [m.with_context(reads_context) for m in body.messages]
        with torch.inference_mode():
            hidden = extractor(texts, return_tensors=True, tokenize_kwargs=tokenize)
            pooled = torch.stack([h[0].mean(0) for h in hidden])  # no padding: a plain mean
            if reads_context:  # no token segments to pool apart: a zero context vector
                pooled = torch.cat([pooled, torch.zeros_like(pooled)], -1)
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
    parser.add_argument("--run", type=Path, default=None, help="training run folder")
    parser.add_argument(
        "--release", type=Path, default=RELEASE_DIR, help="calibration without a run"
    )
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    import uvicorn

    with tempfile.TemporaryDirectory(prefix="pipeline-model-") as folder:
        app = create_app(args.run, args.release, args.threads, Path(folder))
        uvicorn.run(app, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
