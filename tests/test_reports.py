"""The console's reports: every report's figures over seeded random calls, endings, payments,
sessions and agent-assisted payments, counted again here in plain Python; the date range's
rules; the CSV files (parsed back, formula cells defused); the charts; and who may open them,
over real HTTP. tests/test_reports_browser.py opens them in Chromium."""

from __future__ import annotations

import csv
import io
import random
import re
import uuid
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
import requests
from sqlmodel import Session, select

from paybot.console.charts import chart_svg
from paybot.console.report_csv import safe_cell, to_csv
from paybot.console.reports import (
    MAX_DAYS,
    BadRange,
    ReportRange,
    Table,
    all_reports,
    live_steps,
    report,
)
from paybot.db.agent_activity import WITH_AGENT_STEP
from paybot.db.models import Account, Payment
from paybot.db.types import utcnow
from paybot.settings import load_settings
from tests.console_server import PASSWORD, ConsoleServer
from tests.report_data import AGENT_RESULTS, Seeded, seed_reports

FIRST = date(2026, 11, 1)
DAYS = 10
PAID = ("succeeded", "refunded")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
AGENT_COLUMNS = (
    "Agent",
    "Currency",
    "Requests",
    "Succeeded",
    "Declined",
    "Failed",
    "Cancelled",
    "Amount taken",
)


def _within(rng: ReportRange, moment: datetime) -> bool:
    return rng.since <= moment < rng.until


def _transferred(call) -> bool:
    return (call.ended_reason or "").startswith("transferred: ")


def _random_ranges(rnd: random.Random) -> list[ReportRange]:
    start = FIRST + timedelta(days=rnd.randrange(DAYS))
    end = start + timedelta(days=rnd.randrange(DAYS))
    one = FIRST + timedelta(days=rnd.randrange(DAYS))
    return [
        ReportRange(FIRST, FIRST + timedelta(days=DAYS - 1)),
        ReportRange(start, end),
        ReportRange(one, one),
        ReportRange(FIRST - timedelta(days=30), FIRST - timedelta(days=1)),
    ]


def expected(seeded: Seeded, rng: ReportRange) -> dict[str, object]:
    """Every report's figures, counted from what was written (not from the database)."""
    calls = [c for c in seeded.calls if _within(rng, c.started_at)]
    contained = [c for c in calls if c.paid and not _transferred(c) and not c.by_agent]
    ended = [c for c in seeded.calls if c.ended_at is not None and _within(rng, c.ended_at)]
    dropped = [
        c
        for c in ended
        if not c.paid and not _transferred(c) and not c.by_agent and c.step != WITH_AGENT_STEP
    ]
    seconds = [c.handle_s for c in ended if c.handle_s is not None]
    payments = [p for p in seeded.payments if _within(rng, p.created_at)]
    taken = [p for p in payments if p.status in PAID]
    rate = (Decimal(100 * len(contained)) / len(calls)).quantize(Decimal("0.1")) if calls else None
    currencies = sorted({p.currency for p in taken})
    by_day: dict[date, list] = defaultdict(
        lambda: [0, 0, 0, 0] + [Decimal("0.00")] * len(currencies)
    )
    for c in calls:
        row = by_day[c.started_at.date()]
        row[0] += 1
        row[1] += c in contained
        row[2] += _transferred(c)
    for p in taken:
        by_day[p.created_at.date()][3] += 1
        by_day[p.created_at.date()][4 + currencies.index(p.currency)] += p.amount
    sums: dict[str, dict] = {
        "payments": defaultdict(lambda: [0, Decimal(0)]),
        "declines": defaultdict(lambda: [0, Decimal(0)]),
        "sessions": defaultdict(lambda: [0, Decimal(0)]),
    }
    for p in payments:
        for name, key, counted in (
            ("payments", (p.channel, p.status, p.currency), True),
            ("declines", (p.decline_code or "unknown", p.currency), p.status == "declined"),
        ):
            if counted:
                sums[name][key][0] += 1
                sums[name][key][1] += p.amount
    agents: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, 0, Decimal("0.00")])
    for a in seeded.activities:
        if _within(rng, a.requested_at):
            row = agents[(a.agent, a.currency)]
            row[0] += 1
            row[1 + AGENT_RESULTS.index(a.result)] += 1
            row[5] += a.amount if a.result == "succeeded" else 0
    for s in seeded.sessions:
        if _within(rng, s.created_at):
            sums["sessions"][(s.status, s.failure_reason or "", "USD")][0] += 1
            sums["sessions"][(s.status, s.failure_reason or "", "USD")][1] += s.amount
    return {
        "summary": [
            len(calls),
            sum(c.answered for c in calls),
            len(contained),
            rate,
            sum(_transferred(c) for c in calls),
            len(dropped),
            round(sum(seconds) / len(seconds)) if seconds else None,
            len(taken),
            *(sum(p.amount for p in taken if p.currency == c) for c in currencies),
        ],
        "daily_columns": ["Day", "Calls", "Contained", "Transferred", "Payments taken"]
        + [f"Amount taken ({c})" for c in currencies],
        "daily": {d: tuple(by_day[d]) for d in rng.days},
        "payments": {k: tuple(v) for k, v in sums["payments"].items()},
        "declines": {k: tuple(v) for k, v in sums["declines"].items()},
        "sessions": {k: tuple(v) for k, v in sums["sessions"].items()},
        "agents": {k: tuple(v) for k, v in sorted(agents.items())},
        "transfers": Counter(
            c.ended_reason.removeprefix("transferred: ") for c in calls if _transferred(c)
        ),
        "dropoff": {
            step: (n, sum(c.ended_reason == "caller hung up" for c in dropped if c.step == step))
            for step, n in Counter(c.step for c in dropped).items()
        },
    }


def _keyed(table: Table, keys: int) -> dict:
    return {row[:keys] if keys > 1 else row[0]: tuple(row[keys:]) for row in table.rows}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_report_matches_an_independent_count(ledger, db_engine, seed):
    rnd = random.Random(seed)
    seeded = seed_reports(db_engine, rnd, FIRST, DAYS)
    for rng in _random_ranges(rnd):
        want = expected(seeded, rng)
        tables = {t.name: t for t in all_reports(db_engine, rng)}
        assert list(tables) == [
            "summary",
            "daily",
            "payments",
            "dropoff",
            "declines",
            "transfers",
            "sessions",
            "agents",
        ]
        assert tables["summary"].column("Value") == want["summary"], rng
        daily = tables["daily"]
        assert list(daily.columns) == want["daily_columns"]
        assert [row[0] for row in daily.rows] == rng.days
        assert {row[0]: tuple(row[1:]) for row in daily.rows} == want["daily"], rng
        assert _keyed(tables["payments"], 3) == want["payments"], rng
        assert _keyed(tables["declines"], 2) == want["declines"], rng
        assert _keyed(tables["sessions"], 3) == want["sessions"], rng
        assert tables["agents"].columns == AGENT_COLUMNS
        assert _keyed(tables["agents"], 2) == want["agents"], rng
        assert [row[:2] for row in tables["agents"].rows] == list(want["agents"])  # sorted
        assert all(isinstance(row[-1], Decimal) for row in tables["agents"].rows)
        assert dict(tables["transfers"].rows) == dict(want["transfers"]), rng
        assert _keyed(tables["dropoff"], 1) == want["dropoff"], rng
        for name in ("dropoff", "transfers", "declines"):  # the biggest first
            counts = [
                row[-1 if name == "transfers" else (1 if name == "dropoff" else 2)]
                for row in tables[name].rows
            ]
            assert counts == sorted(counts, reverse=True), name
        assert report(db_engine, rng, "payments") == tables["payments"]


def test_a_call_ending_is_stored_once_with_its_step_for_the_reports(ledger, db_engine):
    from voice_bridge.jobs.call_records import (
        CallEnd,
        record_call_ended_reason,
        record_call_started,
    )

    record_call_started(
        db_engine,
        call_sid="CA" + "7" * 32,
        caller="+14155550100",
        called="+14155550199",
        direction="inbound",
    )
    end = CallEnd("caller hung up", "listening: yes_no", 3, 41.6)
    assert record_call_ended_reason(db_engine, call_sid="CA" + "7" * 32, reason=end.reason, end=end)
    assert not record_call_ended_reason(db_engine, call_sid="CA" + "7" * 32, reason="bot hung up")
    today = utcnow().date()
    tables = {t.name: t for t in all_reports(db_engine, ReportRange(today, today))}
    assert tables["dropoff"].rows == [("listening: yes_no", 1, 1)]
    summary = dict(tables["summary"].rows)
    assert summary["Calls"] == 1 and summary["Average handle time (s)"] == 42
    assert summary["Dropped (neither paid nor transferred)"] == 1


def _voice_payment(engine, call_sid: str, amount: str, status: str, currency: str = "USD") -> None:
    with Session(engine) as session:
        account_id = session.exec(select(Account.id)).first()
        session.add(
            Payment(
                account_id=account_id,
                amount=Decimal(amount),
                fee=Decimal("0.00"),
                total=Decimal(amount),
                currency=currency,
                status=status,
                channel="voice",
                conversation_id=f"call:{call_sid}",
                gateway="sandbox",
                idempotency_key=uuid.uuid4().hex,
            )
        )
        session.commit()


def test_an_agent_assisted_payment_counts_for_its_agent_and_not_as_contained(ledger, db_engine):
    """Four calls today: the bot took a payment alone on one; an agent took one on another (paid,
    but not contained) and cancelled one on a third; another agent's caller was declined on the
    fourth, in CAD. Yesterday has nothing."""
    from paybot.console.activity import Activity, record_activity
    from voice_bridge.agent_payments import ENDINGS
    from voice_bridge.jobs.call_records import record_call_ended_reason, record_call_started

    assert set(AGENT_RESULTS) == set(ENDINGS)  # a column for every ending the bridge writes
    bot, helped, cancelled, declined = (f"CA{n}" + "0" * 31 for n in "1234")
    for sid in (bot, helped, cancelled, declined):
        record_call_started(
            db_engine, call_sid=sid, caller="+1415555010", called="+1415555019", direction="inbound"
        )
        record_call_ended_reason(db_engine, call_sid=sid, reason="caller hung up")
    _voice_payment(db_engine, bot, "20.00", "succeeded")
    _voice_payment(db_engine, helped, "49.99", "succeeded")
    _voice_payment(db_engine, declined, "15.00", "declined", "CAD")
    for n, (agent, sid, amount, currency, result) in enumerate(
        (
            ("agent", helped, "49.99", "USD", "succeeded"),
            ("agent", cancelled, "10.00", "USD", "cancelled"),
            ("sam.lee", declined, "15.00", "CAD", "declined"),
        )
    ):
        activity = Activity(
            request_id=f"req-{n}",
            agent=agent,
            call_sid=sid,
            account_number="100200300",
            item="INV-2026-118",
            amount=Decimal(amount),
            currency=currency,
            result=result,
        )
        assert record_activity(db_engine, activity)
    today = utcnow().date()
    tables = {t.name: t for t in all_reports(db_engine, ReportRange(today, today))}
    summary = dict(tables["summary"].rows)
    assert summary["Calls"] == 4 and summary["Contained (paid without an agent)"] == 1
    assert summary["Containment rate (%)"] == Decimal("25.0")
    # The two unpaid calls had an agent on them: the agent's calls, not the bot's drop-offs.
    assert summary["Dropped (neither paid nor transferred)"] == 0
    assert tables["dropoff"].rows == []
    assert tables["daily"].rows[0][:3] == (today, 4, 1)
    agents = tables["agents"]
    assert agents.rows == [
        ("agent", "USD", 2, 1, 0, 0, 1, Decimal("49.99")),
        ("sam.lee", "CAD", 1, 0, 1, 0, 0, Decimal("0.00")),
    ]
    assert list(csv.reader(io.StringIO(to_csv(agents), newline=""))) == [
        list(AGENT_COLUMNS),
        ["agent", "USD", "2", "1", "0", "0", "1", "49.99"],
        ["sam.lee", "CAD", "1", "0", "1", "0", "0", "0.00"],
    ]
    svg = chart_svg(agents)
    assert ">agent<" in svg and ">sam.lee<" in svg and ">succeeded<" in svg
    assert ">failed<" not in svg  # no agent payment failed: no part for it
    yesterday = today - timedelta(days=1)
    empty = {t.name: t for t in all_reports(db_engine, ReportRange(yesterday, yesterday))}
    assert empty["agents"].rows == [] and empty["agents"].columns == AGENT_COLUMNS
    assert dict(empty["summary"].rows)["Contained (paid without an agent)"] == 0
    assert to_csv(empty["agents"]) == ",".join(AGENT_COLUMNS) + "\r\n"
    assert "Nothing in this range" in chart_svg(empty["agents"])


def test_the_range_is_checked_and_defaults_to_today():
    today = date(2026, 12, 5)
    assert ReportRange.parse(None, None, today) == ReportRange(today, today)
    assert ReportRange.parse("2026-12-01", "", today) == ReportRange(date(2026, 12, 1), today)
    assert ReportRange.parse(" ", "2026-11-30", today).start == date(2026, 11, 30)
    for start, end, words in (
        ("2026-13-01", None, "YYYY-MM-DD"),
        ("yesterday", None, "YYYY"),
        ("2026-12-05", "2026-12-01", "ends before"),
        ("2024-01-01", "2026-12-01", f"at most {MAX_DAYS}"),
    ):
        with pytest.raises(BadRange, match=words):
            ReportRange.parse(start, end, today)
    rng = ReportRange(date(2026, 2, 27), date(2026, 3, 1))
    assert rng.days == [date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1)]
    assert rng.until - rng.since == timedelta(days=3)


@pytest.mark.parametrize("seed", range(5))
def test_csv_files_parse_back_to_the_table_with_formulas_defused(seed):
    rnd = random.Random(seed)
    alphabet = "ab ,\"'=+-@\t\r\n;0123456789é"
    texts = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12))) for _ in range(40)]
    rows = [
        (t, rnd.randint(0, 10**6), Decimal(rnd.randint(0, 10**6)) / 100, date(2026, 1, 2), None)
        for t in texts
    ]
    table = Table("transfers", "T", ("Reason", "Count", "Amount", "Day", "None"), rows)
    parsed = list(csv.reader(io.StringIO(to_csv(table), newline="")))
    assert parsed[0] == list(table.columns)
    for line, row in zip(parsed[1:], rows, strict=True):
        text = row[0]
        assert line[0] == ("'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text)
        assert line[1:] == [str(row[1]), str(row[2]), "2026-01-02", ""]
    assert to_csv(table).endswith("\r\n") and safe_cell(-5) == "-5"  # numbers stay numbers


def test_a_chart_is_svg_with_its_labels_and_no_script():
    table = live_steps(["listening: digits", "bot thinking", "listening: digits"])
    assert table.rows == [("listening: digits", 2), ("bot thinking", 1)]
    svg = chart_svg(table)
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "listening: digits" in svg and "<script" not in svg.lower()
    empty = chart_svg(Table("declines", "Declines by reason", ("Reason", "Declines"), []))
    assert "Nothing in this range" in empty
    many = Table(
        "dropoff", "Drop-off", ("Step", "Calls dropped"), [(f"s{n}", n) for n in range(40)]
    )
    drawn = chart_svg(many)
    days = ReportRange(FIRST, FIRST + timedelta(days=39)).days  # over a month: lines, not bars
    month = Table(
        "daily",
        "Day by day",
        ("Day", "Calls", "Contained", "Transferred"),
        [(d, n, n // 2, n // 3) for n, d in enumerate(days)],
    )
    assert "Contained" in chart_svg(month) and "<path" in chart_svg(month)
    assert ">other<" in drawn and ">s39<" in drawn and ">s0<" not in drawn


# --- Over HTTP --------------------------------------------------------------------------------
@pytest.fixture
def console(settings, tmp_path, ledger, db_engine):
    console_settings = load_settings(
        env="test", data_dir=tmp_path / "var", console_secret="a test console secret"
    )
    with ConsoleServer(console_settings, db_engine) as server:
        server.add_users()
        yield server


def signed_in(server: ConsoleServer, name: str) -> requests.Session:
    http = requests.Session()
    form = http.get(server.url + "/console/login", timeout=10)
    token = CSRF.search(form.text).group(1)
    answer = http.post(
        server.url + "/console/login",
        allow_redirects=False,
        timeout=10,
        data={"csrf": token, "name": name, "password": PASSWORD},
    )
    assert answer.status_code == 303
    return http


def test_only_supervisors_and_admins_open_the_reports(console):
    paths = [
        "/console/reports",
        "/console/reports/payments.csv",
        "/console/reports/daily.svg",
        "/console/reports/live.csv",
    ]
    anonymous = requests.Session()
    for path in paths:
        answer = anonymous.get(console.url + path, allow_redirects=False, timeout=10)
        assert answer.status_code == 303 and answer.headers["Location"] == "/console/login"
    agent = signed_in(console, "agent")
    for path in paths:
        answer = agent.get(console.url + path, allow_redirects=False, timeout=10)
        assert answer.status_code == 403, path
        assert "Your role does not open this page" in answer.text
    for name in ("supervisor", "admin"):
        http = signed_in(console, name)
        for path in paths:
            assert http.get(console.url + path, timeout=30).status_code == 200, (name, path)
        assert "/console/reports" in http.get(console.url + "/console/calls", timeout=10).text


def test_the_reports_page_csv_and_charts_over_http(console, db_engine):
    seeded = seed_reports(db_engine, random.Random(7), FIRST, DAYS)
    rng = ReportRange(FIRST, FIRST + timedelta(days=DAYS - 1))
    query = f"from={rng.start}&to={rng.end}"
    http = signed_in(console, "supervisor")
    page = http.get(f"{console.url}/console/reports?{query}", timeout=30)
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "<script" not in page.text and " style=" not in page.text
    assert 'http-equiv="refresh"' not in page.text  # a past range does not refresh
    calls = sum(_within(rng, c.started_at) for c in seeded.calls)
    assert re.search(rf"<dt>Calls</dt><dd>{calls}</dd>", page.text)
    for name in ("daily", "payments", "dropoff", "declines", "transfers", "sessions", "agents"):
        assert f'src="/console/reports/{name}.svg?from={rng.start}&amp;to={rng.end}"' in page.text
        chart = http.get(f"{console.url}/console/reports/{name}.svg?{query}", timeout=60)
        assert chart.headers["Content-Type"].startswith("image/svg+xml")
        assert "script-src" not in chart.headers["Content-Security-Policy"]  # default 'none'
        assert chart.headers["Content-Security-Policy"].startswith("default-src 'none'")
    answer = http.get(f"{console.url}/console/reports/transfers.csv?{query}", timeout=30)
    assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert answer.headers["Content-Disposition"] == (
        f'attachment; filename="paybot-transfers-{rng.start}-to-{rng.end}.csv"'
    )
    parsed = list(csv.reader(io.StringIO(answer.text, newline="")))
    want = expected(seeded, rng)["transfers"]
    assert parsed[0] == ["Reason", "Transfers"]
    assert {r: int(n) for r, n in parsed[1:]} == {
        ("'" + r if r.startswith("=") else r): n for r, n in want.items()
    }
    assert "'=HYPERLINK(1)" in answer.text
    answer = http.get(f"{console.url}/console/reports/agents.csv?{query}", timeout=30)
    assert answer.headers["Content-Disposition"] == (
        f'attachment; filename="paybot-agents-{rng.start}-to-{rng.end}.csv"'
    )
    parsed = list(csv.reader(io.StringIO(answer.text, newline="")))
    assert parsed[0] == list(AGENT_COLUMNS)
    assert {(a, c): (*map(int, ns), Decimal(amount)) for a, c, *ns, amount in parsed[1:]} == (
        expected(seeded, rng)["agents"]
    )
    assert '<table id="agents">' in page.text
    today = utcnow().date()
    live = http.get(f"{console.url}/console/reports", timeout=30)
    assert f'value="{today}"' in live.text and 'http-equiv="refresh" content="60"' in live.text


def test_bad_ranges_and_unknown_reports_get_clear_answers(console):
    http = signed_in(console, "supervisor")
    page = http.get(console.url + "/console/reports?from=2026-12-05&to=2026-12-01", timeout=30)
    assert page.status_code == 400 and "The range ends before it starts." in page.text
    answer = http.get(console.url + "/console/reports/payments.csv?from=soon", timeout=10)
    assert answer.status_code == 400 and "YYYY-MM-DD" in answer.text
    assert http.get(console.url + "/console/reports/nothing.csv", timeout=10).status_code == 404
    assert http.get(console.url + "/console/reports/summary.svg", timeout=10).status_code == 404
