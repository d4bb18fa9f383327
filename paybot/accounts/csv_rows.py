"""Reading an accounts CSV file: the header, then each data row into a typed
:class:`AccountRow` or its :class:`RowError`\\ s, with the physical line it starts on.

Nothing here touches the database. A problem with the whole file (not UTF-8, broken quoting,
a missing column) stops the reading; a bad row is reported and reading goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import IO, Any

from paybot.accounts.csv_cells import (
    ALIASES,
    DB_COLUMN,
    DEFAULTS,
    FIELDS,
    PARSERS,
    REQUIRED,
    BadCell,
    CellContext,
)
from paybot.accounts.csv_file import FileError, csv_records

Progress = Callable[[str, int], None]

PROGRESS_EVERY = 1000


@dataclass(frozen=True)
class RowError:
    """One problem in the file: the physical line (header = 1) and what is wrong.

    ``reason`` names the column ("phone: not a phone number") but never repeats the row.
    """

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class AccountRow:
    """One valid data row, typed, by database column. A field the file has no column for
    holds its default and is left alone on an existing account (see
    :attr:`ParsedFile.columns`)."""

    line: int
    account_number: str
    name: str
    phone: str
    billing_zip: str
    balance: Decimal
    currency: str = DEFAULTS["currency"]
    minimum_payment: Decimal = DEFAULTS["minimum_payment"]
    due_date: date | None = DEFAULTS["due_date"]
    status: str = DEFAULTS["status"]
    email: str | None = DEFAULTS["email"]
    service_address: str | None = DEFAULTS["service_address"]

    def values(self, columns: tuple[str, ...]) -> tuple[Any, ...]:
        """The values of ``columns``, in that order."""
        return tuple(getattr(self, column) for column in columns)


@dataclass
class ParsedFile:
    """What reading a file found.

    Attributes:
        columns: the database columns the file sets, in format order (the key first).
        rows: the valid rows, in file order.
        errors: every problem, in file order.
        bad_lines: the lines of the rows with problems.
        count: data rows read (blank lines not counted).
        fatal: a whole-file problem stopped the reading.
        ignored: header columns that are not part of the format.
    """

    columns: tuple[str, ...] = ()
    rows: list[AccountRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    bad_lines: set[int] = field(default_factory=set)
    count: int = 0
    fatal: bool = False
    ignored: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Header:
    fields: tuple[str, ...]  # the known columns present, in FIELDS order
    positions: tuple[int, ...]  # where each of ``fields`` is in a row
    width: int
    ignored: tuple[str, ...]


def _canonical(name: str) -> str:
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    return ALIASES.get(key, key)


def _parse_header(cells: list[str]) -> _Header:
    names = [_canonical(c) for c in cells]
    for name in set(names) & set(FIELDS):
        if names.count(name) > 1:
            raise FileError(1, f"header: column {name} appears more than once")
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        hint = " (the file must be comma-separated)" if len(cells) == 1 else ""
        raise FileError(1, "header: missing required column(s): " + ", ".join(missing) + hint)
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
                values[name] = DEFAULTS[name]
            continue
        ctx = CellContext(values.get("currency") or "USD", region)
        try:
            values[name] = PARSERS[name](text, ctx)
        except BadCell as exc:
            problems.append(f"{name}: {exc}")
    minimum, balance = values.get("minimum_payment"), values.get("balance")
    if minimum is not None and balance is not None and minimum > balance:
        problems.append("minimum_payment: greater than balance")
    return values, problems


def _check(
    parsed: ParsedFile, header: _Header, line: int, cells: list[str], seen: dict[str, int],
    region: str,
) -> None:  # fmt: skip
    values, problems = _parse_row(cells, header, region)
    number = values.get("account_number")
    if number is not None:
        first = seen.setdefault(number, line)
        if first != line:
            problems.append(f"account_number: duplicate of line {first}")
    if problems:
        parsed.bad_lines.add(line)
        parsed.errors.extend(RowError(line, p) for p in problems)
    else:
        parsed.rows.append(AccountRow(line, **{DB_COLUMN[n]: v for n, v in values.items()}))


def parse_accounts(fh: IO[Any], region: str, progress: Progress | None = None) -> ParsedFile:
    """Read and check every row of the open file ``fh`` (binary, or text already decoded);
    ``region`` is for phone numbers without a country code. ``progress("validated", rows)``
    is called every 1000 rows."""
    parsed = ParsedFile()
    seen: dict[str, int] = {}
    try:
        records = csv_records(fh)
        first = next(records, None)
        if first is None:
            raise FileError(1, "file is empty: expected a header row")
        header = _parse_header(first[1])
        parsed.columns = tuple(DB_COLUMN[name] for name in header.fields)
        parsed.ignored = header.ignored
        for line, cells in records:
            parsed.count += 1
            _check(parsed, header, line, cells, seen, region)
            if progress and parsed.count % PROGRESS_EVERY == 0:
                progress("validated", parsed.count)
    except FileError as exc:
        parsed.errors.append(RowError(exc.line, exc.reason))
        parsed.fatal = True
    return parsed
