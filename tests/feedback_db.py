"""A fresh, empty feedback database per test, on SQLite and on PostgreSQL.

`feedback_url` is parametrized ["sqlite", "postgresql"]. The PostgreSQL case takes the server
from HELPDESK_TEST_POSTGRES_URL (`.ci/postgres.sh` starts one and prints it) and gives each
test its own schema, dropped afterwards. Without that URL the PostgreSQL cases skip, unless
HELPDESK_REQUIRE_POSTGRES=1, when they fail: CI must not pass by skipping them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

__all__ = ["feedback_url", "postgres_server_url", "postgres_url"]

BACKENDS = ["sqlite", "postgresql"]


def postgres_server_url() -> str:
    """HELPDESK_TEST_POSTGRES_URL, or skip (fail when HELPDESK_REQUIRE_POSTGRES=1)."""
    url = os.environ.get("HELPDESK_TEST_POSTGRES_URL", "")
    if not url:
        reason = "HELPDESK_TEST_POSTGRES_URL is not set (start one: bash .ci/postgres.sh)"
        if os.environ.get("HELPDESK_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"HELPDESK_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose connections use a new, empty schema of the test PostgreSQL database."""
    server = postgres_server_url()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(server).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def feedback_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh feedback database URL: a SQLite file in tmp_path, or a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
