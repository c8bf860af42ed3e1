"""Settings of the QA review page, read from HELPDESK_REVIEW_* environment variables."""

from __future__ import annotations

import getpass
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from serving.core.contract import RELEASE_DIR
from serving.core.explain import MAX_UNITS
from serving.feedback.store import DEFAULT_URL

__all__ = ["ReviewSettings"]


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "reviewer"


class ReviewSettings(BaseSettings):
    """Where the report, the model and the feedback store are, and who is reviewing."""

    model_config = SettingsConfigDict(
        env_prefix="HELPDESK_REVIEW_", protected_namespaces=(), populate_by_name=True
    )

    report_dir: Path = Path("reports/eval")
    model_dir: Path = RELEASE_DIR
    # the scoring server's HELPDESK_FEEDBACK_URL too, so agents' flags land on this page
    store_url: str = Field(
        DEFAULT_URL,
        validation_alias=AliasChoices("HELPDESK_REVIEW_STORE_URL", "HELPDESK_FEEDBACK_URL"),
    )
    reviewer: str = Field(default_factory=_user, min_length=1, max_length=100)
    host: str = "127.0.0.1"
    port: int = Field(8100, ge=1, le=65535)
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header values the page answers (name or name:port); empty: derived "
        "from host and port (`allowed_host_headers`)",
    )
    attribution_units: int = Field(
        MAX_UNITS, ge=2, le=512, description="most words or word groups removed one at a time"
    )


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def allowed_host_headers(settings: ReviewSettings) -> frozenset[str]:
    """The Host values the review page answers: the settings' list, else its own names with
    and without the port (loopback names for a loopback or all-interfaces bind, plus this
    machine's names for the latter). Anything else is another origin (DNS rebinding)."""
    names = set(settings.allowed_hosts)
    if not names:
        names = {settings.host if ":" not in settings.host else f"[{settings.host}]"}
        if settings.host in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"):
            names |= set(LOOPBACK_NAMES)
        if settings.host in ("0.0.0.0", "::"):
            import socket

            names |= {socket.gethostname(), socket.getfqdn()}
    with_ports = {n for n in names if n.rsplit(":", 1)[-1].isdigit() and not n.endswith("]")}
    bare = names - with_ports
    return frozenset(with_ports | bare | {f"{n}:{settings.port}" for n in bare})
