"""Callers who only speak (never key) identify and pay, with every voice of the caller pool.

Each call goes over the real stack (webhook, Media Streams, PocketSphinx, Rasa, the action
server) with :class:`tests.spoken_caller.SpeakingCaller` on the line: it answers what the bot
says, says "yes" or "no" to the read-back of the digits it spoke, and says its answer again
when the bot did not catch it. Every voice of ``twilio_sim.voice.CALLER_VOICES`` is tried, not
only the run's random one. A call must reach the confirmation number of a successful payment,
with no question asked more than three times in a row and no key pressed.
"""

from __future__ import annotations

import re

import pytest

from paybot.db.models import Payment, PaymentStatus
from tests.helpers import rows
from tests.questions import assert_no_question_over, tracker_events
from tests.spoken_caller import SpeakingCaller, converse
from tests.test_voice_calls import (  # noqa: F401 - fake_twilio, stack, the autouse fixtures
    JAMES,
    UNKNOWN,
    bot_said,
    dial,
    fake_twilio,
    fresh_data,
    questions_checked,
    run,
    stack,
)
from twilio_sim.voice import CALLER_VOICES, EspeakVoice

pytestmark = pytest.mark.services

JAMES_ZIP = "nine four one zero seven"
JAMES_ACCOUNT = "one zero zero two zero zero three zero zero"
CALLERS = {  # who calls: (from, the person)
    "own-number-zip": (JAMES, lambda: SpeakingCaller(zip_words=JAMES_ZIP)),
    "unknown-number-account-and-zip": (
        UNKNOWN, lambda: SpeakingCaller(zip_words=JAMES_ZIP, account_words=JAMES_ACCOUNT)
    ),
}


def dialog(events: list[dict]) -> str:
    """The conversation as Rasa saw it: what the bot said and what it heard the caller say."""
    lines = []
    for event in events:
        if event.get("event") == "bot" and event.get("text"):
            lines.append(f"  bot:   {event['text']}")
        elif event.get("event") == "user":
            how = (event.get("metadata") or {}).get("input", "")
            lines.append(f"  heard: {event.get('text')!r} ({how})")
    return "\n".join(lines)


@pytest.mark.parametrize("who", sorted(CALLERS))
@pytest.mark.parametrize("voice", CALLER_VOICES)
def test_a_caller_who_only_speaks_identifies_and_pays(stack, fake_twilio, voice, who):  # noqa: F811
    number, person = CALLERS[who]
    caller = person()

    async def call():
        async with dial(stack, fake_twilio, number, EspeakVoice(voice)) as phone:
            await converse(phone, caller, lambda: bot_said(stack, phone.call_sid))
            return phone

    phone = run(call())
    events = tracker_events(stack.rasa_url, f"call:{phone.call_sid}")
    story = f"voice {voice}, caller said {caller.said}:\n{dialog(events)}"
    assert all(turn.kind == "speech" for turn in phone.result().caller_turns)
    payments = rows(stack.engine, Payment)
    assert [p.status for p in payments] == [PaymentStatus.SUCCEEDED], story
    spoken = " ".join(bot_said(stack, phone.call_sid))
    assert "confirmation number is" in spoken, story
    heard = re.sub(r"\D", "", spoken.split("confirmation number is", 1)[1].split(".")[0])
    assert heard == payments[0].confirmation_number, story
    assert_no_question_over(stack.rasa_url, phone.call_sid)
