"""``paybot db upgrade`` and ``paybot seed``: schema migrations and the demo data; and what
the cron commands (``payments run-due``, ``reminders run``) share: their ``--date`` and their
answer to a database error."""

from __future__ import annotations

import argparse
import logging
from datetime import date

from sqlalchemy.engine import Engine

from paybot.db.engine import make_engine, migrate
from paybot.settings import Settings
from paybot_cli.console import fail, say

log = logging.getLogger(__name__)


class BadDate(ValueError):
    """``--date`` is not a day (already reported)."""


def day_option(value: str | None) -> date | None:
    """``--date`` as a day, None when not given.

    Raises:
        BadDate: Not YYYY-MM-DD (reported on stderr; exit 2).
    """
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        fail(f"--date: not a date in YYYY-MM-DD form: {value!r}")
        raise BadDate(value) from None


def database_failed(what: str, exc: Exception) -> int:
    """Report a database error of a command (by type only); the exit code, 1."""
    log.error("%s: database error (%s)", what, type(exc).__name__)
    fail(f"database error ({type(exc).__name__}); run 'paybot db upgrade' if the schema is old")
    return 1


def upgrade(settings: Settings) -> Engine:
    """Migrate the configured database to the latest schema and return its engine."""
    engine = make_engine(settings.db_url)
    migrate(engine)
    return engine


def prepare(settings: Settings) -> None:
    """What ``paybot up`` does before starting services: migrate, seed an empty dev
    database (when ``PAYBOT_SEED_DEMO_DATA``), settle payments left open by a crash."""
    from paybot.startup import prepare_database

    report = prepare_database(settings)
    if report.seeded:
        say(f"loaded {report.seeded} demo accounts")
    if report.reconciled:
        say(f"settled {report.reconciled} payments left open by an earlier run")


def prepare_tracker_store(settings: Settings, *, always: bool = False) -> None:
    """With a PostgreSQL tracker store and more than one Rasa worker (or ``always``): create
    Rasa's table before they start (:func:`paybot_cli.trackers.create_events_table`; it loads
    Rasa's code, which a lone Rasa does not need from us)."""
    if (always or settings.rasa_workers > 1) and settings.tracker_store_url is not None:
        from paybot_cli.trackers import create_events_table

        create_events_table(settings.tracker_store_url.get_secret_value())


def upgrade_command(settings: Settings, args: argparse.Namespace) -> int:
    """``paybot db upgrade``."""
    upgrade(settings).dispose()
    say("database schema is up to date")
    return 0


def prepare_command(settings: Settings, args: argparse.Namespace) -> int:
    """``paybot db prepare``: :func:`prepare`, for deployments that run ``paybot serve``."""
    prepare(settings)
    prepare_tracker_store(settings, always=True)  # replicas of one Rasa service start at once
    say("database prepared")
    return 0


def seed_command(settings: Settings, args: argparse.Namespace) -> int:
    """``paybot seed``: migrate and load the demo accounts (refused outside dev/test)."""
    from paybot.gateway.factory import make_gateway
    from paybot.seed import seed_demo_data

    if not settings.is_dev:
        fail(f"refusing to load demo data with PAYBOT_ENV={settings.env}")
        return 1
    engine = upgrade(settings)
    try:
        added = seed_demo_data(engine, make_gateway(settings, engine))
    finally:
        engine.dispose()
    say(f"loaded {added} demo accounts" if added else "accounts exist already; nothing seeded")
    return 0
