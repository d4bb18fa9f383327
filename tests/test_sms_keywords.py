"""STOP, START and HELP at the SMS webhook (signed, over real HTTP, Rasa a stub as in
tests/test_twilio_webhooks.py): matched as Twilio matches them, stored per number, answered as
Twilio's Advanced Opt-Out answers, and an opted-out number neither answered nor passed on."""

# ruff: noqa: F811 - the ``rasa`` fixture is imported, then named by the tests that use it
from __future__ import annotations

import os
import random
import re
from collections.abc import AsyncIterator

import pytest
from sqlmodel import Session

from paybot.db import queries
from paybot.db.models import SmsConsent
from paybot.sms.consent import may_text, opt_in, opt_out
from paybot.sms.keywords import WORDS, Keyword, classify, help_text
from tests.helpers import rows
from tests.test_twilio_webhooks import (  # noqa: F401 - the fixture these tests share
    PUBLIC,
    Bridge,
    make_bridge,
    message_of,
    rasa,
    sms_params,
)
from voice_bridge.twilio.signature import SIGNATURE_HEADER

CALLER = "+15555550100"


@pytest.fixture
async def bridge(settings, db_engine, rasa) -> AsyncIterator[Bridge]:  # noqa: F811
    _, rasa_port = rasa
    configured = settings.copy(update={
        "public_url": PUBLIC, "rasa_port": rasa_port, "business_name": "Acme Water",
        "support_contact": "call 1-800-555-0199",
    })  # fmt: skip
    async for bridge in make_bridge(configured, db_engine):
        yield bridge


async def text(bridge: Bridge, body: str, **extra: str) -> str | None:
    response = await bridge.post("/twilio/sms", sms_params(body, **extra))
    assert response.status == 200, await response.text()
    return message_of(await response.text())


def consent(engine) -> SmsConsent | None:
    with Session(engine) as session:
        return queries.consent_for(session=session, phone=CALLER)


# --- what is a keyword ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body, kind",
    [("stop", Keyword.OPT_OUT), ("  STOP \n", Keyword.OPT_OUT), ("Stop", Keyword.OPT_OUT),
     ("stopall", Keyword.OPT_OUT), ("UNSUBSCRIBE", Keyword.OPT_OUT), ("cancel", Keyword.OPT_OUT),
     ("End", Keyword.OPT_OUT), ("quit", Keyword.OPT_OUT), ("\tstart", Keyword.OPT_IN),
     ("unstop", Keyword.OPT_IN), ("yes", Keyword.OPT_IN), ("help", Keyword.HELP),
     ("INFO ", Keyword.HELP)],
)  # fmt: skip
def test_whole_message_keywords(body, kind):
    assert classify(body) == (kind, body.strip().upper())


@pytest.mark.parametrize(
    "body",
    ["don't stop my service", "stop!", "please stop", "stop stop", "st op", "stopp", "ſtop",
     "ＳＴＯＰ", "helpme", "", "   ", "stop\u200b", "cancel my payment", "yes please"],
)
def test_anything_more_or_less_is_no_keyword(body):
    assert classify(body) is None


def test_twilios_opt_out_type_wins():
    assert classify("arrêt", "STOP") == (Keyword.OPT_OUT, "STOP")
    assert classify("stop", "HELP") == (Keyword.HELP, "STOP")
    assert classify("stop", "bogus") == (Keyword.OPT_OUT, "STOP")


def test_generated_bodies_are_keywords_exactly_when_twilio_would_say_so():
    seed = int(os.environ.get("PAYBOT_TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    words = [*WORDS, "stops", "top", "please", "my", "don't", "service", "ok", "yes!", "s t o p"]
    spaces = [" ", "\t", "\n", "\r\n", "\u00a0", "\u3000", ""]
    oracle = re.compile(r"\s*(\S+)\s*")
    for case in range(3000):
        parts = [rng.choice(words) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
        parts = ["".join(rng.choice((c.lower(), c.upper())) for c in p) for p in parts]
        body = rng.choice(spaces) + " ".join(parts) + rng.choice(spaces)
        match = oracle.fullmatch(body)
        expected = match is not None and match.group(1).upper() in WORDS
        found = classify(body)
        assert (found is not None) == expected, f"case {case} (seed {seed}): {body!r}"
        if found:
            assert found == (WORDS[match.group(1).upper()], match.group(1).upper())


def test_help_text_names_the_business_and_a_person(settings):
    assert help_text(settings).startswith("paybot: ")
    assert "call the number on your bill" in help_text(settings)
    agent = settings.copy(update={"transfer_to": "+15555559999", "business_name": "Acme"})
    assert "call +15555559999" in help_text(agent) and help_text(agent).startswith("Acme:")
    custom = agent.copy(update={"sms_help_text": "{business} {support} {other}"})
    assert help_text(custom) == "Acme call +15555559999 {other}"


def test_opt_out_state_per_number(db_engine):
    assert may_text(db_engine, CALLER)
    assert opt_in(db_engine, CALLER, "START") is False  # never out: nothing changed
    assert opt_out(db_engine, CALLER, "STOP") is True
    assert opt_out(db_engine, CALLER, "QUIT") is False
    assert not may_text(db_engine, CALLER) and may_text(db_engine, "+15555550111")
    assert opt_in(db_engine, CALLER, "UNSTOP") is True
    assert may_text(db_engine, CALLER)
    assert [(c.phone, c.opted_out, c.keyword) for c in rows(db_engine, SmsConsent)] == [
        (CALLER, False, "UNSTOP")]


# --- at the webhook ---------------------------------------------------------------------------
async def test_stop_confirms_once_then_nothing_reaches_or_leaves_the_bot(bridge, rasa):
    stub, _ = rasa
    stub.replies = [{"text": "Hello there."}]
    assert await text(bridge, "hi") == "Hello there."
    confirmation = await text(bridge, " Stop ")
    assert confirmation.startswith("Acme Water: You have been unsubscribed")
    assert "START" in confirmation
    assert consent(bridge.engine).opted_out and consent(bridge.engine).keyword == "STOP"
    assert await text(bridge, "STOP") is None  # once only
    assert await text(bridge, "what is my balance") is None
    assert await text(bridge, "yes please") is None
    assert len(stub.received) == 1  # only the "hi" before STOP
    help_answer = await text(bridge, "help")  # HELP is always answered
    assert "Acme Water" in help_answer and "1-800-555-0199" in help_answer
    assert len(stub.received) == 1


@pytest.mark.parametrize("word", ["START", "unstop", "Yes"])
async def test_start_restores_and_the_bot_answers_again(bridge, rasa, word):
    stub, _ = rasa
    stub.replies = [{"text": "Hello there."}]
    await text(bridge, "cancel")
    answer = await text(bridge, f" {word}\n")
    assert answer.startswith("Acme Water: You have been resubscribed")
    assert not consent(bridge.engine).opted_out
    assert await text(bridge, "hi") == "Hello there."
    assert [r["message"] for r in stub.received] == ["hi"]


async def test_yes_in_a_conversation_goes_to_the_bot(bridge, rasa):
    stub, _ = rasa
    stub.replies = [{"text": "Paid."}]
    assert await text(bridge, "YES") == "Paid."
    assert consent(bridge.engine) is None


async def test_start_when_never_out_confirms_and_stays_in(bridge, rasa):
    assert (await text(bridge, "start")).startswith("Acme Water: You have been resubscribed")
    assert not consent(bridge.engine).opted_out


async def test_words_around_a_keyword_are_for_the_bot(bridge, rasa):
    stub, _ = rasa
    for body in ("don't stop my service", "stop!", "help me pay", "cancel my scheduled payment"):
        await text(bridge, body)
    assert [r["message"] for r in stub.received] == [
        "don't stop my service", "stop!", "help me pay", "cancel my scheduled payment"]
    assert consent(bridge.engine) is None


async def test_twilio_answering_the_keywords_itself(settings, db_engine, rasa):
    _, rasa_port = rasa
    quiet = settings.copy(update={"public_url": PUBLIC, "rasa_port": rasa_port,
                                  "sms_keyword_replies": False})  # fmt: skip
    async for bridge in make_bridge(quiet, db_engine):
        assert await text(bridge, "STOP", OptOutType="STOP") is None
        assert consent(db_engine).opted_out
        assert await text(bridge, "HELP", OptOutType="HELP") is None
        assert await text(bridge, "START", OptOutType="START") is None
        assert not consent(db_engine).opted_out


async def test_a_forged_stop_is_refused_and_changes_nothing(bridge, rasa):
    response = await bridge.post("/twilio/sms", sms_params("STOP"), headers={SIGNATURE_HEADER: "x"})
    assert response.status == 403
    response = await bridge.post("/twilio/sms", sms_params("STOP"),
                                 signed_url="https://evil.example.com/twilio/sms")
    assert response.status == 403
    assert consent(bridge.engine) is None


async def test_generated_texts_change_consent_only_by_whole_keywords(bridge, rasa):
    seed = int(os.environ.get("PAYBOT_TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    fragments = ["stop", "STOP", "start", "help", "yes", "quit", "end", "pay", "my", "bill",
                 "don't", "!", "4242", "é", "\u200b", "\x00", "<Response/>", "%", "\ud7ff"]
    opted_out = False
    for case in range(60):
        body = "".join(rng.choice([*fragments, " "]) for _ in range(rng.randint(0, 5)))
        response = await bridge.post("/twilio/sms", sms_params(body))
        assert response.status == 200, f"case {case} (seed {seed}): {body!r}"
        found = classify(body)
        if found and found[0] is Keyword.OPT_OUT:
            opted_out = True
        elif found and found[0] is Keyword.OPT_IN and (found[1] != "YES" or opted_out):
            opted_out = False
        row = consent(bridge.engine)
        assert (row.opted_out if row else False) == opted_out, f"case {case} (seed {seed})"


def test_concurrent_stops_confirm_once(db_engine):
    from concurrent.futures import ThreadPoolExecutor

    from tests.helpers import second_engine

    engines = [db_engine, second_engine(db_engine)]
    with ThreadPoolExecutor(8) as pool:
        firsts = list(pool.map(lambda i: opt_out(engines[i % 2], CALLER, "STOP"), range(16)))
    assert firsts.count(True) == 1
    assert [(c.phone, c.opted_out) for c in rows(db_engine, SmsConsent)] == [(CALLER, True)]
    engines[1].dispose()
