"""Charge N payments through the ledger and the embedded sandbox; print throughput and latency.

    .venv/bin/python bench/bench_ledger.py [-n 500] [--threads 1 8] [--pg URL]

Runs on a fresh SQLite file and, when a PostgreSQL URL is given (or
PAYBOT_TEST_DATABASE_URL is set), on a private schema there. Each payment is the full path:
payment row committed, gateway charge with idempotency key, settlement with confirmation
number, ledger lines, balance update and audit events; all payments are of one account (the
worst case: they all take its row lock). Prints, per database and thread count, payments/s,
p50 and p95 beside the figures before group commit (docs/benchmarks.md), the statements and
commits per payment, the mean group-commit batch (jobs per shared commit) and this process's
CPU time per payment. Figures that do not depend on the machine's load, for comparing code on a
busy machine: the round trips of the group-commit batcher per payment (its statements, BEGINs
and commits: the serial part), the connection check-outs per payment (on PostgreSQL each is a
pre-ping) and, on PostgreSQL, the CPU time of the server backends serving this process per
payment (read from /proc of their pids; 0 where /proc is not readable).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy import event, text

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


# Before group commit (docs/benchmarks.md): payments/s, p50 ms, p95 ms by (database, threads).
BEFORE = {
    ("sqlite", 1): (26.3, 36.5, 51.2),
    ("sqlite", 4): (26.7, 102.0, 358.7),
    ("postgresql", 1): (30.0, 31.5, 44.8),
    ("postgresql", 4): (32.2, 120.5, 172.2),
}


BACKENDS: set[int] = set()  # PostgreSQL backend pids of the benchmark's connections


def _note_backend(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SELECT pg_backend_pid()")
    BACKENDS.add(cursor.fetchone()[0])
    cursor.close()
    dbapi_connection.rollback()


def _backend_cpu_s() -> float:
    """CPU seconds (user + system) the benchmark's PostgreSQL backends have used."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for pid in BACKENDS:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / tick


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

    counts = {"statements": 0, "commits": 0, "checkouts": 0, "batcher": 0}
    batcher = ledger.writes.name

    def count(kind: str):
        def counted(*_a, **_k) -> None:
            counts[kind] += 1
            if kind != "checkouts" and threading.current_thread().name.endswith(batcher):
                counts["batcher"] += 1  # a statement, BEGIN or commit of the batcher

        return counted

    listeners = [
        (ledger.engine, "before_cursor_execute", count("statements")),
        (ledger.engine, "commit", count("commits")),
        (ledger.engine, "begin", count("begins")),
        (ledger.engine.pool, "checkout", count("checkouts")),
    ]
    counts["begins"] = 0
    sqlite = ledger.engine.dialect.name == "sqlite"
    for target, name, listener in listeners:
        if not (sqlite and name == "begin"):  # SQLite's BEGIN IMMEDIATE is a statement
            event.listen(target, name, listener)
    batches, jobs = ledger.writes.batches, ledger.writes.batched_jobs
    began, cpu, server = time.perf_counter(), time.process_time(), _backend_cpu_s()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        latencies = sorted(pool.map(one, range(n)))
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    server = _backend_cpu_s() - server
    for target, name, listener in listeners:
        if event.contains(target, name, listener):
            event.remove(target, name, listener)
    q = statistics.quantiles(latencies, n=100)
    batches, jobs = ledger.writes.batches - batches, ledger.writes.batched_jobs - jobs
    return {
        "n": n,
        "rate": n / elapsed,
        "p50": q[49] * 1000,
        "p95": q[94] * 1000,
        "statements": counts["statements"] / n,
        "commits": counts["commits"] / n,
        "batch": jobs / batches if batches else 1.0,
        "cpu": cpu / n * 1000,
        "batcher": counts["batcher"] / n,
        "checkouts": counts["checkouts"] / n,
        "server": server / n * 1000,
    }


def _header() -> None:
    print(
        f"{'database':<10} {'threads':>7} {'payments/s':>10} {'p50 ms':>7} {'p95 ms':>7}   "
        f"{'before: /s':>10} {'p50':>6} {'p95':>6}   {'stmts/pay':>9} {'commits/pay':>11} "
        f"{'batch':>5} {'cpu ms/pay':>10}   {'batcher rt/pay':>14} {'checkouts/pay':>13} "
        f"{'pg cpu ms/pay':>13}"
    )


def _report(name: str, threads: int, r: dict) -> None:
    before = BEFORE.get((name, threads))
    was = f"{'-':>10} {'-':>6} {'-':>6}"
    if before:
        was = f"{before[0]:10.1f} {before[1]:6.1f} {before[2]:6.1f}"
    print(
        f"{name:<10} {threads:>7} {r['rate']:10.1f} {r['p50']:7.1f} {r['p95']:7.1f}   {was}   "
        f"{r['statements']:9.1f} {r['commits']:11.2f} {r['batch']:5.1f} {r['cpu']:10.2f}   "
        f"{r['batcher']:14.2f} {r['checkouts']:13.2f} {r['server']:13.2f}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500, help="payments per run (default 500)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--pg", default=os.environ.get("PAYBOT_TEST_DATABASE_URL"))
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    args = parser.parse_args()

    print(f"{args.n} payments per run; load average {os.getloadavg()[0]:.1f} at start")
    _header()
    if not args.no_sqlite:
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
        event.listen(engine, "connect", _note_backend)
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
