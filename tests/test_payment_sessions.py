"""Contact-centre payment sessions below the stack, on SQLite and PostgreSQL: the OpenAPI
document against the routes and the messages, the client list, matching a transferred call
(by the SIP header's session code through the real voice webhook, by the caller's number,
never an expired or taken session), settling, and the completion webhook posted once by two
racing posters through a receiver that refuses first attempts.
(tests/test_contact_centre_calls.py runs the whole thing on the real stack.)"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import aiohttp
import pytest
from jsonschema import Draft202012Validator, RefResolver
from sqlalchemy import update
from sqlmodel import Session

from paybot.contact_centre import sessions
from paybot.contact_centre.clients import authenticate, parse_clients, token_hash
from paybot.contact_centre.webhook import Policy, SessionCompleted, SessionWebhookPoster
from paybot.db.engine import session_scope
from paybot.db.models import Call, Payment, PaymentSession, SessionDelivery
from paybot.db.types import utcnow
from paybot.gateway.sandbox import SandboxGateway
from paybot.seed import seed_demo_data
from paybot.settings import SettingsError, load_settings
from tests.crm_receiver import Receiver
from tests.helpers import rows
from tests.test_twilio_webhooks import bridge, rasa, voice_params  # noqa: F401 - fixtures
from voice_bridge.api.messages import CreateSessionRequest, SessionOut
from voice_bridge.api.routes import OPENAPI_PATH
from voice_bridge.twilio.webhooks import SESSION_SIP_HEADER

SECRET = "whsec-ivr-test"  # noqa: S105
MARIA, MARIA_ACCOUNT = "+15555550111", "200300400"
CALLER = "+15555550100"  # tests.test_twilio_webhooks' caller: James


# --- the OpenAPI document -------------------------------------------------------------------------
def _document() -> dict:
    return json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))


def _validator(document: dict, ref: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": ref}, resolver=RefResolver("", document))


def test_the_openapi_document_describes_exactly_the_api_routes(settings):
    from voice_bridge.app import create_app

    app = create_app(settings)
    routes = {(r.resource.canonical, r.method.lower()) for r in app.router.routes()
              if r.resource is not None and r.resource.canonical.startswith("/api/")
              and r.method != "HEAD"}  # aiohttp's own HEAD beside each GET
    document = _document()
    described = {(path, method) for path, item in document["paths"].items() for method in item}
    assert routes == described
    assert document["openapi"].startswith("3.1")


def test_the_openapi_examples_validate_against_its_schemas_and_the_messages():
    document = _document()
    Draft202012Validator.check_schema(document["components"]["schemas"]["PaymentSession"])
    checked = 0
    for item in [*document["paths"].values(), *document["webhooks"].values()]:
        for operation in item.values():
            bodies = [operation.get("requestBody", {})]
            bodies += list(operation["responses"].values())
            for body in bodies:
                media = body.get("content", {}).get("application/json", {})
                if "example" in media:
                    validator = Draft202012Validator(media["schema"],
                                                     resolver=RefResolver("", document))
                    validator.validate(media["example"])
                    checked += 1
    assert checked >= 8
    request = document["paths"]["/api/payment-sessions"]["post"]["requestBody"]
    CreateSessionRequest.parse_obj(request["content"]["application/json"]["example"])
    assert set(document["components"]["schemas"]["PaymentSession"]["properties"]) == set(
        SessionOut.__fields__)
    assert set(document["components"]["schemas"]["SessionCompleted"]["properties"]) == set(
        SessionCompleted.__dataclass_fields__)
    # And the schema refuses what the messages refuse (seeded mutations of the example).
    example = request["content"]["application/json"]["example"]
    schema = _validator(document, "#/components/schemas/CreatePaymentSession")
    rng = random.Random(5)
    for _ in range(200):
        field = rng.choice(sorted(example))
        value = rng.choice([7, None, "", "-1.00", "1.234", "+1", "x" * 70, [], {}])
        mutated = {**example, field: value}
        try:
            CreateSessionRequest.parse_obj(mutated)
            accepted = True
        except ValueError:
            accepted = False
        if not schema.is_valid(mutated):
            assert not accepted, mutated


# --- clients ------------------------------------------------------------------------------------
def test_clients_come_from_the_settings_by_token_hash():
    value = f"ivr1:{token_hash('t1')}:{SECRET}, ivr2:{token_hash('t2').upper()}"
    clients = parse_clients(value)
    assert authenticate(clients, "t1").name == "ivr1"
    assert authenticate(clients, "t2").webhook_secret is None
    assert authenticate(clients, "t3") is None and authenticate(clients, "") is None
    assert parse_clients("") == {}
    for bad in ("ivr1", "ivr1:abc", "bad name:" + "0" * 64, f"a:{'0' * 64},a:{'1' * 64}"):
        with pytest.raises(ValueError, match="PAYBOT_API_CLIENTS entry"):
            parse_clients(bad)
    with pytest.raises(SettingsError):
        load_settings(api_clients="ivr1:nothex")
    assert SECRET not in repr(clients["ivr1"])


# --- matching, settling, the webhook -----------------------------------------------------------
@pytest.fixture
def seeded(db_engine):
    seed_demo_data(db_engine, SandboxGateway(db_engine))
    return db_engine


def _new(engine, account: str = MARIA_ACCOUNT, caller: str | None = MARIA,
         callback: str | None = None, client: str = "ivr1") -> sessions.SessionView:
    account_id = sessions.account_id_of(engine, account)
    assert account_id is not None
    new = sessions.NewSession(account, Decimal("20.00"), "INV-1", caller, callback)
    return sessions.create(engine, client, new, account_id=account_id, currency="USD",
                           ttl_s=600)


def _status(engine, view: sessions.SessionView) -> str:
    return sessions.get(engine, "ivr1", view.id).status


def test_a_call_matches_the_newest_open_session_for_its_number_once(seeded):
    older, newer = _new(seeded), _new(seeded)
    expired = _new(seeded)
    with session_scope(seeded) as session:
        session.execute(update(PaymentSession).where(PaymentSession.public_id == expired.id)
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
    assert sessions.match_call(seeded, call_sid="CA1", caller=MARIA, code=None) == newer.id
    assert sessions.match_call(seeded, call_sid="CA2", caller=MARIA, code=None) == older.id
    assert sessions.match_call(seeded, call_sid="CA3", caller=MARIA, code=None) is None
    assert sessions.match_call(seeded, call_sid="CA4", caller=None, code=None) is None
    assert sessions.for_call(seeded, "CA1").account_number == MARIA_ACCOUNT
    assert _status(seeded, newer) == "in_progress" and _status(seeded, older) == "matched"
    assert sessions.for_call(seeded, "CA9") is None
    # Cancelling is only for sessions no call took.
    assert sessions.cancel(seeded, "ivr1", older.id).status == "matched"
    assert sessions.cancel(seeded, "ivr2", expired.id) is None


async def test_racing_calls_take_a_session_once(seeded):
    view = _new(seeded, caller=None)
    assert view.code is not None and len(view.code) == sessions.CODE_DIGITS
    won = await asyncio.gather(*(asyncio.to_thread(
        sessions.match_call, seeded, call_sid=f"CA{n}", caller=None, code=view.code)
        for n in range(8)))
    assert [w for w in won if w] == [view.id]


def test_two_open_sessions_never_share_a_code(seeded, monkeypatch):
    """Two sessions created at the same moment draw the same code and both find it free (the
    race, forced here): the open-code index refuses the second, which draws another. An
    expired session's code is free again once the sweep marked it expired."""
    drawn = iter(["111111", "111111", "222222", "111111"])
    monkeypatch.setattr(sessions, "_new_code", lambda: next(drawn))
    monkeypatch.setattr(sessions, "_code_open", lambda *_: False)
    first, second = _new(seeded, caller=None), _new(seeded, caller=None)
    assert (first.code, second.code) == ("111111", "222222")
    assert sessions.match_call(seeded, call_sid="CA7", caller=None, code="111111") == first.id
    third = _new(seeded, caller=None)  # the first is no longer open: its code is free
    assert third.code == "111111"


async def test_sessions_created_at_once_get_distinct_codes(seeded, monkeypatch):
    """Seeded: sessions created from several threads at once, their codes drawn from a pool
    of six, all get codes of their own."""
    rng, guard = random.Random(4), threading.Lock()

    def draw() -> str:
        with guard:
            return f"{rng.randrange(6):06d}"

    monkeypatch.setattr(sessions, "_new_code", draw)
    made = await asyncio.gather(*(asyncio.to_thread(_new, seeded, caller=None)
                                  for _ in range(3)))
    assert len({view.code for view in made}) == 3


async def test_the_voice_webhook_ties_a_transfer_by_its_sip_session_code(bridge):  # noqa: F811
    seed_demo_data(bridge.engine, SandboxGateway(bridge.engine))
    by_code = _new(bridge.engine, account="100200300", caller=None)
    by_number = _new(bridge.engine, account="100200300", caller=CALLER)
    response = await bridge.post("/twilio/voice", voice_params(
        **{SESSION_SIP_HEADER: by_code.code, "From": "+15555550177"}))
    assert response.status == 200
    assert sessions.get(bridge.engine, "ivr1", by_code.id).status == "matched"
    assert sessions.get(bridge.engine, "ivr1", by_number.id).status == "created"
    other = voice_params(CallSid="CA" + "c" * 32)
    assert (await bridge.post("/twilio/voice", other)).status == 200
    matched = sessions.get(bridge.engine, "ivr1", by_number.id)
    assert matched.status == "matched"


def _payment(engine, view: sessions.SessionView, call_sid: str, status: str) -> int:
    with session_scope(engine) as session:
        payment = Payment(
            account_id=sessions.account_id_of(engine, view.account_number), amount=view.amount,
            fee=Decimal("0.00"), total=view.amount, status=status, channel="voice",
            conversation_id=f"call:{call_sid}", gateway="sandbox", method_brand="visa",
            method_last4="4242", idempotency_key=uuid.uuid4().hex,
            confirmation_number=uuid.uuid4().hex[:8] if status == "succeeded" else None,
        )  # fmt: skip
        session.add(payment)
        session.flush()
        return payment.id


def _end_call(engine, call_sid: str) -> None:
    with session_scope(engine) as session:
        session.add(Call(call_sid=call_sid, caller=MARIA, status="completed",
                         ended_reason="caller hung up"))


def test_settling_follows_the_calls_payments(seeded):
    paid, declined, pending = (_new(seeded, callback="http://x/") for _ in range(3))
    for view, sid in ((pending, "CA1"), (declined, "CA2"), (paid, "CA3")):
        assert sessions.match_call(seeded, call_sid=sid, caller=MARIA, code=None) == view.id
    assert sessions.settle(seeded, call_ttl_s=600) == 0  # calls still on
    pending_id = _payment(seeded, pending, "CA1", "pending")
    _payment(seeded, declined, "CA2", "declined")
    _payment(seeded, paid, "CA3", "declined")
    paid_id = _payment(seeded, paid, "CA3", "succeeded")  # declined, then another card
    other = _payment(seeded, declined, "CA2", "succeeded")  # another amount: not the session's
    with session_scope(seeded) as session:
        session.get(Payment, other).amount = Decimal("7.00")
    for sid in ("CA1", "CA2", "CA3"):
        _end_call(seeded, sid)
    assert sessions.settle(seeded, call_ttl_s=600) == 2
    assert _status(seeded, pending) == "matched"  # its payment is still open
    result = sessions.get(seeded, "ivr1", paid.id)
    with Session(seeded) as session:
        confirmation = session.get(Payment, paid_id).confirmation_number
    assert (result.status, result.confirmation_number, result.method_last4) == (
        "succeeded", confirmation, "4242")
    failed = sessions.get(seeded, "ivr1", declined.id)
    assert (failed.status, failed.failure_reason) == ("failed", "payment_declined")
    with session_scope(seeded) as session:
        session.get(Payment, pending_id).status = "failed"
    assert sessions.settle(seeded, call_ttl_s=600) == 1
    assert sessions.settle(seeded, call_ttl_s=600) == 0  # nothing moves twice
    assert len(rows(seeded, SessionDelivery)) == 3


@pytest.mark.parametrize("posters", [1, 3])
async def test_each_completion_webhook_is_received_once(seeded, posters):
    receiver = await Receiver(SECRET, fail_first=2).start()
    try:
        views = [_new(seeded, caller=f"+1555555020{n}", callback=receiver.url) for n in range(5)]
        silent = _new(seeded, caller="+15555550299")  # no callback: no webhook
        with session_scope(seeded) as session:
            session.execute(update(PaymentSession).values(expires_at=utcnow()))
        assert sessions.settle(seeded, call_ttl_s=600) == 6
        clients = parse_clients(f"ivr1:{'0' * 64}:{SECRET}")
        async with aiohttp.ClientSession() as http:
            workers = [SessionWebhookPoster(seeded, http, clients, Policy(1.0, 5, 0.0))
                       for _ in range(posters)]
            for _ in range(6):
                await asyncio.gather(*(w.run_once() for w in workers))
        assert len(receiver.accepted) == 5 and not receiver.duplicates
        assert all(n == 3 for n in receiver.attempts.values())
        assert {b["session_id"] for b in receiver.accepted.values()} == {v.id for v in views}
        assert {b["status"] for b in receiver.accepted.values()} == {"expired"}
        assert silent.id not in {b["session_id"] for b in receiver.accepted.values()}
        assert {d.status for d in rows(seeded, SessionDelivery)} == {"delivered"}
    finally:
        await receiver.stop()


def test_the_request_fingerprint_tells_requests_apart():
    base = sessions.NewSession(MARIA_ACCOUNT, Decimal("20.00"), "R", MARIA, None)
    assert base.fingerprint() == sessions.NewSession(MARIA_ACCOUNT, Decimal("20.00"), "R",
                                                     MARIA, None).fingerprint()
    for other in (sessions.NewSession(MARIA_ACCOUNT, Decimal("20.01"), "R", MARIA, None),
                  sessions.NewSession(MARIA_ACCOUNT, Decimal("20.00"), "R2", MARIA, None),
                  sessions.NewSession(MARIA_ACCOUNT, Decimal("20.00"), "R", None, None),
                  sessions.NewSession(MARIA_ACCOUNT, Decimal("20.00"), "R", MARIA, "http://x/")):
        assert other.fingerprint() != base.fingerprint()
