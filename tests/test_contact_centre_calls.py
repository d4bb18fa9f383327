"""The contact-centre API end to end, on the real stack (``paybot up``), over real HTTP.

An IVR client creates a payment session for a caller; a simulated call from that number
(:class:`twilio_sim.CallerSession`, the Media Streams protocol) is tied to it, the bot goes
straight to the payment method with the account and amount fixed, the caller keys a test
card; the IVR reads the result and its receiver gets the signed completion webhook once,
though it refuses the first attempt. Bad tokens and seeded fuzzed payloads answer 4xx and
create nothing; a repeated Idempotency-Key answers the first session.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import string
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import update
from sqlmodel import Session

from paybot.db.models import Payment, PaymentSession, PaymentStatus, SessionDelivery
from paybot.db.types import utcnow
from tests import cardscan
from tests.crm_receiver import Receiver
from tests.helpers import rows
from tests.stack import wait_until
from tests.test_voice_calls import bot_said, dial, run, voice_stack

pytestmark = pytest.mark.services

TOKEN = "ivr1-token-" + "a" * 32  # noqa: S105 - the test client's bearer token
OTHER_TOKEN = "ivr2-token-" + "b" * 32  # noqa: S105
SECRET = "whsec-ivr1-0123456789"  # noqa: S105 - ivr1's webhook secret
MARIA = "+15555550111"  # Maria Garcia: 200300400, owes 89.10, no card on file, ZIP 10001
MARIA_ACCOUNT = "200300400"
TEST_CARD = cardscan.keyed_card("5555555555554444")
SECURITY_CODE = cardscan.keyed_code("739")


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture(scope="module")
def fake_twilio():
    from tests.fake_twilio import FakeTwilio

    with FakeTwilio() as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(tmp_path_factory, fake_twilio):
    yield from voice_stack(
        tmp_path_factory, fake_twilio,
        PAYBOT_API_CLIENTS=f"ivr1:{_sha(TOKEN)}:{SECRET},ivr2:{_sha(OTHER_TOKEN)}",
        PAYBOT_API_INTERVAL_S="0.3",
        PAYBOT_API_WEBHOOK_BACKOFF_S="0.5",
        PAYBOT_API_WEBHOOK_TIMEOUT_S="2",
    )  # fmt: skip


@pytest.fixture(autouse=True)
def fresh_data(stack, fake_twilio):
    stack.reset_data()
    fake_twilio.requests.clear()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    """The IVR's webhook receiver on its own thread's loop (the calls run their own loops);
    it answers 500 to the first attempt of every delivery."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    found = asyncio.run_coroutine_threadsafe(Receiver(SECRET, fail_first=1).start(), loop)
    started = found.result(10)
    try:
        yield started
    finally:
        asyncio.run_coroutine_threadsafe(started.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def api(stack, method: str, path: str, token: str | None = TOKEN, **kwargs: Any):
    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(method, stack.bridge_url + path, headers=headers, timeout=30,
                            **kwargs)


def create(stack, body: Any, token: str | None = TOKEN, key: str | None = None, **kwargs):
    headers = {"Idempotency-Key": key} if key else {}
    return api(stack, "POST", "/api/payment-sessions", token, json=body, headers=headers,
               **kwargs)


def session_count(stack) -> int:
    return len(rows(stack.engine, PaymentSession))


# --- a transferred call pays; the IVR reads the result and gets the webhook once ----------------
def test_a_transferred_call_goes_straight_to_the_payment_and_the_ivr_learns_the_result(
    stack, fake_twilio, receiver
):
    answer = create(stack, {"account_number": MARIA_ACCOUNT, "amount": "50.00",
                            "reference": "INV-42", "caller": MARIA,
                            "callback_url": receiver.url})
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["status"] == "created" and created["amount"] == "50.00"
    assert created["session_code"] is None and created["caller"] == MARIA

    async def call():
        async with dial(stack, fake_twilio, MARIA) as phone:
            await phone.wait_bot()  # Hello Maria, your payment of $50.00; card or bank?
            await phone.say("card")
            await phone.wait_bot()  # to confirm ... shall I go ahead?
            await phone.say("yes")
            await phone.wait_bot()  # key in your card number
            for keys in (TEST_CARD + "#", "1230", SECURITY_CODE, "10001"):
                await phone.press(keys)
                await phone.wait_bot()
            await phone.press("1")  # Mastercard ending 4444: press 1
            await phone.wait_bot()  # processing, then the result
            await phone.wait_bot()
            await phone.hangup()
            return phone

    phone = run(call())
    said = bot_said(stack, phone.call_sid)
    assert said[0] == "Hello Maria, let's take your payment of $50.00 now.", said
    assert not any("ZIP code on your account" in s or "account number" in s for s in said), said
    [payment] = rows(stack.engine, Payment)
    assert payment.status == PaymentStatus.SUCCEEDED and str(payment.amount) == "50.00"
    assert payment.conversation_id == f"call:{phone.call_sid}"

    def result() -> dict:
        return api(stack, "GET", f"/api/payment-sessions/{created['id']}").json()

    assert wait_until(lambda: result()["status"] == "succeeded", timeout_s=20), result()
    final = result()
    assert final["confirmation_number"] == payment.confirmation_number
    assert final["payment_method"] == {"brand": "mastercard", "last4": "4444"}
    assert final["failure_reason"] is None and final["amount"] == "50.00"
    assert TEST_CARD not in json.dumps(final)
    # The webhook: refused once (500), then accepted; the same key both times, never again.
    assert wait_until(lambda: len(receiver.accepted) == 1, timeout_s=20)
    [(key, body)] = receiver.accepted.items()
    assert receiver.attempts[key] == 2 and not receiver.duplicates and not receiver.bad_signatures
    assert body["session_id"] == created["id"] and body["status"] == "succeeded"
    assert body["confirmation_number"] == payment.confirmation_number
    assert body["method_last4"] == "4444" and body["reference"] == "INV-42"
    assert wait_until(lambda: [d.status for d in rows(stack.engine, SessionDelivery)]
                      == ["delivered"], timeout_s=10)
    time.sleep(2)  # a few more rounds of the job: nothing more
    assert receiver.attempts[key] == 2 and len(receiver.accepted) == 1


def test_a_call_that_ends_without_paying_fails_the_session_and_an_idle_one_expires(
    stack, fake_twilio, receiver
):
    first = create(stack, {"account_number": MARIA_ACCOUNT, "amount": "20.00",
                           "reference": "INV-7", "caller": MARIA, "callback_url": receiver.url})
    idle = create(stack, {"account_number": "100200300", "amount": "10.00",
                          "reference": "INV-8", "callback_url": receiver.url})
    assert first.status_code == idle.status_code == 201
    assert idle.json()["session_code"].isdigit() and len(idle.json()["session_code"]) == 6

    async def call():
        async with dial(stack, fake_twilio, MARIA) as phone:
            await phone.wait_bot()  # Hello Maria ... card or bank account?
            await phone.hangup()
            return phone

    run(call())
    with Session(stack.engine) as session:  # the idle session's time runs out
        session.execute(update(PaymentSession)
                        .where(PaymentSession.public_id == idle.json()["id"])
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()

    def status(answer) -> dict:
        return api(stack, "GET", f"/api/payment-sessions/{answer.json()['id']}").json()

    assert wait_until(lambda: status(first)["status"] == "failed", timeout_s=20), status(first)
    assert status(first)["failure_reason"] == "call_ended"
    assert wait_until(lambda: status(idle)["status"] == "expired", timeout_s=20), status(idle)
    assert wait_until(lambda: len(receiver.accepted) == 2, timeout_s=20)
    assert sorted(b["status"] for b in receiver.accepted.values()) == ["expired", "failed"]
    assert rows(stack.engine, Payment) == []


# --- tokens, idempotency, other clients' sessions -----------------------------------------------
def test_bad_tokens_answer_401_and_create_nothing(stack):
    body = {"account_number": MARIA_ACCOUNT, "amount": "5.00", "reference": "R"}
    for token in (None, "", "wrong", TOKEN + "x", TOKEN.upper(), _sha(TOKEN)):
        answer = create(stack, body, token=token)
        assert answer.status_code == 401, token
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert answer.json()["error"] == "unauthorized"
    basic = api(stack, "POST", "/api/payment-sessions", None, json=body,
                headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401
    assert api(stack, "GET", "/api/payment-sessions/ps_" + "0" * 32, "nope").status_code == 401
    assert session_count(stack) == 0
    assert api(stack, "GET", "/api/openapi.json", None).json()["openapi"].startswith("3.")


def test_idempotency_keys_other_clients_and_cancel(stack):
    body = {"account_number": MARIA_ACCOUNT, "amount": "12.34", "reference": "INV-1",
            "caller": MARIA}
    first = create(stack, body, key="k-1")
    again = create(stack, body, key="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    reused = create(stack, {**body, "amount": "12.35"}, key="k-1")
    assert reused.status_code == 422 and reused.json()["error"] == "idempotency_key_reused"
    assert reused.json()["field"] == "Idempotency-Key"
    assert session_count(stack) == 1
    # Keys are per client; another client never sees the first one's session.
    other = create(stack, body, token=OTHER_TOKEN, key="k-1")
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    session_id = first.json()["id"]
    assert api(stack, "GET", f"/api/payment-sessions/{session_id}", OTHER_TOKEN).status_code == 404
    assert api(stack, "POST", f"/api/payment-sessions/{session_id}/cancel",
               OTHER_TOKEN).status_code == 404
    assert api(stack, "GET", "/api/payment-sessions/ps_" + "f" * 32).status_code == 404
    assert api(stack, "GET", "/api/payment-sessions/../../etc").status_code == 404
    # A callback needs a webhook secret, which ivr2 has none of.
    no_secret = create(stack, {**body, "callback_url": "https://ivr.example.com/x"},
                       token=OTHER_TOKEN)
    assert no_secret.status_code == 422 and no_secret.json()["field"] == "callback_url"
    cancelled = api(stack, "POST", f"/api/payment-sessions/{session_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert api(stack, "GET", f"/api/payment-sessions/{session_id}").json()["status"] == "cancelled"
    assert session_count(stack) == 2
    # Sixteen racing POSTs with one key make one session.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: create(stack, {**body, "reference": "RACE"},
                                                 key="race"), range(16)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert session_count(stack) == 3


# --- fuzzed payloads ------------------------------------------------------------------------------
def _junk(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["int", "float", "str", "bool", "none", "list", "dict", "huge"]
    kind = rng.choice(kinds if depth < 2 else kinds[:5])
    if kind == "int":
        return rng.randint(-10**6, 10**6)
    if kind == "float":
        return rng.uniform(-1e6, 1e6)
    if kind == "str":
        return "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 40)))
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "none":
        return None
    if kind == "huge":
        return 10 ** rng.randint(20, 400)
    if kind == "list":
        return [_junk(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["amount", "caller", "x", ""]): _junk(rng, depth + 1)
            for _ in range(rng.randint(0, 3))}


BAD_VALUES = {
    "account_number": ["", "999999999", "1" * 33, "100 200", 100200300, None, "400500600"],
    "amount": ["0", "0.00", "-5.00", "5.001", "1e3", "NaN", "Infinity", "1" * 40, 50, 50.0,
               "", " 5.00", "5,00", "$5", "1000000000", "99999999999999999999", "9999.99"],
    "reference": ["", "x" * 65, 7, None, "tab\there", "é"],
    "caller": ["5555550111", "+1555", "+1555555011199999", "+0123456789", "phone", 15555550111,
               "+1 555 555 0111", "+15555550111x"],
    "callback_url": ["not a url", "ftp://x.example.com/", 5, "http://" + "a" * 2100 + ".com"],
}


def test_fuzzed_payloads_answer_4xx_naming_the_field_and_create_nothing(stack):
    seed = int(os.environ.get("PAYBOT_TEST_SEED") or random.SystemRandom().randrange(10**6))
    print(f"fuzzed payloads: PAYBOT_TEST_SEED={seed}")
    rng = random.Random(seed)
    good = {"account_number": MARIA_ACCOUNT, "amount": "5.00", "reference": "R", "caller": MARIA,
            "callback_url": "https://ivr.example.com/done"}
    # One bad field at a time: 422 naming it (400 only for bodies that are not JSON).
    for field, values in BAD_VALUES.items():
        for value in values:
            answer = create(stack, {**good, field: value})
            assert answer.status_code == 422, (field, value, answer.text)
            assert answer.json()["field"] == field, (field, value, answer.json())
    for field in ("account_number", "amount", "reference"):
        answer = create(stack, {k: v for k, v in good.items() if k != field})
        assert answer.status_code == 422 and answer.json()["field"] == field
    assert create(stack, {**good, "extra": 1}).json()["field"] == "extra"
    for raw in (b"", b"{", b"\xff\xfe", b"[1,", b"{'a': 1}"):
        answer = api(stack, "POST", "/api/payment-sessions", data=raw,
                     headers={"Content-Type": "application/json"})
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_json", raw
    too_big = api(stack, "POST", "/api/payment-sessions", data=b" " * 20000)
    assert too_big.status_code == 413
    assert create(stack, good, key="bad key with spaces").json()["field"] == "Idempotency-Key"
    # Random JSON of every type, and good payloads with a random field swapped for junk.
    for _ in range(150):
        if rng.random() < 0.4:
            body = _junk(rng)
        else:
            body = dict(good)
            for field in rng.sample(sorted(good), rng.randint(1, 3)):
                if rng.random() < 0.3:
                    body.pop(field)
                else:
                    body[field] = _junk(rng)
        answer = create(stack, body)
        if answer.status_code == 201:  # the junk happened to be valid (e.g. no caller)
            assert isinstance(body, dict) and body.get("account_number") == MARIA_ACCOUNT
            api(stack, "POST", f"/api/payment-sessions/{answer.json()['id']}/cancel")
            continue
        assert answer.status_code in (400, 422), (body, answer.text)
        error = answer.json()
        assert set(error) == {"error", "field", "message"} and error["message"]
    made = rows(stack.engine, PaymentSession)
    assert all(s.status == "cancelled" for s in made)
    assert not rows(stack.engine, SessionDelivery)
