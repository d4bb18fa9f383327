"""Seeded random calls, call endings, payments, contact-centre sessions and agent-assisted
payments for the reports' tests (tests/test_reports.py, tests/test_reports_browser.py), written
as the services write them: ``calls`` rows, ``call.ended`` audit events (conversation
``call:<CallSid>``), payments of every channel and outcome, payment sessions, and
``agent_activities`` rows on some calls (each with its voice payment if a card was charged).
What was written is returned as plain records, so a test can count the reports' figures
again in Python, independently."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from sqlmodel import Session, select

from paybot import audit
from paybot.db.models import (
    Account,
    AgentActivity,
    AuditEvent,
    Call,
    Payment,
    PaymentSession,
    PaymentSessionStatus,
    PaymentStatus,
)

CHANNELS = ("voice", "sms", "chat", "console", "api")
AGENTS = ("agent", "sam.lee", "jo@centre", "pat-2")
AGENT_RESULTS = ("succeeded", "declined", "failed", "cancelled")
DECLINES = ("insufficient_funds", "card_declined", "expired_card", None)
# Reasons and steps as the bridge writes them, and a few a spreadsheet would take for formulas.
TRANSFER_REASONS = ("caller_asked", "bot_unavailable", "identity_failed", "=HYPERLINK(1)")
ENDINGS = ("caller hung up", "bot hung up", "read timeout", "stream closed", "bridge error")
STEPS = (
    "answered",
    "bot thinking",
    "bot speaking",
    "listening: digits",
    "listening: yes_no",
    "listening: amount",
    "secure capture: card_number",
    "secure capture: confirm",
    "with the agent",
    "@step",
    "+1 step",
    "-minus",
)


@dataclass(frozen=True)
class SeededCall:
    call_sid: str
    started_at: datetime
    answered: bool
    ended_reason: str | None
    paid: bool  # a payment of its conversation succeeded (or was refunded after)
    ended_at: datetime | None  # its call.ended event, if the stream ended
    step: str | None
    handle_s: int | None
    by_agent: bool = False  # an agent asked for a payment on it (agent_activities)


@dataclass(frozen=True)
class SeededPayment:
    channel: str
    status: str
    amount: Decimal
    currency: str
    decline_code: str | None
    created_at: datetime
    conversation_id: str | None


@dataclass(frozen=True)
class SeededSession:
    status: str
    failure_reason: str | None
    amount: Decimal
    created_at: datetime


@dataclass(frozen=True)
class SeededActivity:
    agent: str
    call_sid: str
    result: str
    amount: Decimal
    currency: str
    requested_at: datetime


@dataclass
class Seeded:
    calls: list[SeededCall]
    payments: list[SeededPayment]
    sessions: list[SeededSession]
    activities: list[SeededActivity] = field(default_factory=list)


def moment(rnd: random.Random, first: date, days: int) -> datetime:
    """A random moment in ``days`` UTC days from ``first``, often near midnight."""
    day = first + timedelta(days=rnd.randrange(days))
    start = datetime.combine(day, time.min, tzinfo=timezone.utc)
    if rnd.random() < 0.2:
        return start + timedelta(seconds=rnd.choice([0, 1, 86399, 86398]))
    return start + timedelta(seconds=rnd.randrange(86400))


def seed_reports(
    engine,
    rnd: random.Random,
    first: date,
    days: int,
    calls: int = 60,
    payments: int = 80,
    sessions: int = 12,
) -> Seeded:
    """Write random calls (with their payments and endings), other payments and sessions in
    ``days`` days from ``first``."""
    with Session(engine) as session:
        account_id = session.exec(select(Account.id)).first()
    assert account_id is not None, "seed the demo accounts first"
    seeded = Seeded([], [], [])
    with Session(engine) as session:
        for _ in range(calls):
            seeded.calls.append(_call(session, rnd, account_id, first, days, seeded))
        for _ in range(payments):
            channel = rnd.choice(CHANNELS)
            conversation = f"{channel}:{uuid.uuid4().hex[:12]}"
            status = rnd.choice([s.value for s in PaymentStatus])
            _payment(
                session,
                rnd,
                account_id,
                channel,
                status,
                conversation,
                moment(rnd, first, days),
                seeded,
            )
        for _ in range(sessions):
            seeded.sessions.append(_session(session, rnd, account_id, first, days))
        session.commit()
    return seeded


def _call(
    session: Session, rnd: random.Random, account_id: int, first: date, days: int, seeded: Seeded
) -> SeededCall:
    sid = "CA" + uuid.uuid4().hex
    started = moment(rnd, first, days)
    answered = rnd.random() < 0.85
    conversation = f"call:{sid}"
    paid = False
    if answered and rnd.random() < 0.5:  # tried to pay: some tries declined, some went through
        for _ in range(rnd.randint(1, 2)):
            status = rnd.choice(["succeeded", "declined", "failed", "refunded", "pending"])
            paid = paid or status in ("succeeded", "refunded")
            _payment(
                session,
                rnd,
                account_id,
                "voice",
                status,
                conversation,
                started + timedelta(seconds=rnd.randint(20, 200)),
                seeded,
            )
    by_agent = answered and rnd.random() < 0.2
    if by_agent:  # an agent on the call asked for a payment, once or twice
        for _ in range(rnd.randint(1, 2)):
            requested = started + timedelta(seconds=rnd.randint(20, 300))
            paid = _activity(session, rnd, account_id, sid, requested, seeded) or paid
    if not answered:
        reason = rnd.choice([None, "busy", "no-answer"])
    elif rnd.random() < 0.25:
        reason = "transferred: " + rnd.choice(TRANSFER_REASONS)
    else:
        reason = rnd.choice(ENDINGS)
    session.add(
        Call(
            call_sid=sid,
            caller="+14155550100",
            status="completed",
            started_at=started,
            updated_at=started,
            answered_at=started if answered else None,
            ended_reason=reason,
        )
    )
    ended_at = step = handle_s = None
    if answered and reason is not None:
        handle_s = rnd.randint(5, 600)
        ended_at, step = started + timedelta(seconds=handle_s), rnd.choice(STEPS)
        stored = None if rnd.random() < 0.1 else handle_s  # an event without its seconds
        event = AuditEvent(
            **audit.row(
                "call.ended",
                conversation_id=conversation,
                reason=reason,
                step=step,
                turns=rnd.randint(0, 9),
                handle_s=stored,
            )
        )
        event.at = ended_at
        session.add(event)
        handle_s = stored
    return SeededCall(sid, started, answered, reason, paid, ended_at, step, handle_s, by_agent)


def _activity(
    session: Session,
    rnd: random.Random,
    account_id: int,
    call_sid: str,
    requested: datetime,
    seeded: Seeded,
) -> bool:
    """An agent-assisted payment on ``call_sid`` (a succeeded or declined one with its payment,
    of the call's conversation, as the capture makes it); True if it succeeded."""
    result = rnd.choice(AGENT_RESULTS)
    amount = Decimal(rnd.randint(100, 50000)) / 100
    currency = "USD" if rnd.random() < 0.9 else "CAD"
    if result in ("succeeded", "declined"):
        _payment(session, rnd, account_id, "voice", result, f"call:{call_sid}", requested, seeded)
        amount, currency = seeded.payments[-1].amount, seeded.payments[-1].currency
    agent = rnd.choice(AGENTS)
    completed = requested + timedelta(seconds=rnd.randint(30, 240))
    session.add(
        AgentActivity(
            request_id=uuid.uuid4().hex,
            agent=agent,
            call_sid=call_sid,
            account_number="100200300",
            item="INV-1",
            amount=amount,
            currency=currency,
            result=result,
            requested_at=requested,
            completed_at=completed,
        )
    )
    seeded.activities.append(SeededActivity(agent, call_sid, result, amount, currency, requested))
    return result == "succeeded"


def _payment(
    session: Session,
    rnd: random.Random,
    account_id: int,
    channel: str,
    status: str,
    conversation: str | None,
    created: datetime,
    seeded: Seeded,
) -> None:
    amount = Decimal(rnd.randint(100, 50000)) / 100
    currency = "USD" if rnd.random() < 0.95 else "CAD"
    code = rnd.choice(DECLINES) if status == PaymentStatus.DECLINED.value else None
    session.add(
        Payment(
            account_id=account_id,
            amount=amount,
            fee=Decimal("0.00"),
            total=amount,
            currency=currency,
            status=status,
            channel=channel,
            conversation_id=conversation,
            gateway="sandbox",
            decline_code=code,
            idempotency_key=uuid.uuid4().hex,
            created_at=created,
            updated_at=created,
        )
    )
    seeded.payments.append(
        SeededPayment(channel, status, amount, currency, code, created, conversation)
    )


def _session(
    session: Session, rnd: random.Random, account_id: int, first: date, days: int
) -> SeededSession:
    status = rnd.choice([s.value for s in PaymentSessionStatus])
    reason = rnd.choice(["declined", "caller_hung_up", "expired"]) if status == "failed" else None
    created = moment(rnd, first, days)
    amount = Decimal(rnd.randint(100, 90000)) / 100
    # As the sessions move: a call took it (matched and after), it ended (final ones).
    called = status not in ("created", "expired", "cancelled")
    matched = created + timedelta(seconds=rnd.randint(5, 300)) if called else None
    final = PaymentSessionStatus(status).final
    session.add(
        PaymentSession(
            public_id="ps_" + uuid.uuid4().hex,
            client="centre",
            account_id=account_id,
            amount=amount,
            reference="r",
            status=status,
            failure_reason=reason,
            call_sid="CA" + uuid.uuid4().hex if called else None,
            created_at=created,
            expires_at=created + timedelta(minutes=15),
            matched_at=matched,
            completed_at=(matched or created) + timedelta(seconds=90) if final else None,
        )
    )
    return SeededSession(status, reason, amount, created)
