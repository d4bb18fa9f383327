"""Writing imported accounts: :class:`~paybot.accounts.csv_rows.AccountRow`\\ s upserted by
account number in one transaction, in chunks (one SELECT, one INSERT and one UPDATE per
chunk, executemany). A row that matches the database is not written, so importing the same
file again changes nothing.

Bulk Core statements on a connection rather than :mod:`paybot.db.queries` sessions: an
import may be hundreds of thousands of rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection, Engine

from paybot.accounts.csv_rows import PROGRESS_EVERY, AccountRow, Progress
from paybot.db.models import Account
from paybot.db.types import utcnow

_CHUNK = 500
_ALL_COLUMNS = tuple(f.name for f in fields(AccountRow) if f.name != "line")


@dataclass
class UpsertCounts:
    """Rows inserted, changed and left as they were (or that would be, in a dry run)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0


def upsert_accounts(
    engine: Engine,
    *,
    columns: tuple[str, ...],
    rows: list[AccountRow],
    dry_run: bool = False,
    progress: Progress | None = None,
) -> UpsertCounts:
    """Upsert ``rows`` by account number in one transaction (nothing written in a dry run).

    ``columns`` are the columns the file sets (the account number first); an existing
    account keeps its other columns, a new one gets the rows' defaults for them.
    ``progress("applied", rows)`` is called every 1000 rows.
    """
    total = UpsertCounts()
    with engine.begin() as conn:
        for done, chunk in enumerate(_chunks(rows, _CHUNK), start=1):
            counts = _apply_chunk(conn, columns, chunk, dry_run)
            total.created += counts.created
            total.updated += counts.updated
            total.unchanged += counts.unchanged
            if progress and (done * _CHUNK) % PROGRESS_EVERY == 0 and done * _CHUNK < len(rows):
                progress("applied", done * _CHUNK)
    return total


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _existing(conn: Connection, columns: tuple[str, ...], numbers: list[str]) -> dict[str, Any]:
    table = Account.__table__
    cols = [table.c.id] + [table.c[c] for c in columns]
    query = select(*cols).where(table.c.account_number.in_(numbers))
    return {row[1]: row for row in conn.execute(query)}


def _update_statement(columns: tuple[str, ...]) -> Any:
    table = Account.__table__
    targets = [c for c in columns if c != "account_number"] + ["updated_at"]
    values = {c: bindparam(f"v_{c}", type_=table.c[c].type) for c in targets}
    return table.update().where(table.c.id == bindparam("v_id")).values(values)


def _apply_chunk(
    conn: Connection, columns: tuple[str, ...], chunk: list[AccountRow], dry_run: bool
) -> UpsertCounts:
    counts = UpsertCounts()
    existing = _existing(conn, columns, [row.account_number for row in chunk])
    now = utcnow()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for row in chunk:
        current = existing.get(row.account_number)
        values = row.values(columns)
        if current is None:
            new = dict(zip(_ALL_COLUMNS, row.values(_ALL_COLUMNS), strict=True))
            inserts.append(new | {"created_at": now, "updated_at": now})
        elif tuple(current[1:]) != values:
            params = {f"v_{c}": v for c, v in zip(columns, values, strict=True)}
            updates.append(params | {"v_id": current[0], "v_updated_at": now})
        else:
            counts.unchanged += 1
    counts.created, counts.updated = len(inserts), len(updates)
    if inserts and not dry_run:
        conn.execute(Account.__table__.insert(), inserts)
    if updates and not dry_run:
        conn.execute(_update_statement(columns), updates)
    return counts
