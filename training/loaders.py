"""Read each public source into rows of (text, source, direct labels, metadata for the LFs).

Direct labels are the ones a source states outright; a head a source says nothing about stays
NaN here and becomes masked (or is filled by the label model) in `training.prepare`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pandas as pd

__all__ = ["LOADERS", "clean_text", "to_frame"]

NEG_FRUSTRATION = {"anger", "annoyance", "disappointment"}
NEUTRAL_OR_POSITIVE = {
    "neutral",
    "admiration",
    "amusement",
    "approval",
    "caring",
    "curiosity",
    "desire",
    "excitement",
    "gratitude",
    "joy",
    "love",
    "optimism",
    "pride",
    "realization",
    "relief",
    "surprise",
}


def clean_text(text: str) -> str:
    return " ".join(str(text).split())


def to_frame(rows: list[dict[str, object]], source: str) -> pd.DataFrame:
    """Rows of one source, whitespace collapsed, empty texts dropped."""
    frame = pd.DataFrame(rows)
    frame["source"] = source
    frame["text"] = frame["text"].map(clean_text)
    return frame[frame["text"].str.len() > 0].reset_index(drop=True)


def load_goemotions(paths: dict[str, Path]) -> pd.DataFrame:
    names = paths["goemotions/labels.txt"].read_text().split()
    rows: list[dict[str, object]] = []
    for key in ("goemotions/train.tsv", "goemotions/dev.tsv"):
        with paths[key].open(newline="") as handle:
            for text, ids, _ in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
                emotions = {names[int(i)] for i in ids.split(",")}
                if emotions & NEG_FRUSTRATION:
                    level = "strong" if "anger" in emotions else "mild"
                    rows.append({"text": text, "frustration": 1.0, "frustration_level": level})
                elif emotions <= NEUTRAL_OR_POSITIVE:
                    rows.append({"text": text, "frustration": 0.0, "frustration_level": "none"})
                else:
                    continue
                rows[-1]["meta_emotions"] = ",".join(sorted(emotions))
    return to_frame(rows, "goemotions")


def load_complaints(paths: dict[str, Path]) -> pd.DataFrame:
    with paths["complaints/complaints-data.csv"].open(newline="") as handle:
        rows = [
            {"text": text, "complaint": float(label), "meta_domain": domain}
            for _, text, label, domain in csv.reader(handle)
        ]
    return to_frame(rows, "complaints")


#: Banking77 intents that report a failure ("where is my refund", "charged twice"): such a
#: query may well be a complaint, so its complaint label is left unknown (masked) rather than 0.
PROBLEM_INTENTS = frozenset(
    [
        "card_arrival",
        "card_payment_wrong_exchange_rate",
        "extra_charge_on_statement",
        "pending_cash_withdrawal",
        "card_not_working",
        "pin_blocked",
        "contactless_not_working",
        "pending_top_up",
        "wrong_amount_of_cash_received",
        "card_payment_fee_charged",
        "transfer_not_received_by_recipient",
        "top_up_reverted",
        "balance_not_updated_after_cheque_or_cash_deposit",
        "card_payment_not_recognised",
        "unable_to_verify_identity",
        "compromised_card",
        "direct_debit_payment_not_recognised",
        "declined_cash_withdrawal",
        "pending_card_payment",
        "declined_transfer",
        "Refund_not_showing_up",
        "declined_card_payment",
        "pending_transfer",
        "card_swallowed",
        "transaction_charged_twice",
        "reverted_card_payment?",
        "failed_transfer",
        "virtual_card_not_working",
        "wrong_exchange_rate_for_cash_withdrawal",
        "top_up_failed",
        "balance_not_updated_after_bank_transfer",
        "cash_withdrawal_not_recognised",
        "request_refund",
        "beneficiary_not_allowed",
        "transfer_fee_charged",
        "exchange_charge",
        "cash_withdrawal_charge",
        "top_up_by_card_charge",
        "top_up_by_bank_transfer_charge",
    ]
)


def load_banking77(paths: dict[str, Path]) -> pd.DataFrame:
    frames = [pd.read_csv(paths[k]) for k in ("banking77/train.csv", "banking77/test.csv")]
    data = pd.concat(frames, ignore_index=True)
    rows = [
        {
            "text": t,
            "complaint": None if intent in PROBLEM_INTENTS else 0.0,
            "frustration": 0.0,
            "frustration_level": "none",
            "meta_intent": intent,
        }
        for t, intent in zip(data["text"], data["category"], strict=True)
    ]
    return to_frame(rows, "banking77")


def load_emobank(paths: dict[str, Path]) -> pd.DataFrame:
    data = pd.read_csv(paths["emobank/emobank.csv"], keep_default_na=False)
    rows = [
        {"text": t, "meta_valence": float(v), "meta_arousal": float(a)}
        for t, v, a in zip(data["text"], data["V"], data["A"], strict=True)
    ]
    return to_frame(rows, "emobank")


def load_cfpb(paths: dict[str, Path]) -> pd.DataFrame:
    data = pd.read_csv(paths["cfpb_sample/complaints.csv"], dtype=str, keep_default_na=False)
    data = data[data["Consumer complaint narrative"].str.strip() != ""]
    rows = [
        {"text": t, "complaint": 1.0, "meta_response": r}
        for t, r in zip(
            data["Consumer complaint narrative"], data["Company response to consumer"], strict=True
        )
    ]
    return to_frame(rows, "cfpb")


LOADERS: dict[str, Callable[[dict[str, Path]], pd.DataFrame]] = {
    "goemotions": load_goemotions,
    "complaints": load_complaints,
    "banking77": load_banking77,
    "emobank": load_emobank,
    "cfpb": load_cfpb,
}
