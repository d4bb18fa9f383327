"""Twilio ``<Pay>``'s callbacks over real HTTP: the bridge's ``<Pay>`` webhooks on a test server
and a real database (SQLite and PostgreSQL), a payment opened by the real ledger, callbacks
signed as Twilio signs them. The whole call (Media Streams, Rasa, the fake Twilio REST API)
is in tests/test_voice_twilio_pay.py."""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient, TestServer
from sqlmodel import Session

from paybot.db.models import AuditEvent, LedgerEntry, Payment
from paybot.dialog.payloads import SecureCapture
from paybot.payments.confirmation import is_valid
from paybot.payments.delegated import TWILIO_PAY, progress_counts
from tests.helpers import account, rows
from voice_bridge.jobs.call_records import consume_stream_token
from voice_bridge.keys import DB_ENGINE, HTTP_CLIENT, SETTINGS
from voice_bridge.twilio.pay_results import decline_code, last_four, pay_outcome
from voice_bridge.twilio.pay_tokens import issue_pay_token
from voice_bridge.twilio.pay_twiml import pay_twiml
from voice_bridge.twilio.pay_webhooks import PAY_ACTION_PATH, PAY_STATUS_PATH, add_pay_routes
from voice_bridge.twilio.signature import SIGNATURE_HEADER, sign
from voice_bridge.twilio.stream_tokens import call_token_secret, verify_call_token
from voice_bridge.twilio.webhooks import add_twilio_routes

PUBLIC = "https://bot.example.com"
CALL = "CA" + "b" * 32
OTHER_CALL = "CA" + "c" * 32
JAMES = "+15555550100"
MASKED = "xxxx-xxxx-xxxx-4242"


class PayBridge:
    """The webhooks on a test server, one answered call, one ``<Pay>`` payment."""

    def __init__(self, client: TestClient, settings, engine, ledger) -> None:
        self.client, self.settings, self.engine, self.ledger = client, settings, engine, ledger

    async def answer_call(self, call_sid: str = CALL) -> None:
        params = {"CallSid": call_sid, "From": JAMES, "To": "+15555550000",
                  "CallStatus": "ringing", "AccountSid": "AC" + "0" * 32}  # fmt: skip
        response = await self.post("/twilio/voice", params)
        assert response.status == 200
        assert consume_stream_token(self.engine, call_sid=call_sid)  # its first stream

    def open_payment(self, key: str = "k" * 32, amount: str = "50.00") -> int:
        james = account(self.engine, "100200300")
        payment, settled = self.ledger.open_delegated(
            account_id=james.id, amount=Decimal(amount), kind="card", processor=TWILIO_PAY,
            reference="Default", conversation_id=f"call:{CALL}", idempotency_key=key,
        )  # fmt: skip
        assert not settled and payment.status == "pending"
        return payment.payment_id

    def path(self, base: str, payment_id: int, call_sid: str = CALL) -> str:
        token = issue_pay_token(self.settings, call_sid=call_sid, payment_id=payment_id)
        return f"{base}?token={token}"

    async def post(self, path: str, params: dict[str, str], *, signed: bool = True):
        headers = {}
        if signed:
            url = self.settings.public_base_url + path
            headers[SIGNATURE_HEADER] = sign(url, params, self.settings.twilio_signing_key)
        return await self.client.post(path, data=params, headers=headers)

    async def result(self, payment_id: int, result: str, **more: str):
        params = {"CallSid": CALL, "AccountSid": "AC" + "0" * 32, "Result": result, **more}
        return await self.post(self.path(PAY_ACTION_PATH, payment_id), params)

    async def progress(self, payment_id: int, step: str, **more: str):
        params = {"CallSid": CALL, "For": step, **more}
        return await self.post(self.path(PAY_STATUS_PATH, payment_id), params)

    def payment(self, payment_id: int) -> Payment:
        with Session(self.engine) as session:
            found = session.get(Payment, payment_id)
            assert found is not None
            return found


@pytest.fixture
async def pay(settings, db_engine, ledger) -> AsyncIterator[PayBridge]:
    configured = settings.copy(update={"public_url": PUBLIC})
    app = web.Application()
    app[SETTINGS], app[DB_ENGINE] = configured, db_engine

    async def http_client(app: web.Application) -> AsyncIterator[None]:
        async with ClientSession() as session:
            app[HTTP_CLIENT] = session
            yield

    app.cleanup_ctx.append(http_client)
    add_twilio_routes(app)
    add_pay_routes(app)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        bridge = PayBridge(client, configured, db_engine, ledger)
        await bridge.answer_call()
        yield bridge


def stream_parameters(twiml: str) -> tuple[str, dict[str, str]]:
    url = re.search(r'<Stream url="([^"]+)"', twiml)
    assert url is not None, twiml
    return url.group(1), dict(re.findall(r'<Parameter name="(\w+)" value="([^"]*)"', twiml))


def table_dump(engine) -> str:
    with engine.connect() as conn:
        return " ".join(
            str(r)
            for table in ("payments", "audit_events", "ledger_entries", "calls")
            for r in conn.exec_driver_sql(f"SELECT * FROM {table}")  # noqa: S608
        )


# The action callback -------------------------------------------------------------------------
async def test_success_settles_the_payment_and_streams_the_caller_back(pay):
    payment_id = pay.open_payment()
    response = await pay.result(
        payment_id, "success", PaymentConfirmationCode="ch_3Pay123", PaymentCardType="visa",
        PaymentCardNumber=MASKED, ExpirationDate="1230", SecurityCode="***",
        PaymentCardPostalCode="94107", PaymentMethod="credit-card",
    )  # fmt: skip
    assert response.status == 200 and response.content_type == "text/xml"
    url, params = stream_parameters(await response.text())
    assert url == f"wss://bot.example.com/twilio/stream/{CALL}"
    assert params["resume"] == "capture_result" and params["capture_status"] == "submitted"
    assert params["caller"] == JAMES
    verify_call_token(call_token_secret(pay.settings), params["token"], call_sid=CALL)
    assert consume_stream_token(pay.engine, call_sid=CALL)  # the stream back is admitted once
    assert not consume_stream_token(pay.engine, call_sid=CALL)
    payment = pay.payment(payment_id)
    assert payment.status == "succeeded" and payment.gateway == TWILIO_PAY
    assert payment.gateway_transaction_id == "ch_3Pay123"
    assert (payment.method_brand, payment.method_last4) == ("visa", "4242")
    assert is_valid(payment.confirmation_number or "")
    assert payment.total == Decimal("52.00")  # the ledger's fee is charged through <Pay> too
    assert account(pay.engine, "100200300").balance == Decimal("271.72")
    assert {e.kind for e in rows(pay.engine, LedgerEntry)} == {"principal", "fee"}
    dump = table_dump(pay.engine)
    assert MASKED not in dump and "94107" not in dump.split("calls")[0]


async def test_a_repeated_result_changes_nothing_and_gets_no_stream(pay):
    payment_id = pay.open_payment()
    first = await pay.result(payment_id, "success", PaymentConfirmationCode="ch_1")
    assert first.status == 200
    before = pay.payment(payment_id)
    assert consume_stream_token(pay.engine, call_sid=CALL)
    for result in ("success", "caller-hung-up", "payment-connector-error"):
        again = await pay.result(payment_id, result, PaymentConfirmationCode="ch_2")
        assert again.status == 409
        assert "<Stream" not in await again.text()
    after = pay.payment(payment_id)
    assert after.dict() == before.dict()
    assert len(rows(pay.engine, LedgerEntry)) == 2  # booked once
    assert not consume_stream_token(pay.engine, call_sid=CALL)  # no stream was re-armed


async def test_forged_and_misdirected_callbacks_are_refused(pay):
    payment_id = pay.open_payment()
    path = pay.path(PAY_ACTION_PATH, payment_id)
    params = {"CallSid": CALL, "Result": "success", "PaymentConfirmationCode": "ch_forged"}
    unsigned = await pay.post(path, params, signed=False)
    assert unsigned.status == 403
    bad_signature = await pay.client.post(path, data=params, headers={SIGNATURE_HEADER: "x"})
    assert bad_signature.status == 403
    for forged in (
        PAY_ACTION_PATH,  # no token
        PAY_ACTION_PATH + "?token=not.a-token",
        pay.path(PAY_ACTION_PATH, payment_id, call_sid=OTHER_CALL),  # another call's token
        path[:-3] + "abc",  # tampered
    ):
        assert (await pay.post(forged, params)).status == 403, forged
    other = {**params, "CallSid": OTHER_CALL}  # this call's token, another call's callback
    assert (await pay.post(path, other)).status == 403
    assert pay.payment(payment_id).status == "pending"
    assert (await pay.progress(payment_id, "payment-card-number")).status == 204
    unsigned_status = await pay.post(
        pay.path(PAY_STATUS_PATH, payment_id), {"CallSid": CALL, "For": "x"}, signed=False
    )
    assert unsigned_status.status == 403


@pytest.mark.parametrize(
    ("result", "more", "status", "code", "capture_status"),
    [
        ("too-many-failed-attempts", {}, "failed", "too_many_attempts", "failed"),
        ("caller-interrupted-with-star", {}, "failed", "caller_cancelled", "cancelled"),
        ("validation-error", {}, "failed", "pay_validation_error", "failed"),
        ("payment-connector-error", {"ConnectorError": "card_declined: insufficient_funds"},
         "declined", "insufficient_funds", "submitted"),
        ("payment-connector-error", {"PaymentError": "card is declined"},
         "declined", "generic_decline", "submitted"),
        ("payment-connector-error", {"PaymentError": "gateway timeout"},
         "failed", "connector_error", "submitted"),
    ],
)  # fmt: skip
async def test_failures_map_to_the_bots_reasons(pay, result, more, status, code, capture_status):
    payment_id = pay.open_payment()
    response = await pay.result(payment_id, result, **more)
    assert response.status == 200
    assert stream_parameters(await response.text())[1]["capture_status"] == capture_status
    payment = pay.payment(payment_id)
    assert (payment.status, payment.decline_code) == (status, code)
    assert account(pay.engine, "100200300").balance == Decimal("321.72")


async def test_a_hang_up_fails_the_payment_unless_the_charge_was_under_way(pay):
    early = pay.open_payment("e" * 32)
    for step in ("payment-card-number", "payment-card-number", "expiration-date"):
        assert (await pay.progress(early, step, Attempt="1")).status == 204
    response = await pay.result(early, "caller-hung-up")
    assert response.status == 200 and "<Stream" not in await response.text()
    assert (pay.payment(early).status, pay.payment(early).decline_code) == (
        "failed",
        "caller_hung_up",
    )
    late = pay.open_payment("l" * 32, amount="20.00")
    await pay.progress(late, "payment-card-number", ErrorType="invalid-card-number", Attempt="1")
    await pay.progress(late, "payment-processing")
    assert progress_counts(pay.engine, late) == {
        "payment-card-number": 1,
        "payment-processing": 1,
        "errors": 1,
    }
    assert (await pay.result(late, "caller-hung-up")).status == 200
    assert pay.payment(late).status == "unknown"  # maybe charged: never called failed or paid
    # Twilio's report of the charge, should it come, still settles it.
    assert (await pay.result(late, "success", PaymentConfirmationCode="ch_9")).status == 200
    assert pay.payment(late).status == "succeeded"
    details = " ".join(str(e.detail) for e in rows(pay.engine, AuditEvent))
    assert "4242" not in details


# Generated callbacks -------------------------------------------------------------------------
RESULTS = ["success", "too-many-failed-attempts", "payment-connector-error",
           "caller-interrupted-with-star", "caller-hung-up", "validation-error",
           "internal-error", "", "something-new"]  # fmt: skip


@pytest.mark.parametrize("seed", range(3))
async def test_generated_results_settle_once_and_never_claim_a_charge_twilio_did_not_report(
    pay, seed
):
    rng = random.Random(seed)
    for i in range(8):
        payment_id = pay.open_payment(f"{seed}-{i}".ljust(32, "g"), amount="5.00")
        processing = rng.random() < 0.5
        if processing:
            await pay.progress(payment_id, "payment-processing")
        result = rng.choice(RESULTS)
        more = {}
        if rng.random() < 0.5:
            more["PaymentConfirmationCode"] = f"ch_{seed}_{i}"
        if rng.random() < 0.5:
            more["PaymentCardNumber"] = rng.choice([MASKED, "4242424242424242", "xxxx4242"])
        response = await pay.result(payment_id, result, **more)
        assert response.status == 200
        payment = pay.payment(payment_id)
        charged = "PaymentConfirmationCode" in more and result in (
            "success", "caller-hung-up", "internal-error"
        )  # fmt: skip
        assert (payment.status == "succeeded") == (result == "success" or charged)
        if payment.status == "unknown":
            assert processing and result not in RESULTS[1:4] + ["validation-error", ""]
        assert payment.method_last4 in (None, "", "4242")
        assert "4242424242424242" not in table_dump(pay.engine)
        again = await pay.result(payment_id, rng.choice(RESULTS), **more)
        assert again.status == 409 and pay.payment(payment_id).status == payment.status


# The pieces ----------------------------------------------------------------------------------
def test_pay_twiml_charges_the_total_through_the_connector():
    instruction = SecureCapture(method="card", account_number="100200300", amount="50.00",
                                currency="USD", idempotency_key="k",
                                allowed_brands=["visa", "mastercard", "unionpay"])  # fmt: skip
    twiml = pay_twiml(instruction, connector="Stripe_Prod", total=Decimal("52"), currency="USD",
                      description="paybot payment 7", action_url=PUBLIC + "/a?token=t.s",
                      status_url=PUBLIC + "/s?token=t.s")  # fmt: skip
    attributes = dict(re.findall(r'(\w+)="([^"]*)"', twiml.split("<Pay ")[1].split("/>")[0]))
    assert attributes["paymentConnector"] == "Stripe_Prod"
    assert attributes["chargeAmount"] == "52.00" and attributes["currency"] == "usd"
    assert attributes["paymentMethod"] == "credit-card"
    assert attributes["validCardTypes"] == "visa mastercard"
    assert attributes["action"] == PUBLIC + "/a?token=t.s"
    assert "<Redirect" in twiml.split("<Pay ")[1]
    bank = SecureCapture(method="bank", account_number="1", amount="5", currency="USD",
                         idempotency_key="k", bank_account_type="savings")  # fmt: skip
    bank_twiml = pay_twiml(bank, connector="Default", total=Decimal("5"), currency="USD",
                           description="d", action_url="https://a",
                           status_url="https://s")  # fmt: skip
    assert 'paymentMethod="ach-debit"' in bank_twiml
    assert 'bankAccountType="consumer-savings"' in bank_twiml


@pytest.mark.parametrize("seed", range(5))
def test_only_the_last_four_of_a_masked_number_is_ever_taken(seed):
    rng = random.Random(seed)
    for _ in range(200):
        last4 = f"{rng.randrange(10_000):04d}"
        mask = "".join(rng.choice("xX*-") for _ in range(rng.randint(4, 15)))
        assert last_four(mask + last4) == last4
        shown = "".join(rng.choice("0123456789x-") for _ in range(rng.randint(0, 15)))
        digits = sum(ch.isdigit() for ch in shown + last4)
        taken = last_four(shown + last4)
        assert taken is None or (taken == last4 and digits == 4)
    assert last_four("4242424242424242") is None and last_four("") is None


def test_decline_codes_come_from_the_connectors_words():
    assert decline_code("card_declined", "Your card has insufficient funds.") == (
        "insufficient_funds"
    )
    assert decline_code("", "Expired card") == "expired_card"
    assert decline_code("do_not_honor", "") == "generic_decline"
    assert decline_code("", "connection timed out") is None
    hung_up = pay_outcome({"Result": "caller-hung-up"}, processing=False)
    assert hung_up.caller_hung_up and hung_up.result.code == "caller_hung_up"
