"""The conversation fuzzer at scale: simulated customers over chat and SMS (tests/fuzz/).

    .venv/bin/python bench/bench_fuzz.py [--turns 20000] [--sms-share 0.2] [--seed S]
        [--chat-workers 3] [--sms-workers 2]

Starts the real stack (``paybot up`` on free ports, private data dir, a fake Twilio), runs
seeded customers until the turn budget is spent (the demo balances are seeded again every
100 conversations so customers keep something to pay), and prints turns, conversations,
payments, states reached (distinct active loop, requested slot and stage), distinct
questions, failures with their seeds and transcripts, circuit breakers and wall time.
Exits 1 when any conversation failed.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fake_twilio import FakeTwilio  # noqa: E402
from tests.fuzz.runner import CIRCUIT_BREAKER, Twilio, fuzz, save_failure  # noqa: E402
from tests.stack import OUTPUT_LOG, Stack  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20000)
    parser.add_argument("--sms-share", type=float, default=0.2)
    parser.add_argument("--seed", default=secrets.token_hex(4))
    parser.add_argument("--chat-workers", type=int, default=3)
    parser.add_argument("--sms-workers", type=int, default=2)
    args = parser.parse_args()
    sms = int(args.turns * args.sms_share)
    with FakeTwilio() as twilio, tempfile.TemporaryDirectory() as data:
        stack = Stack.configure(
            Path(data), **twilio.env(), PAYBOT_SMS_FROM="+15555550000",
            PAYBOT_LOCKOUT_FAILURES="100000", PAYBOT_IDV_RATE_LIMIT="100000",
        )
        stack.start()
        try:
            stack.reset_data()
            done, lock = [0], threading.Lock()

            def top_up() -> None:
                with lock:
                    done[0] += 1
                    if done[0] % 100 == 0:
                        _top_up(stack)

            print(f"fuzz seed {args.seed!r}: {args.turns - sms} chat turns, {sms} SMS turns")
            report = fuzz(
                stack,
                Twilio(twilio.auth_token, twilio.account_sid),
                args.seed,
                budgets={"chat": args.turns - sms, "sms": sms},
                workers={"chat": args.chat_workers, "sms": args.sms_workers},
                between=top_up,
            )
        finally:
            stack.stop()
        failures_dir = Path(tempfile.gettempdir()) / f"paybot-fuzz-{args.seed}"
        for outcome in report.failed:
            print("\n" + outcome.transcript())
            print(f"saved as {save_failure(outcome, failures_dir)}")
        for error in report.errors:
            print("error:", error)
        if report.failed or report.errors:
            log_file = _save_log(stack, report, failures_dir)
            print(f"the services' log around the failures: {log_file}")
        print(report.summary())
        print(f"circuit breakers: {len(stack.watched(CIRCUIT_BREAKER))}")
        print("states reached:")
        for state in sorted(report.states):
            print("   ", state)
        return 1 if report.failed or report.errors else 0


def _save_log(stack: Stack, report, directory: Path) -> Path:
    """The services' log lines that name a failed conversation or report an error (already
    redacted by the services), for finding why a reply was empty."""
    senders = {outcome.sender for outcome in report.failed}
    marks = ("Traceback", "ERROR", "Exception", "exception", "Error:", "WARNING")
    lines = [
        line for line in (stack.data_dir / OUTPUT_LOG).read_text(errors="replace").splitlines()
        if any(s in line for s in senders) or any(m in line for m in marks)
    ]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "services.log"
    path.write_text("\n".join(lines) + "\n")
    return path


def _top_up(stack: Stack) -> None:
    """Put the demo balances back (the seeded amounts) without touching other tables."""
    from decimal import Decimal

    from sqlmodel import Session, select

    from paybot.db.models import Account

    seeded = {
        "100200300": "321.72", "200300400": "89.10", "300400500": "1250.00",
        "500600700": "64.30", "500600711": "148.95",
    }
    assert stack.engine is not None
    with Session(stack.engine) as session:
        for account in session.exec(select(Account)):
            if account.account_number in seeded:
                account.balance = Decimal(seeded[account.account_number])
                session.add(account)
        session.commit()


if __name__ == "__main__":
    sys.exit(main())
