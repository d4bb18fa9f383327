"""``paybot reminders run``: make the payment reminders due today (for cron).

The bridge does the same every ``PAYBOT_REMINDER_INTERVAL_S``; running both (or several
bridges) is safe: each reminder is claimed once. Texts are queued in the outbox, which the
running bridge sends (``PAYBOT_SMS_SEND_INTERVAL_S``); calls are placed from here.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from sqlalchemy.exc import SQLAlchemyError

from paybot.settings import Settings
from paybot_cli.console import fail, say
from paybot_cli.database import BadDate, database_failed, day_option

log = logging.getLogger(__name__)


def run_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run the reminders once; print how many ended in which state.

    Returns:
        0 when the run completed, 1 when the database failed or calls cannot be placed,
        2 for a bad ``--date``.
    """
    from paybot.db.engine import make_engine
    from voice_bridge.jobs.reminders import reminder_run
    from voice_bridge.twilio.rest import TwilioNotConfigured

    try:
        today = day_option(args.date)
    except BadDate:
        return 2
    engine = make_engine(settings.db_url)

    async def run():
        async with reminder_run(settings, engine) as job:
            return today or job.today(), await job.run(today)

    try:
        day, result = asyncio.run(run())
    except TwilioNotConfigured as exc:
        fail(f"reminders not run: {exc}")
        return 1
    except SQLAlchemyError as exc:
        return database_failed("reminders", exc)
    finally:
        engine.dispose()
    say(f"reminders for {day.isoformat()}: {result.summary()}")
    return 0
