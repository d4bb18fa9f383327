"""``paybot reconcile`` (write a day's reconciliation file, and upload it with
``PAYBOT_SFTP_URL``) and ``paybot sftp pull`` (fetch a file, e.g. the biller's accounts file
before ``paybot accounts import``): docs/reconciliation.md."""

from __future__ import annotations

import argparse
import asyncio
import logging
from datetime import date
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from paybot.settings import Settings
from paybot_cli.console import fail, say

log = logging.getLogger(__name__)


def reconcile_command(settings: Settings, args: argparse.Namespace) -> int:
    """Write (or rewrite) the file for ``--date`` (default yesterday, UTC).

    Returns:
        0 when written (and uploaded, if configured), 1 when the database or the upload
        failed, 2 for a bad ``--date``.
    """
    from paybot.db.engine import make_engine
    from paybot.reconciliation.daily import yesterday
    from paybot.reconciliation.publish import publish_day
    from paybot.reconciliation.sftp import SftpError

    try:
        day = date.fromisoformat(args.date) if args.date else yesterday()
    except ValueError:
        fail(f"--date: not a date in YYYY-MM-DD form: {args.date!r}")
        return 2
    engine = make_engine(settings.db_url)
    try:
        published = asyncio.run(publish_day(settings, engine, day, upload_file=not args.no_upload))
    except SQLAlchemyError as exc:
        fail(f"database error ({type(exc).__name__}); run 'paybot db upgrade' if the schema is old")
        return 1
    except SftpError as exc:
        fail(f"the file for {day.isoformat()} is written, but the upload failed: {exc}")
        return 1
    finally:
        engine.dispose()
    say(f"{published.file.path}: {published.file.rows} payments")
    if published.remote:
        say(f"uploaded to {published.remote}")
    return 0


def sftp_pull_command(settings: Settings, args: argparse.Namespace) -> int:
    """Fetch ``REMOTE`` (relative to the URL's directory) from the SFTP server into ``LOCAL``."""
    from paybot.reconciliation.sftp import SftpError, download, sftp_config

    config = sftp_config(settings)
    if config is None:
        fail("PAYBOT_SFTP_URL is not set")
        return 2
    local: Path = args.local or Path(Path(args.remote).name)
    try:
        asyncio.run(download(config, args.remote, local))
    except SftpError as exc:
        fail(f"sftp pull failed: {exc}")
        return 1
    say(f"fetched {local}")
    return 0
