"""A typed Python client for the scoring API (synchronous, httpx).

    with ScorerClient("http://helpdesk-scorer.helpdesk", api_key=key) as scorer:
        result = scorer.score_one("Order 4471 arrived broken", history=["Where is my order?"])
        response = scorer.score(["first message", Message(id="t-2", text="second")])

Responses are parsed with the server's own models (`serving.core.schemas`), so client and server
share one record schema. Texts are not checked here: the server's validation and limits are
the only rules, and their answers come back as errors.

Errors: every failure raises a `ScorerError` (attributes `kind`, `status`, `message`,
`retry_after`), in one of three categories callers can catch, as the server's table sorts its
kinds by exit code (`serving.core.errors.KINDS`):
- `CallerError`: fix the request. `BadRequest` (400), `Unauthorized` (401), `Forbidden` (403),
  `NotFound` (404), `MethodNotAllowed` (405), `BodyTimeout` (408), `ModelRefusedError` (409),
  `TooLarge` (413), `InvalidInput` (422).
- `RetryableError`: try again later. `Overloaded` (429), `QuotaExceeded` (429, a used-up
  quota), `Unavailable` (503), `DeadlineExceeded` (504), and `TransportError` (no answer: connection
  refused or reset, timeout).
- `ServerError`: a bug of the server's. `InternalError` (500).
The subclass is chosen by the error body's `type` (`BY_KIND`). A type this client does not
know raises the base class, except that a 504 is `DeadlineExceeded` whatever its type; a body
without a type (a proxy's page) is classed by its status.

Retries: a 429 or 503 is retried up to `max_retries` times, each after the answer's
`Retry-After` seconds (or an exponential backoff without one), as long as the waits add up to
at most `max_wait` seconds; then its error is raised. Other errors are never retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import httpx
from pydantic import ValidationError

from serving.core.errors import KINDS, STATUS_KINDS, Kind
from serving.core.schemas import ErrorResponse, InfoResponse, Message, Result, ScoreResponse, Turn

__all__ = [
    "BadRequest",
    "BodyTimeout",
    "CallerError",
    "DeadlineExceeded",
    "Forbidden",
    "InternalError",
    "InvalidInput",
    "MethodNotAllowed",
    "ModelRefusedError",
    "NotFound",
    "Overloaded",
    "QuotaExceeded",
    "RetryableError",
    "ScorerClient",
    "ScorerError",
    "ServerError",
    "TooLarge",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "error_for",
]

RETRIED_STATUSES = (429, 503)
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=2.0)
BACKOFF_SECONDS = 0.5  # first wait when an answer has no Retry-After; doubles per retry


class ScorerError(Exception):
    """Any failed call; `status` is None when no HTTP answer came back."""

    def __init__(
        self,
        message: str,
        *,
        kind: str = "error",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {kind}: {message}" if status else f"{kind}: {message}")
        self.message, self.kind, self.status, self.retry_after = message, kind, status, retry_after


class CallerError(ScorerError):
    """The request was wrong: fix it before sending it again (exit code 2 kinds)."""


class RetryableError(ScorerError):
    """The service could not answer now: the same request may succeed later (exit code 4)."""


class ServerError(ScorerError):
    """The server failed on a request it accepted (exit code 1 kinds)."""


class BadRequest(CallerError):
    """The body was not parseable JSON."""


class Unauthorized(CallerError):
    """Missing or unknown API key."""


class Forbidden(CallerError):
    """The API key lacks the scope."""


class NotFound(CallerError):
    """The route is turned off on this server."""


class MethodNotAllowed(CallerError):
    """The route does not take this method."""


class BodyTimeout(CallerError):
    """The request body did not arrive within the server's body timeout."""


class ModelRefusedError(CallerError):
    """A model folder was refused on reload; the current model keeps serving. (The server
    raises `serving.core.errors.ModelRefused`; this is the answer a caller gets.)"""


class TooLarge(CallerError):
    """Body, message count, history or text length over the server's limit."""


class InvalidInput(CallerError):
    """Empty or non-string text, wrong types, unknown fields."""


class Overloaded(RetryableError):
    """Too many requests in flight, still so after the retries."""


class QuotaExceeded(Overloaded):
    """This API key's feedback quota is used up for now, still so after the retries."""


class InternalError(ServerError):
    """The server failed; the request was not processed."""


class Unavailable(RetryableError):
    """No model loaded, draining, or the feedback store is down, still so after the retries."""


class DeadlineExceeded(RetryableError):
    """The server gave up on the request at its deadline."""


class TransportError(RetryableError):
    """No HTTP answer: connection refused or reset, or a timeout."""


#: The class for each kind of `serving.core.errors.KINDS`, the server's error types.
BY_KIND: dict[Kind, type[ScorerError]] = {
    Kind.BAD_REQUEST: BadRequest,
    Kind.UNAUTHORIZED: Unauthorized,
    Kind.FORBIDDEN: Forbidden,
    Kind.NOT_FOUND: NotFound,
    Kind.METHOD_NOT_ALLOWED: MethodNotAllowed,
    Kind.BODY_TIMEOUT: BodyTimeout,
    Kind.MODEL_REFUSED: ModelRefusedError,
    Kind.TOO_LARGE: TooLarge,
    Kind.INVALID_INPUT: InvalidInput,
    Kind.OVERLOADED: Overloaded,
    Kind.QUOTA_EXCEEDED: QuotaExceeded,
    Kind.INTERNAL_ERROR: InternalError,
    Kind.UNAVAILABLE: Unavailable,
    Kind.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def _retry_after(response: httpx.Response) -> float | None:
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None  # absent, or an HTTP date: fall back to the backoff
    return max(seconds, 0.0)


def error_for(response: httpx.Response) -> ScorerError:
    """The error an unsuccessful answer stands for, classed by its body's type."""
    status = response.status_code
    try:
        error = ErrorResponse.model_validate_json(response.content).error
    except ValidationError:
        by_status = STATUS_KINDS.get(status)
        cls = BY_KIND[by_status] if by_status else ScorerError
        kind = by_status or "error"
        message = response.text[:200] or response.reason_phrase
    else:
        known = error.type in KINDS
        cls = BY_KIND[Kind(error.type)] if known else ScorerError
        if not known and status == 504:
            cls = DeadlineExceeded
        kind, message = error.type, error.message
    return cls(message, kind=kind, status=status, retry_after=_retry_after(response))


class ScorerClient:
    """One connection pool to one server; use it as a context manager, or call `close()`."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)
        self.max_retries, self.max_wait, self._sleep = max_retries, max_wait, sleep

    def score(self, messages: Sequence[str | Message], *, explain: bool = False) -> ScoreResponse:
        """Score messages in one request; results come back in the same order. `explain`
        adds each result's `explanation` (the server caps how many messages may ask)."""
        return self._score([_message(m) for m in messages], explain)

    def score_one(
        self,
        text: str,
        *,
        history: Sequence[str | Turn] | None = None,
        id: str | int | None = None,
        explain: bool = False,
    ) -> Result:
        """Score one message; `history` is the thread's earlier turns, oldest first."""
        message: dict[str, Any] = {"text": text}
        if history:
            message["history"] = [_turn(t) for t in history]
        if id is not None:
            message["id"] = id
        return self._score([message], explain).results[0]

    def info(self) -> InfoResponse:
        """The model being served, its thresholds and the server's limits."""
        return InfoResponse.model_validate_json(self._request("GET", "/v1/info").content)

    def _score(self, messages: list[dict[str, Any]], explain: bool) -> ScoreResponse:
        body: dict[str, Any] = {"messages": messages, **({"explain": True} if explain else {})}
        answer = self._request("POST", "/v1/score", body)
        return ScoreResponse.model_validate_json(answer.content)

    def _request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        attempt, waited = 0, 0.0
        while True:
            try:
                response = self._http.request(method, path, json=body)
            except httpx.TransportError as exc:
                raise TransportError(str(exc) or type(exc).__name__, kind="transport") from exc
            if response.is_success:
                return response
            error = error_for(response)
            wait = error.retry_after
            if wait is None:
                wait = BACKOFF_SECONDS * 2**attempt
            retry = response.status_code in RETRIED_STATUSES and attempt < self.max_retries
            if not retry or waited + wait > self.max_wait:
                raise error
            self._sleep(wait)
            attempt, waited = attempt + 1, waited + wait

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ScorerClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _message(message: str | Message) -> dict[str, Any]:
    if isinstance(message, str):
        return {"text": message}
    return message.model_dump(mode="json", exclude_defaults=True)


def _turn(turn: str | Turn) -> str | dict[str, Any]:
    return turn if isinstance(turn, str) else turn.model_dump(mode="json")
