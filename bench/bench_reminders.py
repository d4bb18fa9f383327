"""Reminders queued and sent per second: N due accounts, one reminder run, then the outbox
sender until every text is at the local Twilio fake (tests/fake_twilio.py); print the rates.

    .venv/bin/python bench/bench_reminders.py [-n 2000] [--senders 2] [--rate 200] [--pg URL]

Runs on a fresh SQLite file and, when a PostgreSQL URL is given (or PAYBOT_TEST_DATABASE_URL
is set), on a private schema there. "Queued" is the run: the due-account query, then per
reminder the opt-out check, the claim (the unique row) and the outbox row in one transaction,
unthrottled. "Sent" is the outbox sender (the bridge's, one pass after another, ``--senders``
of them racing over the table as bridges would) sending each through Twilio's REST client to
the fake. ``--rate`` also runs the throttled path once (PAYBOT_REMINDER_RATE_PER_S) and
prints the rate it kept.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paybot.db.engine import make_engine, migrate, session_scope  # noqa: E402
from paybot.db.models import Account  # noqa: E402
from paybot.reminders.run import ReminderRun  # noqa: E402
from paybot.settings import load_settings  # noqa: E402
from tests.fake_twilio import FakeTwilio  # noqa: E402
from voice_bridge.jobs.receipt_sender import send_due  # noqa: E402
from voice_bridge.twilio.rest import TwilioRest  # noqa: E402

TODAY = date(2026, 12, 7)


def add_accounts(engine, count: int, prefix: int) -> None:
    with session_scope(engine) as session:
        for n in range(count):
            session.add(Account(
                account_number=f"{prefix}{n:06d}", name="Bench Mark", billing_zip="94107",
                phone=f"+1555{prefix % 10}{n:06d}", balance=Decimal("321.72"),
                minimum_payment=Decimal("25.00"), due_date=TODAY + timedelta(days=3),
            ))  # fmt: skip


def measure(engine, fake: FakeTwilio, count: int, senders: int, rate: float) -> None:
    settings = load_settings(
        env="test", sms_quiet_hours="", reminder_offsets_days="3", reminder_rate_per_s=1000,
        sms_from="+15555550999", business_name="Acme Water", **fake.settings_overrides(),
    )  # fmt: skip
    add_accounts(engine, count, 1)
    started = time.perf_counter()
    result = asyncio.run(ReminderRun(engine, settings).run(TODAY))
    queued_s = time.perf_counter() - started
    assert result.queued == count, result

    sent = [0] * senders
    start = threading.Barrier(senders + 1)

    def sender(index: int) -> None:
        rest = TwilioRest.from_settings(settings)
        start.wait()
        while True:
            passed = send_due(engine, rest, max_attempts=3, backoff_s=0).sent
            sent[index] += passed
            if not passed:
                return

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(senders)]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    sent_s = time.perf_counter() - started
    delivered = len(fake.messages())
    print(f"  queued: {count} reminders in {queued_s:.2f}s = {count / queued_s:.0f}/s")
    print(f"  sent:   {sum(sent)} texts by {senders} sender(s) in {sent_s:.2f}s = "
          f"{sum(sent) / sent_s:.0f}/s; at the fake: {delivered} (duplicates: "
          f"{delivered - len({m.form['To'] for m in fake.messages()})})")
    if rate:
        paced = int(rate * 2)
        add_accounts(engine, paced, 2)
        throttled = settings.copy(update={"reminder_rate_per_s": rate})
        started = time.perf_counter()
        result = asyncio.run(ReminderRun(engine, throttled).run(TODAY))
        elapsed = time.perf_counter() - started
        print(f"  throttled to {rate:.0f}/s: {result.queued} queued in {elapsed:.2f}s = "
              f"{result.queued / elapsed:.0f}/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="due accounts (default 2000)")
    parser.add_argument("--senders", type=int, default=2, help="outbox senders (default 2)")
    parser.add_argument("--rate", type=float, default=200.0,
                        help="also run throttled at this rate (0: skip; default 200)")
    parser.add_argument("--pg", default=os.environ.get("PAYBOT_TEST_DATABASE_URL"),
                        help="also run on this PostgreSQL database (a private schema)")
    args = parser.parse_args()
    with FakeTwilio() as fake, tempfile.TemporaryDirectory() as tmp:
        print(f"SQLite, {args.n} due accounts:")
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        migrate(engine)
        measure(engine, fake, args.n, args.senders, args.rate)
        engine.dispose()
        if args.pg:
            fake.reset()
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            admin = make_engine(args.pg)
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            try:
                print(f"PostgreSQL, {args.n} due accounts:")
                engine = make_engine(args.pg, search_path=schema)
                migrate(engine)
                measure(engine, fake, args.n, args.senders, args.rate)
                engine.dispose()
            finally:
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
