"""One scan of everything a deployment keeps: what ``paybot pci-scan`` runs.

Sources, in order: the database (``DATABASE_URL``, or the SQLite file in the data dir: every
table, the SMS outbox among them), Rasa's trackers (the SQL tracker store of
``PAYBOT_TRACKER_STORE_URL``, else the running Rasa's API), and every log, recording and SQLite
file under the data dir and any extra paths. A source that cannot be read is a scan error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from .audio import SPEECH_NOTE
from .files import scan_files
from .finders import Finders
from .report import Report
from .tables import scan_engine
from .trackers import (
    known_conversations,
    scan_rasa_api,
    scan_tracker_store,
    tracker_store_engine,
)


@dataclass(frozen=True)
class Target:
    """What to scan: the deployment's stores and where its files are."""

    database_url: str
    data_dir: Path
    tracker_store_url: str | None = None
    rasa_url: str | None = None
    rasa_token: str = ""
    paths: tuple[Path, ...] = ()
    conversations: frozenset[str] = frozenset()
    skip: tuple[Path, ...] = field(default_factory=tuple)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases or an in-memory one)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def open_database(url: str) -> Engine:
    """An engine that only reads: a SQLite file opened read-only (never created)."""
    path = sqlite_path(url)
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(f"no database file at {path}")
        return create_engine(f"sqlite:///file:{path.resolve()}?mode=ro&uri=true")
    return create_engine(url, pool_pre_ping=True)


def scan_database(
    url: str, finders: Finders, label: str = "database"
) -> tuple[Report, Engine | None]:
    """Every table of the database at ``url``; the engine, for more reading (or None)."""
    report = Report()
    try:
        engine = open_database(url)
    except (FileNotFoundError, ValueError, SQLAlchemyError) as exc:
        report.error(f"{label}: {exc}")
        return report, None
    report.merge(scan_engine(engine, label, finders))
    return report, None if report.errors else engine


def scan_trackers(target: Target, finders: Finders, engine: Engine | None) -> Report:
    """Rasa's trackers: the SQL store, or the running Rasa's API for what the database names."""
    report = Report()
    if target.tracker_store_url:
        try:
            store = tracker_store_engine(target.tracker_store_url)
        except (SQLAlchemyError, ValueError) as exc:
            report.error(f"tracker store: unusable URL ({type(exc).__name__})")
            return report
        try:
            return scan_tracker_store(store, finders)
        finally:
            store.dispose()
    if target.rasa_url is None:
        report.note("trackers: Rasa's in-memory trackers not scanned (no Rasa URL: --no-rasa)")
        return report
    senders = set(target.conversations)
    if engine is not None:
        try:
            senders |= known_conversations(engine)
        except SQLAlchemyError as exc:
            report.error(f"trackers: cannot list the conversations ({type(exc).__name__})")
    report.merge(scan_rasa_api(target.rasa_url, target.rasa_token, senders, finders))
    return report


def run(target: Target, finders: Finders) -> Report:
    """Scan every source of ``target`` with ``finders``."""
    report, engine = scan_database(target.database_url, finders)
    try:
        report.merge(scan_trackers(target, finders, engine))
    finally:
        if engine is not None:
            engine.dispose()
    main_file = sqlite_path(target.database_url)
    skip: Iterable[Path] = (*target.skip, *([main_file] if main_file else []))
    report.merge(scan_files([target.data_dir, *target.paths], finders, skip))
    if report.scanned["recordings"]:
        report.note(SPEECH_NOTE)
    if not finders.codes:
        report.note("security codes: not searched (name the codes used with --cvc)")
    return report
