"""Server settings, read from HELPDESK_* environment variables (pydantic-settings)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from serving.core.contract import RELEASE_DIR
from serving.core.decision.phrasing import DEFAULT_PHRASES
from serving.core.decision.route_policy import DEFAULT_POLICY
from serving.core.drift import DEFAULT_WINDOW
from serving.feedback.schemas import AUTHOR_MAX_CHARS
from serving.feedback.store import DEFAULT_URL as DEFAULT_FEEDBACK_URL

__all__ = ["ApiKey", "Settings"]


class ApiKey(BaseModel):
    """One caller: a name for logs, the sha256 (hex) of its key, and its scopes."""

    name: str = Field(min_length=1, max_length=AUTHOR_MAX_CHARS, description="feedback author")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: list[str] = Field(default_factory=lambda: ["score"])


def _cpu_quota(cgroup: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 quota (containers)."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = cgroup.read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    return max(1, min(cpus, math.ceil(int(quota) / int(period))))


class Settings(BaseSettings):
    """Every knob of the server. Keys: HELPDESK_API_KEYS='[{"name": "crm", "sha256": "...",
    "scopes": ["score"]}]'; make the hash with `helpdesk-scorer hash-key`."""

    model_config = SettingsConfigDict(env_prefix="HELPDESK_", protected_namespaces=())

    model_dir: Path = Field(RELEASE_DIR, description="the model folder served at start")
    policy_file: Path = Field(DEFAULT_POLICY, description="the routing policy (TOML)")
    phrases_file: Path = Field(DEFAULT_PHRASES, description="the phrase bank (TOML)")
    host: str = Field("127.0.0.1", description="address to bind; without keys, loopback only")
    port: int = Field(8000, description="port to listen on")
    threads: int = Field(
        default_factory=_cpu_quota,
        ge=1,
        description="onnxruntime threads; default: the CPUs the process may use, capped by a "
        "cgroup quota",
    )
    spin: bool = Field(False, description="onnxruntime threads busy-wait between batches")
    reuse_port: bool = Field(
        False, description="bind with SO_REUSEPORT: several servers share one port"
    )
    event_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        "auto", description="uvicorn's event loop; auto: uvloop when installed"
    )
    max_batch_size: int = Field(64, ge=1, le=1024, description="texts per ONNX batch")
    max_batch_wait_ms: float = Field(
        0.0,
        ge=0,
        description="extra wait for batch-mates; 0: batch what queued during the last run",
    )
    max_messages: int = Field(64, ge=1, description="messages per request (413 above)")
    max_explain_messages: int = Field(
        4,  # a 128-token message explained costs ~1.4 s on 2 threads (docs/benchmark-profiling.md)
        ge=1,
        description="messages per request with explain (413 above): each is rescored per word",
    )
    max_history: int = Field(20, ge=0, description="history turns per message (413 above)")
    max_chars: int = Field(20_000, ge=1, description="characters per text (413 above)")
    max_body_bytes: int = Field(2_000_000, ge=1, description="request body size (413 above)")
    retry_after_seconds: int = Field(1, ge=1, description="Retry-After of an overload 429")
    drain_seconds: float = Field(20.0, ge=0, description="grace period on SIGTERM")
    api_keys: list[ApiKey] = Field(
        default_factory=list,
        description='callers: [{"name", "sha256", "scopes"}]; none: bind to loopback only',
    )
    log_level: str = Field("INFO", description="level of the JSON log lines on stderr")
    feedback_url: str = Field(
        DEFAULT_FEEDBACK_URL,
        description="SQLAlchemy URL of the feedback store; empty: POST /v1/feedback is off (404)",
    )
    max_judgements: int = Field(64, ge=1, description="judgements per feedback request (413)")
    # Model identity and abuse limits (issue 14).
    model_sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="pin the model's digest (sha256 of its SHA256SUMS) at start and reload",
    )
    feedback_quota_per_hour: int = Field(
        1000, ge=0, description="judgements one API key may send per rolling hour (429); 0: off"
    )
    # Connections, admission and deadlines: what one caller (or none) can hold.
    timeout_header_seconds: float = Field(
        10.0, gt=0, description="a connection without a complete request head this long is closed"
    )
    timeout_body_seconds: float = Field(
        10.0, gt=0, description="a body not complete this long after its head: 408, closed"
    )
    timeout_keep_alive_seconds: int = Field(
        5, ge=1, description="an idle keep-alive connection is closed after this"
    )
    max_connections: int = Field(
        1000, ge=1, description="open connections; one more is closed at once (fd limit below)"
    )
    max_batch_tokens: int = Field(
        256,
        ge=1,
        description=(
            "tokens per ONNX batch (padded, by the tokenizer's counts): "
            "a short request waits at most one batch"
        ),
    )
    max_queued_tokens: int = Field(
        32_768,
        ge=1,
        description="tokens queued ahead of a score request (429 above; alone: admitted)",
    )
    request_deadline_seconds: float = Field(
        30.0, gt=0, description="a score request not answered by then gets 504"
    )
    max_body_bytes_in_flight: int = Field(
        32_000_000,
        ge=1,
        description="request-body bytes held at once across connections (429 above)",
    )
    score_cache_size: int = Field(
        10_000,
        ge=0,
        description="scores kept per loaded model, by digest of context and text, so a live "
        "thread's earlier turns are scored once (0: off)",
    )
    max_texts_per_request: int = Field(
        320,
        ge=1,
        description="messages plus the customer turns of their histories, each scored (413 "
        "above): the largest admitted request finishes within the deadline on one thread",
    )
    auth_failure_burst: int = Field(
        20, ge=1, description="failed authentications one address may make at once"
    )
    auth_failure_rate: float = Field(
        1.0, gt=0, description="failed authentications per second one address regains (429)"
    )
    metrics_score_histograms: bool = Field(
        True,
        description="export per-head score histograms on /metrics (false: a quiet server's "
        "metrics never show one request's scores)",
    )

    drift_window: int = Field(
        DEFAULT_WINDOW,
        ge=10,
        description="last scored messages the drift and non-English gauges are computed over",
    )

    @field_validator("feedback_url")
    @classmethod
    def parseable_url(cls, value: str) -> str:
        """A malformed URL fails at start-up; an unreachable database only turns feedback off."""
        if value:
            try:
                make_url(value)
            except ArgumentError as exc:
                raise ValueError(f"not a database URL: {exc}") from None
        return value
