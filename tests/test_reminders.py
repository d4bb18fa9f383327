"""Payment reminders against a real database (SQLite and PostgreSQL) and the fake Twilio: one
text per due account and offset, never twice (re-runs, two runners racing), none to an opted-out
number or in quiet hours, exactly once after a failed first attempt; seeded generated accounts
checked against the "exactly the due ones, once" property; calls created once at Twilio."""

from __future__ import annotations

import asyncio
import random
import threading
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from paybot.db.models import Account, OutboundMessage, PaymentMethod, Reminder
from paybot.reminders.run import ReminderRun, RunResult
from paybot.reminders.settings import parse_offsets
from paybot.settings import load_settings
from paybot.sms.consent import opt_in, opt_out
from paybot.sms.quiet_hours import QuietHours
from tests.helpers import rows, second_engine
from tests.test_receipt_sender import SMS_FROM, rest  # noqa: F401 - the fixture
from voice_bridge.jobs.receipt_sender import send_due
from voice_bridge.jobs.reminders import TwilioDialer

pytest_plugins = ["tests.fake_twilio"]
TODAY = date(2026, 12, 7)
PUBLIC = "https://bot.example.com"


def add_account(engine, number: str, due_in: int | None, *, phone: str | None = "",
                balance: str = "321.72", status: str = "active", card: bool = False) -> int:
    with Session(engine) as session:
        account = Account(
            account_number=number, name="Pat Doe", billing_zip="94107",
            phone=f"+1555555{int(number) % 10000:04d}" if phone == "" else phone,
            balance=Decimal(balance), minimum_payment=Decimal("10.00"), status=status,
            due_date=None if due_in is None else TODAY + timedelta(days=due_in),
        )  # fmt: skip
        session.add(account)
        session.flush()
        if card:
            session.add(PaymentMethod(account_id=account.id, gateway="sandbox", token="tok_1",
                                      kind="card", brand="visa", last4="4242"))  # fmt: skip
        session.commit()
        return account.id


@pytest.fixture
def config(settings, fake_twilio):
    return load_settings(
        env="test", data_dir=settings.data_dir, business_name="Acme Water",
        reminder_rate_per_s=1000.0, sms_quiet_hours="", reminder_offsets_days="7,3,1",
        sms_from=SMS_FROM, public_url=PUBLIC, **fake_twilio.settings_overrides(),
    )  # fmt: skip


def remind(engine, config, today: date = TODAY, **kw) -> RunResult:
    return asyncio.run(ReminderRun(engine, config, **kw).run(today))


def send(engine, rest, **kw):  # noqa: F811
    return send_due(engine, rest, **({"max_attempts": 3, "backoff_s": 0.0} | kw))


def bodies(fake_twilio) -> dict[str, str]:
    return {m.form["To"]: m.form["Body"] for m in fake_twilio.messages()}


def test_one_text_per_due_account_and_offset(db_engine, config, rest, fake_twilio):  # noqa: F811
    due = [add_account(db_engine, "1007", 7, card=True), add_account(db_engine, "1003", 3),
           add_account(db_engine, "1001", 1)]  # fmt: skip
    for number, due_in, extra in [("2002", 2, {}), ("2000", 0, {}), ("2008", 8, {}),
                                  ("3003", 3, {"balance": "0.00"}), ("4003", 3, {"phone": None}),
                                  ("5003", 3, {"status": "closed"}), ("6000", None, {})]:
        add_account(db_engine, number, due_in, **extra)  # fmt: skip
    assert remind(db_engine, config).queued == 3
    assert send(db_engine, rest).sent == 3
    texts = bodies(fake_twilio)
    assert texts["+15555551007"] == (
        "Acme Water: $321.72 for account ending 1007 is due Dec 14. Reply PAY to pay $321.72 "
        "with Visa ending 4242. Reply STOP to opt out."
    )
    assert "Reply PAY to pay it by text now." in texts["+15555551003"]
    assert set(texts) == {"+15555551007", "+15555551003", "+15555551001"}
    assert remind(db_engine, config) == RunResult()  # a re-run makes nothing
    assert send(db_engine, rest).sent == 0
    assert remind(db_engine, config, TODAY + timedelta(days=1)).queued == 2  # 2008, 2002
    reminders = rows(db_engine, Reminder)
    assert {r.account_id for r in reminders} >= set(due)
    assert {(r.kind, r.status) for r in rows(db_engine, OutboundMessage)} == {
        ("reminder", "sent"), ("reminder", "queued")}  # fmt: skip


def test_two_runners_racing_make_each_reminder_once(db_engine, config, fake_twilio, rest):  # noqa: F811
    for n in range(24):
        add_account(db_engine, str(7000 + n), (7, 3, 1)[n % 3])
    engines = [db_engine, second_engine(db_engine)]
    results: list[RunResult] = []
    start = threading.Barrier(2)

    def runner(engine) -> None:
        start.wait()
        results.append(remind(engine, config))

    threads = [threading.Thread(target=runner, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    engines[1].dispose()
    assert sum(r.queued for r in results) == 24
    assert sum(r.queued + r.taken for r in results) >= 24
    assert len(rows(db_engine, Reminder)) == len(rows(db_engine, OutboundMessage)) == 24
    while send(db_engine, rest).sent:
        pass
    assert sorted(bodies(fake_twilio)) == sorted(f"+1555555{7000 + n:04d}" for n in range(24))
    assert len(fake_twilio.messages()) == 24


def test_a_failed_first_attempt_still_lands_once(db_engine, config, rest, fake_twilio):  # noqa: F811
    add_account(db_engine, "1003", 3)
    assert remind(db_engine, config).queued == 1
    fake_twilio.fail_next(1)
    assert send(db_engine, rest).retrying == 1
    assert send(db_engine, rest).sent == 1
    assert send(db_engine, rest).sent == 0 and remind(db_engine, config).queued == 0
    [message] = rows(db_engine, OutboundMessage)
    assert (message.status, message.attempts) == ("sent", 2)
    attempts = fake_twilio.messages()
    assert len(attempts) == 2 and attempts[-1].sid == message.provider_id
    [reminder] = rows(db_engine, Reminder)
    assert reminder.message_id == message.id


def test_an_opted_out_number_gets_nothing_until_it_opts_back_in(db_engine, config, rest, fake_twilio):  # noqa: F811,E501
    add_account(db_engine, "1003", 3)
    opt_out(db_engine, "+15555551003", "STOP")
    assert remind(db_engine, config).opted_out == 1
    assert send(db_engine, rest).sent == 0 and rows(db_engine, Reminder) == []
    opt_in(db_engine, "+15555551003", "START")
    assert remind(db_engine, config).queued == 1
    assert send(db_engine, rest).sent == 1
    assert list(bodies(fake_twilio)) == ["+15555551003"]


def test_a_stop_after_queueing_still_stops_the_text(db_engine, config, rest, fake_twilio):  # noqa: F811
    add_account(db_engine, "1003", 3)
    assert remind(db_engine, config).queued == 1
    opt_out(db_engine, "+15555551003", "STOP")
    assert send(db_engine, rest).opted_out == 1
    assert fake_twilio.messages() == []


def test_quiet_hours_hold_the_text_until_morning(db_engine, config, rest, fake_twilio):  # noqa: F811
    add_account(db_engine, "1003", 3, phone="+12125550123")  # New York
    quiet = QuietHours.from_spec("21:00-08:00", "America/New_York")
    night = datetime(2026, 12, 7, 7, 0, tzinfo=timezone.utc)  # 2 am in New York
    assert remind(db_engine, config).queued == 1
    assert send(db_engine, rest, quiet=quiet, now=night).deferred == 1
    assert fake_twilio.messages() == []
    [message] = rows(db_engine, OutboundMessage)
    assert message.next_attempt_at == datetime(2026, 12, 7, 13, 0, tzinfo=timezone.utc)
    assert send(db_engine, rest, quiet=quiet, now=night + timedelta(hours=5)).sent == 0
    assert send(db_engine, rest, quiet=quiet, now=night + timedelta(hours=6)).sent == 1
    assert list(bodies(fake_twilio)) == ["+12125550123"]


@pytest.mark.parametrize("seed", [3, 17, 2026])
def test_generated_accounts_get_exactly_the_due_reminders_once(seed, db_engine, config, rest, fake_twilio):  # noqa: F811,E501
    rng = random.Random(seed)
    offsets = tuple(sorted(rng.sample(range(0, 10), rng.randint(1, 4)), reverse=True))
    settings = config.copy(update={"reminder_offsets_days": ",".join(map(str, offsets))})
    eligible: dict[int, date] = {}
    for n in range(40):
        due_in = rng.choice([None, *range(-3, 14)])
        kind = rng.choices(["ok", "paid", "closed", "no phone"], [6, 1, 1, 1])[0]
        account_id = add_account(
            db_engine, str(10000 + n), due_in,
            balance="0.00" if kind == "paid" else f"{rng.randint(1, 99999) / 100:.2f}",
            status="closed" if kind == "closed" else "active",
            phone=None if kind == "no phone" else f"+1555555{rng.randint(100, 120):04d}",
        )  # fmt: skip
        if kind == "ok" and due_in is not None:
            eligible[account_id] = TODAY + timedelta(days=due_in)
    days = sorted({TODAY + timedelta(days=rng.randint(0, 6)) for _ in range(5)})
    for day in days + days[::-1]:  # each day run twice, in a shuffled order of days
        remind(db_engine, settings, day)
        send(db_engine, rest)
    expected = {(account_id, (due - day).days, due) for account_id, due in eligible.items()
                for day in days if (due - day).days in offsets}  # fmt: skip
    made = [(r.account_id, r.offset_days, r.due_date) for r in rows(db_engine, Reminder)]
    assert sorted(made) == sorted(expected)
    assert len(fake_twilio.messages()) == len(expected)
    assert {m.status for m in rows(db_engine, OutboundMessage)} <= {"sent"}


def test_offsets_setting():
    assert parse_offsets("1, 7,3,3") == (7, 3, 1)
    for bad in ("", "seven", "-1", "400", " , "):
        with pytest.raises(ValueError):
            parse_offsets(bad)


# Calls -----------------------------------------------------------------------------------------
def test_a_call_reminder_creates_one_call(db_engine, config, fake_twilio):
    voice = config.copy(update={"reminder_channel": "voice"})
    add_account(db_engine, "1003", 3)
    dialer = TwilioDialer.from_settings(voice)
    fake_twilio.fail_next(1)
    assert remind(db_engine, voice, dialer=dialer).retrying == 1
    assert remind(db_engine, voice, dialer=dialer).called == 1
    assert remind(db_engine, voice, dialer=dialer) == RunResult()
    attempts = fake_twilio.created_calls()
    assert len(attempts) == 2
    assert attempts[-1].form == {
        "To": "+15555551003", "From": SMS_FROM, "Url": PUBLIC + "/twilio/voice",
        "StatusCallback": PUBLIC + "/twilio/status",
    }  # fmt: skip
    [reminder] = rows(db_engine, Reminder)
    assert (reminder.status, reminder.call_sid, reminder.attempts) == (
        "called", attempts[-1].sid, 2)  # fmt: skip
    assert fake_twilio.messages() == []


def test_calls_wait_out_quiet_hours(db_engine, config, fake_twilio):
    voice = config.copy(update={"reminder_channel": "voice", "sms_quiet_hours": "21:00-08:00"})
    add_account(db_engine, "1003", 3, phone="+12125550123")
    dialer = TwilioDialer.from_settings(voice)
    run = ReminderRun(db_engine, voice, dialer=dialer)
    night = datetime(2026, 12, 7, 7, 0, tzinfo=timezone.utc)
    assert asyncio.run(run.run(TODAY, now=night)).held == 1
    assert fake_twilio.created_calls() == [] and rows(db_engine, Reminder) == []
    assert asyncio.run(run.run(TODAY, now=night + timedelta(hours=6))).called == 1


def test_a_refused_call_is_not_placed_again(db_engine, config, fake_twilio):
    voice = config.copy(update={"reminder_channel": "voice"})
    add_account(db_engine, "1003", 3)
    dialer = TwilioDialer.from_settings(voice)
    fake_twilio.fail_next(1, status=400)
    assert remind(db_engine, voice, dialer=dialer).failed == 1
    assert remind(db_engine, voice, dialer=dialer) == RunResult()
    assert len(fake_twilio.created_calls()) == 1
    with Session(db_engine) as session:
        reminder = session.exec(select(Reminder)).one()
    assert (reminder.status, reminder.last_error) == ("failed", "http 400 code 20500")


# CRM mode ----------------------------------------------------------------------------------
async def test_crm_mode_reminds_the_mirrored_accounts_the_crm_still_says_are_due(
    db_engine, config, rest, fake_twilio  # noqa: F811
):
    from paybot.accounts.crm import HttpDirectory
    from paybot.accounts.mirror import MirroredDirectory
    from tests.fake_crm import TOKEN, FakeCrm, crm_account

    due = (TODAY + timedelta(days=3)).isoformat()
    with FakeCrm() as crm:
        for n, phone in ((1, "+15555558001"), (2, "+15555558002"), (3, "+15555558003")):
            crm.accounts[f"70080090{n}"] = crm_account(f"70080090{n}", phone=phone, due_date=due)
        directory = MirroredDirectory(HttpDirectory(crm.url, TOKEN, 3.0), db_engine)
        run = ReminderRun(db_engine, config, directory=directory)
        assert await run.run(TODAY) == RunResult()  # nothing mirrored yet: no reminders
        for n in (1, 2):
            await directory.find_by_account_number(f"70080090{n}")  # a conversation
        crm.accounts["700800901"]["balance"] = "99.00"  # the CRM moved on since
        crm.accounts["700800902"]["balance"] = "0.00"  # paid at the biller's
        assert await run.run(TODAY) == RunResult(queued=1, unconfirmed=1)
        assert send_due(db_engine, rest, max_attempts=3, backoff_s=0).sent == 1
        [message] = fake_twilio.messages()
        assert message.form["To"] == "+15555558001" and "$99.00" in message.form["Body"]
        await directory.find_by_account_number("700800903")
        crm.down = True
        assert await run.run(TODAY) == RunResult(unconfirmed=1)  # no balance it cannot confirm
        crm.down = False
        assert await run.run(TODAY) == RunResult(queued=1)
        await directory.close()


# The command -------------------------------------------------------------------------------
def test_the_command_makes_the_reminders_once(sqlite_engine, settings, monkeypatch, capsys):
    from paybot_cli.main import main

    add_account(sqlite_engine, "1003", 3)
    monkeypatch.setenv("DATABASE_URL", str(sqlite_engine.url))
    monkeypatch.setenv("PAYBOT_REMINDER_RATE_PER_S", "100")
    monkeypatch.delenv("TWILIO_ACCOUNT_SID", raising=False)
    command = ["reminders", "run", "--date", TODAY.isoformat()]
    assert main(command) == 0
    assert "reminders for 2026-12-07: 1 queued" in capsys.readouterr().out
    assert main(command) == 0
    assert "nothing due" in capsys.readouterr().out
    assert main(["reminders", "run", "--date", "tomorrow"]) == 2
    monkeypatch.setenv("PAYBOT_REMINDER_CHANNEL", "voice")
    assert main(command) == 1
    assert "not run: reminder calls need PAYBOT_REMINDER_CALL_FROM" in capsys.readouterr().err
    assert [m.kind for m in rows(sqlite_engine, OutboundMessage)] == ["reminder"]
