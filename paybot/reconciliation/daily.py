"""One reconciliation file per UTC day: ``payments-YYYY-MM-DD.csv`` in the configured directory,
written by ``paybot reconcile`` and, at ``PAYBOT_RECONCILE_TIME`` every day, by the bridge.

Writing a day again rewrites its file from the database: the same rows in the same order (the
same bytes, when nothing changed), plus any payment completed that day since the last write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

from sqlalchemy.engine import Engine

from paybot.reconciliation.files import write_atomic
from paybot.reconciliation.report import paid_rows, render


@dataclass(frozen=True)
class DayFile:
    """A written reconciliation file: where, for which day, how many payments, how big."""

    path: Path
    day: date
    rows: int
    size: int


def file_name(day: date) -> str:
    return f"payments-{day.isoformat()}.csv"


def write_day(engine: Engine, directory: Path, day: date, columns: tuple[str, ...]) -> DayFile:
    """Write (or rewrite) ``day``'s file in ``directory`` (blocking)."""
    rows = paid_rows(engine, day)
    path = directory / file_name(day)
    size = write_atomic(path, render(rows, columns))
    return DayFile(path, day, len(rows), size)


def yesterday(now: datetime | None = None) -> date:
    """The UTC day before ``now`` (default: now)."""
    return ((now or datetime.now(timezone.utc)).astimezone(timezone.utc) - timedelta(days=1)).date()


def parse_time_of_day(value: str) -> time | None:
    """``"01:30"`` (UTC) as a time; ``""`` or ``"0"``: None (the daily job is off).

    Raises:
        ValueError: not ``HH:MM``.
    """
    value = value.strip()
    if value in ("", "0"):
        return None
    try:
        hours, minutes = (int(part) for part in value.split(":"))
        return time(hours, minutes)
    except ValueError:
        raise ValueError("must be HH:MM (UTC), or empty for off") from None


def next_run(now: datetime, at: time) -> datetime:
    """The first instant at or after ``now`` whose UTC time of day is ``at``."""
    now = now.astimezone(timezone.utc)
    candidate = datetime.combine(now.date(), at, tzinfo=timezone.utc)
    return candidate if candidate >= now else candidate + timedelta(days=1)
