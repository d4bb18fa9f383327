"""Agent-assisted payment, its parts: the keypad session (the amount first, each field
confirmed, ``*``, 60 s of silence and too many wrong entries each ending it; the steps the
agent sees, never a digit), the live-calls registry's command queue, the console's form
checks, and the activity webhook (signed, retried through seeded failures, received once).
The whole flow on a simulated call, in a browser, is tests/test_console_agent_pay.py."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from dataclasses import asdict
from decimal import Decimal

import aiohttp
import pytest
from sqlmodel import Session, select

from paybot.console.activity import Activity, ActivityPoster, ActivityWebhook, record_activity
from paybot.db.models import AgentActivity
from paybot.dialog.payloads import SecureCapture
from tests.crm_receiver import Receiver
from voice_bridge.agent_payments import AgentLeg, PayRefused, PayRequest
from voice_bridge.console.agent_pay import clean_item, parse_amount
from voice_bridge.live_calls import LiveCalls
from voice_bridge.secure_capture.agent_session import NO_INPUT_S, AgentPaySession
from voice_bridge.secure_capture.steps import Done, Submit

VISA, EXPIRY, CVC, ZIP = "4242424242424242", "1230", "739", "94107"
KEYED = {"card_number": VISA + "#", "expiry": EXPIRY, "cvc": CVC, "zip": ZIP}
pytest_plugins = ["tests.fake_twilio"]  # the fake_twilio fixture
SECRET = "whsec-test-0123456789"  # noqa: S105 - the tests' webhook secret
CONF, AGENT_CALL = "CF" + "a" * 32, "CA" + "b" * 32


def session() -> AgentPaySession:
    instruction = SecureCapture(method="card", account_number="100200300", amount="49.99",
                                currency="USD", idempotency_key="k" * 32)
    started = AgentPaySession(instruction)
    started.start(0.0)
    return started


class Keys:
    """Keys a session on a clock, keeping every action and every progress snapshot."""

    def __init__(self) -> None:
        self.session, self.now, self.actions, self.seen = session(), 0.0, [], []

    def press(self, keys: str) -> None:
        for key in keys:
            self.now += 0.3
            self.actions += self.session.key(key, self.now)
            self.seen.append(self.session.progress)

    def wait(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += 0.5
            self.actions += self.session.tick(self.now)
            self.seen.append(self.session.progress)

    @property
    def done(self) -> Done | None:
        return next((a for a in self.actions if isinstance(a, Done)), None)

    def states(self) -> dict[str, str]:
        return dict(self.session.steps)


def pay_through(keys: Keys, upto: str | None = None) -> None:
    """Confirm the amount and key each field, confirming each; stop before ``upto``."""
    keys.press("1")
    for name in [n for n, _ in keys.session.steps][1:]:
        if name == upto:
            return
        keys.press(KEYED[name])
        keys.press("1")


def test_the_amount_then_each_field_confirmed_submits_and_all_steps_tick():
    keys = Keys()
    assert keys.states()["amount"] == "entering" and set(list(keys.states().values())[1:]) == {
        "waiting"}
    pay_through(keys)
    [submit] = [a for a in keys.actions if isinstance(a, Submit)]
    assert submit.method.number == VISA  # the door pays it; nothing else sees it
    assert set(keys.states().values()) == {"done"}
    assert [n for n, _ in keys.session.steps] == ["amount", "card_number", "expiry", "cvc", "zip"]
    for progress in keys.seen:  # what the console gets: counts, brand, last four, steps
        text = json.dumps(asdict(progress))
        assert VISA not in text and VISA[:6] not in text and CVC not in text, text
    assert keys.seen[-1].brand == "visa" and keys.seen[-1].last4 == "4242"


@pytest.mark.parametrize("seed", range(12))
def test_star_silence_or_wrong_entries_end_it_at_any_step(seed):
    rng = random.Random(seed)
    keys = Keys()
    names = [n for n, _ in keys.session.steps]
    stop = rng.choice(names)
    if stop != "amount":
        pay_through(keys, upto=stop)
    way = rng.choice(["star", "silence", "wrong", "declined"] if stop == "amount"
                     else ["star", "silence", "wrong"])
    assert keys.done is None
    if way == "star":
        keys.press(rng.choice(["", "4", "12"]) + "*")
        expected = ("cancelled", "caller_cancelled")
    elif way == "silence":
        keys.wait(NO_INPUT_S - 1)
        assert keys.done is None  # not yet
        keys.wait(2)
        expected = ("failed", "timeout")
    elif way == "declined":
        keys.press("2")
        expected = ("cancelled", "amount_declined")
    else:  # re-entered again and again, or a wrong key for the amount
        for _ in range(3):
            keys.press("9" if stop == "amount" else KEYED[stop] + "2")
        expected = ("failed", "too_many_attempts")
    assert (keys.done.status, keys.done.reason) == expected, (stop, way)
    states = keys.states()
    assert states[stop] == "failed", (stop, way, states)
    assert all(states[n] == "done" for n in names[: names.index(stop)])
    assert not any(isinstance(a, Submit) for a in keys.actions)


async def test_the_registry_queues_a_request_for_a_call_with_an_agent_only():
    live, inbox = LiveCalls(), asyncio.Queue()
    live.begin("CA1", "+15555550100", inbox=inbox.put_nowait)
    live.begin("CA2", "+15555550101", agent=AgentLeg(CONF, AGENT_CALL), inbox=inbox.put_nowait)
    request = PayRequest(agent="agent", account_number="100200300", item="INV-7",
                         amount=Decimal("12.50"))
    with pytest.raises(PayRefused, match="No agent"):
        live.request_payment("CA1", request)
    with pytest.raises(PayRefused, match="ended"):
        live.request_payment("CA9", request)
    view = live.request_payment("CA2", request)
    assert inbox.get_nowait() is request and view.status == "sent"
    with pytest.raises(PayRefused, match="already"):
        live.request_payment("CA2", request)
    [_, call] = [c.as_json() for c in live.snapshot()]
    assert call["agent_on_call"] and call["payment"]["amount"] == "12.50"
    live.end("CA2")
    with pytest.raises(PayRefused, match="ended"):
        live.request_payment("CA2", request)


def test_the_agent_leg_comes_from_the_stream_parameters():
    assert AgentLeg.of({"conference_sid": CONF, "agent_call_sid": AGENT_CALL}) == AgentLeg(
        CONF, AGENT_CALL)
    assert AgentLeg.of({"conference_sid": "CFnope", "agent_call_sid": AGENT_CALL}) is None
    assert AgentLeg.of({}) is None


@pytest.mark.parametrize(("text", "ok"), [("12.50", "12.50"), ("$1,234.00", "1234.00"),
                                          ("0", None), ("1.005", None), ("abc", None),
                                          ("NaN", None), ("100000.01", None)])
def test_amounts_are_dollars_and_cents(text, ok):
    if ok is None:
        with pytest.raises(PayRefused):
            parse_amount(text)
    else:
        assert parse_amount(text) == Decimal(ok)


def test_an_item_is_one_plain_line_and_never_a_card_number():
    assert clean_item("  INV-2026  12 ") == "INV-2026 12"
    for bad in ("", "x" * 65, "a\x00b", "4242 4242 4242 4242"):
        with pytest.raises(PayRefused):
            clean_item(bad)


def activity(rng: random.Random, n: int) -> Activity:
    result = rng.choice(["succeeded", "declined", "failed", "cancelled"])
    return Activity(
        request_id=f"{n:032x}", agent=rng.choice(["agent", "ana"]), call_sid=f"CA{n:032x}",
        account_number="100200300", item=f"INV-{rng.randrange(10**5)}",
        amount=Decimal(rng.randrange(100, 99999)) / 100, currency="USD", result=result,
        confirmation_number=f"PB{n:06d}" if result == "succeeded" else None,
        method_brand="visa", method_last4="4242",
    )  # fmt: skip


async def drain(poster: ActivityPoster, rounds: int = 12) -> None:
    for _ in range(rounds):
        await poster.run_once()
        with Session(poster.engine) as session:
            states = {row.status for row in session.exec(select(AgentActivity))}
        if states <= {"delivered", "failed"}:
            return


@pytest.mark.parametrize(("fail_first", "stall_first"), [(0, 0), (2, 0), (1, 1)])
async def test_each_activity_reaches_the_crm_once_through_failures(db_engine, fail_first,
                                                                   stall_first):
    rng = random.Random(fail_first * 7 + stall_first)
    made = [activity(rng, n) for n in range(1, 16)]
    for one in made:
        assert await asyncio.to_thread(record_activity, db_engine, one)
    assert not record_activity(db_engine, made[0])  # the same request again: kept once
    receiver = await Receiver(SECRET, fail_first=fail_first, stall_first=stall_first,
                              stall_s=1.0).start()
    hook = ActivityWebhook(receiver.url, SECRET, timeout_s=0.5, max_attempts=6, backoff_s=0.0)
    try:
        async with aiohttp.ClientSession() as http:
            await drain(ActivityPoster(db_engine, http, hook))
    finally:
        await receiver.stop()
    assert receiver.bad_signatures == 0
    assert set(receiver.accepted) == {a.request_id for a in made}
    tries = 1 + fail_first + stall_first
    assert set(receiver.attempts.values()) == {tries}
    assert sum(receiver.duplicates.values()) == stall_first * len(made)
    for one in made:
        body = receiver.accepted[one.request_id]
        assert body["event"] == "agent_payment.completed" and body["status"] == one.result
        assert body["amount"] == f"{one.amount:.2f}" and body["item"] == one.item
        assert body["agent"] == one.agent and body["method_last4"] == "4242"
    with Session(db_engine) as session:
        rows = session.exec(select(AgentActivity)).all()
    assert Counter(r.status for r in rows) == Counter({"delivered": len(made)})


async def test_a_refusing_crm_is_not_retried(db_engine):
    record_activity(db_engine, activity(random.Random(1), 1))
    receiver = await Receiver("another-secret").start()  # our signature looks bad: 401
    hook = ActivityWebhook(receiver.url, SECRET, timeout_s=0.5, max_attempts=6, backoff_s=0.0)
    try:
        async with aiohttp.ClientSession() as http:
            await drain(ActivityPoster(db_engine, http, hook))
    finally:
        await receiver.stop()
    with Session(db_engine) as session:
        [row] = session.exec(select(AgentActivity)).all()
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "refused http 401")


def test_the_form_checks_the_account_and_the_ledger_rules_before_the_caller_is_asked(
    settings, ledger
):
    from voice_bridge.console.agent_pay import _check_account

    engine = ledger.engine
    _check_account(settings, engine, "100200300", Decimal("49.99"))  # James owes $321.72
    with pytest.raises(PayRefused, match="no account"):
        _check_account(settings, engine, "999999999", Decimal("10.00"))
    with pytest.raises(PayRefused, match="cannot pay this"):
        _check_account(settings, engine, "100200300", Decimal("5000.00"))


def test_the_rest_client_holds_and_releases_a_participant(fake_twilio):
    from voice_bridge.twilio.rest import TwilioRest, TwilioRestError

    rest = TwilioRest(account_sid=fake_twilio.account_sid, auth_token=fake_twilio.auth_token,
                      api_url=fake_twilio.url)
    with pytest.raises(TwilioRestError) as missing:  # no such conference
        rest.hold_participant(CONF, AGENT_CALL, True)
    assert missing.value.status == 404 and not missing.value.retryable
    fake_twilio.conferences[CONF] = {AGENT_CALL}
    rest.hold_participant(CONF, AGENT_CALL, True)
    assert fake_twilio.participant(CONF, AGENT_CALL) == {"hold": True, "muted": True}
    fake_twilio.fail_next()
    with pytest.raises(TwilioRestError) as failed:
        rest.hold_participant(CONF, AGENT_CALL, False)
    assert failed.value.retryable
    rest.hold_participant(CONF, AGENT_CALL, False)
    assert fake_twilio.participant(CONF, AGENT_CALL) == {"hold": False, "muted": False}
    [update] = fake_twilio.participant_updates()[-1:]
    assert update.path.endswith(f"/Conferences/{CONF}/Participants/{AGENT_CALL}.json")
