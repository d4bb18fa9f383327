"""The after-suite scan: no table, log or tracker the tests made may hold card data.

What counts as card data here:

* a Luhn-valid run of 13-19 digits, keyed ("4000000000000002") or with single spaces or
  dashes, or in groups of four split by dots, commas, slashes or double spaces (decimal
  fractions such as Rasa's ``1764893575.1234567`` timestamps are not runs);
* a card number a test keyed or typed (:func:`keyed_card`), in any form, and in a tracker's
  user texts also spoken ("four two four two ...", :mod:`paybot.parsing.card_numbers`);
* a security code a test keyed (:func:`keyed_code`: give distinctive codes) next to a word
  that says what it is ("cvv", "security code", "cvc" ...), so that ordinary digits elsewhere
  do not count.

Where it looks (each source is scanned while it still exists, findings are kept in
:data:`FINDINGS`, and ``tests/conftest.py`` fails the run at its end when there are any):

* every SQLite file and ``*.log`` file under pytest's base temp dir at the end of the run
  (test databases, every stack's data dir and its ``paybot-up.log``, the stacks' output);
  a dir holding a ``.cardscan-planted`` file is skipped (the scan's own tests plant there);
* every PostgreSQL test schema before it is emptied or dropped (:func:`check_engine`);
* every stack's database before it is reset, and the Rasa tracker of every conversation it
  held before it stops (``tests/stack.py``).

Findings name the source and a card number's last four, never the digits.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from paybot.gateway.cards import luhn_valid
from paybot.parsing.card_numbers import find_card_numbers

PLANTED_MARKER = ".cardscan-planted"
SQLITE_MAGIC = b"SQLite format 3\x00"
LOG_SUFFIXES = (".log",)

_RUN = re.compile(r"(?<![\w.])\d(?:[ -]?\d){12,18}(?!\w|\.\d)")
_SEP = r"(?:[.,/]| {2,})"
_FOURS = re.compile(rf"(?<![\w.,/])\d{{4}}(?:{_SEP}\d{{4}}){{2,3}}(?:{_SEP}\d{{1,4}})?(?!\w)")
_CONTEXT = r"(?:cvv2?|cvc2?|cv2|csc|cid|security[ _-]?code|card[ _-]?code|verification[ _-]?code)"

KEYED_CARDS: set[str] = set()
KEYED_CODES: set[str] = set()
FINDINGS: list[Finding] = []


@dataclass(frozen=True)
class Finding:
    """Card data found: where, and what (a card number's last four, or "security code")."""

    source: str
    what: str

    def __str__(self) -> str:
        return f"{self.source}: {self.what}"


def keyed_card(number: str) -> str:
    """Register a card number a test keys or types into a running stack; returns it."""
    KEYED_CARDS.add(re.sub(r"\D", "", number))
    return number


def keyed_code(code: str) -> str:
    """Register a security code a test keys or types (make it distinctive); returns it."""
    KEYED_CODES.add(code)
    return code


def record(findings: Iterable[Finding]) -> list[Finding]:
    """Keep ``findings`` for the end of the run; returns them as a list."""
    found = list(findings)
    FINDINGS.extend(found)
    return found


def _card(digits: str) -> str:
    return f"card number ending {digits[-4:]}"


def _any_form(digits: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\d)" + r"[\s\-.,/]{0,3}".join(digits) + r"(?!\d)")


def _code_patterns(code: str) -> tuple[re.Pattern[str], ...]:
    c = re.escape(code)
    return (
        re.compile(_CONTEXT + r"[^\d\n]{0,24}(?<!\d)" + c + r"(?!\d)", re.IGNORECASE),
        re.compile(r"(?<![\d.,:])" + c + r"(?!\d)[^\d\n]{0,12}" + _CONTEXT, re.IGNORECASE),
    )


def scan_text(content: str, source: str, *, spoken: bool = False) -> list[Finding]:
    """Card data in ``content`` (see the module docstring); ``spoken`` also reads number
    words (for what users said: a tracker's user texts)."""
    found: dict[str, Finding] = {}
    for pattern in (_RUN, _FOURS):
        for match in pattern.finditer(content):
            digits = re.sub(r"\D", "", match.group(0))
            if 13 <= len(digits) <= 19 and luhn_valid(digits):
                found.setdefault(_card(digits), Finding(source, _card(digits)))
    for digits in KEYED_CARDS:
        if _any_form(digits).search(content):
            found.setdefault(_card(digits), Finding(source, _card(digits)))
    for code in KEYED_CODES:
        if any(p.search(content) for p in _code_patterns(code)):
            found.setdefault("code", Finding(source, "security code"))
    if spoken and find_card_numbers(content):
        found.setdefault("spoken", Finding(source, "card number (spoken or typed)"))
    return list(found.values())


def _rows_text(rows: Iterable[Iterable[Any]]) -> str:
    return "\n".join(" | ".join(str(v) for v in row) for row in rows)


def scan_engine(engine: Engine, label: str) -> list[Finding]:
    """Card data in any table of ``engine``'s database (its default schema)."""
    found: list[Finding] = []
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            rows = conn.execute(text(f'SELECT * FROM "{table}"')).all()  # noqa: S608 - our names
            found += scan_text(_rows_text(rows), f"{label} table {table}")
    return found


def check_engine(engine: Engine, label: str) -> list[Finding]:
    """:func:`scan_engine`, and keep what it found for the end of the run."""
    return record(scan_engine(engine, label))


def scan_sqlite_file(path: Path) -> list[Finding]:
    """Card data in any table of the SQLite file at ``path`` (read only)."""
    found: list[Finding] = []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in names:
            rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()  # noqa: S608
            found += scan_text(_rows_text(rows), f"{path} table {table}")
    except sqlite3.DatabaseError as exc:
        found.append(Finding(str(path), f"unreadable SQLite file ({exc})"))
    finally:
        conn.close()
    return found


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def scan_tree(root: Path) -> list[Finding]:
    """Card data in every SQLite file and log file under ``root`` (planted dirs skipped)."""
    found: list[Finding] = []
    planted = {p.parent for p in root.rglob(PLANTED_MARKER)}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or any(d == path.parent or d in path.parents for d in planted):
            continue
        if path.suffix in LOG_SUFFIXES:
            found += scan_text(path.read_text(errors="replace"), str(path))
        elif _is_sqlite(path):
            found += scan_sqlite_file(path)
    return found


def scan_tracker(tracker: dict[str, Any], label: str) -> list[Finding]:
    """Card data in a Rasa tracker (its JSON, and what the user said, spoken forms too)."""
    found = scan_text(json.dumps(tracker), f"tracker {label}")
    if any(f.what.startswith("card number") for f in found):
        return found
    said = "\n".join(
        str(e.get("text") or "") for e in tracker.get("events", []) if e.get("event") == "user"
    )
    seen = {f.what for f in found}
    found += [f for f in scan_text(said, f"tracker {label}", spoken=True) if f.what not in seen]
    return found


__all__ = [
    "FINDINGS",
    "Finding",
    "check_engine",
    "keyed_card",
    "keyed_code",
    "record",
    "scan_engine",
    "scan_sqlite_file",
    "scan_text",
    "scan_tracker",
    "scan_tree",
]
