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
    """Bring the schema to `revision`. Processes starting together take turns: an advisory
    lock on PostgreSQL, a write lock taken up front (BEGIN IMMEDIATE) on SQLite, so the second
    one finds the schema made and does nothing."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        elif engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        conn.commit()
