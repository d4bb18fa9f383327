"""Every table of a database: the configured one (SQLite or PostgreSQL), or a SQLite file.

Each cell is read on its own (a row's account number and ZIP side by side are not one number).
The SMS outbox (``outbound_messages``) is reported as "outbox" and its bodies are read as
messages (:mod:`paybot.pci_scan.finders`): a text to a customer is one message, as what a
customer said is. Rasa's ``events`` table, when the tracker store shares the database, is read
like any other table here (and event by event by :mod:`paybot.pci_scan.trackers`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from .finders import Finders
from .report import Report

OUTBOX_TABLE, OUTBOX_BODY = "outbound_messages", "body"
SQLITE_MAGIC = b"SQLite format 3\x00"


def cell_text(value: Any) -> str:
    """A cell as text: JSON for structures, nothing for times and floats, bytes
    as Latin-1 (every byte a character, so digits stored as bytes are still digits)."""
    if value is None or isinstance(value, bool | float | date | datetime):
        return ""  # a float or a time is no card number (an integer may be one)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("latin-1")
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def scan_rows(report: Report, finders: Finders, label: str, table: str,
              columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Scan one table's rows (each cell on its own); a finding names the row's ``id``."""
    outbox = table == OUTBOX_TABLE
    where = f"{label} outbox" if outbox else f"{label} table {table}"
    id_at = list(columns).index("id") if "id" in columns else None
    count = 0
    for number, row in enumerate(rows, 1):
        count += 1
        found: dict[str, None] = {}
        for column, value in zip(columns, row, strict=True):
            message = outbox and column == OUTBOX_BODY
            found.update(dict.fromkeys(finders.find(cell_text(value), message=message)))
        if found:
            row_name = f"id {row[id_at]}" if id_at is not None else f"row {number}"
            report.add(f"{where} {row_name}", found)
    report.read("outbox messages" if outbox else "table rows", count)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def scan_engine(engine: Engine, label: str, finders: Finders) -> Report:
    """Every table in ``engine``'s default schema (PostgreSQL: the first on its search path)."""
    report = Report()
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
            for table in tables:
                result = conn.execute(text(f"SELECT * FROM {_quoted(table)}"))  # noqa: S608
                scan_rows(report, finders, label, table, list(result.keys()), result)
            report.read("tables", len(tables))
    except SQLAlchemyError as exc:
        report.error(f"{label}: cannot read the database ({type(exc).__name__}: "
                     f"{str(getattr(exc, 'orig', None) or exc).strip().splitlines()[0]})")
    return report


def is_sqlite(path: Path) -> bool:
    """Whether the file at ``path`` is a SQLite database (by its header)."""
    try:
        with path.open("rb") as f:
            return f.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def scan_sqlite_file(path: Path, finders: Finders) -> Report:
    """Every table of the SQLite file at ``path``, opened read-only."""
    report = Report()
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        report.error(f"{path}: cannot open the SQLite file ({exc})")
        return report
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in names:
            cursor = conn.execute(f"SELECT * FROM {_quoted(table)}")  # noqa: S608
            columns = [d[0] for d in cursor.description]
            scan_rows(report, finders, str(path), table, columns, cursor)
        report.read("tables", len(names))
    except sqlite3.Error as exc:
        report.error(f"{path}: cannot read the SQLite file ({exc})")
    finally:
        conn.close()
    return report
