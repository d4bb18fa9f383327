"""Alembic environment: runs on the connection handed over by ``paybot.db.engine.migrate``."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import paybot.db.models  # noqa: F401  (registers the tables on the metadata)
from paybot.db.engine import make_engine
from paybot.settings import load_settings

target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:  # plain `alembic` CLI use: connect with the configured URL
        engine = make_engine(load_settings().db_url)
        with engine.begin() as conn:
            _run(conn)
        return
    _run(connection)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
