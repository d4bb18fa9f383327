"""A report as a CSV file (RFC 4180: comma separated, CRLF line ends, quoted where needed),
safe to open in a spreadsheet: a text cell that starts like a formula (``=``, ``+``, ``-``,
``@``, or a tab or carriage return before one) gets a leading apostrophe, so it is shown as
text and never run. Numbers, amounts and days are written as they are."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

from paybot.console.reports import Cell, ReportRange, Table

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Cell) -> str:
    """``value`` as CSV text, defused if it is text that a spreadsheet would take as a formula."""
    if value is None:
        return ""
    if isinstance(value, (int, Decimal, date)):
        return value.isoformat() if isinstance(value, date) else str(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def to_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([safe_cell(heading) for heading in table.columns])
    writer.writerows([safe_cell(cell) for cell in row] for row in table.rows)
    return out.getvalue()


def file_name(table: Table, rng: ReportRange) -> str:
    """``paybot-<report>-<from>-to-<to>.csv``: letters, digits and dashes only."""
    return f"paybot-{table.name}-{rng.start.isoformat()}-to-{rng.end.isoformat()}.csv"
