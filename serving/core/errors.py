"""Expected failures by cause: one tree, each error with a `kind`, and one table, `KINDS`, that
maps a kind to its HTTP status (`serving.http.guard`), to the CLI's exit code
(`serving.core.cli_common`) and to the cause a caller reads. The README's error table, the
OpenAPI error descriptions and the client's classes (`serving.client`) come from it or are
held to it by tests/test_errors.py.

The kinds are the API's JSON error `type` values, so the server, the CLI and the client name a
failure the same way. The exit code sorts them: 2, the caller's fault (fix the command or its
input); 4, retry later (the service or store is not there now); 1, a bug of ours. (Exit 3 is
not an error: `score` finished but rejected rows, `serve` stopped because its model was
refused at start or the port was taken.)

This module imports nothing beyond the standard library, so any layer can raise these.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, NamedTuple

__all__ = [
    "CALLER_FAULT",
    "KINDS",
    "OUR_BUG",
    "RETRY_LATER",
    "STATUS_KINDS",
    "BadInput",
    "HelpdeskError",
    "Kind",
    "KindInfo",
    "ModelRefused",
    "NotReady",
    "ParityError",
    "StoreUnavailable",
]


class Kind(StrEnum):
    """A failure's cause, as the API's JSON error `type` names it."""

    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    BODY_TIMEOUT = "body_timeout"
    MODEL_REFUSED = "model_refused"
    TOO_LARGE = "too_large"
    INVALID_INPUT = "invalid_input"
    OVERLOADED = "overloaded"
    QUOTA_EXCEEDED = "quota_exceeded"
    INTERNAL_ERROR = "internal_error"
    UNAVAILABLE = "unavailable"
    DEADLINE_EXCEEDED = "deadline_exceeded"


class KindInfo(NamedTuple):
    status: int
    exit_code: int
    cause: str


#: Exit codes by who acts: the caller fixes the request, retries later, or reports our bug.
CALLER_FAULT, RETRY_LATER, OUR_BUG = 2, 4, 1

#: The one table: kind -> HTTP status, CLI exit code and the cause a caller reads.
KINDS: dict[Kind, KindInfo] = {
    Kind.BAD_REQUEST: KindInfo(
        400, CALLER_FAULT, "the body is not parseable JSON (malformed, invalid UTF-8, too deep)"
    ),
    Kind.UNAUTHORIZED: KindInfo(401, CALLER_FAULT, "missing or unknown API key"),
    Kind.FORBIDDEN: KindInfo(403, CALLER_FAULT, "the API key lacks the scope"),
    Kind.NOT_FOUND: KindInfo(404, CALLER_FAULT, "an unknown path, or a feature turned off"),
    Kind.METHOD_NOT_ALLOWED: KindInfo(405, CALLER_FAULT, "the route does not take this method"),
    Kind.BODY_TIMEOUT: KindInfo(
        408, CALLER_FAULT, "the body did not arrive in time; the connection is closed"
    ),
    Kind.MODEL_REFUSED: KindInfo(
        409,
        CALLER_FAULT,
        "a model folder refused (files, manifest, golden or parity check); "
        "a running server keeps its model",
    ),
    Kind.TOO_LARGE: KindInfo(
        413, CALLER_FAULT, "a body, count, history or text length over a limit"
    ),
    Kind.INVALID_INPUT: KindInfo(
        422,
        CALLER_FAULT,
        "bad input: request fields (empty or non-string text, wrong types, unknown fields), "
        "files, options, settings",
    ),
    Kind.OVERLOADED: KindInfo(
        429, RETRY_LATER, "too much work queued ahead of the request (see Retry-After)"
    ),
    Kind.QUOTA_EXCEEDED: KindInfo(
        429,
        RETRY_LATER,
        "one caller's feedback quota, or one address's failed authentications, used up",
    ),
    Kind.INTERNAL_ERROR: KindInfo(
        500, OUR_BUG, "a failure of ours: the batch holding the request failed, no other"
    ),
    Kind.UNAVAILABLE: KindInfo(
        503,
        RETRY_LATER,
        "no model loaded yet, draining, the batch worker stopped, or the feedback store "
        "unreachable",
    ),
    Kind.DEADLINE_EXCEEDED: KindInfo(504, RETRY_LATER, "no answer within the request deadline"),
}
#: The kind an error carrying only a status stands for (a framework's 404, a proxy's 503):
#: the first kind of the table with that status, so a 429 is `overloaded`.
STATUS_KINDS: dict[int, Kind] = {info.status: kind for kind, info in reversed(KINDS.items())}


class HelpdeskError(Exception):
    """An expected failure: one line that says what and where, never a traceback. The class
    names the cause; `kind` (a class default, or given per error) picks its table row."""

    default_kind: ClassVar[Kind] = Kind.INVALID_INPUT

    def __init__(self, message: str, kind: Kind | None = None) -> None:
        super().__init__(message)
        self.kind = kind or self.default_kind

    @property
    def status(self) -> int:
        return KINDS[self.kind].status

    @property
    def exit_code(self) -> int:
        return KINDS[self.kind].exit_code


class BadInput(HelpdeskError):
    """Bad input from the caller (missing file, wrong checksum, bad config or request)."""


class ModelRefused(HelpdeskError):
    """A model folder that cannot be trusted or loaded; a running server keeps its model."""

    default_kind = Kind.MODEL_REFUSED


class ParityError(ModelRefused):
    """A model whose scores disagree with their reference (torch, fp32, alone vs batched)."""


class NotReady(HelpdeskError):
    """The server has no model loaded yet, or is draining."""

    default_kind = Kind.UNAVAILABLE


class StoreUnavailable(HelpdeskError):
    """The feedback store's database cannot be reached now."""

    default_kind = Kind.UNAVAILABLE
