"""A whole call from the browser softphone (``/phone``), in headless Chromium.

``paybot up`` runs the stack; Chromium's fake microphone plays a WAV of the run's caller voice
(tests/caller_voice.py) saying "card" between long silences, over and over. The page mutes
the microphone except for one word at the question where a word is needed; the rest is keyed
on the page's keypad: Robert's ZIP, a yes, then a new card (number, expiry, security code,
billing ZIP) in the secure capture, confirmed. The payment is in the database; the bot's audio
reached the page and was played (its marks echoed); the bridge heard the word as speech.
Screenshots go to artifacts/softphone-*.png.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import requests

from paybot.db.models import Call, Payment, PaymentStatus
from tests.caller_voice import caller_voice
from tests.console_browser import ARTIFACTS, chromium
from tests.helpers import rows
from tests.stack import RASA_TOKEN, Stack, wait_until
from tests.test_voice_calls import ROBERT, SECURITY_CODE, TEST_CARD, FakeTwilio, voice_stack_env
from voice_bridge.twilio.codec import TWILIO_RATE, resample, silence_pcm16, ulaw_to_pcm16, write_wav

# Longer than the suite's 600 s: on a busy machine the stack alone may take ten minutes to start.
pytestmark = [pytest.mark.services, pytest.mark.timeout(2400)]

WAV_RATE = 16000
SPOKEN = "card"  # the answer to "use your Mastercard ending 4444, or a new card...?"
LEADING_S, TRAILING_S = 2.5, 2.0  # silence around the word: one loop of the file is ~5 s
VOICED = 0.02  # the page's level (RMS, full scale 1) of a frame with speech in it
QUIET = 0.004  # ... of a silent one
WAIT_MS = 60_000
SAY_AT_MOST = 3  # the bot asks a question at most three times
STARTUP_S = 1200.0  # Rasa loads its model in a minute alone, in many beside other stacks

if shutil.which("espeak-ng") is None:
    pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)", allow_module_level=True)


@pytest.fixture(scope="module")
def fake_twilio():
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(tmp_path_factory, fake_twilio):
    """The voice tests' stack, given time to start on a busy machine."""
    stack = Stack.configure(tmp_path_factory.mktemp("voice"), **voice_stack_env(fake_twilio))
    stack.start(timeout_s=STARTUP_S)
    try:
        yield stack
    finally:
        code = stack.stop()
        if stack.engine is not None:
            stack.engine.dispose()
    assert code == 0, stack.log_tail()


@pytest.fixture(scope="module")
def microphone(tmp_path_factory) -> Path:
    """The fake microphone's WAV (16-bit PCM, as Chromium wants): silence, the word, silence."""
    ulaw = caller_voice().synthesize_blocking(SPOKEN)
    word = resample(ulaw_to_pcm16(ulaw), TWILIO_RATE, WAV_RATE)
    pcm = (
        silence_pcm16(LEADING_S * 1000, WAV_RATE)
        + word
        + silence_pcm16(TRAILING_S * 1000, WAV_RATE)
    )
    path = tmp_path_factory.mktemp("softphone") / "caller.wav"
    write_wav(path, pcm, WAV_RATE)
    return path


def stats(page: Any) -> dict[str, Any]:
    return page.evaluate("() => JSON.parse(JSON.stringify(window.softphone))")


def wait_bot(page: Any, heard: int, timeout_ms: int = WAIT_MS) -> int:
    """Wait until the page has played a reply past the ``heard`` already played (its last mark
    echoed), nothing is queued and no audio came for 0.4 s; the replies played by then."""
    page.wait_for_function(
        """(heard) => { const s = window.softphone;
            return s.state === "ended" || (s.repliesHeard > heard && s.queuedSeconds() === 0
                   && performance.now() - s.lastMediaAt > 400); }""",
        arg=heard,
        timeout=timeout_ms,
        polling=50,
    )
    return stats(page)["repliesHeard"]


def press(page: Any, keys: str) -> None:
    """Key ``keys`` on the page's keypad, as a caller would."""
    for key in keys:
        page.locator(f'#keypad button[data-digit="{key}"]').click()
        page.wait_for_timeout(120)


def speak_once(page: Any) -> None:
    """Let one whole utterance of the looping WAV through: unmute in the silence after the
    word, then mute again once the next word has been said and is followed by silence."""
    page.wait_for_function(f"() => window.softphone.level > {VOICED}", timeout=15_000, polling=20)
    page.wait_for_function(f"() => window.softphone.level < {QUIET}", timeout=15_000, polling=20)
    page.locator("#mute").click()  # unmute
    page.wait_for_function(f"() => window.softphone.level > {VOICED}", timeout=15_000, polling=20)
    page.wait_for_function(f"() => window.softphone.level < {QUIET}", timeout=15_000, polling=20)
    page.wait_for_timeout(800)  # the end of the turn is silence, as on a phone
    page.locator("#mute").click()  # mute again


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"softphone-{name}.png"), full_page=True)


def tracker_events(stack, call_sid: str) -> list[dict[str, Any]]:
    response = requests.get(
        f"{stack.rasa_url}/conversations/call:{call_sid}/tracker",
        params={"token": RASA_TOKEN}, timeout=30,
    )  # fmt: skip
    response.raise_for_status()
    return response.json()["events"]


def bot_said(stack, call_sid: str) -> list[str]:
    events = tracker_events(stack, call_sid)
    return [e["text"] for e in events if e["event"] == "bot" and e.get("text")]


def test_a_new_card_payment_from_the_browser_softphone(stack, microphone):
    stack.reset_data()
    fake_audio = [
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone}",
        "--autoplay-policy=no-user-gesture-required",
    ]  # fmt: skip
    with chromium(*fake_audio) as browser:
        context = browser.new_context(permissions=["microphone"])
        page = context.new_page()
        answer = page.goto(stack.bridge_url + "/phone")
        assert answer.status == 200
        assert "microphone=(self)" in answer.headers["permissions-policy"]
        shot(page, "ready")
        page.get_by_label("Calling from").fill(ROBERT)
        page.get_by_label("Start with the microphone muted").check()  # it speaks when asked to
        page.get_by_role("button", name="Call").click()
        page.wait_for_function("() => window.softphone.state !== 'dialing'", timeout=WAIT_MS)
        assert stats(page)["muted"] and page.inner_text("#mute") == "Unmute"
        call_sid = stats(page)["callSid"]
        assert call_sid, stats(page)
        stack.track(f"call:{call_sid}")

        heard = wait_bot(page, 0)  # welcome; the billing ZIP code, please
        press(page, "60601#")
        heard = wait_bot(page, heard)  # Hello Robert, ready to pay ...?
        press(page, "1")  # yes
        heard = wait_bot(page, heard)  # your Mastercard ending 4444, or a new card?
        shot(page, "listening")
        # "card": a new one. The run's voice is drawn at random and the recogniser may miss a
        # word; the bot then asks again and the caller says it again, as a caller would.
        for _attempt in range(SAY_AT_MOST):
            speak_once(page)
            heard = wait_bot(page, heard)  # to confirm ... shall I go ahead?
            said = bot_said(stack, call_sid)
            if "go ahead" in said[-1]:
                break
        assert "go ahead" in said[-1] and "new card" in said[-1], said
        press(page, "1")
        heard = wait_bot(page, heard)  # key in your card number
        for keys in (TEST_CARD + "#", "1230", SECURITY_CODE, "60601", "1"):
            press(page, keys)
            heard = wait_bot(page, heard)
        assert wait_until(lambda: rows(stack.engine, Payment), timeout_s=30)
        # The bot reads the confirmation and asks what else: wait until it is quiet, waiting for
        # an answer, every reply played and its mark echoed.
        page.wait_for_function(
            """() => { const s = window.softphone; return s.marksEchoed === s.marksReceived
                       && s.queuedSeconds() === 0 && performance.now() - s.lastMediaAt > 1500; }""",
            timeout=WAIT_MS, polling=100,
        )  # fmt: skip
        shot(page, "paid")
        seen = stats(page)
        assert TEST_CARD not in page.content() and SECURITY_CODE not in page.inner_text("body")
        page.get_by_role("button", name="Hang up").click()
        page.wait_for_function("() => window.softphone.state === 'ended'", timeout=10_000)
        assert page.inner_text("#status") == "You hung up"
        shot(page, "ended")
        context.close()

    [payment] = rows(stack.engine, Payment)
    assert payment.status == PaymentStatus.SUCCEEDED and payment.channel == "voice"
    assert payment.conversation_id == f"call:{call_sid}"
    events = tracker_events(stack, call_sid)
    spoken = " ".join(bot_said(stack, call_sid))
    assert payment.confirmation_number in spoken.replace(" ", "").replace(",", "")
    # The bot's audio reached the page and played: its marks came back.
    assert seen["mediaReceived"] >= 10 and seen["samplesReceived"] > 30 * TWILIO_RATE, seen
    # Every mark is echoed once its audio played.
    assert seen["marksReceived"] >= heard and seen["marksEchoed"] == seen["marksReceived"], seen
    # The microphone's word reached the bridge, which heard it as speech.
    assert seen["voicedFramesSent"] > 10 and seen["keysSent"] >= 30, seen
    turns = [e for e in events if e["event"] == "user"]
    speech = [e for e in turns if (e.get("metadata") or {}).get("input") == "speech"]
    assert speech and SPOKEN in speech[0]["text"].lower(), [e.get("text") for e in turns]
    # The call is on record as a softphone call, ended; no card digits in the page's log.
    [call] = [c for c in rows(stack.engine, Call) if c.call_sid == call_sid]
    assert call.direction == "softphone" and call.status == "completed", call
    assert call.caller == ROBERT
    assert TEST_CARD not in json.dumps(seen) and TEST_CARD not in stack.all_output()
    assert os.path.exists(ARTIFACTS / "softphone-paid.png")
