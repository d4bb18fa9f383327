"""``paybot accounts import FILE.csv``: load customer accounts from a CSV file."""

from __future__ import annotations

import argparse

from paybot.settings import Settings


def import_command(settings: Settings, args: argparse.Namespace) -> int:
    """Hand the file to the CSV importer; it reports and returns the exit code."""
    from paybot.accounts.csv_import import cli_import

    return cli_import(settings, args.file, args.skip_bad, args.dry_run)
