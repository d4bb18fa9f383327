"""``paybot db upgrade`` and ``paybot seed``: schema migrations and the demo data."""

from __future__ import annotations

import argparse
import importlib
import logging
from collections.abc import Callable

from sqlalchemy.engine import Engine

from paybot.cli.console import fail, say
from paybot.db.engine import make_engine, migrate
from paybot.settings import Settings

log = logging.getLogger(__name__)
Seeder = Callable[[Engine], object]


def upgrade(settings: Settings) -> Engine:
    """Migrate the configured database to the latest schema and return its engine."""
    engine = make_engine(settings.db_url)
    migrate(engine)
    return engine


def find_seeder() -> Seeder | None:
    """``paybot.seed.seed_demo_data`` if this version has it, else None."""
    try:
        module = importlib.import_module("paybot.seed")
    except ModuleNotFoundError as exc:
        if exc.name == "paybot.seed":
            return None
        raise
    return getattr(module, "seed_demo_data", None)


def prepare(settings: Settings) -> None:
    """Migrate, then seed the demo data when enabled in a dev/test environment.

    ``paybot up`` calls this on every start, so seeding must be idempotent.
    """
    engine = upgrade(settings)
    try:
        if not (settings.seed_demo_data and settings.is_dev):
            return
        seeder = find_seeder()
        if seeder is None:
            log.debug("no demo data seeder in this version; skipping")
            return
        seeder(engine)
        log.info("demo data seeded")
    finally:
        engine.dispose()


def upgrade_command(settings: Settings, args: argparse.Namespace) -> int:
    """``paybot db upgrade``."""
    upgrade(settings).dispose()
    say("database schema is up to date")
    return 0


def seed_command(settings: Settings, args: argparse.Namespace) -> int:
    """``paybot seed``: migrate and load the demo data (refused outside dev/test)."""
    if not settings.is_dev:
        fail(f"refusing to load demo data with PAYBOT_ENV={settings.env}")
        return 1
    seeder = find_seeder()
    if seeder is None:
        fail("this version has no demo data (paybot.seed is missing)")
        return 1
    engine = upgrade(settings)
    try:
        seeder(engine)
    finally:
        engine.dispose()
    say("demo data loaded")
    return 0
