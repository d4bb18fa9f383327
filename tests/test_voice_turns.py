"""Turn-taking over the real stack: a burst of callers, and barge-in.

With ten calls arriving within a second, every part of the bridge is busy at the same moment
(Rasa's first turns, Piper, the speech pool); a caller who answers the welcome must still get
an answer to what they said, never the no-input prompt ("Sorry, I didn't hear anything"),
whether they say the ZIP code or key it slowly (a key is not silence). Over the bot, a spoken
"agent" interrupts it; a noise burst or a cough does not.
"""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest

from tests.questions import tracker_events
from tests.test_voice_calls import (  # noqa: F401 - fake_twilio, stack: the fixtures
    JAMES,
    JAMES_GREETING,
    ZIP_ASK,
    dial,
    fake_twilio,
    questions_checked,
    run,
    stack,
)
from voice_bridge.twilio.codec import pcm16_to_ulaw, samples_to_bytes

pytestmark = pytest.mark.services

CALLS = 10
NO_INPUT = "didn't hear anything"


def test_ten_callers_at_once_are_all_heard_after_the_greeting(stack, fake_twilio):  # noqa: F811
    rng = random.Random(12)
    delays = sorted(rng.uniform(0, 1.0) for _ in range(CALLS))

    async def one_call(delay_s: float, keyed: bool):
        await asyncio.sleep(delay_s)
        async with dial(stack, fake_twilio, JAMES) as phone:
            await phone.wait_bot(60)  # the welcome: what is your billing ZIP code?
            if keyed:  # slowly: 7.5 s of keying, close to the bot's 8 s no-input time
                await phone.press("94107#", gap_ms=1500)
            else:
                await phone.say("nine four one zero seven")
            await phone.wait_bot(60)  # the answer to it, whatever was heard
            await phone.hangup()
            return phone

    async def burst():
        return await asyncio.gather(*(one_call(d, i % 2 == 1) for i, d in enumerate(delays)))

    phones = run(burst())
    for phone in phones:
        events = tracker_events(stack.rasa_url, f"call:{phone.call_sid}")
        intents = [
            (e.get("parse_data") or {}).get("intent", {}).get("name")
            for e in events
            if e["event"] == "user"
        ]
        said = [e["text"] for e in events if e["event"] == "bot" and e.get("text")]
        assert "silence" not in intents, (phone.call_sid, said)
        assert not any(NO_INPUT in text for text in said), (phone.call_sid, said)
        assert any(ZIP_ASK in text for text in said), said
        first = phone.result().caller_turns[0]
        assert first.response_latency_ms is not None, phone.call_sid


def noise_burst(seed: int) -> bytes:
    """A loud burst of noise, then a cough-like one: μ-law, 1.3 s."""
    rng = np.random.default_rng(seed)
    hiss = rng.normal(0, 32768 * 10 ** (-14 / 20), 8 * 700)
    n = 8 * 350
    t = np.arange(n) / 8000
    cough = rng.normal(0, 1, n)
    smooth = np.convolve(cough, np.ones(25) / 25, "same")
    cough = np.convolve(cough, np.ones(3) / 3, "same") - smooth  # roughly 300-2500 Hz
    cough *= 32768 * 0.3 * np.minimum(t / 0.01, 1.0) * np.exp(-t / 0.1)
    pcm = np.concatenate([hiss, np.zeros(8 * 250), cough])
    return pcm16_to_ulaw(samples_to_bytes(np.clip(pcm, -32767, 32767)))


def test_noise_and_a_cough_over_the_bot_do_not_interrupt_it(stack, fake_twilio):  # noqa: F811
    async def call():
        async with dial(stack, fake_twilio, JAMES) as phone:
            await phone.wait_bot()
            await phone.press("94107#")
            greeting = None
            while greeting is None or greeting.played_bytes < 8 * 600:  # the greeting plays
                await asyncio.sleep(0.05)
                greeting = phone.log.reply_started_since(phone.log.last_action_at)
            await phone.speak(noise_burst(3), "(noise and a cough)", barge_in=True)
            for _ in range(600):  # until the greeting has played out, or was cut off
                if greeting.done:
                    break
                await asyncio.sleep(0.1)
            await phone.hangup()
            return phone, greeting

    phone, greeting = run(call())
    assert not greeting.interrupted
    events = tracker_events(stack.rasa_url, f"call:{phone.call_sid}")
    said = [e["text"] for e in events if e.get("text")]
    assert JAMES_GREETING in said


def test_a_spoken_agent_over_the_bot_interrupts_it(stack, fake_twilio):  # noqa: F811
    async def call():
        async with dial(stack, fake_twilio, JAMES) as phone:
            await phone.wait_bot()
            await phone.press("94107#")
            await phone.wait_bot()  # the greeting
            await phone.press("1")  # yes: ready to pay
            # One short word over the stored-card question (free speech: the yes/no grammar
            # has no "agent" in it yet, so there only the dialog's recovery can hear it).
            await phone.barge_in("agent", after_ms=800)
            await phone.wait_bot()
            await phone.hangup()
            return phone

    phone = run(call())
    question = phone.result().bot_turns[2]
    # The question runs some 4 s; "agent" (0.4 s of speech) stopped it soon after 0.8 s.
    assert question.interrupted and question.played_bytes < 2 * 8000
