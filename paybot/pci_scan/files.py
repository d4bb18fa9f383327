"""Files under the scanned directories: logs, recordings and stray SQLite databases.

Each file is recognised by its name or its header: ``*.log`` (rotated ``*.log.1`` and gzipped
``*.log.gz``/``*.log.1.gz`` too) is read line by line, ``*.wav`` by :mod:`~paybot.pci_scan.audio`,
and any file that starts like a SQLite database (``paybot.db``, a copy, a backup) table by table
by :mod:`~paybot.pci_scan.tables`. Other files are not read: the report counts them.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable
from pathlib import Path

from .audio import AUDIO_SUFFIXES, scan_wav
from .finders import Finders
from .report import Report
from .tables import is_sqlite, scan_sqlite_file

_LOG_NAME = re.compile(r".*\.log(?:\.\d+)?(?:\.gz)?", re.IGNORECASE)


def is_log(path: Path) -> bool:
    return bool(_LOG_NAME.fullmatch(path.name))


def scan_log(path: Path, finders: Finders) -> Report:
    """A log file, line by line; a finding names the first line it is on."""
    report = Report()
    found: dict[str, int] = {}
    try:
        opener = gzip.open if path.suffix.lower() == ".gz" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, 1):
                for what in finders.find(line):
                    found.setdefault(what, number)
    except (OSError, EOFError) as exc:
        report.error(f"{path}: cannot read the log ({exc})")
        return report
    for what, number in found.items():
        report.add(f"{path} line {number}", [what])
    report.read("log files")
    return report


def files_under(roots: Iterable[Path], skip: Iterable[Path] = ()) -> list[Path]:
    """Every file under ``roots`` (a root may be a file), not under any of ``skip``."""
    skipped = [s.resolve() for s in skip]
    out: set[Path] = set()
    for root in roots:
        candidates = [root] if root.is_file() else root.rglob("*")
        for path in candidates:
            resolved = path.resolve()
            if path.is_file() and not any(resolved.is_relative_to(s) for s in skipped):
                out.add(path)
    return sorted(out)


def scan_files(roots: Iterable[Path], finders: Finders, skip: Iterable[Path] = ()) -> Report:
    """Every log, recording and SQLite file under ``roots`` (see the module)."""
    report = Report()
    roots = list(roots)
    for root in roots:
        if not root.exists():
            report.note(f"{root}: does not exist (nothing to scan there)")
    for path in files_under([r for r in roots if r.exists()], skip):
        if is_log(path):
            report.merge(scan_log(path, finders))
        elif path.suffix.lower() in AUDIO_SUFFIXES:
            report.merge(scan_wav(path, finders))
        elif is_sqlite(path):
            report.merge(scan_sqlite_file(path, finders))
        else:
            report.read("other files (not read)")
    return report
