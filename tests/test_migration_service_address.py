"""Migration 0005: accounts.service_address, added and removed again (SQLite and PostgreSQL)."""

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
