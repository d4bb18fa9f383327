"""The after-suite scan: no table, log or tracker the tests made may hold card data.

The finders and sources are production code (:mod:`paybot.pci_scan`, what ``paybot pci-scan``
runs); this module is the test glue around them:

* the card numbers (:func:`keyed_card`) and security codes (:func:`keyed_code`: give
  distinctive codes) tests key or type into a running stack are looked for by value, the codes
  next to a word that says what they are (``--cvc`` of ``paybot pci-scan``);
* each source is scanned while it still exists, findings are kept in :data:`FINDINGS`, and
  ``tests/conftest.py`` fails the run at its end when there are any.

Where it looks:

* every SQLite, log and WAV file under pytest's base temp dir at the end of the run (test
  databases, every stack's data dir and its ``paybot-up.log``, recorded calls), as
  ``paybot pci-scan --path`` does; a dir holding a ``.cardscan-planted`` file is skipped (the
  scan's own tests plant there);
* every PostgreSQL test schema before it is emptied or dropped (:func:`check_engine`);
* every stack's database before it is reset, and the Rasa tracker of every conversation it
  held before it stops (``tests/stack.py``).

Findings name the source and a card number's last four, never the digits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from paybot.pci_scan import Finders, Finding, Report
from paybot.pci_scan.files import scan_files
from paybot.pci_scan.tables import scan_engine as _scan_engine
from paybot.pci_scan.tables import scan_sqlite_file as _scan_sqlite_file
from paybot.pci_scan.trackers import scan_tracker as _scan_tracker

PLANTED_MARKER = ".cardscan-planted"

KEYED_CARDS: set[str] = set()
KEYED_CODES: set[str] = set()
FINDINGS: list[Finding] = []


def keyed_card(number: str) -> str:
    """Register a card number a test keys or types into a running stack; returns it."""
    KEYED_CARDS.add(re.sub(r"\D", "", number))
    return number


def keyed_code(code: str) -> str:
    """Register a security code a test keys or types (make it distinctive); returns it."""
    KEYED_CODES.add(code)
    return code


def finders() -> Finders:
    """The production finders, looking for the keyed cards and codes too."""
    return Finders(codes=frozenset(KEYED_CODES), numbers=frozenset(KEYED_CARDS))


def record(findings: Iterable[Finding]) -> list[Finding]:
    """Keep ``findings`` for the end of the run; returns them as a list."""
    found = list(findings)
    FINDINGS.extend(found)
    return found


def _findings(report: Report) -> list[Finding]:
    """A report's findings; a source it could not read is one too (not scanned is not clean)."""
    return report.findings + [Finding(message, "not scanned") for message in report.errors]


def scan_text(content: str, source: str, *, spoken: bool = False) -> list[Finding]:
    """Card data in ``content``; ``spoken``: it is one message (what a user said or typed)."""
    return [Finding(source, what) for what in finders().find(content, message=spoken)]


def scan_engine(engine: Engine, label: str) -> list[Finding]:
    """Card data in any table of ``engine``'s database (its default schema)."""
    return _findings(_scan_engine(engine, label, finders()))


def check_engine(engine: Engine, label: str) -> list[Finding]:
    """:func:`scan_engine`, and keep what it found for the end of the run."""
    return record(scan_engine(engine, label))


def scan_sqlite_file(path: Path) -> list[Finding]:
    """Card data in any table of the SQLite file at ``path`` (read only)."""
    return _findings(_scan_sqlite_file(path, finders()))


def scan_tree(root: Path) -> list[Finding]:
    """Card data in every SQLite, log and WAV file under ``root`` (planted dirs skipped)."""
    planted = [p.parent for p in root.rglob(PLANTED_MARKER)]
    return _findings(scan_files([root], finders(), skip=planted))


def scan_tracker(tracker: dict[str, Any], label: str) -> list[Finding]:
    """Card data in a Rasa tracker (its JSON, and what the user said, spoken forms too)."""
    return _findings(_scan_tracker(tracker, label, finders()))


__all__ = [
    "FINDINGS",
    "Finding",
    "check_engine",
    "finders",
    "keyed_card",
    "keyed_code",
    "record",
    "scan_engine",
    "scan_sqlite_file",
    "scan_text",
    "scan_tracker",
    "scan_tree",
]
