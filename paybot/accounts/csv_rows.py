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
"""

from __future__ import annotations

import csv
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Union

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from paybot.db.models import Account, AccountStatus
from paybot.db.types import utcnow
from paybot.money import InvalidAmount, parse_amount
from paybot.phone import InvalidPhoneNumber, to_e164

if TYPE_CHECKING:
    from paybot.settings import Settings

log = logging.getLogger(__name__)

Source = Union[str, os.PathLike, IO[str], IO[bytes]]
Progress = Callable[[str, int], None]

PROGRESS_EVERY = 1000
MAX_PRINTED_ERRORS = 200
_CHUNK = 500
_BOM = "\ufeff"

# Field order matters: account_number first (the key), currency before the amounts.
FIELDS = (
    "account_number", "name", "phone", "zip", "currency", "balance",
    "minimum_payment", "due_date", "status", "email", "service_address",
)  # fmt: skip
REQUIRED = ("account_number", "name", "phone", "zip", "balance")
_ALIASES = {"billing_zip": "zip", "address": "service_address"}
_DB_COLUMN = {name: name for name in FIELDS} | {"zip": "billing_zip"}
_CREATE_DEFAULTS: dict[str, Any] = {
    "minimum_payment": Decimal("0.00"),
    "due_date": None,
    "currency": "USD",
    "status": AccountStatus.ACTIVE.value,
    "email": None,
    "service_address": None,
}

_ACCOUNT_RE = re.compile(r"[A-Z0-9](?:[A-Z0-9-]{2,30})[A-Z0-9]")
_ZIP_RE = re.compile(r"[0-9]{5}(?:-[0-9]{4})?")
_AMOUNT_RE = re.compile(r"[$€£]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CURRENCY_RE = re.compile(r"[A-Za-z]{3}")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_MAX_AMOUNT = Decimal("1000000000000")  # NUMERIC(14, 2)
_STATUSES = {s.value for s in AccountStatus}


@dataclass(frozen=True)
class RowError:
    """One problem in the file: the physical line (header = 1) and what is wrong.

    ``reason`` names the column ("phone: not a phone number") but never repeats the row.
    """

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


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


class _Bad(ValueError):
    """One cell's problem. The message describes the problem, never the value."""


class _FileError(Exception):
    """A problem with the whole file; reading stops."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.error = RowError(line, reason)


# --- cell parsers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    currency: str
    region: str


def _account_number(text: str, _ctx: _Context) -> str:
    value = text.upper()
    if not text.isascii() or not _ACCOUNT_RE.fullmatch(value):
        raise _Bad("must be 4-32 letters, digits or hyphens")
    return value


def _name(text: str, _ctx: _Context) -> str:
    if len(text) > 200:
        raise _Bad("longer than 200 characters")
    return text


def _phone(text: str, ctx: _Context) -> str:
    try:
        return to_e164(text, ctx.region)
    except InvalidPhoneNumber:
        raise _Bad("not a phone number") from None


def _zip(text: str, _ctx: _Context) -> str:
    if not _ZIP_RE.fullmatch(text):
        raise _Bad("must be 5 digits or ZIP+4 (12345-6789)")
    return text


def _amount(text: str, ctx: _Context) -> Decimal:
    if text.startswith("-"):
        raise _Bad("must not be negative")
    if not _AMOUNT_RE.fullmatch(text):
        raise _Bad("not an amount (write 1250.00 or $1,250.00)")
    try:
        amount = parse_amount(text, ctx.currency)
    except InvalidAmount:
        raise _Bad(f"more decimal places than {ctx.currency} has") from None
    if amount >= _MAX_AMOUNT:
        raise _Bad("too large")
    return amount


def _due_date(text: str, _ctx: _Context) -> date:
    try:
        if not _DATE_RE.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise _Bad("not a date in YYYY-MM-DD form") from None


def _currency(text: str, _ctx: _Context) -> str:
    if not _CURRENCY_RE.fullmatch(text):
        raise _Bad("must be a 3-letter code such as USD")
    return text.upper()


def _status(text: str, _ctx: _Context) -> str:
    value = text.lower()
    if value not in _STATUSES:
        raise _Bad("must be one of " + ", ".join(sorted(_STATUSES)))
    return value


def _email(text: str, _ctx: _Context) -> str:
    if len(text) > 254 or not _EMAIL_RE.fullmatch(text):
        raise _Bad("not an email address")
    return text


def _service_address(text: str, _ctx: _Context) -> str:
    if len(text) > 200:
        raise _Bad("longer than 200 characters")
    return " ".join(text.split())


_PARSERS: dict[str, Callable[[str, _Context], Any]] = {
    "account_number": _account_number,
    "name": _name,
    "phone": _phone,
    "zip": _zip,
    "currency": _currency,
    "balance": _amount,
    "minimum_payment": _amount,
    "due_date": _due_date,
    "status": _status,
    "email": _email,
    "service_address": _service_address,
}


# --- reading and validating -----------------------------------------------------------------


@dataclass(frozen=True)
class _Header:
    fields: tuple[str, ...]  # the known columns present, in FIELDS order
    positions: tuple[int, ...]  # where each of ``fields`` is in a row
    width: int
    ignored: tuple[str, ...]


@dataclass
class _Parsed:
    header: _Header | None = None
    good: list[tuple[int, tuple[Any, ...]]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    bad_lines: set[int] = field(default_factory=set)
    rows: int = 0
    fatal: bool = False


class _Lines:
    """Physical lines of a text or binary file as str, counting them; strict UTF-8."""

    def __init__(self, fh: IO[Any]) -> None:
        self._fh = fh
        self.count = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        try:
            raw = next(self._fh)
        except UnicodeDecodeError:  # a text stream opened with the wrong encoding
            raise _FileError(self.count + 1, "file is not UTF-8 text") from None
        self.count += 1
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _FileError(self.count, "file is not UTF-8 text (save it as UTF-8)") from None
        if self.count == 1:
            raw = raw.removeprefix(_BOM)
        return raw


def _canonical(name: str) -> str:
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    return _ALIASES.get(key, key)


def _parse_header(cells: list[str]) -> _Header:
    names = [_canonical(c) for c in cells]
    for name in set(names) & set(FIELDS):
        if names.count(name) > 1:
            raise _FileError(1, f"header: column {name} appears more than once")
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        hint = " (the file must be comma-separated)" if len(cells) == 1 else ""
        raise _FileError(1, "header: missing required column(s): " + ", ".join(missing) + hint)
    present = tuple(name for name in FIELDS if name in names)
    ignored = tuple(c.strip() for c in cells if c.strip() and _canonical(c) not in FIELDS)
    return _Header(present, tuple(names.index(n) for n in present), len(cells), ignored)


def _parse_row(cells: list[str], header: _Header, region: str) -> tuple[dict[str, Any], list[str]]:
    """Parse one data row: the values by field name, and the problems (``column: reason``)."""
    if len(cells) != header.width:
        return {}, [f"expected {header.width} fields, found {len(cells)}"]
    pairs = zip(header.fields, header.positions, strict=True)
    raw = {name: cells[pos].strip() for name, pos in pairs}
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name in header.fields:
        text = raw[name]
        if not text:
            if name in REQUIRED:
                problems.append(f"{name}: required")
            else:
                values[name] = _CREATE_DEFAULTS[name]
            continue
        ctx = _Context(values.get("currency") or "USD", region)
        try:
            values[name] = _PARSERS[name](text, ctx)
        except _Bad as exc:
            problems.append(f"{name}: {exc}")
    minimum, balance = values.get("minimum_payment"), values.get("balance")
    if minimum is not None and balance is not None and minimum > balance:
        problems.append("minimum_payment: greater than balance")
    return values, problems


def _records(lines: _Lines) -> Iterator[tuple[int, list[str]]]:
    """CSV records with the physical line each starts on; blank records skipped."""
    reader = csv.reader(lines, strict=True)
    while True:
        start = lines.count + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _FileError(start, f"malformed CSV ({exc})") from None
        if any(c.strip() for c in cells):
            yield start, cells


def _check(parsed: _Parsed, line: int, cells: list[str], seen: dict[str, int], region: str) -> None:
    assert parsed.header is not None
    values, problems = _parse_row(cells, parsed.header, region)
    number = values.get("account_number")
    if number is not None:
        first = seen.setdefault(number, line)
        if first != line:
            problems.append(f"account_number: duplicate of line {first}")
    if problems:
        parsed.bad_lines.add(line)
        parsed.errors.extend(RowError(line, p) for p in problems)
    else:
        parsed.good.append((line, tuple(values[name] for name in parsed.header.fields)))


def _read(fh: IO[Any], region: str, progress: Progress | None) -> _Parsed:
    parsed = _Parsed()
    seen: dict[str, int] = {}
    try:
        records = _records(_Lines(fh))
        first = next(records, None)
        if first is None:
            raise _FileError(1, "file is empty: expected a header row")
        parsed.header = _parse_header(first[1])
        for line, cells in records:
            parsed.rows += 1
            _check(parsed, line, cells, seen, region)
            if progress and parsed.rows % PROGRESS_EVERY == 0:
                progress("validated", parsed.rows)
    except _FileError as exc:
        parsed.errors.append(exc.error)
        parsed.fatal = True
    return parsed


@contextmanager
def _opened(source: Source) -> Iterator[IO[Any]]:
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fh:
            yield fh
    else:
        yield source


# --- writing --------------------------------------------------------------------------------


@dataclass
class _Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _existing(conn: Connection, columns: list[str], numbers: list[str]) -> dict[str, Any]:
    table = Account.__table__
    cols = [table.c.id] + [table.c[c] for c in columns]
    query = select(*cols).where(table.c.account_number.in_(numbers))
    return {row[1]: row for row in conn.execute(query)}


def _update_statement(columns: list[str]) -> Any:
    table = Account.__table__
    targets = [c for c in columns if c != "account_number"] + ["updated_at"]
    values = {c: bindparam(f"v_{c}", type_=table.c[c].type) for c in targets}
    return table.update().where(table.c.id == bindparam("v_id")).values(values)


def _apply_chunk(
    conn: Connection, columns: list[str], chunk: list[tuple[int, tuple]], dry_run: bool
) -> _Counts:
    counts = _Counts()
    existing = _existing(conn, columns, [values[0] for _, values in chunk])
    now = utcnow()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for _line, values in chunk:
        current = existing.get(values[0])
        if current is None:
            row = _CREATE_DEFAULTS | dict(zip(columns, values, strict=True))
            inserts.append(row | {"created_at": now, "updated_at": now})
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


def _upsert(
    engine: Engine, header: _Header, good: list[tuple[int, tuple]], dry_run: bool,
    progress: Progress | None,
) -> _Counts:  # fmt: skip
    """Upsert the good rows in one transaction (nothing is written in a dry run)."""
    columns = [_DB_COLUMN[name] for name in header.fields]
    total = _Counts()
    with engine.begin() as conn:
        for done, chunk in enumerate(_chunks(good, _CHUNK), start=1):
            counts = _apply_chunk(conn, columns, chunk, dry_run)
            total.created += counts.created
            total.updated += counts.updated
            total.unchanged += counts.unchanged
            if progress and (done * _CHUNK) % PROGRESS_EVERY == 0 and done * _CHUNK < len(good):
                progress("applied", done * _CHUNK)
    return total


# --- public API -----------------------------------------------------------------------------


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
    with _opened(path_or_file) as fh:
        parsed = _read(fh, default_region, progress)
    report = ImportReport(
        rows=parsed.rows,
        skipped=len(parsed.bad_lines),
        errors=parsed.errors,
        dry_run=dry_run,
        ignored_columns=list(parsed.header.ignored) if parsed.header else [],
    )
    if parsed.fatal or (parsed.errors and not skip_bad):
        log.info("accounts import refused: %d rows, %d errors", parsed.rows, len(parsed.errors))
        return report
    assert parsed.header is not None
    counts = _upsert(engine, parsed.header, parsed.good, dry_run, progress)
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


def _print_progress(phase: str, rows: int) -> None:
    print(f"... {rows} rows {phase}", file=sys.stderr, flush=True)


def _print_report(report: ImportReport, name: str, skip_bad: bool) -> None:
    for error in report.errors[:MAX_PRINTED_ERRORS]:
        print(error)
    if len(report.errors) > MAX_PRINTED_ERRORS:
        print(f"... and {len(report.errors) - MAX_PRINTED_ERRORS} more errors")
    if report.ignored_columns:
        print("ignored columns: " + ", ".join(report.ignored_columns))
    print(f"{name}: {report.summary()}")
    if report.errors and not report.applied and not skip_bad:
        print("fix the file and import it again, or use --skip-bad to import the good rows")


def cli_import(settings: Settings, path: str | os.PathLike, skip_bad: bool, dry_run: bool) -> int:
    """``paybot accounts import FILE.csv [--skip-bad] [--dry-run]``.

    Args:
        settings: the :class:`paybot.settings.Settings` (its ``db_url`` is used).
        path: the CSV file.
        skip_bad: import the good rows even if some are bad.
        dry_run: validate and count, write nothing.

    Returns:
        0 when the import went through (or would, in a dry run), 1 when errors were found
        and nothing was imported (or the database failed), 2 when the file is unreadable.
    """
    from paybot.db.engine import make_engine, migrate

    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        print(f"cannot read {path}: {exc.strerror or type(exc).__name__}", file=sys.stderr)
        return 2
    engine = make_engine(settings.db_url)
    try:
        migrate(engine)
        report = import_accounts(
            engine, fh, skip_bad=skip_bad, dry_run=dry_run, progress=_print_progress
        )
    except OSError as exc:
        print(f"cannot read {path}: {exc.strerror or type(exc).__name__}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        log.error("accounts import failed in the database: %s", type(exc).__name__)
        print(f"database error ({type(exc).__name__}): nothing imported", file=sys.stderr)
        return 1
    finally:
        fh.close()
        engine.dispose()
    _print_report(report, Path(path).name, skip_bad)
    return 0 if not report.errors or (report.applied and report.imported) else 1
