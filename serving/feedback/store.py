"""FeedbackStore: append judgements, read them back, export the corrections in force as JSONL.

Writes are idempotent by `key` (insert ... on conflict do nothing), so a client retry or two
processes racing on the same request never store a judgement twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, make_url, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError, DBAPIError

from serving.core.errors import BadInput, StoreUnavailable
from serving.feedback.migrate import upgrade
from serving.feedback.models import Feedback
from serving.feedback.schemas import IN_FORCE_ORDER, FeedbackIn, FeedbackRecord

__all__ = ["DEFAULT_URL", "FeedbackStore", "safe_url"]

DEFAULT_URL = "sqlite:///feedback.db"
#: Seconds a SQLite writer waits for another process's write lock before giving up.
SQLITE_BUSY_TIMEOUT = 30


def safe_url(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


class FeedbackStore:
    """A feedback database at a SQLAlchemy URL; `open` brings its schema to the latest migration."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str = DEFAULT_URL) -> FeedbackStore:
        """Connect and migrate. A bad URL or a missing driver is a BadInput, an unreachable
        database StoreUnavailable; each says what to do (never the password)."""
        try:
            is_sqlite = make_url(url).get_backend_name() == "sqlite"
            connect_args = {"timeout": SQLITE_BUSY_TIMEOUT} if is_sqlite else {}
            engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
            upgrade(engine)
        except ModuleNotFoundError as exc:
            raise BadInput(
                f"the feedback store {safe_url(url)!r} needs the database driver {exc.name!r}: "
                "pip install 'helpdesk-scorer[postgres]'"
            ) from exc
        except ArgumentError as exc:
            reason = str(exc.args[0]).strip()
            raise BadInput(f"cannot open the feedback store {safe_url(url)!r}: {reason}") from exc
        except DBAPIError as exc:
            reason = " ".join(str(exc.orig).split())  # drivers' hints come on more lines
            message = f"cannot open the feedback store {safe_url(url)!r}: {reason}"
            raise StoreUnavailable(message) from exc
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def add(self, items: Sequence[FeedbackIn]) -> list[FeedbackRecord]:
        """Store each judgement once; return the stored rows (earlier ones for repeated keys)."""
        return self.add_counted(items)[0]

    def add_counted(self, items: Sequence[FeedbackIn]) -> tuple[list[FeedbackRecord], int]:
        """`add`, and how many rows this call inserted (the rest repeated a stored key).
        One transaction: the whole batch is stored, or nothing."""
        if not items:
            return [], 0
        now = datetime.now(UTC)
        rows = [{**item.model_dump(), "created_at": now} for item in items]
        dialect = self.engine.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = (
            insert(Feedback).on_conflict_do_nothing(index_elements=["key"]).returning(Feedback.id)
        )
        with self.engine.begin() as conn:
            inserted = len(conn.execute(statement, rows).all())
        by_key = {row.key: row for row in self.records(keys=[item.key for item in items])}
        return [by_key[item.key] for item in items], inserted

    def records(
        self,
        *,
        keys: Sequence[str] | None = None,
        sample_ids: Sequence[str] | None = None,
        head: str | None = None,
        channel: str | None = None,
    ) -> list[FeedbackRecord]:
        """Stored judgements, oldest first, optionally filtered."""
        query = select(Feedback).order_by(Feedback.id)
        if keys is not None:
            query = query.where(Feedback.key.in_(keys))
        if sample_ids is not None:
            query = query.where(Feedback.sample_id.in_(sample_ids))
        if head is not None:
            query = query.where(Feedback.head == head)
        if channel is not None:
            query = query.where(Feedback.channel == channel)
        with self.engine.connect() as conn:
            return [FeedbackRecord.model_validate(row) for row in conn.execute(query).mappings()]

    def current(self, sample_ids: Sequence[str] | None = None) -> list[FeedbackRecord]:
        """The judgement in force per (sample, head), of these samples or all: the greatest by
        IN_FORCE_ORDER (latest `created_at`, then highest id), as `schemas.in_force` decides
        over exported files. Oldest stored first."""
        columns = Feedback.__table__.c
        rank = func.row_number().over(
            partition_by=(Feedback.sample_id, Feedback.head),
            order_by=[columns[name].desc() for name in IN_FORCE_ORDER],
        )
        ranked = select(Feedback.id, rank.label("rank"))
        if sample_ids is not None:
            ranked = ranked.where(Feedback.sample_id.in_(sample_ids))
        top = ranked.subquery()
        query = (
            select(Feedback)
            .join(top, Feedback.id == top.c.id)
            .where(top.c.rank == 1)
            .order_by(Feedback.id)
        )
        with self.engine.connect() as conn:
            return [FeedbackRecord.model_validate(row) for row in conn.execute(query).mappings()]

    def export_jsonl(self, path: Path) -> int:
        """Write the judgements in force, one JSON object per line; return how many."""
        records = self.current()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            for record in records:
                out.write(json.dumps(record.model_dump(mode="json"), ensure_ascii=False) + "\n")
        return len(records)
