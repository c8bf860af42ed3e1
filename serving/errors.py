"""Expected failures by cause: one tree, each error with a `kind`, and one table that maps a
kind to its HTTP status (`serving.http`) and to the CLI's exit code (`serving.cli_common`).

The kinds are the API's JSON error `type` values, so the server, the CLI and the client
(`serving.client`) name a failure the same way:

| kind | HTTP status | exit code | raised as |
|---|---|---|---|
| `bad_request` | 400 | 2 | the body is not parseable JSON |
| `unauthorized` | 401 | 2 | missing or unknown API key |
| `forbidden` | 403 | 2 | the API key lacks the scope |
| `not_found` | 404 | 2 | an unknown path, or a feature turned off |
| `method_not_allowed` | 405 | 2 | the route does not take this method |
| `body_timeout` | 408 | 2 | the body did not arrive in time |
| `model_refused` | 409 | 2 | `ModelRefused`, `ParityError` |
| `too_large` | 413 | 2 | a count or size over a limit |
| `invalid_input` | 422 | 2 | `BadInput` (`UserError`) |
| `overloaded` | 429 | 4 | too much work queued ahead |
| `quota_exceeded` | 429 | 4 | one caller's feedback quota, or one address's failed keys, used up |
| `internal_error` | 500 | 1 | a failure of ours, not the caller's |
| `unavailable` | 503 | 4 | `NotReady`, `StoreUnavailable` |
| `deadline_exceeded` | 504 | 4 | no answer within the deadline |

Exit code 2 means: fix the command or its input and run it again; 4: the service or store
is not there now, retry later; 1: a bug. (Exit 3 is not an error: `score` finished but
rejected rows, `serve` stopped because its model was refused at start or the port was taken.)

This module imports nothing beyond the standard library, so any layer can raise these.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, NamedTuple

__all__ = [
    "KINDS",
    "STATUS_KINDS",
    "BadInput",
    "HelpdeskError",
    "Kind",
    "KindInfo",
    "ModelRefused",
    "NotReady",
    "ParityError",
    "StoreUnavailable",
    "UserError",
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


#: The one table (the docstring's): kind -> HTTP status and CLI exit code.
KINDS: dict[Kind, KindInfo] = {
    Kind.BAD_REQUEST: KindInfo(400, 2),
    Kind.UNAUTHORIZED: KindInfo(401, 2),
    Kind.FORBIDDEN: KindInfo(403, 2),
    Kind.NOT_FOUND: KindInfo(404, 2),
    Kind.METHOD_NOT_ALLOWED: KindInfo(405, 2),
    Kind.BODY_TIMEOUT: KindInfo(408, 2),
    Kind.MODEL_REFUSED: KindInfo(409, 2),
    Kind.TOO_LARGE: KindInfo(413, 2),
    Kind.INVALID_INPUT: KindInfo(422, 2),
    Kind.OVERLOADED: KindInfo(429, 4),
    Kind.QUOTA_EXCEEDED: KindInfo(429, 4),
    Kind.INTERNAL_ERROR: KindInfo(500, 1),
    Kind.UNAVAILABLE: KindInfo(503, 4),
    Kind.DEADLINE_EXCEEDED: KindInfo(504, 4),
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


#: BadInput's name across the pipeline's many raise sites.
UserError = BadInput


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
