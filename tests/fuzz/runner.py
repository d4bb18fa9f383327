"""Runs simulated customers against the running stack and checks every conversation.

Invariants, per turn: the bot answers every message with some text; no question (the last
sentence of a reply, when it ends with "?") is asked more than three times in a row; a
payment row appears only on the turn the customer said yes to the confirmation question. Per
conversation: no "Circuit breaker tripped" for it in Rasa's log; a customer who can pay by
text and goes back to script pays within ``SCRIPT_TURNS_TO_PAY`` turns.

Seeds: one seed names a whole run; conversation ``i`` on a channel uses ``"{seed}:{channel}:{i}"``
so a failure can be replayed alone (:func:`run_one`). A failed conversation is printed with its
seed and transcript and saved as a corpus file (tests/fuzz/corpus/) that can be replayed.
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import requests
import yaml
from sqlalchemy import func
from sqlmodel import Session, select

from paybot.db.models import Payment
from tests.fuzz.customer import CONFIRM_QUESTIONS, PERSONAS, BotView, Customer, Persona, Said
from tests.stack import Conversation, Stack

CORPUS = Path(__file__).resolve().parent / "corpus"
CIRCUIT_BREAKER = "Circuit breaker tripped"
MAX_SAME_QUESTION = 3
SCRIPT_TURNS_TO_PAY = 20
MAX_TURNS = 60
UNKNOWN_PHONES = tuple(f"+1555555{n:04d}" for n in range(8801, 8809))
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


# --- the two channels -------------------------------------------------------------------------
class ChatLine:
    """Chat over Rasa's REST channel (with or without the customer's number as metadata)."""

    channel = "chat"

    def __init__(self, stack: Stack, phone: str | None) -> None:
        self.conversation = Conversation(stack, "chat", phone)
        self.phone = phone

    @property
    def sender(self) -> str:
        return self.conversation.sender

    def send(self, text: str) -> list[str]:
        return [t for t in self.conversation.say(text).texts if t.strip()]

    def tracker(self) -> dict:
        return self.conversation.tracker(include_events="NONE")


class SmsLine:
    """SMS through the bridge's Twilio webhook, signed as Twilio signs it; the conversation is
    keyed by the phone number, as in production."""

    channel = "sms"

    def __init__(self, stack: Stack, phone: str, auth_token: str, account_sid: str) -> None:
        self.stack, self.phone = stack, phone
        self.auth_token, self.account_sid = auth_token, account_sid
        self.conversation = Conversation(stack, "sms", phone)
        self.conversation.sender = stack.track(f"sms:{phone}")

    @property
    def sender(self) -> str:
        return self.conversation.sender

    def send(self, text: str) -> list[str]:
        from voice_bridge.twilio.signature import sign

        url = self.stack.bridge_url + "/twilio/sms"
        params = {
            "MessageSid": "SM" + uuid.uuid4().hex,
            "AccountSid": self.account_sid,
            "From": self.phone,
            "To": "+15555550000",
            "Body": text,
        }
        signature = sign(url, params, self.auth_token)
        answer = requests.post(
            url, data=params, headers={"X-Twilio-Signature": signature}, timeout=120
        )
        answer.raise_for_status()
        root = ElementTree.fromstring(answer.text)  # noqa: S314 - our own bridge's TwiML
        bodies = [m.text or "" for m in root.iter("Message")]
        return [b for body in bodies for b in body.split("\n\n") if b.strip()]

    def tracker(self) -> dict:
        return self.conversation.tracker(include_events="NONE")


Line = ChatLine | SmsLine


# --- one conversation ---------------------------------------------------------------------------
@dataclass
class Turn:
    said: Said
    reply: list[str]
    state: tuple[str, str, str]


@dataclass
class Outcome:
    seed: str
    channel: str
    sender: str
    phone: str | None
    persona: Persona | None
    turns: list[Turn] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    paid: bool = False

    def transcript(self) -> str:
        who = self.persona.account if self.persona else "scripted"
        lines = [f"seed {self.seed!r}  channel {self.channel}  sender {self.sender}  "
                 f"phone {self.phone}  account {who}"]
        for i, turn in enumerate(self.turns, 1):
            lines.append(f"{i:3d} customer [{turn.said.kind}]: {turn.said.text}")
            lines.append(f"    bot {turn.state}: {' | '.join(turn.reply) or '<NOTHING>'}")
        lines += [f"FAILED: {f}" for f in self.failures]
        return "\n".join(lines)

    def corpus_entry(self) -> dict:
        return {
            "seed": self.seed,
            "channel": self.channel,
            "phone": self.phone,
            "failures": self.failures[:3],
            "messages": [t.said.text for t in self.turns],
        }


def last_question(texts: list[str]) -> str | None:
    """The reply's last sentence when it is a question (or, by text, says what to reply)."""
    sentences = [s for t in texts for s in _SENTENCE.split(t.strip()) if s]
    if sentences and (sentences[-1].endswith("?") or sentences[-1].startswith("Reply ")):
        return sentences[-1]
    return None


def payments_of(stack: Stack, sender: str) -> int:
    assert stack.engine is not None
    with Session(stack.engine) as session:
        return session.exec(
            select(func.count()).select_from(Payment).where(Payment.conversation_id == sender)
        ).one()


class Checker:
    """The per-turn invariants of one conversation."""

    def __init__(self, stack: Stack, outcome: Outcome) -> None:
        self.stack, self.outcome = stack, outcome
        self.payments = payments_of(stack, outcome.sender)
        self.question: str | None = None
        self.asked = 0
        self.previous_reply: list[str] = []

    def after(self, said: Said, reply: list[str]) -> None:
        n = len(self.outcome.turns)
        if not reply:
            self.outcome.failures.append(f"turn {n}: no answer to {said.text!r}")
        question = last_question(reply)
        self.asked = self.asked + 1 if question and question == self.question else 1
        self.question = question
        if question and self.asked > MAX_SAME_QUESTION:
            self.outcome.failures.append(f"turn {n}: {question!r} asked {self.asked} times")
        payments = payments_of(self.stack, self.outcome.sender)
        if payments > self.payments:
            asked = any(q in " ".join(self.previous_reply) for q in CONFIRM_QUESTIONS)
            if not (asked and said.affirmative):
                self.outcome.failures.append(
                    f"turn {n}: a payment without an explicit yes to the confirmation"
                )
        self.payments = payments
        self.previous_reply = reply

    def circuit_breakers(self) -> None:
        hits = [line for line in self.stack.watched(CIRCUIT_BREAKER) if self.outcome.sender in line]
        if hits:
            self.outcome.failures.append(f"circuit breaker tripped {len(hits)} time(s)")


def converse(stack: Stack, line: Line, customer: Customer, seed: str) -> Outcome:
    """One simulated customer's conversation, checked turn by turn."""
    outcome = Outcome(seed, line.channel, line.sender, line.phone, customer.persona)
    checker = Checker(stack, outcome)
    said = customer.opening()
    script_since: int | None = None
    must_pay = customer.persona.payable_by_text
    while len(outcome.turns) < MAX_TURNS:
        reply = line.send(said.text)
        view = BotView.of(reply, line.tracker())
        outcome.turns.append(Turn(said, reply, view.state))
        checker.after(said, reply)
        customer.hear(view)
        if customer.done and (view.ended or not customer.paid and view.stage == "anything_else"):
            break
        if customer.on_script_only and script_since is None:
            script_since = len(outcome.turns)
        if script_since is not None and not customer.done and must_pay and (
            len(outcome.turns) - script_since >= SCRIPT_TURNS_TO_PAY
        ):
            outcome.failures.append(
                f"back on script since turn {script_since}, still not paid "
                f"{SCRIPT_TURNS_TO_PAY} turns later"
            )
            break
        said = customer.next(view)
    outcome.paid = customer.paid
    checker.circuit_breakers()
    return outcome


def replay(stack: Stack, line: Line, messages: list[str], seed: str = "corpus") -> Outcome:
    """Send ``messages`` in order and check the per-turn invariants."""
    outcome = Outcome(seed, line.channel, line.sender, line.phone, None)
    checker = Checker(stack, outcome)
    for text in messages:
        said = Said(text, "replay")
        reply = line.send(text)
        outcome.turns.append(Turn(said, reply, BotView.of(reply, line.tracker()).state))
        checker.after(said, reply)
    time.sleep(0.2)  # the log line of a trip lands through a pipe
    checker.circuit_breakers()
    return outcome


# --- a run ----------------------------------------------------------------------------------------
@dataclass
class Twilio:
    auth_token: str
    account_sid: str


class PhoneLocks:
    """One SMS conversation per phone number at a time (SMS conversations are keyed by it)."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def __call__(self, phone: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(phone, threading.Lock())


def run_one(stack: Stack, twilio: Twilio, seed: str, channel: str, locks: PhoneLocks) -> Outcome:
    """Conversation ``seed`` on ``channel``: the persona, phone and words all follow from it."""
    rng = random.Random(seed)
    customer = Customer.random(rng)
    if channel == "chat":
        phone = customer.persona.phone if rng.random() < 0.5 else None
        return converse(stack, ChatLine(stack, phone), customer, seed)
    known = rng.random() < 0.6
    phone = customer.persona.phone if known else rng.choice(UNKNOWN_PHONES)
    with locks(phone):
        line = SmsLine(stack, phone, twilio.auth_token, twilio.account_sid)
        return converse(stack, line, customer, seed)


@dataclass
class Report:
    seed: str
    turns: Counter = field(default_factory=Counter)
    conversations: Counter = field(default_factory=Counter)
    states: set = field(default_factory=set)
    questions: set = field(default_factory=set)
    paid: int = 0
    failed: list[Outcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def add(self, outcome: Outcome) -> None:
        self.turns[outcome.channel] += len(outcome.turns)
        self.conversations[outcome.channel] += 1
        self.paid += outcome.paid
        for turn in outcome.turns:
            self.states.add(turn.state)
            question = last_question(turn.reply)
            if question:
                self.questions.add(re.sub(r"[\d$,.]+", "#", question))
        if outcome.failures:
            self.failed.append(outcome)

    def summary(self) -> str:
        return (
            f"fuzz seed {self.seed!r}: {sum(self.turns.values())} turns "
            f"(chat {self.turns['chat']}, sms {self.turns['sms']}) in "
            f"{sum(self.conversations.values())} conversations, {self.paid} paid, "
            f"{len(self.states)} states (active_loop, requested_slot, stage), "
            f"{len(self.questions)} distinct questions, {len(self.failed)} failed, "
            f"{len(self.errors)} errors, {self.wall_s:.0f} s"
        )


def fuzz(
    stack: Stack,
    twilio: Twilio,
    seed: str,
    budgets: dict[str, int],
    workers: dict[str, int],
    between: Callable[[], None] | None = None,
) -> Report:
    """Conversations on each channel until its turn budget is spent, ``workers[channel]`` at a
    time; ``between`` runs after each conversation (e.g. to top the balances up)."""
    report, lock, locks = Report(seed), threading.Lock(), PhoneLocks()
    next_index: Counter = Counter()
    started = time.perf_counter()

    def worker(channel: str) -> None:
        while True:
            with lock:
                if report.turns[channel] >= budgets[channel] or len(report.errors) > 5:
                    return
                index = next_index[channel]
                next_index[channel] += 1
            conversation_seed = f"{seed}:{channel}:{index}"
            try:
                outcome = run_one(stack, twilio, conversation_seed, channel, locks)
            except Exception as exc:  # noqa: BLE001 - reported with the seed, run goes on
                with lock:
                    report.errors.append(f"{conversation_seed}: {type(exc).__name__}: {exc}")
                continue
            with lock:
                report.add(outcome)
            if between is not None:
                between()

    threads = [
        threading.Thread(target=worker, args=(channel,), daemon=True)
        for channel, count in workers.items()
        for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report.wall_s = time.perf_counter() - started
    return report


def save_failure(outcome: Outcome, directory: Path) -> Path:
    """Write a failed conversation as a corpus entry (copy it to tests/fuzz/corpus/ to keep)."""
    directory.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^\w]+", "-", outcome.seed).strip("-") + ".yml"
    path = directory / name
    path.write_text(yaml.safe_dump(outcome.corpus_entry(), sort_keys=False, allow_unicode=True))
    return path


def corpus_entries() -> list[tuple[str, dict]]:
    return [(p.stem, yaml.safe_load(p.read_text())) for p in sorted(CORPUS.glob("*.yml"))]


def fresh_phone() -> str:
    return f"+1555555{random.randint(7000, 7999):04d}"


__all__ = ["PERSONAS", "Report", "fuzz", "replay", "run_one"]
