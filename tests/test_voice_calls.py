"""End-to-end phone calls over the real Media Streams protocol.

``paybot up`` runs the Rasa server, the action server and the bridge; a local fake of
Twilio's REST API (tests/fake_twilio.py) takes the bridge's call updates (transfer, hang-up)
and SMS; :class:`twilio_sim.CallerSession` (what ``paybot call`` runs) places each
call the way Twilio does: a signed voice webhook, then the websocket with real-time 20 ms
μ-law frames of espeak-ng speech, keypad presses as ``dtmf`` events, and Twilio's playback
of the bot's audio with mark echoes. The bot hears through PocketSphinx and speaks with Piper.

Afterwards each test checks the database, what the bot said (Rasa's tracker) and what the
bridge asked of Twilio; card numbers must not appear in any table, log or tracker.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from collections.abc import Iterator

import pytest
import requests
from sqlmodel import Session, select

from paybot.db.models import Account, Call, Payment, PaymentStatus, VerificationFailure
from paybot.settings import load_settings
from tests import cardscan
from tests.caller_voice import caller_voice
from tests.fake_twilio import FakeTwilio
from tests.helpers import rows
from tests.questions import assert_no_question_over
from tests.stack import RASA_TOKEN, Stack
from twilio_sim import CallerSession
from twilio_sim.voice import EspeakVoice

pytestmark = pytest.mark.services

JAMES = "+15555550100"
ROBERT = "+15555550122"
UNKNOWN = "+15555550999"
AGENT_LINE = "+15555559999"
BUSINESS_LINE = "+15555550000"
TEST_CARD = cardscan.keyed_card("5555555555554444")
SECURITY_CODE = cardscan.keyed_code("739")  # distinctive: the card-data scan looks for it
NOT_AN_ACCOUNT = cardscan.keyed_card("4000000000000002")  # a test card, keyed for the account
ZIP_ASK = "To keep your account safe, please say or key in the billing ZIP code on your account."
JAMES_GREETING = "Hello James, are you ready to make your payment of $321.72 now?"

if shutil.which("espeak-ng") is None:
    if os.environ.get("CI"):
        raise RuntimeError("espeak-ng is missing: the voice tests need it (apt install espeak-ng)")
    pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)", allow_module_level=True)


@pytest.fixture(scope="module")
def fake_twilio():
    with FakeTwilio() as fake:
        yield fake


def voice_stack_env(fake_twilio) -> dict[str, str]:
    """The settings a stack taking these calls needs (Twilio is ``fake_twilio``)."""
    return dict(
        **fake_twilio.env(),
        PAYBOT_TRANSFER_TO=AGENT_LINE,
        PAYBOT_SMS_FROM=BUSINESS_LINE,
        PAYBOT_SMS_SEND_INTERVAL_S="0.5",
        PAYBOT_SCHEDULER_INTERVAL_S="0",
    )


def voice_stack(tmp_path_factory, fake_twilio, **extra: str) -> Iterator[Stack]:
    """The stack these calls need, stopped (cleanly) afterwards."""
    stack = Stack.configure(
        tmp_path_factory.mktemp("voice"), **{**voice_stack_env(fake_twilio), **extra}
    )
    stack.start()
    try:
        yield stack
    finally:
        code = stack.stop()
        if stack.engine is not None:
            stack.engine.dispose()
    assert code == 0, stack.log_tail()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, fake_twilio):
    yield from voice_stack(tmp_path_factory, fake_twilio)


@pytest.fixture(autouse=True)
def fresh_data(stack, fake_twilio):
    stack.reset_data()
    fake_twilio.requests.clear()


_DIALED: list[str] = []


@pytest.fixture(autouse=True)
def questions_checked(stack):
    """After each test, no call it placed asked any question more than three times in a row
    (tests/questions.py)."""
    _DIALED.clear()
    yield
    for call_sid in _DIALED:
        assert_no_question_over(stack.rasa_url, call_sid)


def dial(
    stack: Stack, fake: FakeTwilio, caller: str, voice: EspeakVoice | None = None
) -> CallerSession:
    """A call from ``caller``, speaking with ``voice`` (default: the run's caller voice,
    tests/caller_voice.py)."""
    settings = load_settings(
        **fake.settings_overrides(), bridge_port=int(stack.env["PAYBOT_BRIDGE_PORT"])
    )
    session = CallerSession(
        settings=settings,
        from_=caller,
        voice=voice or caller_voice(),
        wait_timeout_s=45.0,
    )
    _DIALED.append(session.call_sid)
    return session


def bot_said(stack: Stack, call_sid: str) -> list[str]:
    response = requests.get(
        f"{stack.rasa_url}/conversations/call:{call_sid}/tracker",
        params={"token": RASA_TOKEN},
        timeout=30,
    )
    response.raise_for_status()
    return [e["text"] for e in response.json()["events"] if e["event"] == "bot" and e.get("text")]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 240))


def call_row(stack: Stack, call_sid: str) -> Call:
    with Session(stack.engine) as session:
        return session.exec(select(Call).where(Call.call_sid == call_sid)).one()


STUTTER_FRAMES = 50  # 1 s: one reply's gap on a machine the suite itself overloads


def assert_no_stutter(result) -> None:
    """The bot's audio reached the caller without gaps, but for at most one reply with at
    most :data:`STUTTER_FRAMES` late frames. ``make test`` runs three workers on two cores,
    so now and then a piece is synthesised after the audio before it has played (the bridge
    logs "reply N went out K frames late"); a bridge that paced its audio wrongly would leave
    gaps in reply after reply. Zero late frames under load is the soak benchmark's target
    (``bench/bench_soak.py``), measured on a quiet machine."""
    late = {turn.index: turn.late_frames for turn in result.bot_turns if turn.late_frames}
    assert len(late) <= 1 and sum(late.values()) <= STUTTER_FRAMES, late


def assert_no_card_digits_anywhere(stack: Stack, call_sid: str) -> None:
    assert TEST_CARD not in stack.all_output()
    with stack.engine.connect() as conn:
        for table in ("payments", "payment_methods", "audit_events", "ledger_entries", "calls"):
            dump = " ".join(str(r) for r in conn.exec_driver_sql(f"SELECT * FROM {table}"))  # noqa: S608
            assert TEST_CARD not in dump, table
    tracker = requests.get(
        f"{stack.rasa_url}/conversations/call:{call_sid}/tracker",
        params={"token": RASA_TOKEN},
        timeout=30,
    ).text
    assert TEST_CARD not in tracker
    assert cardscan.scan_tracker(json.loads(tracker), call_sid) == []
    assert cardscan.scan_engine(stack.engine, "voice stack") == []


# --- James pays with his stored card by voice ---------------------------------------------------
def test_james_pays_with_stored_card_by_voice(stack, fake_twilio):
    async def call():
        async with dial(stack, fake_twilio, JAMES) as phone:
            await phone.wait_bot()  # welcome; the billing ZIP code, please
            await phone.press("94107#")
            greeting = await phone.wait_bot()
            await phone.say("yes")
            await phone.wait_bot()
            await phone.say("yes please")  # the Visa ending 4242
            await phone.wait_bot()
            await phone.say("yes")  # go ahead
            await phone.wait_bot()
            await phone.say("yes")  # a receipt by text, please
            await phone.wait_bot()
            await phone.say("no")  # nothing else
            await phone.wait_ended(30)
            return phone, greeting

    phone, greeting = run(call())
    said = bot_said(stack, phone.call_sid)
    # Caller ID is a hint: the ZIP first, with nothing about James; then the greeting.
    assert said[:3] == ["Welcome to the payment line.", ZIP_ASK, JAMES_GREETING]
    assert greeting.audio_s > 2.0  # it was spoken, not just sent
    [payment] = rows(stack.engine, Payment)
    assert payment.status == PaymentStatus.SUCCEEDED and payment.channel == "voice"
    assert payment.conversation_id == f"call:{phone.call_sid}"
    spoken = " ".join(said)
    assert "confirmation number is" in spoken
    digits = re.sub(r"\D", "", spoken.split("confirmation number is", 1)[1].split(".")[0])
    assert digits == payment.confirmation_number
    result = phone.result()
    assert result.bridge_closed
    assert_no_stutter(result)
    # The bot hung up through Twilio's REST API once its goodbye had played.
    [hangup] = fake_twilio.calls(phone.call_sid)
    assert hangup.form.get("Status") == "completed"
    assert call_row(stack, phone.call_sid).ended_reason
    # The receipt went out by SMS through Twilio's REST API, once.
    fake_twilio.wait_for(lambda fake: len(fake.messages()) >= 1, timeout_s=15)
    [receipt] = fake_twilio.messages()
    assert receipt.form["To"] == JAMES and receipt.form["From"] == BUSINESS_LINE
    assert payment.confirmation_number in receipt.form["Body"].replace("-", "")


def test_a_text_message_reaches_the_bot_and_is_answered(stack, fake_twilio):
    from voice_bridge.twilio.signature import sign

    url = stack.bridge_url + "/twilio/sms"

    def text(body: str, sid: str, signature: str | None = None) -> requests.Response:
        params = {"MessageSid": sid, "From": JAMES, "To": BUSINESS_LINE, "Body": body,
                  "AccountSid": fake_twilio.account_sid}
        signature = signature or sign(url, params, fake_twilio.auth_token)
        return requests.post(
            url, data=params, headers={"X-Twilio-Signature": signature}, timeout=60
        )

    # The bridge vouches for the sender's number: the bot knows it, and asks the ZIP first.
    answer = text("what's my balance?", "SM" + "1" * 32)
    assert answer.status_code == 200 and "<Message>" in answer.text
    assert "ZIP code on your account" in answer.text and "$321.72" not in answer.text
    answer = text("94107", "SM" + "2" * 32)
    assert "$321.72" in answer.text
    forged = text("what's my balance?", "SM" + "3" * 32, signature="x")
    assert forged.status_code == 403


def text_the_bot(stack: Stack, fake: FakeTwilio, sender: str, body: str) -> str:
    from twilio_sim.webhook import new_sid
    from voice_bridge.twilio.signature import sign

    stack.track(f"sms:{sender}")
    params = {"MessageSid": new_sid("SM"), "From": sender, "To": BUSINESS_LINE, "Body": body,
              "AccountSid": fake.account_sid}  # fmt: skip
    url = stack.bridge_url + "/twilio/sms"
    headers = {"X-Twilio-Signature": sign(url, params, fake.auth_token)}
    answer = requests.post(url, data=params, headers=headers, timeout=60)
    assert answer.status_code == 200
    return answer.text


def test_a_card_number_texted_for_the_account_number_is_refused_and_never_kept(
    stack, fake_twilio
):
    assert "account number" in text_the_bot(stack, fake_twilio, UNKNOWN, "hi")
    answer = text_the_bot(stack, fake_twilio, UNKNOWN, "it's 4000 0000 0000 0002")
    assert "we never take card numbers that way" in answer
    assert "account number" in answer  # and the question again
    assert rows(stack.engine, VerificationFailure) == []
    assert "Hello James" not in text_the_bot(stack, fake_twilio, UNKNOWN, "100200300")
    assert "Hello James" in text_the_bot(stack, fake_twilio, UNKNOWN, "94107")
    tracker = requests.get(
        f"{stack.rasa_url}/conversations/sms:{UNKNOWN}/tracker",
        params={"token": RASA_TOKEN},
        timeout=30,
    ).json()
    assert cardscan.scan_tracker(tracker, "sms") == []
    assert NOT_AN_ACCOUNT not in stack.all_output()


# --- bad frames never crash a call ----------------------------------------------------------
def test_malformed_frames_are_ignored_and_the_call_goes_on(stack, fake_twilio):
    async def call():
        async with dial(stack, fake_twilio, JAMES) as phone:
            await phone.wait_bot()
            await phone.press("94107#")
            await phone.wait_bot()
            for frame in (
                "not json",
                '{"event": "dance"}',
                '{"event": "media", "streamSid": "MZ1"}',
                '{"event": "dtmf", "dtmf": {"digit": "x"}}',
                '{"event": "media", "media": {"payload": "***"}}',
                b"\x00\x01binary",
            ):
                await phone.line.send_raw(frame)
            await phone.say("yes")
            method = await phone.wait_bot()
            await phone.hangup()
            return phone, method

    phone, method = run(call())
    assert "Visa ending 4242" in bot_said(stack, phone.call_sid)[-1]
    assert method.audio_s > 1.0
    log = stack.wait_for_output("ignored a malformed frame", "ignored a non-text frame")
    assert "ignored a malformed frame" in log and "ignored a non-text frame" in log


def test_stream_without_a_valid_token_is_refused(stack, fake_twilio):
    from twilio_sim.webhook import new_sid
    from voice_bridge.twilio.messages import Start

    async def attempt(token: str) -> int | None:
        import aiohttp

        url = stack.bridge_url.replace("http", "ws") + "/twilio/stream"
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            start = Start(new_sid("MZ"), new_sid("CA"), new_sid("AC"), {"token": token})
            await ws.send_str(start.to_json())
            await ws.receive(timeout=10)
            return ws.close_code

    assert asyncio.run(attempt("forged")) == 1008
    assert "refused" in stack.wait_for_output("refused")


def test_a_call_is_answered_and_streamed_once(stack, fake_twilio):
    """During a call, a replay of its signed voice webhook gets 409 and no token, and a
    second websocket with the call's own token is refused; the call goes on."""
    import aiohttp

    from twilio_sim.webhook import WebhookError, post_voice_webhook, voice_params
    from voice_bridge.twilio.messages import Start

    async def call():
        async with dial(stack, fake_twilio, JAMES) as phone:
            await phone.wait_bot()
            params = voice_params(call_sid=phone.call_sid, account_sid=phone.account_sid,
                                  caller=phone.caller, called=phone.called)
            async with aiohttp.ClientSession() as http:
                with pytest.raises(WebhookError, match="409"):
                    await post_voice_webhook(http, phone.url, phone.settings, params)
                async with http.ws_connect(phone.target.url) as ws:
                    start = Start(phone.stream_sid + "2", phone.call_sid, phone.account_sid,
                                  dict(phone.target.parameters))
                    await ws.send_str(start.to_json())
                    closed = await ws.receive(timeout=10)
                    second = (ws.close_code, closed.extra)
            await phone.press("94107#")
            await phone.wait_bot()
            await phone.say("yes")
            method = await phone.wait_bot()
            await phone.hangup()
            return phone, method, second

    phone, method, second = run(call())
    assert second == (1008, "token already used")
    assert "Visa ending 4242" in bot_said(stack, phone.call_sid)[-1]
    assert method.audio_s > 1.0


# --- an unknown caller speaks his account number and ZIP ------------------------------------
def test_unknown_caller_speaks_account_number_and_zip(stack, fake_twilio):
    account, zip_code = "one zero zero two zero zero three zero zero", "nine four one zero seven"

    digits = {account: "100200300", zip_code: "94107"}

    async def call():
        async with dial(stack, fake_twilio, UNKNOWN) as phone:
            await phone.wait_bot()  # what's your account number?
            last = account
            for _turn in range(8):  # asked again after a mishearing, a caller repeats himself
                said = bot_said(stack, phone.call_sid)
                if any("Hello James" in text for text in said):
                    break
                if "Is that right?" in said[-1]:  # the engine gives no confidence: read back
                    heard = re.sub(r"\D", "", said[-1])
                    await phone.say("yes" if heard == digits[last] else "no")
                else:
                    last = zip_code if "ZIP" in said[-1] else account
                    await phone.say(last)
                await phone.wait_bot()
            await phone.hangup()
            return phone

    phone = run(call())
    said = bot_said(stack, phone.call_sid)
    assert any("account number" in text for text in said[:2]), said
    assert any("ZIP" in text for text in said), said
    assert any("Hello James" in text for text in said), said


# --- a misheard ZIP: the keypad, then an agent ------------------------------------------------
KEYPAD_HINT = "type it on your keypad"
AGENT_OFFER = "say agent and I'll put you through"


def test_a_misheard_zip_gets_the_keypad_then_an_agent(stack, fake_twilio):
    """The caller's ZIP is misheard twice (he says too few digits, or refuses what was read
    back): the bot offers the keypad, then an agent; it never asks a fourth time."""

    async def call():
        async with dial(stack, fake_twilio, JAMES) as phone:
            await phone.wait_bot()  # welcome; the billing ZIP code, please
            for _turn in range(6):
                said = bot_said(stack, phone.call_sid)
                if any(AGENT_OFFER in text for text in said):
                    break
                await phone.say("no" if "Is that right?" in said[-1] else "four two")
                await phone.wait_bot()
            await phone.hangup()
            return phone

    phone = run(call())
    said = bot_said(stack, phone.call_sid)
    keypad = next(i for i, text in enumerate(said) if KEYPAD_HINT in text)
    agent = next(i for i, text in enumerate(said) if AGENT_OFFER in text)
    assert keypad < agent, said
    assert sum(text == ZIP_ASK for text in said) <= 3, said
    assert said[agent + 1] == ZIP_ASK  # the third and last ask, with the keypad and agent named
    # Every spoken ZIP was read back first (PocketSphinx gives no confidence): no attempt used.
    assert rows(stack.engine, VerificationFailure) == []


# --- the same by keypad ------------------------------------------------------------------------
def test_caller_keys_account_number_and_zip(stack, fake_twilio):
    async def call():
        async with dial(stack, fake_twilio, UNKNOWN) as phone:
            await phone.wait_bot()
            await phone.press("100200300#")
            await phone.wait_bot()
            await phone.press("94107")  # no '#': the inter-digit timeout ends it
            await phone.wait_bot()
            await phone.hangup()
            return phone

    phone = run(call())
    said = bot_said(stack, phone.call_sid)
    assert any("Hello James" in text for text in said), said


# --- barge-in ----------------------------------------------------------------------------------
def test_barge_in_stops_the_bot_and_is_the_next_turn(stack, fake_twilio):
    async def call():
        async with dial(stack, fake_twilio, JAMES) as phone:
            await phone.wait_bot()
            await phone.press("94107#")
            await phone.barge_in("yes please", after_ms=1200)  # over the greeting (a turn over
            # the bot needs 500 ms of speech: a bare "yes" from this voice is 0.4 s of it)
            method = await phone.wait_bot()
            await phone.hangup()
            return phone, method

    phone, method = run(call())
    result = phone.result()
    greeting = result.bot_turns[1]  # after the ZIP question
    assert greeting.interrupted and greeting.played_bytes < 5 * 8000
    said = bot_said(stack, phone.call_sid)
    assert said[-2] == JAMES_GREETING
    assert "Visa ending 4242" in said[-1]  # the barge-in was taken as "yes"
    assert method.audio_s > 1.0


def test_short_noise_does_not_interrupt(stack, fake_twilio):
    async def call():
        async with dial(stack, fake_twilio, JAMES) as phone:
            await phone.wait_bot()
            await phone.press("94107#")
            await phone.barge_in("mm", after_ms=800)  # a backchannel
            for _ in range(300):  # the greeting plays on to its end
                if phone.result().bot_turns[1].ended_by:
                    break
                await asyncio.sleep(0.1)
            await phone.hangup()
            return phone

    phone = run(call())
    assert not phone.result().bot_turns[1].interrupted


def test_the_fee_disclosure_plays_to_the_end(stack, fake_twilio):
    async def call():
        async with dial(stack, fake_twilio, JAMES) as phone:
            await phone.wait_bot()
            await phone.press("94107#")
            await phone.wait_bot()
            await phone.say("yes")
            await phone.wait_bot()
            await phone.say("yes please")  # the Visa; next: the total with the $2.00 fee
            await phone.barge_in("yes", after_ms=1500)  # over the disclosure: not taken
            for _ in range(300):  # let the disclosure play out
                if phone.result().bot_turns[-1].ended_by:
                    break
                await asyncio.sleep(0.1)
            await phone.say("yes")
            await phone.wait_bot()
            await phone.hangup()
            return phone

    phone = run(call())
    disclosure = phone.result().bot_turns[3]
    assert not disclosure.interrupted and disclosure.ended_by == "end_mark"
    said = bot_said(stack, phone.call_sid)
    assert "$2.00" in said[said.index(JAMES_GREETING) + 2]
    [payment] = rows(stack.engine, Payment)
    assert payment.status == PaymentStatus.SUCCEEDED


# --- transfer ----------------------------------------------------------------------------------
def test_operator_key_transfers_to_an_agent_with_context(stack, fake_twilio):
    async def call():
        async with dial(stack, fake_twilio, JAMES) as phone:
            await phone.wait_bot()
            await phone.press("94107#")
            await phone.wait_bot()
            await phone.press("0#")
            await phone.wait_bot()
            await phone.wait_ended(30)
            return phone

    phone = run(call())
    [update] = fake_twilio.calls(phone.call_sid)
    twiml = update.form["Twiml"]
    assert "<Dial" in twiml and AGENT_LINE in twiml
    assert phone.result().bridge_closed
    assert "transfer" in (call_row(stack, phone.call_sid).ended_reason or "")


# --- new card by secure capture -----------------------------------------------------------------
def _to_capture(phone: CallerSession):
    async def steps():
        await phone.wait_bot()  # the billing ZIP code, please
        await phone.press("60601#")
        await phone.wait_bot()  # Hello Robert ...
        await phone.say("yes")
        await phone.wait_bot()  # your Mastercard ending 4444? or a new card ...
        await phone.say("no")
        await phone.wait_bot()  # card or bank account?
        await phone.say("card")
        await phone.wait_bot()  # to confirm ... shall I go ahead?
        await phone.say("yes")
        await phone.wait_bot()  # key in your card number

    return steps()


def test_new_card_keyed_in_secure_capture_pays(stack, fake_twilio):
    async def call():
        async with dial(stack, fake_twilio, ROBERT) as phone:
            await _to_capture(phone)
            await phone.press(TEST_CARD + "#")
            await phone.wait_bot()  # expiry
            await phone.press("1230")
            await phone.wait_bot()  # security code
            await phone.press(SECURITY_CODE)
            await phone.wait_bot()  # ZIP
            await phone.press("60601")
            await phone.wait_bot()  # Mastercard ending 4444, press 1
            await phone.press("1")
            await phone.wait_bot()  # processing, then the bot's result
            await phone.wait_bot()
            await phone.hangup()
            return phone

    phone = run(call())
    [payment] = rows(stack.engine, Payment)
    assert payment.status == PaymentStatus.SUCCEEDED and payment.method_last4 == "4444"
    assert any("was successful" in text for text in bot_said(stack, phone.call_sid))
    assert_no_card_digits_anywhere(stack, phone.call_sid)


# --- hang-up mid-payment ------------------------------------------------------------------------
def test_hang_up_while_keying_the_card_leaves_no_payment(stack, fake_twilio):
    async def call():
        async with dial(stack, fake_twilio, ROBERT) as phone:
            await _to_capture(phone)
            await phone.press(TEST_CARD[:8])
            await phone.hangup()
            return phone

    phone = run(call())
    assert rows(stack.engine, Payment) == []
    with Session(stack.engine) as session:
        robert = session.exec(select(Account).where(Account.phone == ROBERT)).one()
    assert str(robert.balance) == "1250.00"
    assert "caller" in (call_row(stack, phone.call_sid).ended_reason or "")
    assert_no_card_digits_anywhere(stack, phone.call_sid)


def test_hang_up_right_after_confirming_settles_the_payment(stack, fake_twilio):
    async def call():
        async with dial(stack, fake_twilio, ROBERT) as phone:
            await _to_capture(phone)
            for keys in (TEST_CARD + "#", "1230", SECURITY_CODE, "60601"):
                await phone.press(keys)
                await phone.wait_bot()
            await phone.press("1")
            await phone.hangup()  # before the bot can say anything
            return phone

    phone = run(call())
    settled = (PaymentStatus.SUCCEEDED, PaymentStatus.DECLINED, PaymentStatus.FAILED)
    assert stack_wait(lambda: rows(stack.engine, Payment) and all(
        p.status in settled for p in rows(stack.engine, Payment)))
    [payment] = rows(stack.engine, Payment)
    assert payment.status == PaymentStatus.SUCCEEDED  # charged once, recorded consistently
    assert_no_card_digits_anywhere(stack, phone.call_sid)


def stack_wait(predicate, timeout_s: float = 15.0) -> bool:
    from tests.stack import wait_until

    return wait_until(predicate, timeout_s)


# --- card numbers outside the capture, and the keypad around it -------------------------------
def test_a_card_number_keyed_for_the_account_number_is_refused_and_never_kept(
    stack, fake_twilio
):
    async def call():
        async with dial(stack, fake_twilio, UNKNOWN) as phone:
            await phone.wait_bot()  # what's your account number?
            await phone.press(NOT_AN_ACCOUNT + "#")
            await phone.wait_bot()
            await phone.press("100200300#")
            await phone.wait_bot()
            await phone.press("94107#")
            await phone.wait_bot()
            await phone.hangup()
            return phone

    phone = run(call())
    said = bot_said(stack, phone.call_sid)
    assert any("only keyed in on the secure payment step" in t for t in said)
    assert any("Hello James" in text for text in said), said
    assert rows(stack.engine, VerificationFailure) == []
    assert NOT_AN_ACCOUNT not in stack.all_output()
    assert_no_card_digits_anywhere(stack, phone.call_sid)


async def press_while_the_bot_speaks(phone: CallerSession, keys: str, after_ms: float = 300):
    """Press ``keys`` once the bot's reply to the caller's last action has played a little."""
    for _ in range(600):
        turn = phone.log.reply_started_since(phone.log.last_action_at)
        if turn is not None and turn.played_bytes >= after_ms * 8:
            assert not turn.done, "the reply ended before the keys"
            return await phone.press(keys)
        await asyncio.sleep(0.05)
    raise AssertionError("the bot did not start its reply")


def user_texts(stack: Stack, call_sid: str) -> list[str]:
    tracker = requests.get(
        f"{stack.rasa_url}/conversations/call:{call_sid}/tracker",
        params={"token": RASA_TOKEN},
        timeout=30,
    ).json()
    return [e.get("text") or "" for e in tracker["events"] if e["event"] == "user"]


def test_keys_pressed_during_the_capture_intro_belong_to_the_capture(stack, fake_twilio):
    async def call():
        async with dial(stack, fake_twilio, ROBERT) as phone:
            await phone.wait_bot()  # the billing ZIP code, please
            await phone.press("60601#")
            await phone.wait_bot()  # Hello Robert ...
            for answer in ("yes", "no", "card"):
                await phone.say(answer)
                await phone.wait_bot()
            await phone.say("yes")  # go ahead: the capture's intro plays
            await press_while_the_bot_speaks(phone, TEST_CARD + "#")
            await phone.wait_bot()  # expiry
            for keys in ("1230", SECURITY_CODE, "60601", "1"):
                await phone.press(keys)
                await phone.wait_bot()
            await phone.wait_bot()
            await phone.hangup()
            return phone

    phone = run(call())
    [payment] = rows(stack.engine, Payment)
    assert payment.status == PaymentStatus.SUCCEEDED and payment.method_last4 == "4444"
    texts = user_texts(stack, phone.call_sid)
    assert not any("5555" in text or "4444" in text for text in texts), texts  # none to Rasa
    assert_no_card_digits_anywhere(stack, phone.call_sid)


def test_keys_after_a_failed_capture_do_not_reach_the_bot(stack, fake_twilio):
    wrong = "5555555555554445"  # fails the Luhn check; 16 digits end the entry

    async def call():
        async with dial(stack, fake_twilio, ROBERT) as phone:
            await _to_capture(phone)
            for attempt in range(3):
                await phone.press(wrong)
                if attempt < 2:
                    await phone.wait_bot()  # that's not valid; key it again
            await phone.press("55555555")  # the capture failed; the caller goes on keying
            await phone.wait_bot()
            await phone.wait(4.0)  # past the keypad's inter-digit timeout
            await phone.hangup()
            return phone

    phone = run(call())
    assert rows(stack.engine, Payment) == []
    texts = user_texts(stack, phone.call_sid)
    assert not any("5555" in text for text in texts), texts
    assert_no_card_digits_anywhere(stack, phone.call_sid)
