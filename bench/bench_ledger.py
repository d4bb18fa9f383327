"""Charge N payments through the ledger and the embedded sandbox; print throughput and latency.

    .venv/bin/python bench/bench_ledger.py [-n 500] [--threads 4] [--pg URL]

Runs on a fresh SQLite file and, when a PostgreSQL URL is given (or
PAYBOT_TEST_DATABASE_URL is set), on a private schema there. Each payment is the full path:
payment row committed, gateway charge with idempotency key, settlement with confirmation
number, ledger lines, balance update and audit events.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy import text

from paybot.db.engine import make_engine, migrate, session_scope
from paybot.db.models import Account, PaymentMethod
from paybot.gateway.card_data import CardData
from paybot.gateway.sandbox import SandboxGateway
from paybot.payments.fees import FeePolicy
from paybot.payments.ledger import Ledger
from paybot.payments.rules import AmountRules


def _prepare(engine) -> tuple[Ledger, int, int]:
    migrate(engine)
    gateway = SandboxGateway(engine)
    token = gateway.tokenize_card(CardData("4242424242424242", 12, date.today().year + 3, "123"))
    with session_scope(engine) as session:
        account = Account(
            account_number=f"9{uuid.uuid4().int % 10**8:08d}",
            name="Bench Mark",
            phone="+15555550199",
            billing_zip="94107",
            balance=Decimal("1000000.00"),
            minimum_payment=Decimal("0"),
        )
        session.add(account)
        session.flush()
        method = PaymentMethod(
            account_id=account.id,
            gateway="sandbox",
            token=token.token,
            kind="card",
            brand=token.brand,
            last4=token.last4,
            exp_month=token.exp_month,
            exp_year=token.exp_year,
        )
        session.add(method)
        session.flush()
        ids = (account.id, method.id)
    ledger = Ledger(engine, gateway, rules=AmountRules(), fees=FeePolicy(flat=Decimal("2.00")))
    return ledger, ids[0], ids[1]


def _run(ledger: Ledger, account_id: int, method_id: int, n: int, threads: int) -> dict:
    def one(i: int) -> float:
        start = time.perf_counter()
        outcome = ledger.pay_with_stored_method(
            account_id=account_id,
            payment_method_id=method_id,
            amount=Decimal("10.00") + Decimal(i % 100) / 100,
            channel="api",
        )
        assert outcome.succeeded, outcome
        return time.perf_counter() - start

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        latencies = sorted(pool.map(one, range(n)))
    elapsed = time.perf_counter() - began
    q = statistics.quantiles(latencies, n=100)
    return {"n": n, "rate": n / elapsed, "p50": q[49] * 1000, "p95": q[94] * 1000}


def _report(name: str, threads: int, r: dict) -> None:
    print(
        f"{name:<10} threads={threads:<2} payments={r['n']:<5} "
        f"{r['rate']:8.1f} payments/s   p50 {r['p50']:6.1f} ms   p95 {r['p95']:6.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500, help="payments per run (default 500)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--pg", default=os.environ.get("PAYBOT_TEST_DATABASE_URL"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        ledger, account_id, method_id = _prepare(engine)
        for threads in args.threads:
            _report("sqlite", threads, _run(ledger, account_id, method_id, args.n, threads))
        engine.dispose()

    if not args.pg:
        print("postgresql skipped: pass --pg URL or set PAYBOT_TEST_DATABASE_URL", file=sys.stderr)
        return 0
    schema = f"paybot_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(args.pg)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        engine = make_engine(args.pg, search_path=schema)
        ledger, account_id, method_id = _prepare(engine)
        for threads in args.threads:
            _report("postgresql", threads, _run(ledger, account_id, method_id, args.n, threads))
        engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    return 0


if __name__ == "__main__":
    sys.exit(main())
