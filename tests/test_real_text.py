"""Real customer text on tiny files: loaders keep source, id and thread; prepare reads them with
checksums and licence exclusion; the real-text gold set is joined by id, split by thread."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from serving.core.errors import BadInput
from tests.test_prepare import FILES, SOURCES, gold_record

REAL_FILES = {
    "twcs_airlines/customer_turns.jsonl": "".join(
        json.dumps(r) + "\n"
        for r in [
            {
                "id": "twcs_air:1:00",
                "conversation_id": "1",
                "turn_index": 0,
                "customer_turn": 0,
                "text": "__company__ my bag never arrived on DL12",
                "prev_agent": None,
                "tag": "BAGGAGE",
            },
            {
                "id": "twcs_air:1:01",
                "conversation_id": "1",
                "turn_index": 2,
                "customer_turn": 1,
                "text": "ok",
                "prev_agent": "Sorry! DM us your bag tag.",
                "tag": "UNK",
            },
            {
                "id": "twcs_air:2:00",
                "conversation_id": "2",
                "turn_index": 0,
                "customer_turn": 0,
                "text": "__company__ lovely crew today, thanks",
                "prev_agent": None,
                "tag": "UNK",
            },
        ]
    ),
    "twcs_tweetsumm/dialogues.jsonl": json.dumps(
        {
            "conversation_id": "c1",
            "turns": [
                {
                    "role": "customer",
                    "text": "@AppleSupport my watch stopped syncing",
                    "tweet_id": 10,
                },
                {"role": "agent", "text": "@1 Which version are you on?", "tweet_id": 11},
                {"role": "customer", "text": "@AppleSupport 4.1", "tweet_id": 12},
            ],
        }
    )
    + "\n",
    "twcs_samples/tweets.csv": "tweet_id,author_id,inbound,created_at,text,response_tweet_id,"
    "in_response_to_tweet_id,sample\n"
    "20,115714,True,t,@sprintcare my bill doubled this month,21,,s\n"
    "21,sprintcare,False,t,@115714 So sorry! Please DM us.,22,20,s\n"
    "22,115714,True,t,@sprintcare done,,21,s\n",
    "twitter_cdp_ibm/dev.json": json.dumps(
        [
            {
                "dialogHeader": {"sessionID": "S1"},
                "dialogContent": [
                    {"client": "u", "message": "@HPSupport printer offline again", "tweet_ID": "7"},
                    {"agent": "HPSupport", "message": "@u Try a restart?", "tweet_ID": "8"},
                    {"client": "u", "message": "@HPSupport still offline", "tweet_ID": "9"},
                ],
            }
        ]
    ),
    "twitter_cdp_ibm/test.json": "[]",
    "cfpb_narratives/complaints_sample_2015_2020.csv": "Consumer complaint narrative,"
    "Company response to consumer,Complaint ID\n"
    '"They reported a debt that is not mine",Closed with explanation,111\n'
    ",Closed with explanation,112\n",
    "cfpb_narratives/complaints_narratives_4products.csv": "Product,Consumer complaint narrative\n"
    'Debt collection,"Collector calls me at work every day"\n',
    "tweeteval/emotion/train_text.txt": "so angry right now\nwhat a lovely day\nfeeling low\n",
    "tweeteval/emotion/train_labels.txt": "0\n1\n3\n",
    "tweeteval/emotion/val_text.txt": "hopeful about tomorrow\n",
    "tweeteval/emotion/val_labels.txt": "2\n",
    "tweeteval/sentiment/val_text.txt": "great game\nmeh\n",
    "tweeteval/sentiment/val_labels.txt": "2\n1\n",
    "semeval2018_ec/2018-E-c-En-train.txt": "ID\tTweet\tanger\tdisgust\tjoy\tsadness\n"
    "2017-En-1\tthis is disgusting\t0\t1\t0\t0\n2017-En-2\tso happy\t0\t0\t1\t0\n"
    "2017-En-3\tso sad\t0\t0\t0\t1\n",
    "semeval2018_ec/2018-E-c-En-dev.txt": "ID\tTweet\tanger\tdisgust\tjoy\tsadness\n"
    "2017-En-4\tfurious\t1\t0\t0\t0\n",
}
REAL_SOURCES = {
    "twcs_airlines": ("CC BY-NC-SA 4.0", ["twcs_airlines/customer_turns.jsonl"]),
    "twcs_tweetsumm": ("CC BY-NC-SA 4.0", ["twcs_tweetsumm/dialogues.jsonl"]),
    "twcs_samples": ("CC BY-NC-SA 4.0", ["twcs_samples/tweets.csv"]),
    "twitter_cdp_ibm": ("Apache-2.0", ["twitter_cdp_ibm/dev.json", "twitter_cdp_ibm/test.json"]),
    "cfpb_narratives": (
        "US public data",
        [
            "cfpb_narratives/complaints_sample_2015_2020.csv",
            "cfpb_narratives/complaints_narratives_4products.csv",
        ],
    ),
    "tweeteval": ("research use", [k for k in REAL_FILES if k.startswith("tweeteval/")]),
    "semeval2018_ec": ("research use", [k for k in REAL_FILES if k.startswith("semeval2018_ec/")]),
}


def write_mirror(root: Path) -> tuple[Path, Path]:
    mirror = root / "mirror"
    for rel, content in {**FILES, **REAL_FILES}.items():
        (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
        (mirror / rel).write_text(content, encoding="utf-8")
    entries = {name: ("test", paths) for name, paths in SOURCES.items()} | REAL_SOURCES
    lines = []
    for name, (licence, paths) in entries.items():
        lines.append(f'[sources.{name}]\nlicence = "{licence}"\nfiles = [')
        for rel in paths:
            digest = hashlib.sha256((mirror / rel).read_bytes()).hexdigest()
            uri = (mirror / rel).as_uri()
            lines.append(f'  {{ path = "{rel}", url = "{uri}", sha256 = "{digest}" }},')
        lines.append("]\n")
    sources = root / "sources.toml"
    sources.write_text("\n".join(lines))
    return mirror, sources


def paths_for(mirror: Path, source: str) -> dict[str, Path]:
    return {rel: mirror / rel for rel in REAL_SOURCES[source][1]}


def test_loaders_keep_source_id_thread_and_context(tmp_path: Path) -> None:
    from training.real_sources import REAL_LOADERS

    mirror, _ = write_mirror(tmp_path)
    airlines = REAL_LOADERS["twcs_airlines"](paths_for(mirror, "twcs_airlines"))
    assert airlines["id"].tolist() == ["twcs_air:1:00", "twcs_air:1:01", "twcs_air:2:00"]
    reply = airlines.set_index("id").loc["twcs_air:1:01"]
    assert reply["thread_id"] == "twcs_airlines:1" and reply["text"] == "ok"
    assert json.loads(reply["history"]) == [
        {"role": "customer", "text": "__company__ my bag never arrived on DL12"},
        {"role": "agent", "text": "Sorry! DM us your bag tag."},
    ]
    summ = REAL_LOADERS["twcs_tweetsumm"](paths_for(mirror, "twcs_tweetsumm"))
    assert summ["id"].tolist() == ["twcs:10", "twcs:12"]
    assert [t["role"] for t in json.loads(summ["history"].iloc[1])] == ["customer", "agent"]
    samples = REAL_LOADERS["twcs_samples"](paths_for(mirror, "twcs_samples"))
    assert samples["id"].tolist() == ["twcs:20", "twcs:22"]  # inbound only
    assert set(samples["thread_id"]) == {"twcs_samples:20"}
    assert json.loads(samples.set_index("id").loc["twcs:22", "history"])[-1]["role"] == "agent"
    ibm = REAL_LOADERS["twitter_cdp_ibm"](paths_for(mirror, "twitter_cdp_ibm"))
    assert ibm["id"].tolist() == ["ibm:7", "ibm:9"] and set(ibm["thread_id"]) == {
        "twitter_cdp_ibm:S1"
    }
    cfpb = REAL_LOADERS["cfpb_narratives"](paths_for(mirror, "cfpb_narratives"))
    assert cfpb["id"].tolist() == ["cfpb:111", "cfpb_4products:line2"]  # blank narrative skipped
    assert (cfpb["complaint"] == 1).all()


def test_emotion_tweets_map_to_frustration_only(tmp_path: Path) -> None:
    from training.real_sources import REAL_LOADERS

    mirror, _ = write_mirror(tmp_path)
    tweets = REAL_LOADERS["tweeteval"](paths_for(mirror, "tweeteval")).set_index("text")
    assert tweets.loc["so angry right now", "frustration"] == 1
    assert tweets.loc["what a lovely day", "frustration"] == 0
    assert "feeling low" not in tweets.index and "meh" not in tweets.index  # left unlabelled
    assert tweets.loc["great game", "frustration"] == 0
    ec = REAL_LOADERS["semeval2018_ec"](paths_for(mirror, "semeval2018_ec")).set_index("text")
    assert ec.loc["furious", "frustration_level"] == "strong"
    assert ec.loc["this is disgusting", "frustration_level"] == "mild"
    assert "so sad" not in ec.index


#: The labels of a calm message that is no complaint.
CALM = {
    "frustration": 0,
    "frustration_level": "none",
    "boredom": 0,
    "complaint": 0,
    "legitimacy": None,
    "route": "standard",
}


def real_gold_dir(root: Path) -> Path:
    folder = root / "real_gold"
    folder.mkdir()
    rows = [
        {
            "id": "twcs_air:1:00",
            "source": "twcs_airlines",
            "thread_id": "twcs_airlines:1",
            "split": "test",
            "frustration": 0,
            "frustration_level": "none",
            "boredom": 0,
            "complaint": 1,
            "legitimacy": 1,
            "route": "complaint_desk",
        },
        {
            "id": "ibm:9",
            "source": "twitter_cdp_ibm",
            "thread_id": "twitter_cdp_ibm:S1",
            "split": "dev",
            "frustration": 1,
            "frustration_level": "mild",
            "boredom": 0,
            "complaint": 1,
            "legitimacy": 1,
            "route": "escalate_senior",
        },
    ]
    (folder / "real_gold.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def real_scale_dir(root: Path) -> Path:
    """A scaled real-text set of one train message and a counterfactual edit of it (a patch
    against its parent: the edit's text is never stored)."""
    from training.text_patch import text_patch

    folder = root / "real_scale"
    folder.mkdir()
    labels = CALM
    row = {
        "id": "twcs_air:2:00",
        "source": "twcs_airlines",
        "thread_id": "twcs_airlines:2",
        "split": "train",
        "stratum": "random",
        "tags": [],
        "note": "",
        **labels,
    }
    edit = {
        "id": "twcs_air:2:00#cf-tone_angry",
        "parent_id": "twcs_air:2:00",
        "source": "twcs_airlines",
        "thread_id": "twcs_airlines:2",
        "edit": "tone_angry",
        "synthetic": True,
        "patch": text_patch("__company__ lovely crew today, thanks", "__company__ LOVELY crew!!"),
        "split": "train",
        **labels,
    }
    (folder / "labelled.jsonl").write_text(json.dumps(row) + "\n")
    (folder / "counterfactual.jsonl").write_text(json.dumps(edit) + "\n")
    return folder


def prepare_real(root: Path, exclude: list[str]) -> pd.DataFrame:
    from training.prepare import PrepareConfig, prepare

    mirror, sources = write_mirror(root)
    gold = root / "gold"
    gold.mkdir(exist_ok=True)
    records = [gold_record(i, ("train", "dev", "test")[i % 3]) for i in range(30)]
    (gold / "gold.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    out = prepare(
        PrepareConfig(
            mirror=mirror,
            out=root / "out",
            sources=sources,
            gold_dir=gold,
            handwritten_dir=root / "none",
            real_gold_dir=real_gold_dir(root),
            real_scale_dir=real_scale_dir(root),
            cache=root / "cache",
            exclude_licences=exclude,
        )
    )
    return pd.read_parquet(out.dataset)


def test_prepare_reads_real_text_and_keeps_threads_apart(tmp_path: Path) -> None:
    data = prepare_real(tmp_path, [])
    real = data[data["source"] == "real_gold"].set_index("id")
    # the committed gold names messages by source and id; text and context come from the source
    assert real.loc["ibm:9", "text"] == "@HPSupport still offline"
    assert real.loc["ibm:9", "origin"] == "twitter_cdp_ibm"
    assert real.loc["ibm:9", "route"] == "escalate_senior"
    assert [t["role"] for t in json.loads(real.loc["ibm:9", "history"])] == ["customer", "agent"]
    # the gold threads' other turns never reach training
    assert (
        not data["thread_id"]
        .isin(["twcs_airlines:1", "twitter_cdp_ibm:S1"])
        .loc[data["source"] != "real_gold"]
        .any()
    )
    unlabelled = data["source"].isin(["twcs_samples", "twcs_tweetsumm"])
    assert unlabelled.any() and (data.loc[unlabelled, "split"] == "train").all()
    assert (data["source"] == "tweeteval").any()
    card = (tmp_path / "out" / "DATASET_CARD.md").read_text()
    assert "## Licences" in card and "CC BY-NC-SA 4.0" in card
    # the scaled set's rows are joined by id; a counterfactual is rebuilt from its patch
    scale = data[data["source"] == "real_scale"].set_index("id")
    assert scale.loc["twcs_air:2:00", "text"] == "__company__ lovely crew today, thanks"
    synthetic = data[data["source"] == "real_counterfactual"]
    assert synthetic["text"].tolist() == ["__company__ LOVELY crew!!"]
    assert (synthetic["split"] == "train").all()


def test_a_gold_id_missing_from_its_source_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "real_gold"
    folder.mkdir()
    row = {
        "id": "ibm:404",
        "source": "twitter_cdp_ibm",
        "thread_id": "x",
        "split": "dev",
        **CALM,
    }
    (folder / "real_gold.jsonl").write_text(json.dumps(row) + "\n")
    from training.prepare import PrepareConfig, load_pool, load_real_labelled

    mirror, sources = write_mirror(tmp_path)
    config = PrepareConfig(
        mirror=mirror, sources=sources, real_gold_dir=folder, real_scale_dir=tmp_path / "none"
    )
    _, _, messages = load_pool(config)
    with pytest.raises(BadInput, match="no message with id 'ibm:404'"):
        load_real_labelled(config, messages)


def test_exclude_licence_drops_non_commercial_text_and_its_gold_rows(tmp_path: Path) -> None:
    data = prepare_real(tmp_path, ["NC"])
    assert not data["source"].str.startswith("twcs").any()
    assert not data["origin"].astype(str).str.startswith("twcs").any()
    assert set(data.loc[data["source"] == "real_gold", "id"]) == {"ibm:9"}
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["excluded_sources"] == ["twcs_airlines", "twcs_samples", "twcs_tweetsumm"]


def test_real_gold_build_joins_text_by_id_and_splits_by_thread(tmp_path: Path) -> None:
    from training import real_gold

    root = tmp_path / "rg"
    (root / "to_label").mkdir(parents=True)
    (root / "labels").mkdir()
    drawn = [
        {
            "id": f"m{i}",
            "source": "twcs_airlines",
            "thread_id": f"t{i}",
            "stratum": "other",
            "history": [],
            "text": f"real text {i}",
        }
        for i in range(12)
    ]
    (root / "to_label" / "gold_1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in drawn))
    (root / "to_label" / "train_1.jsonl").write_text(json.dumps(drawn[0] | {"id": "x"}) + "\n")

    def label(i: int, complaint: int) -> dict[str, object]:
        return {
            "id": f"m{i}",
            "frustration": 0,
            "frustration_level": "none",
            "boredom": 0,
            "complaint": complaint,
            "legitimacy": 1 if complaint else None,
            "route": "complaint_desk" if complaint else "standard",
            "text": "a labeller cannot change the text",
        }

    first = [label(i, i % 2) for i in range(12)]
    second = [label(i, i % 2 if i != 3 else 0) for i in range(6)]
    write = lambda name, rows: (root / "labels" / name).write_text(  # noqa: E731
        "".join(json.dumps(r) + "\n" for r in rows)
    )
    write("gold_1.jsonl", first)
    write("train_1.jsonl", [label(0, 0) | {"id": "x"}])
    write("second_pass.jsonl", second)
    with pytest.raises(BadInput, match="not adjudicated"):
        real_gold.build(root)
    write("adjudication.jsonl", [label(3, 1)])
    report = real_gold.build(root)
    assert report["disagreements"] == 1 and report["changed_by_adjudication"] == 0
    assert report["per_label"]["complaint"]["n"] == 6
    rows = [json.loads(line) for line in (root / "real_gold.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all("text" not in r and "history" not in r for r in rows)
    for row in rows:
        assert row["split"] == real_gold.assign_thread_split(row["thread_id"])
    assert {r["split"] for r in rows} == {"dev", "test"}
    write("second_pass.jsonl", [label(99, 0)])
    with pytest.raises(BadInput, match="was not drawn"):
        real_gold.build(root)


def test_draw_is_seeded_one_message_per_thread(tmp_path: Path) -> None:
    from training.real_gold import draw

    pool = pd.DataFrame(
        {
            "id": [f"m{i}" for i in range(400)],
            "source": ["twcs_airlines", "twitter_cdp_ibm"] * 200,
            "thread_id": [f"t{i // 2}" for i in range(400)],
            "history": ["[]"] * 400,
            "text": [
                ("ok" if i % 3 == 0 else f"my flight {i} is delayed again") for i in range(400)
            ],
        }
    )
    gold, train = draw(pool, seed=1)
    again, _ = draw(pool, seed=1)
    assert gold["id"].tolist() == again["id"].tolist()
    both = pd.concat([gold, train])
    assert both["thread_id"].is_unique
    assert set(gold["stratum"]) >= {"minimal", "cue"}
