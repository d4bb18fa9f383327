"""``paybot payments run-due``: charge the scheduled payments whose day has come (for cron).

The bridge does the same every ``PAYBOT_SCHEDULER_INTERVAL_S``; running both (or several
bridges) is safe: each payment is claimed by one conditional update before it is charged, and
charged under its own idempotency key, so it is never charged twice.
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from datetime import date

from sqlalchemy.exc import SQLAlchemyError

from paybot.settings import Settings
from paybot_cli.console import say
from paybot_cli.database import BadDate, database_failed, day_option

log = logging.getLogger(__name__)


def run_due_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run the due scheduled payments once; print how many ended in which state.

    Returns:
        0 when the run completed (declines included), 1 when the database failed, 2 for a
        bad ``--date``.
    """
    from paybot.db.engine import make_engine
    from paybot.payments.factory import make_ledger
    from paybot.payments.scheduling import Scheduler

    try:
        today = day_option(args.date) or date.today()
    except BadDate:
        return 2
    engine = make_engine(settings.db_url)
    try:
        outcomes = Scheduler(make_ledger(settings, engine)).run_due(today)
    except SQLAlchemyError as exc:
        return database_failed("scheduled payments", exc)
    finally:
        engine.dispose()
    counts = Counter(o.status for o in outcomes)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    say(f"scheduled payments due by {today.isoformat()}: {len(outcomes)} run"
        + (f" ({summary})" if summary else ""))
    return 0
