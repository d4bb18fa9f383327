"""Write a day's reconciliation file and, with ``PAYBOT_SFTP_URL`` set, drop it on the biller's
SFTP server: what ``paybot reconcile`` and the bridge's daily job both do."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import date

from sqlalchemy.engine import Engine

from paybot.reconciliation.columns import parse_columns
from paybot.reconciliation.daily import DayFile, write_day
from paybot.reconciliation.sftp import sftp_config, upload
from paybot.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    file: DayFile
    remote: str | None  # where it landed on the SFTP server; None: not uploaded


async def publish_day(
    settings: Settings, engine: Engine, day: date, *, upload_file: bool = True
) -> Published:
    """Write ``day``'s file (in a worker thread) and upload it when an SFTP server is set.

    Raises:
        paybot.reconciliation.sftp.SftpError: the upload failed (the file is written).
    """
    columns = parse_columns(settings.reconcile_columns)
    written = await asyncio.to_thread(write_day, engine, settings.reconcile_path, day, columns)
    log.info("reconciliation %s: %d payments, %d bytes", day, written.rows, written.size)
    config = sftp_config(settings) if upload_file else None
    remote = await upload(config, written.path) if config is not None else None
    if remote is not None:
        log.info("reconciliation %s: uploaded", day)
    return Published(written, remote)
