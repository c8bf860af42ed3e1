"""Does a message's score depend on what it is batched with? Scores each message alone, then in
random batches of `--batch` other messages (what the server's micro-batcher does under load),
and prints how far the two differ and how many messages change a thresholded decision.

    python -m evaluation.bench.consistency --model models/release

The released int8 model is quantized statically (activation scales fixed at export), so it
should differ only by float rounding, like fp32; a dynamically quantized model (`export
--quantization dynamic`) picks one activation scale per tensor from the whole batch, so other
messages (and their padding) shift a message's score. Export runs the same function
(`serving.core.consistency.batch_dependence`) as a gate.
A benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from serving.core.consistency import batch_dependence
from serving.core.contract import RELEASE_DIR
from serving.core.scorer import Scorer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=RELEASE_DIR)
    parser.add_argument("--data", type=Path, default=Path("data/processed/dataset.parquet"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--batch", type=int, action="append", help="repeatable; default 4 and 32")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    table = pq.read_table(args.data, columns=["text", "split"]).to_pylist()
    texts = [row["text"] for row in table if row["split"] == args.split]
    rng = np.random.default_rng(args.seed)
    texts = [texts[i] for i in rng.permutation(len(texts))[: args.messages]]
    scorer = Scorer.load(args.model, threads=1)
    for batch in args.batch or [4, 32]:
        print(
            json.dumps(
                {"model": str(args.model), **batch_dependence(scorer, texts, batch, args.seed)}
            )
        )


if __name__ == "__main__":
    main()
