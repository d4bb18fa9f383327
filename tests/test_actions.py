"""Custom actions as functions: a tracker in, events (and messages) out.

The actions run against a real seeded database (SQLite and PostgreSQL) through the same
services the action server builds; no Rasa server is involved.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

import actions.services as services_module
from actions.answers import ActionYesNo
from actions.anytime import ActionHandleSilence, ActionShowBalance, last_bot_turn
from actions.conversation import ActionStartConversation
from actions.payment_form import ValidatePaymentForm
from actions.questions import AskConfirmPayment
from paybot.accounts.directory import LocalDirectory
from paybot.identity import IdentityVerifier, LockoutPolicy
from paybot.settings import load_settings

DOMAIN = {"forms": {"payment_form": {"required_slots": []}}, "slots": {}}


@pytest.fixture
def svc(db_engine, ledger, monkeypatch):
    directory = LocalDirectory(db_engine)
    built = services_module.Services(
        settings=load_settings(env="test"),
        engine=db_engine,
        ledger=ledger,
        directory=directory,
        verifier=IdentityVerifier(db_engine, directory, LockoutPolicy(max_failures=5)),
    )
    monkeypatch.setattr(services_module, "_services", built)
    return built


def tracker(slots=None, text="", intent=None, entities=None, events=None, loop=None):
    return Tracker(
        sender_id="chat:test",
        slots={"channel": "chat", **(slots or {})},
        latest_message={
            "text": text,
            "intent": {"name": intent, "confidence": 1.0} if intent else {},
            "entities": entities or [],
        },
        events=events or [],
        paused=False,
        followup_action=None,
        active_loop={"name": loop} if loop else {},
        latest_action_name="action_listen",
    )


def slots_of(events) -> dict:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def texts(dispatcher: CollectingDispatcher) -> list[str]:
    return [m.get("response") or m.get("text") for m in dispatcher.messages]


JAMES = {"identified": True, "account_number": "100200300", "customer_first_name": "James"}


async def test_start_conversation_recognises_the_caller(svc):
    dispatcher = CollectingDispatcher()
    events = await ActionStartConversation().run(
        dispatcher,
        tracker(
            text="EXTERNAL: session_begin",
            intent="session_begin",
            entities=[
                {"entity": "caller", "value": "+15555550100"},
                {"entity": "channel", "value": "voice"},
            ],
        ),
        DOMAIN,
    )
    slots = slots_of(events)
    assert slots["identified"] is True and slots["account_number"] == "100200300"
    assert slots["caller_number"] == "+15555550100"
    assert slots["stored_method_id"] is not None


async def test_start_conversation_for_a_closed_account_ends_the_form(svc):
    dispatcher = CollectingDispatcher()
    events = await ActionStartConversation().run(
        dispatcher, tracker(slots={"caller_number": "+15555550133"}, intent="greet"), DOMAIN
    )
    assert slots_of(events)["form_outcome"] == "nothing_owed"
    assert "utter_account_closed" in texts(dispatcher)


async def test_required_slots_follow_the_conversation(svc):
    form = ValidatePaymentForm()
    d = CollectingDispatcher()
    assert await form.required_slots([], d, tracker(), DOMAIN) == ["account_number", "billing_zip"]
    several = tracker(slots={"account_candidates": ["1", "2"]})
    assert (await form.required_slots([], d, several, DOMAIN))[0] == "account_choice"
    scheduled = tracker(slots={**JAMES, "payment_timing": "scheduled", "payment_method": "bank"})
    assert await form.required_slots([], d, scheduled, DOMAIN) == [
        "payment_amount",
        "payment_date",
        "payment_method",
        "bank_account_type",
        "confirm_payment",
    ]


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("one zero zero two hundred three hundred", "100200300"),
        ("1 0 0-2 0 0", "100200"),
        ("I don't know", None),
        ("12", None),
    ],
)
async def test_account_number_is_parsed_from_speech(svc, said, expected):
    d = CollectingDispatcher()
    result = await ValidatePaymentForm().validate_account_number(said, d, tracker(), DOMAIN)
    assert result == {"account_number": expected}


async def test_wrong_zip_counts_a_failure_and_asks_again(svc):
    d = CollectingDispatcher()
    t = tracker(slots={"account_number": "100200300", "idv_failures": 0.0})
    result = await ValidatePaymentForm().validate_billing_zip("1 1 1 1 1", d, t, DOMAIN)
    assert result == {"account_number": None, "billing_zip": None, "idv_failures": 1.0}
    assert texts(d) == ["utter_idv_failed"]


@pytest.mark.parametrize(
    ("said", "intent", "amount"),
    [
        ("a hundred and fifty", "inform", "150.00"),
        ("just the minimum", "inform", "25.00"),
        ("all of it", "inform", "321.72"),
        ("$400", "inform", None),
        ("half", "inform", None),
    ],
)
async def test_amounts_are_parsed_and_checked(svc, said, intent, amount):
    d = CollectingDispatcher()
    result = await ValidatePaymentForm().validate_payment_amount(
        said, d, tracker(slots=JAMES, text=said, intent=intent), DOMAIN
    )
    assert result["payment_amount"] == amount
    if amount is None:
        assert texts(d)  # said why: the range, or what half would be


async def test_text_channels_refuse_new_cards(svc):
    d = CollectingDispatcher()
    t = tracker(slots={**JAMES, "channel": "sms", "stored_method_id": 1.0}, text="a new card")
    result = await ValidatePaymentForm().validate_payment_method("a new card", d, t, DOMAIN)
    assert result["payment_method"] is None and "utter_text_no_card" in texts(d)


async def test_confirm_mints_one_key_and_a_filler_is_not_a_yes(svc):
    d = CollectingDispatcher()
    form = ValidatePaymentForm()
    yes = await form.validate_confirm_payment("yes", d, tracker(intent="affirm"), DOMAIN)
    assert yes["confirm_payment"] is True and yes["payment_key"].startswith("chat:test:")
    uh = await form.validate_confirm_payment("uh", d, tracker(intent="affirm"), DOMAIN)
    assert uh == {"confirm_payment": None}


async def test_confirmation_question_discloses_fee_and_total(svc):
    d = CollectingDispatcher()
    t = tracker(slots={**JAMES, "payment_amount": "100.00", "payment_method": "stored"})
    await AskConfirmPayment().run(d, t, DOMAIN)
    (question, listen) = d.messages
    assert "$2.00 convenience fee" in question["disclosure"] and "$102.00" in question["disclosure"]
    assert question["method_label"] == "Visa ending 4242"
    assert listen["custom"] == {
        "type": "listen",
        "mode": "yes_no",
        "min_digits": None,
        "max_digits": None,
        "timeout_s": 8.0,
    }


async def test_balance_for_an_overdue_account(svc):
    d = CollectingDispatcher()
    t = tracker(slots={"identified": True, "account_number": "300400500"})
    await ActionShowBalance().run(d, t, DOMAIN)
    assert d.messages[0]["response"] == "utter_balance_overdue"
    assert d.messages[0]["balance"] == "$1,250.00"


async def test_yes_no_answers_the_stage_question(svc):
    d = CollectingDispatcher()
    events = await ActionYesNo().run(
        d, tracker(slots={**JAMES, "stage": "anything_else"}, intent="deny"), DOMAIN
    )
    assert texts(d)[0] == "utter_goodbye" and d.messages[1]["custom"] == {"type": "hangup"}
    assert SlotSet("stage", None) in events


def _silences(n: int) -> list[dict]:
    user = {"event": "user", "parse_data": {"intent": {"name": "silence"}}}
    return [{"event": "bot", "text": "Are you ready?"}] + [user] * n


async def test_silence_reprompts_then_transfers(svc):
    d = CollectingDispatcher()
    await ActionHandleSilence().run(d, tracker(events=_silences(1)), DOMAIN)
    assert texts(d)[0] == "utter_silence"
    d = CollectingDispatcher()
    events = await ActionHandleSilence().run(
        d, tracker(slots={"channel": "voice"}, events=_silences(3)), DOMAIN
    )
    transfer = [m["custom"] for m in d.messages if m.get("custom")]
    assert transfer[0]["type"] == "transfer" and transfer[0]["reason"] == "silence"
    assert any(e.get("event") == "active_loop" for e in events)


def test_last_bot_turn_is_what_repeat_says_again():
    events = [
        {"event": "user", "text": "hi"},
        {"event": "bot", "text": "Hello James"},
        {"event": "bot", "text": "Ready?"},
        {"event": "user", "text": "repeat"},
    ]
    assert [e["text"] for e in last_bot_turn(tracker(events=events))] == ["Hello James", "Ready?"]


def test_due_date_words():
    from datetime import date

    from actions.wording import confirmation_spoken, day, method_label

    today = date.today()
    assert day(today + timedelta(days=365 * 2)).endswith(str(today.year + 2))
    assert confirmation_spoken("482913705") == "4 8 2, 9 1 3, 7 0 5"
    assert method_label("mastercard", "4444") == "Mastercard ending 4444"


def _misses(n: int) -> list[dict]:
    return [{"event": "user", "parse_data": {"intent": {"name": "nlu_fallback"}}}] * n


@pytest.mark.parametrize(("misses", "expected"), [(1, "utter_ask_rephrase"), (2, "utter_help")])
async def test_two_stage_fallback(svc, misses, expected):
    from actions.anytime import ActionFallback

    d = CollectingDispatcher()
    await ActionFallback().run(d, tracker(events=_misses(misses)), DOMAIN)
    assert texts(d) == [expected]


async def test_third_miss_goes_to_an_agent(svc):
    from actions.anytime import ActionFallback

    d = CollectingDispatcher()
    await ActionFallback().run(d, tracker(events=_misses(3)), DOMAIN)
    transfer = next(m["custom"] for m in d.messages if m.get("custom"))
    assert transfer["reason"] == "not_understood"
