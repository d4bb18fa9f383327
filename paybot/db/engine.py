"""The engine and session provider, and schema migration through Alembic."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.pool import QueuePool
from sqlmodel import Session, create_engine

from paybot.db.models import AuditEvent

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class AppendOnlyViolation(RuntimeError):
    """Something tried to change or delete an audit event."""


def make_engine(url: str, *, echo: bool = False, search_path: str | None = None) -> Engine:
    """Create an engine for ``url``; SQLite gets a parent directory, WAL and foreign keys.

    ``search_path`` (PostgreSQL only) puts every table in that schema; tests use it to get a
    private schema in a shared database.
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # SQLAlchemy 1.4 gives file databases a NullPool (a new connection, and new pragmas,
        # for every session); a small queue pool keeps them.
        engine = create_engine(
            url,
            echo=echo,
            poolclass=QueuePool,
            pool_size=5,
            max_overflow=10,
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args = {"options": f"-csearch_path={search_path}"} if search_path else {}
    return create_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        executemany_mode="values_plus_batch",
        connect_args=connect_args,
    )


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@contextmanager
def session_scope(engine: Engine, *, connection: Connection | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error (on ``connection``, one of
    ``engine``'s that the caller keeps, if given; else on one from the pool)."""
    with Session(connection or engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def write_scope(engine: Engine, *, connection: Connection | None = None) -> Iterator[Session]:
    """A :func:`session_scope` for a read-then-write that must not interleave with another.

    On SQLite it holds the database's write lock from its first statement (``BEGIN
    IMMEDIATE``): writers queue instead of each reading a snapshot and then writing past the
    other. On PostgreSQL lock the rows read with ``SELECT ... FOR UPDATE``.
    """
    with session_scope(engine, connection=connection) as session:
        if engine.dialect.name == "sqlite":
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")
        yield session


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with Alembic (safe to run on every start)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
    log.debug("schema at %s", revision)


@event.listens_for(OrmSession, "before_flush")
def _audit_is_append_only(session: OrmSession, _context, _instances) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise AppendOnlyViolation("audit events are append-only")
