"""What a caller can ask for at any time: balance, repeat, start over, help, cancel, agent,
goodbye; and what the bot does about silence and about what it did not understand."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import (
    ActiveLoop,
    EventType,
    FollowupAction,
    SessionStarted,
    SlotSet,
    UserUtteranceReverted,
)
from rasa_sdk.executor import CollectingDispatcher

from actions import customer
from actions.conversation import begin, channel_of, is_system_event
from actions.recovery import MAX_ASKS, failed
from actions.responses import render, say
from actions.services import services
from actions.wording import day, money
from paybot.dialog.payloads import Hangup, Listen, Transfer, to_dict
from paybot.parsing import is_filler

# The yes/no questions asked outside the payment form (the ``stage`` slot; actions/answers.py).
YES_NO_STAGES = ("receipt", "anything_else", "cancel_scheduled", "how_can_i_help")
LISTEN = FollowupAction("action_listen")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def last_question(texts: list[str]) -> str | None:
    """The last sentence of a reply, when it is a question."""
    sentences = [s for t in texts if t for s in _SENTENCE_END.split(t.strip()) if s]
    return sentences[-1] if sentences and sentences[-1].endswith("?") else None


def times_asked(tracker: Tracker, question: str | None) -> int:
    """How many of the bot's replies before this turn, in a row, ended with ``question``."""
    if not question:
        return 0
    count = 0
    for earlier in _replies_before(tracker):
        if last_question(earlier) != question:
            break
        count += 1
    return count


def times_said(tracker: Tracker, text: str) -> int:
    """How many of the bot's replies before this turn, in a row, ended with message ``text``."""
    count = 0
    for earlier in _replies_before(tracker):
        said = [t for t in earlier if t]
        if not said or said[-1] != text:
            break
        count += 1
    return count


def _replies_before(tracker: Tracker) -> list[list[str]]:
    """The bot's replies before the latest user message, latest first (each its texts)."""
    replies: list[list[str]] = []
    reply: list[str] | None = None  # None until the latest user message
    for event in reversed(tracker.events):
        kind = event.get("event")
        if kind == "bot" and reply is not None:
            reply.insert(0, event.get("text") or "")
        elif kind == "user":
            if reply:
                replies.append(reply)
            reply = []
    return replies


def asks_again(tracker: Tracker, text: str) -> bool:
    """Whether a reply ending with ``text`` would ask its question more than MAX_ASKS times
    in a row."""
    return times_asked(tracker, last_question([text])) >= MAX_ASKS


def anything_else(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
    """Ask whether there is anything else; a yes/no follows. Asked three times in a row
    already: say what the caller can do instead of asking again."""
    text = render(tracker, "anything_else")
    if asks_again(tracker, text):
        say(dispatcher, tracker, "what_next")
    else:
        dispatcher.utter_message(text=text)
    dispatcher.utter_message(json_message=to_dict(Listen("yes_no")))
    return [SlotSet("stage", "anything_else")]


def not_an_answer(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
    """A filler ("uh", "hmm"): ask again for a yes or no to the open question (or to
    rephrase, when none is open); change nothing. A yes/no question already asked and asked
    again twice is not asked a fourth time: no receipt, or what the caller can do instead."""
    stage = tracker.get_slot("stage")
    if stage in YES_NO_STAGES:
        text = render(tracker, "yes_no_not_understood")
        if times_said(tracker, text) >= MAX_ASKS - 1:
            if stage == "receipt":
                return anything_else(dispatcher, tracker)
            say(dispatcher, tracker, "what_next")
            return [SlotSet("stage", None)]
        dispatcher.utter_message(text=text)
        dispatcher.utter_message(json_message=to_dict(Listen("yes_no")))
    else:
        text = render(tracker, "ask_rephrase")
        if asks_again(tracker, text):
            say(dispatcher, tracker, "fallback_options")
        else:
            dispatcher.utter_message(text=text)
        dispatcher.utter_message(json_message=to_dict(Listen("free")))
    return []


def end_of_session(tracker: Tracker) -> list[EventType]:
    """On a text channel, what ends the conversation (goodbye, a transfer) also ends the
    session: the next message starts afresh, as a new conversation does (slots reset, the
    channel and the sender's number kept). A call simply ends."""
    if channel_of(tracker) == "voice":
        return []
    return [
        SessionStarted(),
        SlotSet("channel", channel_of(tracker)),
        SlotSet("caller_number", tracker.get_slot("caller_number")),
    ]


def transfer(dispatcher: CollectingDispatcher, tracker: Tracker, reason: str) -> list[EventType]:
    """Hand the caller to an agent with the reason and what the bot knows (never card data)."""
    say(dispatcher, tracker, "transfer")
    context = {
        "conversation_id": tracker.sender_id,
        "channel": tracker.get_slot("channel"),
        "account_number": tracker.get_slot("account_number")
        if tracker.get_slot("identified")
        else None,
        "identified_by": tracker.get_slot("identified_by"),
        "verification_failures": int(tracker.get_slot("idv_failures") or 0),
        "payment_amount": tracker.get_slot("payment_amount"),
        "last_confirmation_number": tracker.get_slot("confirmation_number"),
    }
    dispatcher.utter_message(json_message=to_dict(Transfer(reason=reason, context=context)))
    return [SlotSet("stage", None), ActiveLoop(None), *end_of_session(tracker)]


def _trailing_user_intents(tracker: Tracker, name: str) -> int:
    """How many of the latest user turns in a row had intent ``name``."""
    count = 0
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        if (event.get("parse_data", {}).get("intent") or {}).get("name") != name:
            break
        count += 1
    return count


def last_bot_turn(tracker: Tracker) -> list[dict[str, Any]]:
    """The bot's messages between the previous user turn and the latest one."""
    seen_latest_user, messages = False, []
    for event in reversed(tracker.events):
        kind = event.get("event")
        if kind == "user":
            if seen_latest_user:
                break
            seen_latest_user = True
        elif kind == "bot" and seen_latest_user:
            messages.append(event)
    return list(reversed(messages))


def replay(dispatcher: CollectingDispatcher, tracker: Tracker) -> None:
    """Say again what the bot said last (text and instructions); not a fourth time in a
    row: then what the caller can do instead."""
    said = last_bot_turn(tracker)
    if not said:  # nothing said yet in this conversation
        say(dispatcher, tracker, "how_can_i_help")
        return
    if asks_again(tracker, last_question([e.get("text") or "" for e in said]) or ""):
        say(dispatcher, tracker, "fallback_options")
        return
    for event in said:
        data = event.get("data") or {}
        dispatcher.utter_message(text=event.get("text"), json_message=data.get("custom"))


class ActionShowBalance(Action):
    def name(self) -> str:
        return "action_show_balance"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        svc = await services()
        record = await customer.current_account(svc, tracker)
        in_form = tracker.active_loop.get("name") == "payment_form"
        if record is None:
            events = await begin(dispatcher, tracker, "balance")
            return events if in_form else [*events, FollowupAction("payment_form")]
        tell_balance(dispatcher, tracker, record)
        return [] if in_form else anything_else(dispatcher, tracker)


def tell_balance(
    dispatcher: CollectingDispatcher, tracker: Tracker, record: customer.AccountRecord
) -> None:
    """Say the balance, the minimum and the due date of ``record`` (fresh from the directory;
    when the CRM did not answer, that the balance cannot be confirmed now)."""
    if not record.confirmed:
        say(dispatcher, tracker, "balance_unconfirmed")
        return
    overdue = record.due_date is not None and record.due_date < date.today()
    say(
        dispatcher,
        tracker,
        "balance_overdue" if overdue else "balance",
        balance=money(record.balance, record.currency),
        minimum=money(record.minimum_payment, record.currency),
        due=day(record.due_date),
    )


class ActionRepeat(Action):
    def name(self) -> str:
        return "action_repeat"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if tracker.active_loop.get("name"):
            return []  # the form asks its question again right after this
        replay(dispatcher, tracker)
        return []


class ActionStartOver(Action):
    def name(self) -> str:
        return "action_start_over"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        say(dispatcher, tracker, "start_over")
        return [*customer.forget_payment(), SlotSet("stage", None)]


class ActionNotMe(Action):
    def name(self) -> str:
        return "action_not_me"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        say(dispatcher, tracker, "not_me")
        events = [*customer.forget_identity(), *customer.forget_payment()]
        return [*events, SlotSet("identified", False)]


class ActionCancel(Action):
    def name(self) -> str:
        return "action_cancel"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        say(dispatcher, tracker, "cancelled")
        return [*customer.forget_payment(), *anything_else(dispatcher, tracker)]


class ActionTransferAgent(Action):
    def name(self) -> str:
        return "action_transfer_agent"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        return transfer(dispatcher, tracker, reason="caller_request")


def goodbye(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
    """Say goodbye and end the call once that has played (a text conversation: the session)."""
    say(dispatcher, tracker, "goodbye")
    dispatcher.utter_message(json_message=to_dict(Hangup()))
    return [SlotSet("stage", None), ActiveLoop(None), *end_of_session(tracker)]


class ActionGoodbye(Action):
    def name(self) -> str:
        return "action_goodbye"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        return goodbye(dispatcher, tracker)


class ActionHandleSilence(Action):
    """Silence from the caller: reprompt twice, then an agent (voice) or goodbye."""

    def name(self) -> str:
        return "action_handle_silence"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if not is_system_event(tracker):  # words NLU mistook for the bridge's event
            say(dispatcher, tracker, "ask_rephrase")
            return []
        silences = _trailing_user_intents(tracker, "silence")
        if silences >= 3:
            # The conversation ends here: listen, not the form the silence rule goes back to.
            if (
                tracker.get_slot("channel") == "voice"
                and tracker.get_slot("stage") != "anything_else"
            ):
                return [*transfer(dispatcher, tracker, reason="silence"), LISTEN]
            return [*goodbye(dispatcher, tracker), LISTEN]
        say(dispatcher, tracker, "silence")
        asking = tracker.get_slot("requested_slot")
        if tracker.active_loop.get("name") and asking:
            failed(dispatcher, tracker, asking)  # the keypad, then an agent
        if not tracker.active_loop.get("name"):
            replay(dispatcher, tracker)
        return []


class ActionFallback(Action):
    """The two-stage fallback, for what the bot did not understand (NLU below its threshold,
    an out-of-scope request, or a turn the dialog policies could not place): first ask to
    rephrase, then say what the bot can do and offer an agent; a third miss in a row
    transfers to an agent. A filler ("hmm") is no miss: the open question is asked again."""

    def name(self) -> str:
        return "action_fallback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        text = tracker.latest_message.get("text")
        if text and is_filler(text):
            # Reverted first: a stage the answer changes (a question given up) stays changed.
            return [UserUtteranceReverted(), *not_an_answer(dispatcher, tracker)]
        if tracker.get_slot("stage") in ("anything_else", "how_can_i_help") and _ending(tracker):
            return goodbye(dispatcher, tracker)  # "no, that's all": a no or a goodbye
        misses = turns_not_understood(tracker)
        if misses >= 3:
            return transfer(dispatcher, tracker, reason="not_understood")
        say(dispatcher, tracker, "fallback_options" if misses == 2 else "ask_rephrase")
        dispatcher.utter_message(json_message=to_dict(Listen("free")))
        # As Rasa's own fallback does: the dialog goes on as if the message had not been
        # sent, so the policies listen again (they could not place it) instead of predicting
        # the fallback over and over until the circuit breaker trips.
        return [UserUtteranceReverted()]


def _ending(tracker: Tracker) -> bool:
    """Whether NLU, unsure, found only ways of ending among its two best guesses ("no, that's
    all" sits between deny and goodbye): the answer to "anything else?" is then no."""
    ranking = [
        r.get("name")
        for r in tracker.latest_message.get("intent_ranking") or []
        if r.get("name") != "nlu_fallback"
    ][:2]
    return bool(ranking) and set(ranking) <= {"deny", "goodbye", "thanks"}


# Actions Rasa runs on every turn without answering it.
_BOOKKEEPING_ACTIONS = {"action_listen", "action_extract_slots", None}


def turns_not_understood(tracker: Tracker) -> int:
    """How many user turns in a row, the latest included, the fallback has answered (fillers
    in between neither count nor break the run)."""
    turns, first_reply, latest_seen = 0, None, False
    for event in reversed(tracker.events):
        kind = event.get("event")
        if kind == "action" and event.get("name") not in _BOOKKEEPING_ACTIONS:
            first_reply = event.get("name")  # ends as the first action after the user turn
        elif kind == "user":
            if latest_seen and event.get("text") and is_filler(event["text"]):
                first_reply = None
                continue
            if latest_seen and first_reply != "action_fallback":
                break
            turns, first_reply, latest_seen = turns + 1, None, True
    return max(turns, 1)
