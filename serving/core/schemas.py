"""Request and response models of the scoring API (the interface contract in DESIGN.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    TypeAdapter,
)

from serving.core.contract import NOT_BLANK_PATTERN, text_error
from serving.core.decision.references import MAX_REFERENCES
from serving.core.explain import MAX_UNITS, TOP_WORDS

__all__ = [
    "HISTORY",
    "ErrorResponse",
    "Explanation",
    "HeadScores",
    "InfoResponse",
    "LanguageOut",
    "Message",
    "ReferenceOut",
    "ReloadRequest",
    "ScoreRequest",
    "ScoreResponse",
    "Turn",
    "UnicodeStr",
    "role_turns",
]

EXAMPLE_TEXT = "Third time I'm asking: order 4471 arrived broken and nobody answers!!"


def _unicode(value: str) -> str:
    """JSON escapes can spell lone surrogates ("\\ud800"), which are not Unicode: they cannot be
    echoed back, stored or used as a path."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode (lone surrogate)") from None
    return value


#: Any string that is valid Unicode.
UnicodeStr = Annotated[StrictStr, AfterValidator(_unicode)]
#: Linux PATH_MAX: a longer model_dir cannot name a folder.
MODEL_DIR_MAX_CHARS = 4096


def _scorable(text: str) -> str:
    problem = text_error(text)
    if problem:
        raise ValueError(problem)
    return text


#: A string with at least one non-blank character (the schema says so) and no lone surrogates
#: (JSON can carry them as escapes, Unicode text cannot): the scorer's own rule, `text_error`.
Text = Annotated[
    str, StringConstraints(strict=True, pattern=NOT_BLANK_PATTERN), AfterValidator(_scorable)
]


class Turn(BaseModel):
    """An earlier turn of the thread with its author: the customer or the agent."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["customer", "agent"]
    text: Text


#: Earlier turns of a thread, oldest first: the API's `history` and every engine's.
History = list[Text | Turn]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: UnicodeStr | StrictInt | None = Field(None, description="Your id, echoed in the result.")
    text: Text = Field(
        description="The customer's message (default limit 20000 characters: 413 above).",
        examples=[EXAMPLE_TEXT],
    )
    history: History = Field(
        default_factory=list,
        description="Earlier turns of this thread, oldest first (default limit 20 turns: 413 "
        'above). A plain string is an earlier customer turn; `{"role": "agent", "text": '
        "...}` is the agent's reply (context: it is checked like any text but not scored, and "
        "the frustration streak in `thread` counts customer turns only).",
    )

    def turn_texts(self) -> list[str]:
        """The text of every history turn, customer or agent, oldest first."""
        return [t if isinstance(t, str) else t.text for t in self.history]

    def turns(self) -> list[tuple[str, str]]:
        """The history as (role, text), oldest first: what `serving.core.threads` flattens."""
        return role_turns(self.history)


def role_turns(history: Sequence[str | Turn]) -> list[tuple[str, str]]:
    """A history as (role, text) turns, oldest first; a plain string is a customer turn."""
    return [("customer", t) if isinstance(t, str) else (t.role, t.text) for t in history]


#: A message's history as every engine accepts it: the API's `history` field, a JSONL list,
#: a Parquet list column or a CSV column holding a JSON list.
HISTORY = TypeAdapter(History)


class ScoreRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "messages": [
                        {
                            "id": "t-1",
                            "text": EXAMPLE_TEXT,
                            "history": [
                                "Hi, my order is late.",
                                {"role": "agent", "text": "Sorry to hear that, it ships today."},
                            ],
                        },
                        {"id": "t-2", "text": "ok"},
                    ]
                }
            ]
        },
    )

    messages: list[Message] = Field(
        min_length=1, description="1 to max_messages messages (default 64: 413 above)."
    )
    explain: StrictBool = Field(
        False,
        description="Add an `explanation` to each result: the words that raised and lowered "
        f"each score. Each message is scored again without each of its words (at most "
        f"{MAX_UNITS} words or word groups), so it costs up to {MAX_UNITS + 1} times the "
        "scoring; at most max_explain_messages messages (default 4: 413 above).",
    )


class HeadScores(BaseModel):
    frustration: float
    boredom: float
    complaint: float
    legitimacy: float


class Labels(BaseModel):
    frustration: Literal["none", "mild", "strong"]
    boredom: bool
    complaint: bool
    legitimacy: bool | None = Field(description="null when the message is not a complaint")


class RouteOut(BaseModel):
    name: str
    priority: Literal["high", "normal", "low"]
    reason: str


class Thread(BaseModel):
    frustration: list[float] = Field(description="Per turn, oldest first, this message last.")
    trend: Literal["rising", "steady", "falling"]
    frustrated_in_a_row: int


class ReferenceOut(BaseModel):
    kind: str = Field(description="The phrase bank's name for it: order, ticket, booking...")
    value: str = Field(
        description="As the customer wrote it in this message (accounts: the last characters)."
    )


class LanguageOut(BaseModel):
    supported: bool = Field(
        description="false: the message is mostly not English (the model knows English only); "
        "it is still scored, but treat its scores with care"
    )
    detected: str | None = Field(
        description="The detector's language code (ISO 639), null when the text is too short "
        "to judge"
    )


class Result(BaseModel):
    id: str | None
    scores: HeadScores
    labels: Labels
    route: RouteOut
    phrasing: list[str] = Field(
        description="Opener, a sentence naming the first reference when there is one, next step."
    )
    references: list[ReferenceOut] = Field(
        default_factory=list,
        description="References the customer gave in this message's text (not its history), "
        f"in order, at most {MAX_REFERENCES}.",
    )
    uncertain: list[str] = Field(description="Heads within the margin of their threshold.")
    truncated: bool = Field(description="The text was cut to the model's token limit.")
    language: LanguageOut = Field(description="Whether the message is in a supported language.")
    thread: Thread | None = Field(None, description="Present when history was sent.")
    explanation: Explanation | None = Field(None, description="Present when explain was asked.")

    def record(self) -> dict[str, Any]:
        """The JSON object every engine writes: `thread` and `explanation` only when set."""
        return self.model_dump(mode="json", exclude_unset=True)


class WordChange(BaseModel):
    text: str = Field(description="The word, or group of neighbouring words, as written.")
    span: tuple[int, int] = Field(description="Its [start, end) character offsets in the text.")
    change: float = Field(description="The score with it minus the score without it.")


class HeadExplanation(BaseModel):
    raising: list[WordChange] = Field(
        description=f"Up to {TOP_WORDS} words that raised the score most, strongest first."
    )
    lowering: list[WordChange] = Field(
        description=f"Up to {TOP_WORDS} words that lowered the score most, strongest first."
    )


class Explanation(BaseModel):
    """Occlusion: each word (or word group) removed in turn and the message scored again."""

    frustration: HeadExplanation
    boredom: HeadExplanation
    complaint: HeadExplanation
    legitimacy: HeadExplanation
    grouped: bool = Field(
        description=f"The message has more than {MAX_UNITS} words, so neighbouring words were "
        "removed in groups."
    )


class ModelRef(BaseModel):
    name: str
    version: str
    sha256: str


class ScoreResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model: ModelRef
    results: list[Result]


class InfoResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model: ModelRef
    heads: list[str]
    thresholds: dict[str, float]
    frustration_levels: dict[str, float]
    uncertainty_margin: float
    max_length_tokens: int
    drift_reference: bool = Field(
        description="The manifest records a reference score distribution, so /metrics exports "
        "score drift (PSI) per head once the window is full."
    )
    limits: dict[str, int]


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_dir: UnicodeStr = Field(
        min_length=1,
        max_length=MODEL_DIR_MAX_CHARS,
        description="Model folder on the server's disk.",
    )
    sha256: StrictStr | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="The digest the folder must have (default: HELPDESK_MODEL_SHA256, if set).",
    )


class ErrorBody(BaseModel):
    type: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
