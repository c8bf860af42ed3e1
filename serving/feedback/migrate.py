"""Run the Alembic migrations in this package against an engine: the only way the schema is made."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

__all__ = ["MIGRATIONS", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"
#: Any fixed number: PostgreSQL advisory lock that serialises concurrent upgrades.
_LOCK_ID = 4_210_517


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`. Processes starting together take turns on PostgreSQL."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
