"""Ten callers at once over the real stack: every caller who answers the greeting is heard.

With ten calls arriving within a second, every part of the bridge is busy at the same moment
(Rasa's first turns, Piper, the speech pool); a caller who answers the welcome must still get
an answer to what they said, never the no-input prompt ("Sorry, I didn't hear anything").
"""

from __future__ import annotations

import asyncio
import random

import pytest
import requests

from tests.stack import RASA_TOKEN
from tests.test_voice_calls import (  # noqa: F401 - fake_twilio, stack: the fixtures
    JAMES,
    ZIP_ASK,
    dial,
    fake_twilio,
    run,
    stack,
)

pytestmark = pytest.mark.services

CALLS = 10
NO_INPUT = "didn't hear anything"


def tracker_events(stack, call_sid: str) -> list[dict]:  # noqa: F811
    response = requests.get(
        f"{stack.rasa_url}/conversations/call:{call_sid}/tracker",
        params={"token": RASA_TOKEN},
        timeout=60,
    )
    response.raise_for_status()
    return response.json()["events"]


def test_ten_callers_at_once_are_all_heard_after_the_greeting(stack, fake_twilio):  # noqa: F811
    rng = random.Random(12)
    delays = sorted(rng.uniform(0, 1.0) for _ in range(CALLS))

    async def one_call(delay_s: float):
        await asyncio.sleep(delay_s)
        async with dial(stack, fake_twilio, JAMES) as phone:
            await phone.wait_bot(60)  # the welcome: what is your billing ZIP code?
            await phone.say("nine four one zero seven")
            await phone.wait_bot(60)  # the answer to it, whatever was heard
            await phone.hangup()
            return phone

    async def burst():
        return await asyncio.gather(*(one_call(d) for d in delays))

    phones = run(burst())
    for phone in phones:
        events = tracker_events(stack, phone.call_sid)
        intents = [
            (e.get("parse_data") or {}).get("intent", {}).get("name")
            for e in events
            if e["event"] == "user"
        ]
        said = [e["text"] for e in events if e["event"] == "bot" and e.get("text")]
        assert "silence" not in intents, (phone.call_sid, said)
        assert not any(NO_INPUT in text for text in said), (phone.call_sid, said)
        assert any(ZIP_ASK in text for text in said), said
        result = phone.result()
        spoken = [t for t in result.caller_turns if t.kind == "speech"]
        assert spoken and spoken[0].response_latency_ms is not None, phone.call_sid
