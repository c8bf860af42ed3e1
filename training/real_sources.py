"""Read the real customer-text sources into rows that keep each message's source, id and thread.

Every row is a message a real customer wrote, byte for byte as the source has it (only runs of
whitespace are collapsed, as for every source): `id` is the source's own id (TWCS tweet id, IBM
tweet id, CFPB complaint id or its row in the file), `thread_id` groups the turns of one
conversation, and `history` holds what came before it in that thread, as
`[{"role": "customer" | "agent", "text": ...}]` (oldest first, at most `MAX_CONTEXT` turns), i.e.
what a labeller or the API sees as context. These sources carry no affect labels except CFPB's
"every narrative is a complaint"; the emotion-tweet sources (TweetEval, SemEval E-c) are general
tweets with human emotion labels and map to frustration only.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from training.loaders import clean_text, to_frame

__all__ = ["MAX_CONTEXT", "REAL_CUSTOMER_SOURCES", "REAL_LOADERS"]

#: Earlier turns of a thread kept as a message's context (the API's `history` takes 20).
MAX_CONTEXT = 4

#: Sources whose rows are real customers writing to a company (the real-text gold pool).
REAL_CUSTOMER_SOURCES = (
    "twcs_airlines",
    "twcs_tweetsumm",
    "twcs_samples",
    "twitter_cdp_ibm",
    "cfpb_narratives",
)


def _turn(role: str, text: str) -> dict[str, str]:
    return {"role": role, "text": clean_text(text)}


def _thread_rows(
    source: str, thread_id: str, turns: Iterable[tuple[str, str, str]]
) -> list[dict[str, object]]:
    """One row per customer turn of a thread; turns are (role, message id, text), oldest first."""
    rows: list[dict[str, object]] = []
    seen: list[dict[str, str]] = []
    for role, message_id, text in turns:
        if role == "customer" and clean_text(text):
            rows.append(
                {
                    "id": message_id,
                    "text": text,
                    "thread_id": f"{source}:{thread_id}",
                    "history": json.dumps(seen[-MAX_CONTEXT:], ensure_ascii=False),
                }
            )
        seen.append(_turn(role, text))
    return rows


def load_twcs_airlines(paths: dict[str, Path]) -> pd.DataFrame:
    """Customer turns of the airline threads; the turn before each is `prev_agent`."""
    records = [
        json.loads(line)
        for line in paths["twcs_airlines/customer_turns.jsonl"].read_text("utf-8").splitlines()
        if line.strip()
    ]
    by_thread: dict[str, list[dict[str, object]]] = {}
    for record in records:
        by_thread.setdefault(str(record["conversation_id"]), []).append(record)
    rows: list[dict[str, object]] = []
    for thread_id, turns in by_thread.items():
        seen: list[dict[str, str]] = []
        for record in sorted(turns, key=lambda r: int(str(r["turn_index"]))):
            if record.get("prev_agent"):
                seen.append(_turn("agent", str(record["prev_agent"])))
            rows.append(
                {
                    "id": str(record["id"]),
                    "text": str(record["text"]),
                    "thread_id": f"twcs_airlines:{thread_id}",
                    "history": json.dumps(seen[-MAX_CONTEXT:], ensure_ascii=False),
                    "meta_tag": str(record.get("tag") or "UNK"),
                }
            )
            seen.append(_turn("customer", str(record["text"])))
    return to_frame(rows, "twcs_airlines")


def load_twcs_tweetsumm(paths: dict[str, Path]) -> pd.DataFrame:
    rows: list[dict[str, object]] = []
    for line in paths["twcs_tweetsumm/dialogues.jsonl"].read_text("utf-8").splitlines():
        if not line.strip():
            continue
        dialogue = json.loads(line)
        turns = [
            (str(t["role"]), f"twcs:{t['tweet_id']}", str(t["text"])) for t in dialogue["turns"]
        ]
        rows.extend(_thread_rows("twcs_tweetsumm", str(dialogue["conversation_id"]), turns))
    return to_frame(rows, "twcs_tweetsumm")


def load_twcs_samples(paths: dict[str, Path]) -> pd.DataFrame:
    """Inbound tweets of the TWCS rows; threads rebuilt from `in_response_to_tweet_id`."""
    tweets = pd.read_csv(paths["twcs_samples/tweets.csv"], dtype=str, keep_default_na=False)
    by_id = {row["tweet_id"]: row for row in tweets.to_dict("records")}
    rows: list[dict[str, object]] = []
    for tweet in by_id.values():
        if tweet["inbound"] != "True":
            continue
        chain: list[dict[str, str]] = []
        parent, root = tweet["in_response_to_tweet_id"], tweet["tweet_id"]
        while parent in by_id and len(chain) < MAX_CONTEXT:
            earlier = by_id[parent]
            role = "customer" if earlier["inbound"] == "True" else "agent"
            chain.insert(0, _turn(role, earlier["text"]))
            root, parent = parent, earlier["in_response_to_tweet_id"]
        while parent in by_id:  # the thread's root, past the context window
            root, parent = parent, by_id[parent]["in_response_to_tweet_id"]
        rows.append(
            {
                "id": f"twcs:{tweet['tweet_id']}",
                "text": tweet["text"],
                "thread_id": f"twcs_samples:{root}",
                "history": json.dumps(chain, ensure_ascii=False),
            }
        )
    return to_frame(rows, "twcs_samples")


def load_twitter_cdp_ibm(paths: dict[str, Path]) -> pd.DataFrame:
    rows: list[dict[str, object]] = []
    for key in ("twitter_cdp_ibm/dev.json", "twitter_cdp_ibm/test.json"):
        for dialogue in json.loads(paths[key].read_text("utf-8")):
            turns = [
                (
                    "agent" if "agent" in turn else "customer",
                    f"ibm:{turn['tweet_ID']}",
                    str(turn["message"]),
                )
                for turn in dialogue["dialogContent"]
            ]
            thread = str(dialogue["dialogHeader"]["sessionID"])
            rows.extend(_thread_rows("twitter_cdp_ibm", thread, turns))
    return to_frame(rows, "twitter_cdp_ibm")


def load_cfpb_narratives(paths: dict[str, Path]) -> pd.DataFrame:
    """Consumer narratives: every one is a complaint; the company's response is a weak merit
    vote for the legitimacy labelling functions (as in the cfpb source)."""
    dated = pd.read_csv(
        paths["cfpb_narratives/complaints_sample_2015_2020.csv"], dtype=str, keep_default_na=False
    )
    dated = dated[dated["Consumer complaint narrative"].str.strip() != ""]
    rows: list[dict[str, object]] = [
        {
            "id": f"cfpb:{cid}",
            "text": text,
            "thread_id": f"cfpb:{cid}",
            "complaint": 1.0,
            "meta_response": response,
        }
        for cid, text, response in zip(
            dated["Complaint ID"],
            dated["Consumer complaint narrative"],
            dated["Company response to consumer"],
            strict=True,
        )
    ]
    products = pd.read_csv(
        paths["cfpb_narratives/complaints_narratives_4products.csv"],
        dtype=str,
        keep_default_na=False,
    )
    for n, text in enumerate(products["Consumer complaint narrative"], start=2):
        if text.strip():
            key = f"cfpb_4products:line{n}"
            rows.append({"id": key, "text": text, "thread_id": key, "complaint": 1.0})
    return to_frame(rows, "cfpb_narratives")


def _lines(path: Path) -> list[str]:
    return path.read_text("utf-8").splitlines()


def load_tweeteval(paths: dict[str, Path]) -> pd.DataFrame:
    """TweetEval emotion (anger = frustration strong; joy, optimism = 0; sadness left unlabelled)
    and sentiment (positive = frustration 0; negative and neutral left unlabelled)."""
    rows: list[dict[str, object]] = []
    emotion = {
        "0": ("anger", 1.0, "strong"),
        "1": ("joy", 0.0, "none"),
        "2": ("optimism", 0.0, "none"),
    }
    for split in ("train", "val"):
        texts = _lines(paths[f"tweeteval/emotion/{split}_text.txt"])
        labels = _lines(paths[f"tweeteval/emotion/{split}_labels.txt"])
        for n, (text, label) in enumerate(zip(texts, labels, strict=True)):
            if label.strip() in emotion:
                name, value, level = emotion[label.strip()]
                rows.append(
                    {
                        "id": f"tweeteval:emotion:{split}:{n}",
                        "text": text,
                        "frustration": value,
                        "frustration_level": level,
                        "meta_emotions": name,
                    }
                )
    texts = _lines(paths["tweeteval/sentiment/val_text.txt"])
    labels = _lines(paths["tweeteval/sentiment/val_labels.txt"])
    for n, (text, label) in enumerate(zip(texts, labels, strict=True)):
        if label.strip() == "2":
            rows.append(
                {
                    "id": f"tweeteval:sentiment:val:{n}",
                    "text": text,
                    "frustration": 0.0,
                    "frustration_level": "none",
                }
            )
    return to_frame(rows, "tweeteval")


def load_semeval2018_ec(paths: dict[str, Path]) -> pd.DataFrame:
    """E-c tweets: anger or disgust = frustration (strong for anger); only joy, love, optimism,
    trust or no emotion = 0; other negative emotions alone left unlabelled."""
    rows: list[dict[str, object]] = []
    calm = {"joy", "love", "optimism", "trust", "anticipation", "surprise"}
    for key in ("semeval2018_ec/2018-E-c-En-train.txt", "semeval2018_ec/2018-E-c-En-dev.txt"):
        with paths[key].open(newline="", encoding="utf-8") as handle:
            for record in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
                emotions = {k for k, v in record.items() if k not in ("ID", "Tweet") and v == "1"}
                if emotions & {"anger", "disgust"}:
                    value, level = 1.0, "strong" if "anger" in emotions else "mild"
                elif emotions <= calm:
                    value, level = 0.0, "none"
                else:
                    continue
                rows.append(
                    {
                        "id": f"semeval2018_ec:{record['ID']}",
                        "text": record["Tweet"],
                        "frustration": value,
                        "frustration_level": level,
                        "meta_emotions": ",".join(sorted(emotions)),
                    }
                )
    return to_frame(rows, "semeval2018_ec")


REAL_LOADERS = {
    "twcs_airlines": load_twcs_airlines,
    "twcs_tweetsumm": load_twcs_tweetsumm,
    "twcs_samples": load_twcs_samples,
    "twitter_cdp_ibm": load_twitter_cdp_ibm,
    "cfpb_narratives": load_cfpb_narratives,
    "tweeteval": load_tweeteval,
    "semeval2018_ec": load_semeval2018_ec,
}
