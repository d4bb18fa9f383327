"""``paybot accounts import FILE.csv``: load customer accounts from a CSV file, and print what
the import found (errors by line, then one summary line); progress goes to stderr."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from paybot.settings import Settings

if TYPE_CHECKING:
    from paybot.accounts.csv_import import ImportReport

log = logging.getLogger(__name__)
MAX_PRINTED_ERRORS = 200


def import_command(settings: Settings, args: argparse.Namespace) -> int:
    """Import the file and report; the exit code."""
    return cli_import(settings, args.file, args.skip_bad, args.dry_run)


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
    from sqlalchemy.exc import SQLAlchemyError

    from paybot.accounts.csv_import import import_accounts
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
