"""The schema migrations: each goes up and down, and together they build what the models say."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from paybot.db.engine import MIGRATIONS_DIR, migrate


def _downgrade(engine, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)


def _columns(engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("accounts")}


def test_service_address_up_and_down(db_engine):
    assert "service_address" in _columns(db_engine)
    _downgrade(db_engine, "0004")
    assert "service_address" not in _columns(db_engine)
    migrate(db_engine)
    assert "service_address" in _columns(db_engine)


def test_the_migrations_build_exactly_the_tables_the_models_describe(db_engine):
    """Alembic's autogenerate comparison between the migrated database and the SQLModel
    tables finds nothing to add or drop (a column, an index, a table), on SQLite and
    PostgreSQL: a model changed without a migration, or the other way round, fails here."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    with db_engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": False, "include_name": _ours}
        )
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_every_migration_goes_down_and_up_again(db_engine):
    _downgrade(db_engine, "base")
    assert set(inspect(db_engine).get_table_names()) <= {"alembic_version"}
    migrate(db_engine)
    assert "verification_failures" in inspect(db_engine).get_table_names()
    indexes = {i["name"] for i in inspect(db_engine).get_indexes("verification_failures")}
    assert "ix_verification_failures_at" in indexes


def _ours(name, type_, _parent) -> bool:
    """Alembic's own version table is not a model."""
    return not (type_ == "table" and name == "alembic_version")
