"""The daily reconciliation file: it lists exactly the payments the table says were completed
that UTC day (midnight edges included), a re-run writes the same bytes, a late payment shows
on re-run, a failed write leaves the old file and no temporary file, and ``paybot reconcile``
writes the configured columns."""

from __future__ import annotations

import csv
import io
import random
import re
import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update

from paybot.db.engine import session_scope
from paybot.db.models import Payment, PaymentStatus
from paybot.reconciliation.columns import DEFAULT_COLUMNS, parse_columns
from paybot.reconciliation.daily import file_name, next_run, parse_time_of_day, write_day
from paybot.reconciliation.files import write_atomic
from paybot_cli.main import main
from tests.paid_payments import expected_rows, seed_payments, utc

DAY = date(2026, 11, 10)


def read_rows(path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8"), newline="")))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_file_lists_exactly_the_days_completed_payments(db_engine, tmp_path, seed):
    rng = random.Random(seed)
    seeded = seed_payments(db_engine, rng, DAY, 80)
    for day in (DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)):
        written = write_day(db_engine, tmp_path, day, DEFAULT_COLUMNS)
        assert written.path == tmp_path / f"payments-{day.isoformat()}.csv"
        assert read_rows(written.path) == expected_rows(seeded, day)
        assert written.rows == len(expected_rows(seeded, day))
    text = (tmp_path / file_name(DAY)).read_bytes()
    assert text.startswith(b"confirmation_number,account_number,amount,")
    assert b"\r\n" in text
    cells = [cell for row in csv.reader(io.StringIO(text.decode())) for cell in row]
    assert not [c for c in cells if re.fullmatch(r"\d{12,}", c)]  # never a card-length number
    # Every listed payment lands in exactly one day's file.
    listed = sum(len(read_rows(p)) for p in tmp_path.glob("payments-*.csv"))
    window = [s for s in seeded if s.completed_at and s.status in ("succeeded", "refunded")]
    assert listed == len(window)


def test_the_midnight_edges(db_engine, tmp_path):
    seeded = seed_payments(db_engine, random.Random(7), DAY, 12)
    rows = read_rows(write_day(db_engine, tmp_path, DAY, DEFAULT_COLUMNS).path)
    times = [row["paid_at"] for row in rows]
    assert "2026-11-10T00:00:00.000000Z" in times
    assert "2026-11-10T23:59:59.999000Z" in times
    assert "2026-11-10T23:59:59.999999Z" in times
    assert "2026-11-09T23:59:59.999999Z" not in times
    assert "2026-11-11T00:00:00.000000Z" not in times
    assert rows == expected_rows(seeded, DAY)


def test_a_rerun_writes_the_same_bytes_and_picks_up_late_payments(db_engine, tmp_path):
    seeded = seed_payments(db_engine, random.Random(11), DAY, 40)
    out = tmp_path / "out"
    first = write_day(db_engine, out, DAY, DEFAULT_COLUMNS).path.read_bytes()
    assert write_day(db_engine, out, DAY, DEFAULT_COLUMNS).path.read_bytes() == first
    # A payment settled late, dated that day, and a refund of a listed one.
    listed = expected_rows(seeded, DAY)[0]["confirmation_number"]
    with session_scope(db_engine) as session:
        any_payment = session.get(Payment, seeded[0].payment_id)
        assert any_payment is not None
        session.add(Payment(
            account_id=any_payment.account_id, amount=Decimal("10.05"), fee=Decimal("0.00"),
            total=Decimal("10.05"), status="succeeded", channel="sms", gateway="sandbox",
            confirmation_number="LATE0001", idempotency_key=uuid.uuid4().hex,
            completed_at=utc(DAY, 12, 0, 0),
        ))
        session.execute(update(Payment).where(Payment.confirmation_number == listed)
                        .values(status=PaymentStatus.REFUNDED.value))
    rows = read_rows(write_day(db_engine, out, DAY, DEFAULT_COLUMNS).path)
    assert [r for r in rows if r["confirmation_number"] == "LATE0001"][0]["amount"] == "10.05"
    assert [r for r in rows if r["confirmation_number"] == listed][0]["status"] == "refunded"
    assert len(rows) == len(expected_rows(seeded, DAY)) + 1
    assert sorted(p.name for p in out.iterdir()) == [file_name(DAY)]  # no temp files


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "payments-2026-11-10.csv"
    write_atomic(target, [b"header\r\n", b"old row\r\n"])

    def broken():
        yield b"header\r\n"
        yield b"half a r"
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomic(target, broken())
    assert target.read_bytes() == b"header\r\nold row\r\n"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_the_column_setting():
    assert parse_columns("") == DEFAULT_COLUMNS
    assert parse_columns(" Amount, paid_at ,account_number") == (
        "amount", "paid_at", "account_number")
    for bad in ("amount,card_number", "amount,amount", "pan"):
        with pytest.raises(ValueError):
            parse_columns(bad)


def test_the_daily_time_setting():
    assert parse_time_of_day("") is None and parse_time_of_day("0") is None
    at = parse_time_of_day("01:30")
    assert next_run(utc(DAY, 1, 29), at) == utc(DAY, 1, 30)
    assert next_run(utc(DAY, 1, 30), at) == utc(DAY, 1, 30)
    assert next_run(utc(DAY, 1, 31), at) == utc(DAY + timedelta(days=1), 1, 30)
    for bad in ("25:00", "1.30", "noon"):
        with pytest.raises(ValueError):
            parse_time_of_day(bad)


def test_paybot_reconcile_writes_the_configured_columns(settings, sqlite_engine, monkeypatch,
                                                        tmp_path, capsys):
    seeded = seed_payments(sqlite_engine, random.Random(5), DAY, 30)
    out_dir = tmp_path / "recon"
    monkeypatch.setenv("DATABASE_URL", str(sqlite_engine.url))
    monkeypatch.setenv("PAYBOT_RECONCILE_DIR", str(out_dir))
    monkeypatch.setenv("PAYBOT_RECONCILE_COLUMNS", "paid_at,amount,method_last4,status")
    assert main(["reconcile", "--date", DAY.isoformat()]) == 0
    rows = read_rows(out_dir / file_name(DAY))
    wanted = [{k: r[k] for k in ("paid_at", "amount", "method_last4", "status")}
              for r in expected_rows(seeded, DAY)]
    assert rows == wanted and rows
    header = (out_dir / file_name(DAY)).read_bytes().split(b"\r\n")[0]
    assert header == b"paid_at,amount,method_last4,status"
    assert f"{len(rows)} payments" in capsys.readouterr().out
    assert main(["reconcile", "--date", "10/11/2026"]) == 2
    monkeypatch.setenv("PAYBOT_RECONCILE_COLUMNS", "amount,card_number")
    assert main(["reconcile"]) == 2
