"""Custom actions as functions: a tracker in, events (and messages) out.

The actions run against a real seeded database (SQLite and PostgreSQL) through the same
services the action server builds; no Rasa server is involved.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.answers import ActionYesNo
from actions.anytime import ActionHandleSilence, ActionShowBalance, last_bot_turn
from actions.conversation import ActionStartConversation
from actions.payment_form import ValidatePaymentForm
from actions.questions import AskBillingZip, AskConfirmPayment, AskPaymentMethod
from actions.responses import load_responses, render, render_known
from paybot.dialog.payloads import Listen, to_dict
from paybot.identity import IdentityVerifier, LockoutPolicy
from tests.helpers import rows

DOMAIN = {"forms": {"payment_form": {"required_slots": []}}, "slots": {}}


def tracker(slots=None, text="", intent=None, entities=None, events=None, loop=None, metadata=None):
    return Tracker(
        sender_id="chat:test",
        slots={"channel": "chat", **(slots or {})},
        latest_message={
            "text": text,
            "intent": {"name": intent, "confidence": 1.0} if intent else {},
            "entities": entities or [],
            "metadata": metadata or {},
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
    return [m["text"] for m in dispatcher.messages if m.get("text")]


def responses_of(dispatcher: CollectingDispatcher) -> list[str]:
    """The names of the responses (bot/responses.yml) the dispatcher sent, in order."""
    names = []
    for text in texts(dispatcher):
        for name, variants in load_responses().items():
            if any(_pattern(v.text).fullmatch(text) for v in variants):
                names.append(name)
                break
        else:
            names.append(text)
    return names


def _pattern(template: str) -> re.Pattern:
    parts = re.split(r"\{\w+\}", template)
    return re.compile(".+?".join(re.escape(p) for p in parts), re.S)


def custom(dispatcher: CollectingDispatcher) -> list[dict]:
    return [m["custom"] for m in dispatcher.messages if m.get("custom")]


JAMES = {"identified": True, "account_number": "100200300", "customer_first_name": "James"}
JAMES_PHONE = "+15555550100"


def session_begin(caller: str):
    """The bridge's ``session_begin`` system event for a call from ``caller``."""
    return tracker(
        text="EXTERNAL: session_begin",
        intent="session_begin",
        metadata={"is_external": True},
        entities=[{"entity": "caller", "value": caller}, {"entity": "channel", "value": "voice"}],
    )


async def test_caller_id_is_a_hint_not_an_identity(svc):
    """Finding "caller ID alone": the number names candidates; nothing is identified, and
    nothing about the account (name, balance, addresses, stored method) is said yet."""
    dispatcher = CollectingDispatcher()
    events = await ActionStartConversation().run(dispatcher, session_begin(JAMES_PHONE), DOMAIN)
    slots = slots_of(events)
    assert slots["account_candidates"] == ["100200300"]
    assert slots["caller_number"] == JAMES_PHONE and slots["channel"] == "voice"
    assert not slots.get("identified") and not slots.get("stored_method_id")
    assert responses_of(dispatcher) == ["welcome"]
    required = await ValidatePaymentForm().required_slots(
        [], dispatcher, tracker(slots=slots), DOMAIN
    )
    assert required[0] == "billing_zip"


async def _answer_factor(svc, said: str, caller: str = JAMES_PHONE, **slots):
    d = CollectingDispatcher()
    start = slots_of(
        await ActionStartConversation().run(CollectingDispatcher(), session_begin(caller), DOMAIN)
    )
    t = tracker(slots={**start, "idv_failures": 0.0, **slots}, text=said)
    return d, await ValidatePaymentForm().validate_billing_zip(said, d, t, DOMAIN)


async def test_caller_confirms_the_zip_then_is_identified(svc):
    _, result = await _answer_factor(svc, "nine four one zero seven")
    assert result["identified"] is True and result["account_number"] == "100200300"
    assert result["identified_by"] == "caller_id" and result["stored_method_id"] is not None


async def test_a_wrong_factor_is_a_verification_failure(svc):
    d, result = await _answer_factor(svc, "94108")
    assert result == {"account_number": None, "billing_zip": None, "idv_failures": 1.0}
    # A call's answer not keyed: a misheard ZIP is the usual cause, so the keypad is offered.
    assert responses_of(d) == ["caller_factor_failed", "keypad_hint"]
    assert svc.verifier.failures("100200300", JAMES_PHONE) == 1
    _, third = await _answer_factor(svc, "94108", idv_failures=2.0)
    assert third["form_outcome"] == "idv_failed"


async def test_the_factor_can_be_the_stored_methods_last_four(svc, monkeypatch):
    monkeypatch.setattr(svc, "settings", svc.settings.copy(update={"caller_id_factor": "last4"}))
    start = slots_of(await ActionStartConversation().run(
        CollectingDispatcher(), session_begin(JAMES_PHONE), DOMAIN
    ))
    d = CollectingDispatcher()
    await AskBillingZip().run(d, tracker(slots=start), DOMAIN)
    assert responses_of(d) == ["ask_caller_last4"]
    assert custom(d)[0] == to_dict(Listen("digits", min_digits=4, max_digits=4))
    _, zip_only = await _answer_factor(svc, "94107")  # the ZIP is not the factor now
    assert zip_only.get("identified") is None
    _, result = await _answer_factor(svc, "four two four two")
    assert result["identified"] is True and result["account_number"] == "100200300"
    # Maria has no stored method: her factor stays the ZIP.
    d = CollectingDispatcher()
    maria = slots_of(await ActionStartConversation().run(
        CollectingDispatcher(), session_begin("+15555550111"), DOMAIN
    ))
    await AskBillingZip().run(d, tracker(slots=maria), DOMAIN)
    assert responses_of(d) == ["ask_caller_zip"]


async def test_factor_none_identifies_by_caller_id_alone(svc, monkeypatch):
    monkeypatch.setattr(svc, "settings", svc.settings.copy(update={"caller_id_factor": "none"}))
    events = await ActionStartConversation().run(
        CollectingDispatcher(), session_begin(JAMES_PHONE), DOMAIN
    )
    slots = slots_of(events)
    assert slots["identified"] is True and slots["account_number"] == "100200300"


async def test_several_accounts_confirm_the_factor_before_the_addresses(svc):
    """Sam: the ZIP first (both accounts share it), then which account, by street."""
    _, result = await _answer_factor(svc, "97205", caller="+15555550144")
    assert result == {"billing_zip": "caller_id", "account_candidates": ["500600700", "500600711"]}
    form = ValidatePaymentForm()
    required = await form.required_slots([], CollectingDispatcher(), tracker(slots=result), DOMAIN)
    assert required == ["billing_zip", "account_choice"]


async def test_start_conversation_for_a_closed_account_ends_the_form(svc):
    d, result = await _answer_factor(svc, "73301", caller="+15555550133")
    assert result["form_outcome"] == "nothing_owed"
    assert "account_closed" in responses_of(d)


@pytest.mark.parametrize("intent", ["make_payment", "greet", "ask_balance"])
async def test_a_later_request_on_a_closed_account_is_refused_again(svc, intent):
    """Identified earlier in the conversation (the SMS thread of a closed account): a new
    request checks the account again instead of offering to take $0.00."""
    d = CollectingDispatcher()
    linda = {"identified": True, "identified_by": "account", "account_number": "400500600"}
    events = await ActionStartConversation().run(
        d, tracker(slots=linda, text="pay my bill", intent=intent), DOMAIN
    )
    assert slots_of(events)["form_outcome"] == "nothing_owed"
    assert "account_closed" in responses_of(d)


async def test_a_later_request_to_list_schedules_is_not_refused(svc):
    d = CollectingDispatcher()
    linda = {"identified": True, "identified_by": "account", "account_number": "400500600"}
    events = await ActionStartConversation().run(
        d, tracker(slots=linda, text="my scheduled payments", intent="list_scheduled"), DOMAIN
    )
    assert slots_of(events)["form_outcome"] is None
    assert "account_closed" not in responses_of(d)


async def test_required_slots_follow_the_conversation(svc):
    form = ValidatePaymentForm()
    d = CollectingDispatcher()
    assert await form.required_slots([], d, tracker(), DOMAIN) == ["account_number", "billing_zip"]
    several = tracker(slots={"account_candidates": ["1", "2"]})
    assert await form.required_slots([], d, several, DOMAIN) == ["billing_zip", "account_choice"]
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
    assert responses_of(d) == ["idv_failed"]


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


async def test_text_channels_take_no_new_card_but_end_the_form_for_a_pay_link(svc):
    for channel in ("sms", "chat"):
        d = CollectingDispatcher()
        t = tracker(slots={**JAMES, "channel": channel, "stored_method_id": 1.0}, text="a new card")
        result = await ValidatePaymentForm().validate_payment_method("a new card", d, t, DOMAIN)
        # action_complete_payment sends the link (tests/test_pay_link_page.py pays one).
        assert result == {"payment_method": None, "form_outcome": "pay_link"}
        assert responses_of(d) == []


@pytest.mark.parametrize("channel", ["sms", "chat"])
async def test_a_texter_is_sent_a_pay_link_for_the_chosen_amount(svc, channel):
    from actions.payment import ActionCompletePayment
    from paybot.db.models import PayLink

    slots = {**JAMES, "channel": channel, "caller_number": JAMES_PHONE,
             "payment_amount": "75.25", "form_outcome": "pay_link"}  # fmt: skip
    d = CollectingDispatcher()
    await ActionCompletePayment().run(d, tracker(slots=slots), DOMAIN)
    assert responses_of(d)[0] == "pay_link_sent"
    (link,) = rows(svc.engine, PayLink)
    assert (link.amount, link.channel, link.status) == (Decimal("75.25"), channel, "issued")
    assert link.notify_to == (JAMES_PHONE if channel == "sms" else None)  # chat: no text
    url = re.search(r"http://\S+/pay/(\S+)", texts(d)[0])
    assert url and "$75.25" in texts(d)[0] and url.group(1) not in link.token_hash


async def test_payment_keys_fit_their_column_whatever_the_sender(svc):
    """A voice call's sender is ``call:<CallSid>`` (39 characters): its key once was that plus
    32 hex digits, 72 characters in a VARCHAR(64) column, and every voice payment failed on
    PostgreSQL. Keys are unique, and kept in the slot across retries."""
    import random

    from paybot.db.models import Payment
    from twilio_sim.webhook import new_sid

    seed = random.randrange(2**32)
    rng = random.Random(seed)
    column = Payment.__table__.c.idempotency_key.type.length
    form, keys = ValidatePaymentForm(), set()
    senders = [f"call:{new_sid('CA')}"] + [
        "chat:" + "".join(rng.choices("abcdef0123456789-:", k=rng.randint(1, 200)))
        for _ in range(20)
    ]
    for sender in senders:
        t = tracker(intent="affirm")
        t.sender_id = sender
        key = (await form.validate_confirm_payment("yes", CollectingDispatcher(), t, DOMAIN))[
            "payment_key"
        ]
        assert len(key) <= column, (seed, sender, key)
        keys.add(key)
        kept = tracker(slots={"payment_key": key}, intent="affirm")
        again = await form.validate_confirm_payment("yes", CollectingDispatcher(), kept, DOMAIN)
        assert again["payment_key"] == key  # a retry keeps its key
    assert len(keys) == len(senders)


async def test_confirm_mints_one_key_and_a_filler_is_not_a_yes(svc):
    d = CollectingDispatcher()
    form = ValidatePaymentForm()
    yes = await form.validate_confirm_payment("yes", d, tracker(intent="affirm"), DOMAIN)
    assert yes["confirm_payment"] is True and len(yes["payment_key"]) == 32
    uh = await form.validate_confirm_payment("uh", d, tracker(intent="affirm"), DOMAIN)
    assert uh == {"confirm_payment": None}


async def test_confirmation_question_discloses_fee_and_total(svc):
    d = CollectingDispatcher()
    t = tracker(slots={**JAMES, "payment_amount": "100.00", "payment_method": "stored"})
    await AskConfirmPayment().run(d, t, DOMAIN)
    (question, listen) = d.messages
    assert "convenience fee of $2.00" in question["text"] and "$102.00" in question["text"]
    assert "Visa ending 4242" in question["text"]
    # The fee disclosure is not interruptible: the bridge plays it to the end.
    assert listen["custom"] == to_dict(Listen("yes_no", barge_in=False))
    assert listen["custom"]["barge_in"] is False


async def test_without_a_fee_the_confirmation_may_be_interrupted(svc, monkeypatch):
    from paybot.payments.fees import FeePolicy

    monkeypatch.setattr(svc.ledger, "fees", FeePolicy())  # no convenience fee
    d = CollectingDispatcher()
    t = tracker(slots={**JAMES, "payment_amount": "100.00", "payment_method": "stored"})
    await AskConfirmPayment().run(d, t, DOMAIN)
    assert "fee" not in texts(d)[0]
    assert custom(d) == [to_dict(Listen("yes_no"))] and custom(d)[0]["barge_in"] is True


def prepared(dispatcher: CollectingDispatcher) -> list[str]:
    return [t for c in custom(dispatcher) if c["type"] == "prepare" for t in c["texts"]]


async def test_on_voice_each_question_tells_the_bridge_what_comes_after_a_yes(svc):
    voice = {**JAMES, "channel": "voice", "payment_amount": "100.00"}
    d = CollectingDispatcher()
    await AskPaymentMethod().run(d, tracker(slots=voice), DOMAIN)
    assert "Visa ending 4242" in texts(d)[0]
    # Exactly what the confirmation question will say once the caller takes the stored Visa.
    d_confirm = CollectingDispatcher()
    await AskConfirmPayment().run(
        d_confirm, tracker(slots={**voice, "payment_method": "stored"}), DOMAIN
    )
    assert prepared(d) == texts(d_confirm)
    # And the confirmation prepares the result, up to the number that does not exist yet.
    [result] = prepared(d_confirm)
    assert result == "Thank you. Your payment of $102.00 was successful."
    said = render(tracker(slots=voice), "payment_succeeded", total="$102.00",
                  confirmation_spoken="1 2 3")
    assert said.startswith(result + " ")
    # A new card: the capture's introduction comes next.
    d_card = CollectingDispatcher()
    card = tracker(slots={**voice, "payment_method": "card"})
    await AskConfirmPayment().run(d_card, card, DOMAIN)
    assert prepared(d_card) == [render(tracker(slots=voice), "secure_capture", what="card")]


async def test_text_channels_get_no_speech_to_prepare(svc):
    d = CollectingDispatcher()
    await AskPaymentMethod().run(d, tracker(slots={**JAMES, "payment_amount": "100.00"}), DOMAIN)
    await AskConfirmPayment().run(
        d, tracker(slots={**JAMES, "payment_amount": "100.00", "payment_method": "stored"}), DOMAIN
    )
    assert prepared(d) == [] and all(c["type"] == "listen" for c in custom(d))


def test_render_known_keeps_the_sentences_it_can_fill():
    t = tracker(slots={"channel": "voice"})
    assert render_known(t, "payment_succeeded", total="$5.00") == (
        "Thank you. Your payment of $5.00 was successful."
    )
    assert render_known(t, "payment_succeeded") == "Thank you."
    assert render_known(t, "ask_receipt") == "Would you like a receipt by text message?"


async def test_balance_for_an_overdue_account(svc):
    d = CollectingDispatcher()
    t = tracker(slots={"identified": True, "account_number": "300400500"})
    await ActionShowBalance().run(d, t, DOMAIN)
    assert responses_of(d)[0] == "balance_overdue"
    assert "$1,250.00" in texts(d)[0]


async def test_yes_no_answers_the_stage_question(svc):
    d = CollectingDispatcher()
    events = await ActionYesNo().run(
        d, tracker(slots={**JAMES, "stage": "anything_else"}, text="no", intent="deny"), DOMAIN
    )
    assert responses_of(d)[0] == "goodbye" and d.messages[1]["custom"] == {"type": "hangup"}
    assert SlotSet("stage", None) in events


def _silences(n: int) -> list[dict]:
    user = {"event": "user", "parse_data": {"intent": {"name": "silence"}}}
    return [{"event": "bot", "text": "Are you ready?"}] + [user] * n


SYSTEM = {"is_external": True}  # what Rasa's trigger_intent API marks a system event with


async def test_silence_reprompts_then_transfers(svc):
    d = CollectingDispatcher()
    await ActionHandleSilence().run(d, tracker(events=_silences(1), metadata=SYSTEM), DOMAIN)
    assert responses_of(d)[0] == "silence"
    d = CollectingDispatcher()
    events = await ActionHandleSilence().run(
        d, tracker(slots={"channel": "voice"}, events=_silences(3), metadata=SYSTEM), DOMAIN
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


def _misses(n: int, answered_by: str = "action_fallback") -> list[dict]:
    """``n`` user turns the bot did not understand, each before the last answered by
    ``answered_by``."""
    user = {"event": "user", "text": "blah", "parse_data": {"intent": {"name": "nlu_fallback"}}}
    answer = [
        {"event": "action", "name": "action_extract_slots"},
        {"event": "action", "name": answered_by},
        {"event": "action", "name": "action_listen"},
    ]
    return [*([user, *answer] * (n - 1)), user]


@pytest.mark.parametrize(("misses", "expected"), [(1, "ask_rephrase"), (2, "fallback_options")])
async def test_two_stage_fallback(svc, misses, expected):
    from actions.anytime import ActionFallback

    d = CollectingDispatcher()
    await ActionFallback().run(d, tracker(events=_misses(misses)), DOMAIN)
    assert responses_of(d) == [expected]
    assert custom(d) == [to_dict(Listen("free"))]


async def test_third_miss_goes_to_an_agent(svc):
    from actions.anytime import ActionFallback

    d = CollectingDispatcher()
    await ActionFallback().run(d, tracker(events=_misses(3)), DOMAIN)
    transfer = next(m["custom"] for m in d.messages if m.get("custom"))
    assert transfer["reason"] == "not_understood"


async def test_an_understood_turn_starts_the_count_again(svc):
    from actions.anytime import ActionFallback

    d = CollectingDispatcher()
    understood = _misses(2, answered_by="action_show_balance")[:-1]
    events = [*_misses(2)[:-1], *understood, *_misses(2)]  # miss, balance, miss, miss
    await ActionFallback().run(d, tracker(events=events), DOMAIN)
    assert responses_of(d) == ["fallback_options"]  # the miss before the balance is forgotten


# --- several accounts on one number: by last digits or service address -----------------------
SAM = {"caller_number": "+15555550144", "account_candidates": ["500600700", "500600711"]}


async def test_several_accounts_are_listed_with_their_addresses(svc):
    from actions.questions import AskAccountChoice

    d = CollectingDispatcher()
    await AskAccountChoice().run(d, tracker(slots=SAM), DOMAIN)
    (question,) = texts(d)
    assert "2 accounts" in question
    assert (
        "the account ending 0700 at 12 Oak Street and the account ending 0711 at 48 Pine Avenue"
        in question
    )
    assert responses_of(d) == ["ask_account_choice"]
    assert custom(d) == [to_dict(Listen("free"))]  # a street is not digits


@pytest.mark.parametrize(
    ("answer", "account"),
    [
        ("the one on Oak Street", "500600700"),
        ("oak", "500600700"),
        ("forty eight pine avenue", "500600711"),
        ("the Pine Ave one", "500600711"),
        ("twelve", "500600700"),
        ("zero seven one one", "500600711"),
        ("0700", "500600700"),
    ],
)
async def test_account_choice_by_street_or_last_digits(svc, answer, account):
    d = CollectingDispatcher()
    result = await ValidatePaymentForm().validate_account_choice(
        answer, d, tracker(slots=SAM, text=answer, intent="inform"), DOMAIN
    )
    assert result["identified"] is True and result["account_number"] == account
    assert result["customer_first_name"] == "Sam"


@pytest.mark.parametrize("answer", ["the one on Elm Street", "the street one", "I don't know"])
async def test_an_account_choice_not_understood_falls_back_to_the_account_number(svc, answer):
    d = CollectingDispatcher()
    result = await ValidatePaymentForm().validate_account_choice(
        answer, d, tracker(slots=SAM, text=answer, intent="inform"), DOMAIN
    )
    assert result == {"account_choice": None, "account_candidates": [], "billing_zip": None}
    assert responses_of(d) == ["account_choice_not_understood"]


async def test_accounts_without_addresses_are_chosen_by_digits(svc, db_engine):
    from sqlalchemy import update

    from actions.questions import AskAccountChoice
    from paybot.db.models import Account

    with db_engine.begin() as conn:
        conn.execute(update(Account).values(service_address=None))
    d = CollectingDispatcher()
    await AskAccountChoice().run(d, tracker(slots=SAM), DOMAIN)
    assert responses_of(d) == ["ask_account_choice_by_digits"]
    assert "the account ending 0700 and the account ending 0711" in texts(d)[0]
    assert custom(d)[0]["mode"] == "digits"


# --- fillers are no answer ------------------------------------------------------------------
@pytest.mark.parametrize("filler", ["uh", "um", "hmm", "Hmm.", "um, uh"])
async def test_a_filler_does_not_answer_a_yes_no_question(svc, db_engine, filler):
    from paybot.db.models import OutboundMessage
    from tests.helpers import rows

    d = CollectingDispatcher()
    slots = {**JAMES, "stage": "receipt", "payment_id": 1.0, "caller_number": "+15555550100"}
    events = await ActionYesNo().run(d, tracker(slots=slots, text=filler, intent="affirm"), DOMAIN)
    assert events == []  # the question stays open
    assert responses_of(d) == ["yes_no_not_understood"]
    assert custom(d) == [to_dict(Listen("yes_no"))]
    assert rows(db_engine, OutboundMessage) == []  # no receipt queued on an "uh"


async def test_a_filler_with_no_open_question_asks_to_rephrase(svc):
    d = CollectingDispatcher()
    events = await ActionYesNo().run(d, tracker(text="hmm", intent="affirm"), DOMAIN)
    assert events == [] and responses_of(d) == ["ask_rephrase"]


def test_fillers_are_told_apart_from_answers():
    from paybot.parsing import is_filler

    assert all(is_filler(t) for t in ["uh", "UM", "hmm...", "uh, um", "", "  "])
    assert not any(is_filler(t) for t in ["yes", "uh yes", "um no", "hmm okay", "one"])


# --- system events come only from the bridge ------------------------------------------------
async def test_words_mistaken_for_a_system_event_are_not_one(svc):
    from actions.payment import ActionCaptureResult

    d = CollectingDispatcher()
    events = await ActionHandleSilence().run(
        d, tracker(slots={"channel": "voice"}, events=_silences(3), text="silence"), DOMAIN
    )
    assert events == [] and responses_of(d) == ["ask_rephrase"]  # no transfer, no hangup
    d = CollectingDispatcher()
    t = tracker(slots={**JAMES, "payment_key": "k"}, text="capture result", intent="capture_result")
    assert await ActionCaptureResult().run(d, t, DOMAIN) == []
    assert responses_of(d) == ["ask_rephrase"]


async def test_another_amount_asks_just_how_much(svc):
    from actions.questions import AskPaymentAmount

    d = CollectingDispatcher()
    t = tracker(slots=JAMES, text="a different amount", intent="other_amount")
    await AskPaymentAmount().run(d, t, DOMAIN)
    assert responses_of(d) == ["ask_other_amount"]
    assert "between $1.00 and $321.72" in texts(d)[0]


async def test_a_filler_is_no_miss_for_the_fallback(svc):
    from actions.anytime import ActionFallback

    d = CollectingDispatcher()
    slots = {**JAMES, "stage": "anything_else"}
    await ActionFallback().run(d, tracker(slots=slots, text="hmm", intent="nlu_fallback"), DOMAIN)
    assert responses_of(d) == ["yes_no_not_understood"]  # the open question, asked again
    filler = {"event": "user", "text": "um", "parse_data": {"intent": {"name": "nlu_fallback"}}}
    answered = {"event": "action", "name": "action_fallback"}
    events = [*_misses(2)[:-1], filler, answered, *_misses(1)]  # miss, "um", miss
    d = CollectingDispatcher()
    await ActionFallback().run(d, tracker(events=events, text="blah"), DOMAIN)
    assert responses_of(d) == ["fallback_options"]  # the "um" neither counts nor breaks the run


async def test_a_filler_does_not_answer_are_you_ready(svc):
    d = CollectingDispatcher()
    t = tracker(slots=JAMES, text="hmm", intent="nlu_fallback", loop="payment_form")
    result = await ValidatePaymentForm().validate_ready_to_pay("hmm", d, t, DOMAIN)
    assert result == {"ready_to_pay": None}  # not a no, and not an amount
    assert responses_of(d) == ["yes_no_not_understood"]


# --- off script (issue 10) -----------------------------------------------------------------
@pytest.mark.parametrize("text", ["??!!", "?", "...", "🙂", "uhhh", "ummmm"])
async def test_punctuation_alone_confirms_nothing(svc, text):
    d = CollectingDispatcher()
    t = tracker(text=text, intent="affirm")
    result = await ValidatePaymentForm().validate_confirm_payment(text, d, t, DOMAIN)
    assert result == {"confirm_payment": None}


def _asked(question: str, times: int) -> list[dict]:
    """``times`` turns, each a user message answered with ``question``."""
    turn = [{"event": "user", "text": "hmm"}, {"event": "bot", "text": f"Sorry. {question}"}]
    return [*turn * times, {"event": "user", "text": "hmm"}]


def test_times_asked_counts_the_replies_in_a_row_that_ended_with_the_question():
    from actions.anytime import times_asked

    q = "Is there anything else I can help you with?"
    assert times_asked(tracker(events=_asked(q, 3)), q) == 3
    broken = [*_asked(q, 2)[:-1], {"event": "user"}, {"event": "bot", "text": "Okay."}]
    assert times_asked(tracker(events=[*broken, *_asked(q, 1)]), q) == 1


async def test_anything_else_is_not_asked_a_fourth_time(svc):
    from actions.anytime import anything_else

    q = "Is there anything else I can help you with?"
    d = CollectingDispatcher()
    anything_else(d, tracker(events=_asked(q, 2)))
    assert d.messages[0]["text"] == q
    d = CollectingDispatcher()
    anything_else(d, tracker(events=_asked(q, 3)))
    assert "?" not in d.messages[0]["text"] and "BALANCE" in d.messages[0]["text"]


def _form_asked(slot: str, times: int) -> list[dict]:
    ask = {"event": "slot", "name": "requested_slot", "value": slot}
    asked = [e for _ in range(times) for e in ({"event": "user", "text": "hmm"}, ask)]
    return [*asked, {"event": "user", "text": "hmm"}]  # and this turn's message


async def test_the_form_does_not_ask_a_fourth_time(svc):
    from actions.recovery import asked_in_a_row

    assert asked_in_a_row(tracker(events=_form_asked("payment_amount", 3)), "payment_amount") == 3
    other = [*_form_asked("ready_to_pay", 2)[:-1], *_form_asked("payment_amount", 1)]
    assert asked_in_a_row(tracker(events=other), "payment_amount") == 1
    slots = {**JAMES, "ready_to_pay": False, "requested_slot": "payment_amount"}
    twice = tracker(slots=slots, text="hmm", events=_form_asked("payment_amount", 2),
                    loop="payment_form")
    events = await ValidatePaymentForm().run(CollectingDispatcher(), twice, DOMAIN)
    assert events[-1] == SlotSet("requested_slot", "payment_amount")  # a third ask is fine
    t = tracker(slots=slots, text="hmm", events=[*_form_asked("payment_amount", 3)],
                loop="payment_form")
    # Right after the message with nothing taken from it, Rasa rejects the form and an
    # interruption rule answers first: the form is not ended there...
    events = await ValidatePaymentForm().run(CollectingDispatcher(), t, DOMAIN)
    assert SlotSet("form_outcome", "stuck") not in events
    # ...but when it comes back to ask (after utter_help, say), it asks no fourth time.
    t.events.append({"event": "action", "name": "utter_help"})
    events = await ValidatePaymentForm().run(CollectingDispatcher(), t, DOMAIN)
    assert SlotSet("form_outcome", "stuck") in events
    assert events[-1] == SlotSet("requested_slot", None)


@pytest.mark.parametrize(
    ("channel", "new_session"), [("chat", True), ("sms", True), ("voice", False)]
)
async def test_goodbye_ends_a_text_session(svc, channel, new_session):
    from rasa_sdk.events import SessionStarted

    from actions.anytime import ActionGoodbye

    slots = {**JAMES, "channel": channel, "caller_number": "+15555550100"}
    events = await ActionGoodbye().run(CollectingDispatcher(), tracker(slots=slots), DOMAIN)
    assert (SessionStarted() in events) is new_session
    if new_session:  # the next message starts afresh, on the same channel and number
        after = events[events.index(SessionStarted()) :]
        assert SlotSet("caller_number", "+15555550100") in after
        assert SlotSet("channel", channel) in after


async def test_an_unsure_no_or_goodbye_to_anything_else_ends(svc):
    from actions.anytime import ActionFallback

    t = tracker(slots={**JAMES, "stage": "how_can_i_help"}, text="no, that's all",
                intent="nlu_fallback")
    t.latest_message["intent_ranking"] = [
        {"name": "nlu_fallback"}, {"name": "deny"}, {"name": "goodbye"}, {"name": "help"}
    ]
    d = CollectingDispatcher()
    await ActionFallback().run(d, t, DOMAIN)
    assert responses_of(d) == ["goodbye"]
    t.latest_message["intent_ranking"] = [{"name": "deny"}, {"name": "help"}]
    d = CollectingDispatcher()
    await ActionFallback().run(d, t, DOMAIN)
    assert responses_of(d) == ["ask_rephrase"]  # a no or a question for help: not sure


@pytest.mark.parametrize(
    "said",
    [
        "4000 0000 0000 0002",
        "4000000000000002",
        "4000-0000-0000-0002",
        "four zero zero zero zero zero zero zero zero zero zero zero zero zero zero two",
        "my account number is 4000.0000.0000.0002",
    ],
)
@pytest.mark.parametrize("channel", ["voice", "sms", "chat"])
async def test_a_card_number_is_never_taken_for_an_account_number(svc, said, channel):
    d = CollectingDispatcher()
    t = tracker(slots={"channel": channel})
    result = await ValidatePaymentForm().validate_account_number(said, d, t, DOMAIN)
    assert result == {"account_number": None}
    assert responses_of(d) == ["card_number_not_account"]
    assert ("keyed in" if channel == "voice" else "by text") in texts(d)[0]


async def test_a_verification_flood_is_refused_politely(svc, monkeypatch):
    """The global rate limit: once everyone together failed too often, the next check is
    refused with a clear answer (audited by the verifier) and the caller goes to an agent."""
    from actions.payment import ActionCompletePayment

    limited = IdentityVerifier(
        svc.engine, svc.directory, LockoutPolicy(max_failures=5, rate_limit=2)
    )
    monkeypatch.setattr(svc, "verifier", limited)
    for number in ("111111111", "222222222"):
        t = tracker(slots={"account_number": number, "idv_failures": 0.0})
        await ValidatePaymentForm().validate_billing_zip("12345", CollectingDispatcher(), t, DOMAIN)
    d, result = await _answer_factor(svc, "94107")  # James, the right ZIP: refused for now
    assert result == {"form_outcome": "idv_busy"}
    assert responses_of(d) == ["idv_busy"]
    done = CollectingDispatcher()
    await ActionCompletePayment().run(done, tracker(slots=result), DOMAIN)
    assert custom(done)[0]["reason"] == "idv_busy"


# --- a Twilio <Pay> that ended before any charge ----------------------------------------------
@pytest.mark.parametrize(
    ("code", "response"),
    [("caller_cancelled", "capture_cancelled"), ("too_many_attempts", "capture_failed"),
     ("connector_error", "payment_failed")],
)  # fmt: skip
async def test_a_pay_that_ended_before_the_charge_offers_another_method(svc, code, response):
    from decimal import Decimal

    from actions.payment import ActionCaptureResult
    from paybot.payments.delegated import TWILIO_PAY, DelegatedResult, settle_delegated
    from tests.helpers import account

    james = account(svc.engine, "100200300")
    payment, _ = svc.ledger.open_delegated(
        account_id=james.id, amount=Decimal("10.00"), kind="card", processor=TWILIO_PAY,
        reference="Default", conversation_id="chat:test", idempotency_key="p" * 32,
    )  # fmt: skip
    settle_delegated(svc.ledger.settlement, payment.payment_id, DelegatedResult("failed", code))
    d = CollectingDispatcher()
    t = tracker(slots={**JAMES, "channel": "voice", "payment_key": "p" * 32},
                intent="capture_result", metadata={"is_external": True},
                entities=[{"entity": "capture_status", "value": "submitted"}])  # fmt: skip
    events = await ActionCaptureResult().run(d, t, DOMAIN)
    assert responses_of(d)[0] == response
    offered_again = slots_of(events).get("method_offer") == "new"
    assert offered_again == (code != "connector_error")  # a failed charge is not retried


async def test_a_bank_account_the_gateway_cannot_take_is_refused_clearly(svc):
    """The Stripe gateway takes no bank accounts: the caller hears why, is asked for another
    method, and no decline is counted (end to end: tests/test_capture_matrix.py on Stripe)."""
    from decimal import Decimal

    from actions.payment import ActionCaptureResult
    from paybot.payments.delegated import TWILIO_PAY
    from tests.helpers import account

    james = account(svc.engine, "100200300")
    payment, _ = svc.ledger.open_delegated(
        account_id=james.id, amount=Decimal("10.00"), kind="bank", processor=TWILIO_PAY,
        reference="Default", conversation_id="chat:test", idempotency_key="b" * 32,
    )  # fmt: skip
    svc.ledger.settlement.fail(payment.payment_id, "bank_not_supported", "payment.failed")
    d = CollectingDispatcher()
    t = tracker(slots={**JAMES, "channel": "voice", "payment_key": "b" * 32},
                intent="capture_result", metadata={"is_external": True},
                entities=[{"entity": "capture_status", "value": "submitted"}])  # fmt: skip
    events = await ActionCaptureResult().run(d, t, DOMAIN)
    assert responses_of(d)[0] == "payment_declined"
    assert "we can only take card payments on this line" in texts(d)[0]
    assert slots_of(events).get("method_offer") == "new"
    assert "decline_count" not in slots_of(events)
