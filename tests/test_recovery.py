"""Recovery when speech recognition is wrong (actions/recovery.py), as functions: the keypad
after a failed spoken answer, an agent after two, read-backs of doubtful spoken digits,
mixed answers ("no, what is my balance", "yes, use that card"). The whole conversations are
in tests/test_conversations.py and tests/test_voice_calls.py."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.anytime import ActionHandleSilence
from actions.payment_form import ValidatePaymentForm
from actions.questions import AskBillingZip
from actions.recovery import asked_in_a_row
from paybot.dialog.payloads import Listen, to_dict
from tests.test_actions import DOMAIN, JAMES, custom, responses_of, texts, tracker

SPOKEN = {"input": "speech"}  # an engine without a confidence (PocketSphinx)
SURE = {"input": "speech", "confidence": "0.95"}
KEYED = {"input": "keypad"}
UNKNOWN_CALLER = {"channel": "voice", "account_number": "100200300", "idv_failures": 0.0}


def asked(slot: str, times: int, read_back: tuple[int, ...] = ()) -> list[dict]:
    """Events of ``times`` turns in which the form asked ``slot`` (read back in the turns
    numbered in ``read_back``), then this turn's message."""
    events: list[dict] = []
    for turn in range(times):
        events.append({"event": "user", "text": "x"})
        if turn in read_back:
            events.append({"event": "slot", "name": "heard_digits", "value": "94107"})
        events.append({"event": "slot", "name": "requested_slot", "value": slot})
    return [*events, {"event": "user", "text": "x"}]


async def zip_answer(svc, said: str, metadata: dict, *, times: int = 1, intent=None, **slots):
    d = CollectingDispatcher()
    t = tracker(
        slots={**UNKNOWN_CALLER, **slots, "requested_slot": "billing_zip"},
        text=said,
        intent=intent,
        metadata=metadata,
        events=asked("billing_zip", times),
        loop="payment_form",
    )
    return d, await ValidatePaymentForm().validate_billing_zip(said, d, t, DOMAIN)


# --- read-backs ----------------------------------------------------------------------------
async def test_a_doubtful_spoken_zip_is_read_back_before_it_is_used(svc):
    d, result = await zip_answer(svc, "nine four one zero seven", SPOKEN)
    assert result == {"billing_zip": None, "heard_digits": "94107"}
    assert d.messages == [] and svc.verifier.failures("100200300", None) == 0
    ask = CollectingDispatcher()
    t = tracker(slots={**UNKNOWN_CALLER, **result})
    await AskBillingZip().run(ask, t, DOMAIN)
    assert texts(ask) == ["I heard 9 4 1 0 7. Is that right?"]
    assert custom(ask) == [to_dict(Listen("yes_no"))]

    _, yes = await zip_answer(svc, "yes", SPOKEN, intent="affirm", heard_digits="94107")
    assert yes["identified"] is True and yes["heard_digits"] is None


async def test_a_no_to_the_read_back_is_a_failed_answer(svc):
    d, result = await zip_answer(svc, "no", SPOKEN, intent="deny", heard_digits="94101")
    assert result == {"billing_zip": None, "heard_digits": None}
    assert responses_of(d) == ["read_back_wrong", "keypad_hint"]
    assert svc.verifier.failures("100200300", None) == 0  # nothing was checked
    d, again = await zip_answer(svc, "9 4 1 0 7", KEYED, heard_digits="94101")
    assert again["identified"] is True and again["heard_digits"] is None  # keyed: no read-back


@pytest.mark.parametrize("metadata", [SURE, KEYED, {}])
async def test_sure_or_keyed_digits_are_used_at_once(svc, metadata):
    _, result = await zip_answer(svc, "94107", metadata)
    assert result["identified"] is True and "heard_digits" not in result


async def test_a_doubtful_spoken_account_number_is_read_back(svc):
    d = CollectingDispatcher()
    t = tracker(slots={"channel": "voice"}, text="one zero zero two zero zero three zero zero",
                metadata={"input": "speech", "confidence": "0.41"})
    result = await ValidatePaymentForm().validate_account_number(t.latest_message["text"], d, t,
                                                                 DOMAIN)
    assert result == {"account_number": None, "heard_digits": "100200300"}


async def test_a_read_back_is_no_ask_and_never_the_fourth(svc):
    events = asked("billing_zip", 3, read_back=(1,))
    assert asked_in_a_row(tracker(events=events), "billing_zip") == 2
    slots = {**UNKNOWN_CALLER, "requested_slot": "billing_zip"}
    # The answer to the third ask is doubtful: it is read back, not cut off.
    t = tracker(slots=slots, text="nine four one zero seven", metadata=SPOKEN,
                events=[*asked("billing_zip", 3), {"event": "slot", "name": "billing_zip",
                                                   "value": "nine four one zero seven"}],
                loop="payment_form")
    events = await ValidatePaymentForm().run(CollectingDispatcher(), t, DOMAIN)
    assert SlotSet("heard_digits", "94107") in events
    assert SlotSet("form_outcome", "stuck") not in events
    # A no to that read-back: the question is not asked a fourth time.
    t = tracker(slots={**slots, "heard_digits": "94107"}, text="no", intent="deny",
                events=[*asked("billing_zip", 4, read_back=(3,)),
                        {"event": "slot", "name": "billing_zip", "value": "no"}],
                loop="payment_form")
    events = await ValidatePaymentForm().run(CollectingDispatcher(), t, DOMAIN)
    assert SlotSet("form_outcome", "stuck") in events


# --- the keypad, then an agent -----------------------------------------------------------------
async def test_a_failed_spoken_zip_offers_the_keypad_then_an_agent(svc):
    d, _ = await zip_answer(svc, "nine four", SPOKEN, times=1)
    assert responses_of(d) == ["not_understood_zip", "keypad_hint"]
    assert "type it on your keypad" in texts(d)[1]
    d, _ = await zip_answer(svc, "nine four", SPOKEN, times=2)
    assert responses_of(d) == ["not_understood_zip", "agent_offer_keypad"]
    assert "say agent" in texts(d)[1]
    d, _ = await zip_answer(svc, "nine four", SPOKEN, times=3)
    assert responses_of(d) == ["not_understood_zip"]  # the form hands over now


async def test_a_keyed_miss_or_a_text_gets_no_keypad_hint(svc):
    d, _ = await zip_answer(svc, "94", KEYED, times=1)
    assert responses_of(d) == ["not_understood_zip"]
    d, _ = await zip_answer(svc, "94", {}, times=2, channel="sms")
    assert responses_of(d) == ["not_understood_zip", "agent_offer"]
    assert "AGENT" in texts(d)[1]


async def test_a_misheard_amount_offers_the_keypad_with_the_decimal_point(svc):
    slots = {**JAMES, "channel": "voice", "ready_to_pay": False}
    d = CollectingDispatcher()
    t = tracker(slots=slots, text="nine thousand dollars", metadata=SPOKEN, intent="inform",
                events=asked("payment_amount", 1))
    await ValidatePaymentForm().validate_payment_amount(t.latest_message["text"], d, t, DOMAIN)
    assert responses_of(d) == ["amount_out_of_range", "keypad_hint_amount"]
    assert "star for the decimal point" in texts(d)[1]


async def test_silence_at_a_digits_question_offers_the_keypad_then_an_agent(svc):
    for times, hint in ((1, "keypad_hint"), (2, "agent_offer_keypad")):
        d = CollectingDispatcher()
        t = tracker(
            slots={**UNKNOWN_CALLER, "requested_slot": "billing_zip"},
            text="EXTERNAL: silence",
            intent="silence",
            metadata={"is_external": True},
            events=[*asked("billing_zip", times)[:-1],
                    {"event": "user", "text": "EXTERNAL: silence",
                     "parse_data": {"intent": {"name": "silence"}}}],
            loop="payment_form",
        )
        await ActionHandleSilence().run(d, t, DOMAIN)
        assert responses_of(d) == ["silence", hint]


async def test_a_keyed_date_is_month_and_day(svc):
    due = date.today() + timedelta(days=20)
    from sqlmodel import Session, select

    from paybot.db.models import Account

    with Session(svc.engine) as session:
        account = session.exec(select(Account).where(Account.account_number == "100200300")).one()
        account.due_date = due
        session.add(account)
        session.commit()
    when = date.today() + timedelta(days=2)
    keyed = f"{when.month}{when.day:02d}"
    t = tracker(slots={**JAMES, "channel": "voice"}, text=keyed, metadata=KEYED)
    result = await ValidatePaymentForm().validate_payment_date(keyed, CollectingDispatcher(), t,
                                                               DOMAIN)
    assert result == {"payment_date": when.isoformat()}


# --- mixed answers -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("said", "intent", "choice"),
    [
        ("yes, use that card", "affirm", "stored"),
        ("yes use that card", "choose_method", "stored"),
        ("yes", "affirm", "stored"),
        ("no, a new card", "choose_method", "card"),
        ("yes, a different card", "choose_method", "card"),
        ("yes, my bank account", "choose_method", "bank"),
    ],
)
async def test_the_method_question_understands_yes_use_that_card(svc, said, intent, choice):
    entities = [{"entity": "method", "value": "card"}] if "card" in said else []
    slots = {**JAMES, "channel": "voice", "stored_method_id": 1.0}
    t = tracker(slots=slots, text=said, intent=intent, entities=entities)
    result = await ValidatePaymentForm().validate_payment_method(said, CollectingDispatcher(), t,
                                                                 DOMAIN)
    assert result["payment_method"] == choice, result


@pytest.mark.parametrize("slot", ["ready_to_pay", "payment_amount", "confirm_payment"])
async def test_no_what_is_my_balance_is_a_balance_question(svc, slot):
    said = "no, what is my balance"
    t = tracker(slots={**JAMES, "channel": "voice", "payment_amount": "5.00"}, text=said,
                intent="deny")
    d = CollectingDispatcher()
    result = await getattr(ValidatePaymentForm(), f"validate_{slot}")(said, d, t, DOMAIN)
    assert result == {slot: None}  # no "no": the question is asked again
    assert responses_of(d) in (["balance"], ["balance_overdue"])


async def test_the_last_four_get_the_keypad_then_an_agent_and_a_read_back(svc, monkeypatch):
    from actions.conversation import ActionStartConversation
    from tests.test_actions import JAMES_PHONE, session_begin

    monkeypatch.setattr(svc, "settings", svc.settings.copy(update={"caller_id_factor": "last4"}))
    start = {
        e["name"]: e["value"]
        for e in await ActionStartConversation().run(
            CollectingDispatcher(), session_begin(JAMES_PHONE), DOMAIN
        )
        if e.get("event") == "slot"
    }

    async def answer(said: str, times: int, **slots):
        d = CollectingDispatcher()
        t = tracker(slots={**start, "idv_failures": 0.0, "requested_slot": "billing_zip", **slots},
                    text=said, metadata=SPOKEN, events=asked("billing_zip", times),
                    intent="affirm" if said == "yes" else None)
        return d, await ValidatePaymentForm().validate_billing_zip(said, d, t, DOMAIN)

    d, _ = await answer("four two", 1)
    assert responses_of(d) == ["not_understood_last4", "keypad_hint"]
    d, _ = await answer("four two", 2)
    assert responses_of(d) == ["not_understood_last4", "agent_offer_keypad"]
    _, heard = await answer("four two four two", 1)
    assert heard == {"billing_zip": None, "heard_digits": "4242"}
    _, result = await answer("yes", 1, heard_digits="4242")
    assert result["identified"] is True and result["heard_digits"] is None


@pytest.mark.parametrize(
    "said",
    ["uh, hold on", "hang on a second", "wait", "ghfj ghfj", "asdkjh", "mxyzptlk", "let me think"],
)
async def test_a_request_to_wait_is_no_yes_to_the_confirmation(svc, said):
    """Fuzzer findings (seeds 10b436c0, 5eed2026): NLU read "uh, hold on" and gibberish as
    affirm and the payment went through."""
    t = tracker(slots={**JAMES, "payment_amount": "5.00", "payment_method": "stored"},
                text=said, intent="affirm")
    d = CollectingDispatcher()
    result = await ValidatePaymentForm().validate_confirm_payment(said, d, t, DOMAIN)
    assert result == {"confirm_payment": None}
    assert responses_of(d) == ["yes_no_not_understood"]


@pytest.mark.parametrize("said", ["yes", "yes please", "yep, do it", "confirm", "1", "yeah ok"])
async def test_an_explicit_yes_confirms_the_payment(svc, said):
    t = tracker(slots={**JAMES, "payment_amount": "5.00", "payment_method": "stored"},
                text=said, intent="affirm")
    result = await ValidatePaymentForm().validate_confirm_payment(said, CollectingDispatcher(), t,
                                                                 DOMAIN)
    assert result["confirm_payment"] is True and result["payment_key"]


@pytest.mark.parametrize(("stage", "then"), [("receipt", "anything_else"),
                                             ("anything_else", "what_next"),
                                             ("how_can_i_help", "what_next")])
async def test_a_yes_no_question_outside_the_form_is_not_asked_a_fourth_time(svc, stage, then):
    """Found by tests/test_spoken_calls.py: a caller whose "no" the engine heard as a filler
    was told "Sorry, please say yes or no" fifteen times in a row after the receipt question."""
    from actions.answers import ActionYesNo
    from actions.responses import render

    slots = {**JAMES, "channel": "voice", "stage": stage}
    again = render(tracker(slots=slots), "yes_no_not_understood")
    listen = {"event": "bot", "data": {"custom": to_dict(Listen("yes_no"))}}
    events: list[dict] = [{"event": "bot", "text": "Would you like a receipt by text message?"}]
    for reprompts in range(3):
        d = CollectingDispatcher()
        t = tracker(slots=slots, text="uh", intent="deny",
                    events=[*events, {"event": "user", "text": "uh"}])
        result = await ActionYesNo().run(d, t, DOMAIN)
        if reprompts < 2:  # the question, and asked again twice
            assert responses_of(d) == ["yes_no_not_understood"] and result == []
        else:
            assert responses_of(d) == [then]
            assert {"event": "slot", "timestamp": None, "name": "stage",
                    "value": None if then == "what_next" else "anything_else"} in result
        events += [{"event": "user", "text": "uh"}, {"event": "bot", "text": again}, listen]
