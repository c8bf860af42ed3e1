"""The shared text path: NFKC and look-alike folding, tone features, head + tail truncation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from serving.core.text import TONE_FEATURES, encode, load_tokenizer, normalise, tone


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("ＷＨＥＲＥ ＩＳ ＭＹ ＲＥＦＵＮＤ？！", "WHERE IS MY REFUND?!"),  # full-width
        ("𝐖𝐇𝐄𝐑𝐄 is my refund", "WHERE is my refund"),  # mathematical bold
        ("rеfund plеasе", "refund please"),  # Cyrillic е inside Latin words
        ("НЕLLО", "HELLO"),  # a word made of look-alikes only
        ("Привет, мир", "Привет, мир"),  # real Cyrillic words stay as they are
        ("plain ascii stays", "plain ascii stays"),
    ],
)
def test_normalise_folds_compatibility_forms_and_look_alikes(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_tone_sees_what_the_uncased_tokenizer_erases() -> None:
    calm = dict(zip(TONE_FEATURES, tone("where is my refund please"), strict=True))
    loud = dict(zip(TONE_FEATURES, tone("WHERE IS MY REFUND!!! sooo tired 😡"), strict=True))
    assert all(v == 0 for v in calm.values())
    assert loud["capitals_share"] > 0.5 and loud["shouted_words"] == pytest.approx(2 / 3)
    assert loud["exclamations"] == 1.0 and loud["repeated_punctuation"] == 1.0
    assert loud["elongation"] == 1.0 and loud["negative_emoji"] == 1.0
    assert tone("ok...")[TONE_FEATURES.index("ellipsis")] == 1.0


def test_full_width_shouting_encodes_like_ascii_shouting(tiny_encoder: Path) -> None:
    tokenizer = load_tokenizer(tiny_encoder / "tokenizer.json")
    wide, ascii_ = (
        encode(tokenizer, ["ＡＮＧＲＹ ａｎｇｒｙ", "ANGRY angry"], 16)
        .inputs(["input_ids", "tone"])
        .values()
    )
    np.testing.assert_array_equal(wide[0], wide[1])
    np.testing.assert_array_equal(ascii_[0], ascii_[1])


def test_long_messages_keep_their_head_and_tail(tiny_encoder: Path) -> None:
    tokenizer = load_tokenizer(tiny_encoder / "tokenizer.json")
    text = " ".join(["hello"] + ["please"] * 60 + ["refund"])
    encoded = encode(tokenizer, [text, "ok"], 16)
    ids = encoded.input_ids[0].tolist()
    assert len(ids) == 16 and encoded.truncated == [True, False]
    vocab = tokenizer.get_vocab()
    assert ids[1] == vocab["hello"] and ids[-2] == vocab["refund"]  # first and last words kept
    assert encoded.attention_mask[1].sum() == 3  # [CLS] ok [SEP], padded


def test_ablations_switch_each_part_off_and_restore_it(tiny_release: Path) -> None:
    import pandas as pd

    from evaluation.ablations import VARIANTS, measure
    from serving.core import text as text_path
    from serving.core.contract import HEADS, mask_column
    from serving.core.scorer import Scorer

    rows = pd.DataFrame(
        {
            "text": ["ANGRY angry refund", "ok", "please help", "angry late parcel"] * 2,
            **{h: [1.0, 0.0, 0.0, 1.0] * 2 for h in HEADS},
            **{mask_column(h): [1.0] * 8 for h in HEADS},
        }
    )
    before = (text_path.tone, text_path.TAIL_SHARE, text_path.normalise)
    figures = measure(Scorer.load(tiny_release, threads=1), rows)
    assert list(figures) == list(VARIANTS) and set(figures["tone zeroed"]) == set(HEADS)
    assert (text_path.tone, text_path.TAIL_SHARE, text_path.normalise) == before
