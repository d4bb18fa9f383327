"""Import customer accounts from a CSV file: the flat-file path billers on legacy systems use.

Format: UTF-8 (a byte-order mark is fine), comma-separated, one header row, any column order,
header names case-insensitive (spaces and hyphens count as underscores). Cells are trimmed;
blank lines are ignored.

==================  ========  ===============================================================
column              required  value
==================  ========  ===============================================================
account_number      yes       4-32 letters, digits or hyphens (stored upper-case)
name                yes       the customer's name, up to 200 characters
phone               yes       any dialable form; stored as E.164 (``default_region`` if no +)
zip / billing_zip   yes       12345 or 12345-6789
balance             yes       non-negative amount, at most 2 decimals; "$1,250.00" is fine
minimum_payment     no        as balance, not above it; empty = 0.00
due_date            no        YYYY-MM-DD; empty = none
currency            no        three letters; empty = USD
status              no        active, closed or suspended; empty = active
email               no        an address; empty = none
service_address     no        where the service is ("12 Oak Street"), up to 200 characters;
                              tells apart several accounts on one phone number; empty = none
                              (``address`` is accepted as the header too)
==================  ========  ===============================================================

Other columns are ignored (and reported). An optional column that is absent from the header
leaves that field of an existing account untouched; one that is present but empty sets the
default above.

Every row is validated before anything is written. Any error means nothing is imported,
unless ``skip_bad`` (then the good rows are, and the bad ones are still reported). Errors that
concern the whole file (a missing column, a file that is not UTF-8, broken CSV quoting) always
stop the import. The good rows are upserted by account number in one transaction; rows that
match the database are not written, so re-importing a file is idempotent.

The parts: ``csv_file`` (the file to CSV records with their lines), ``csv_cells`` (a cell to
its value), ``csv_rows`` (records to typed rows and per-row errors) and ``upsert`` (the rows
to the database); the ``paybot accounts import`` command prints the report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from paybot.accounts.csv_file import Source, opened
from paybot.accounts.csv_rows import Progress, RowError, parse_accounts
from paybot.accounts.upsert import upsert_accounts

__all__ = ["ImportReport", "RowError", "import_accounts"]
log = logging.getLogger(__name__)


@dataclass
class ImportReport:
    """What an import found and did.

    Attributes:
        rows: data rows read (blank lines not counted).
        created: accounts inserted (or that would be, in a dry run).
        updated: existing accounts changed.
        unchanged: rows identical to the database; not written.
        skipped: bad rows, not imported.
        errors: every problem found, in file order.
        applied: the good rows were upserted (or, in a dry run, would have been).
        dry_run: nothing was written.
        ignored_columns: header columns that are not part of the format.
    """

    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    errors: list[RowError] = field(default_factory=list)
    applied: bool = False
    dry_run: bool = False
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the file had no errors at all."""
        return not self.errors

    @property
    def imported(self) -> int:
        """Good rows that were applied: created + updated + unchanged."""
        return self.created + self.updated + self.unchanged

    def summary(self) -> str:
        """One human line: counts, and whether anything was written."""
        if not self.applied and self.errors:
            bad = len({e.line for e in self.errors})
            return f"{self.rows} rows, {bad} with errors: nothing imported"
        text = (
            f"{self.rows} rows: {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.skipped} skipped"
        )
        return text + (" (dry run: nothing written)" if self.dry_run else "")


def import_accounts(
    engine: Engine,
    path_or_file: Source,
    *,
    skip_bad: bool = False,
    dry_run: bool = False,
    default_region: str = "US",
    progress: Progress | None = None,
) -> ImportReport:
    """Validate a CSV file of accounts and upsert it by account number.

    Synchronous (database work): run it in a thread from async code.

    Args:
        engine: the database.
        path_or_file: a path, or an open file (binary, or text already decoded).
        skip_bad: import the good rows even if some are bad (bad ones are still reported).
        dry_run: validate and count against the database, but write nothing.
        default_region: the region for phone numbers written without a country code.
        progress: called as ``progress(phase, rows)`` every 1000 rows.

    Returns:
        The report: counts and every error with its line number.

    Raises:
        OSError: the file cannot be opened or read.
        sqlalchemy.exc.SQLAlchemyError: the database failed; nothing was written.
    """
    with opened(path_or_file) as fh:
        parsed = parse_accounts(fh, default_region, progress)
    report = ImportReport(
        rows=parsed.count,
        skipped=len(parsed.bad_lines),
        errors=parsed.errors,
        dry_run=dry_run,
        ignored_columns=list(parsed.ignored),
    )
    if parsed.fatal or (parsed.errors and not skip_bad):
        log.info("accounts import refused: %d rows, %d errors", parsed.count, len(parsed.errors))
        return report
    counts = upsert_accounts(
        engine, columns=parsed.columns, rows=parsed.rows, dry_run=dry_run, progress=progress
    )
    report.created, report.updated, report.unchanged = (
        counts.created, counts.updated, counts.unchanged,
    )  # fmt: skip
    report.applied = True
    log.info(
        "accounts import%s: %d rows, %d created, %d updated, %d unchanged, %d skipped",
        " (dry run)" if dry_run else "", report.rows, report.created, report.updated,
        report.unchanged, report.skipped,
    )  # fmt: skip
    return report
