"""What a scan found, what it could not read, what it read: the report and its exit code.

A finding names where (a table, a file, a tracker event) and what (a card number's last four
digits, or "security code"), never the data itself, so the report can be printed, mailed or
kept without leaking what it reports; every line is masked again before it is printed (a
recording may be named after the number it holds).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from paybot.redaction import redact

from .finders import Finders

CLEAN, FOUND, SCAN_ERROR = 0, 1, 2
_PLAIN = Finders()


def safe(line: str) -> str:
    """``line`` with any card number in it masked (a file named after one, an error quoting
    one): redacted down to the last four, or every digit hidden if the finders still see one."""
    masked = redact(line)
    return re.sub(r"\d", "#", masked) if _PLAIN.find(masked) else masked


@dataclass(frozen=True)
class Finding:
    """Card data found: where, and what (``card number ending 1234`` or ``security code``)."""

    source: str
    what: str

    def __str__(self) -> str:
        return f"{self.source}: {self.what}"


@dataclass
class Report:
    """Findings, scan errors (a source that could not be read), notes (what was not covered
    and why) and how many of each kind of thing were read."""

    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scanned: Counter[str] = field(default_factory=Counter)

    def add(self, source: str, whats: Iterable[str]) -> list[Finding]:
        """Record what was found in ``source``; returns the new findings."""
        new = [Finding(source, what) for what in whats]
        self.findings += new
        return new

    def read(self, kind: str, count: int = 1) -> None:
        """Count ``count`` things of ``kind`` ("tables", "log files", "trackers"...) read."""
        self.scanned[kind] += count

    def error(self, message: str) -> None:
        self.errors.append(message)

    def note(self, message: str) -> None:
        self.notes.append(message)

    def merge(self, other: Report) -> None:
        self.findings += other.findings
        self.errors += other.errors
        self.notes += other.notes
        self.scanned.update(other.scanned)

    @property
    def exit_code(self) -> int:
        """0 clean, 1 card data found, 2 a source could not be scanned (the scan is incomplete,
        whatever it found elsewhere: the findings are still listed)."""
        if self.errors:
            return SCAN_ERROR
        return FOUND if self.findings else CLEAN

    def render(self) -> str:
        """The report as text: findings, errors, notes, what was read, the verdict."""
        lines: list[str] = []
        lines += [f"FOUND  {finding}" for finding in self.findings]
        lines += [f"ERROR  {message}" for message in self.errors]
        lines += [f"note   {message}" for message in self.notes]
        read = ", ".join(f"{kind} {count}" for kind, count in sorted(self.scanned.items()))
        lines.append(f"scanned: {read or 'nothing'}")
        verdict = {
            CLEAN: "no card data found",
            FOUND: f"CARD DATA FOUND ({len(self.findings)})",
            SCAN_ERROR: f"scan incomplete: {len(self.errors)} source(s) could not be read"
            + (f"; CARD DATA FOUND ({len(self.findings)})" if self.findings else ""),
        }[self.exit_code]
        lines.append(verdict)
        return "\n".join(safe(line) for line in lines)
