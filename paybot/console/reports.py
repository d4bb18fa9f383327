"""The console's reports: queries over what is already stored, for a range of UTC days.

Calls are the ``calls`` rows (by start); a call is *paid* when a payment of its conversation
(``call:<CallSid>``) succeeded (or succeeded and was refunded later), *transferred* when the
bridge handed it to a person (``ended_reason`` "transferred: <reason>"), *contained* when paid,
not transferred and no agent asked for a payment on it (an ``agent_activities`` row of its
CallSid: an agent was on the call, so the bot did not take it alone). How a call's stream
ended (the step it was at, the caller's turns, the seconds it lasted) is the bridge's
``call.ended`` audit event: drop-off is the calls that ended neither paid nor transferred, nor
with an agent on them, by that step; the average handle time is over those events' seconds.
Payments, declines and contact-centre sessions are counted by their ``created_at``,
agent-assisted payments by when the agent asked (``requested_at``), each ending as stored.
Each report is a :class:`Table` (the page shows it, with a chart, and sends it as CSV).
Blocking: run in a thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import String, and_, case, exists, func, literal, not_, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from paybot.db.agent_activity import WITH_AGENT_STEP
from paybot.db.models import (
    AgentActivity,
    AuditEvent,
    Call,
    Payment,
    PaymentSession,
    PaymentStatus,
)

PAID = (PaymentStatus.SUCCEEDED.value, PaymentStatus.REFUNDED.value)
TRANSFERRED = "transferred: "
# How an agent-assisted payment ends (``agent_activities.result``; the bridge's
# voice_bridge.agent_payments.ENDINGS): one column each in the agents' report.
AGENT_RESULTS = ("succeeded", "declined", "failed", "cancelled")
MAX_DAYS = 366
Cell = str | int | Decimal | date | None


class BadRange(ValueError):
    """A date range the reports cannot show (the message says why)."""


@dataclass(frozen=True)
class ReportRange:
    """UTC days, both ends included."""

    start: date
    end: date

    @classmethod
    def parse(cls, start: str | None, end: str | None, today: date) -> ReportRange:
        """The range of the page's ``from`` and ``to`` (YYYY-MM-DD; either missing: today).

        Raises:
            BadRange: Not dates, ``to`` before ``from``, or longer than :data:`MAX_DAYS`.
        """
        try:
            first = date.fromisoformat(start.strip()) if start and start.strip() else None
            last = date.fromisoformat(end.strip()) if end and end.strip() else None
        except ValueError:
            raise BadRange("Dates are written YYYY-MM-DD, for example 2026-12-01.") from None
        first, last = first or last or today, last or today
        if last < first:
            raise BadRange("The range ends before it starts.")
        if (last - first).days >= MAX_DAYS:
            raise BadRange(f"A report covers at most {MAX_DAYS} days.")
        return cls(first, last)

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=timezone.utc)

    @property
    def until(self) -> datetime:
        """The first moment after the range."""
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=timezone.utc)

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]

    def covers(self, column: Any) -> ColumnElement:
        return and_(column >= self.since, column < self.until)


@dataclass(frozen=True)
class Table:
    """One report: its name (in URLs and file names), title, column headings and rows."""

    name: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Cell, ...]]

    def column(self, heading: str) -> list[Cell]:
        index = self.columns.index(heading)
        return [row[index] for row in self.rows]


# Shared conditions ---------------------------------------------------------------------------
def _paid(conversation: Any) -> ColumnElement:
    """A payment of ``conversation`` went through."""
    return exists().where(Payment.conversation_id == conversation, Payment.status.in_(PAID))


def _call_conversation() -> Any:
    return literal("call:", String) + Call.call_sid


def _contained() -> ColumnElement:
    """A call paid with no transfer and no agent-assisted payment (the bot took it alone)."""
    by_agent = exists().where(AgentActivity.call_sid == Call.call_sid)
    return and_(_paid(_call_conversation()), not_(_transferred(Call.ended_reason)), not_(by_agent))


def _transferred(reason: Any) -> ColumnElement:
    return func.coalesce(reason, "").like(TRANSFERRED + "%")


def _count_if(condition: ColumnElement) -> Any:
    return func.sum(case((condition, 1), else_=0))


def _day(session: Session, column: Any) -> Any:
    """The UTC day of a timestamp column, as text YYYY-MM-DD on either database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)


def _ended(rng: ReportRange) -> ColumnElement:
    return and_(AuditEvent.kind == "call.ended", rng.covers(AuditEvent.at))


def _dropped() -> ColumnElement:
    """A ``call.ended`` event of a call that was neither paid nor transferred, and had no agent
    on it (it ended with the agent, or an agent asked for a payment on it)."""
    step = func.coalesce(AuditEvent.detail["step"].as_string(), "")
    by_agent = exists().where(
        literal("call:", String) + AgentActivity.call_sid == AuditEvent.conversation_id
    )
    return and_(
        not_(_transferred(AuditEvent.detail["reason"].as_string())),
        not_(_paid(AuditEvent.conversation_id)),
        step != WITH_AGENT_STEP,
        not_(by_agent),
    )


# The reports ---------------------------------------------------------------------------------
def summary(session: Session, rng: ReportRange) -> Table:
    moved = _transferred(Call.ended_reason)
    calls, answered, contained, transferred = session.execute(
        select(
            func.count(Call.id),
            _count_if(Call.answered_at.is_not(None)),
            _count_if(_contained()),
            _count_if(moved),
        ).where(rng.covers(Call.started_at))
    ).one()
    dropped, handled, handle_s = session.execute(
        select(
            _count_if(_dropped()),
            func.count(AuditEvent.detail["handle_s"].as_integer()),
            func.sum(AuditEvent.detail["handle_s"].as_integer()),
        ).where(_ended(rng))
    ).one()
    taken = session.execute(
        select(Payment.currency, func.count(Payment.id), func.sum(Payment.amount))
        .where(rng.covers(Payment.created_at), Payment.status.in_(PAID))
        .group_by(Payment.currency)
        .order_by(Payment.currency)
    ).all()
    calls = calls or 0
    rate = Decimal(100 * (contained or 0)) / calls if calls else None
    rows: list[tuple[Cell, ...]] = [
        ("Calls", calls),
        ("Calls answered by the bot", answered or 0),
        ("Contained (paid without an agent)", contained or 0),
        ("Containment rate (%)", rate.quantize(Decimal("0.1")) if rate is not None else None),
        ("Transferred to an agent", transferred or 0),
        ("Dropped (neither paid nor transferred)", dropped or 0),
        ("Average handle time (s)", round(handle_s / handled) if handled else None),
        ("Payments taken (all channels)", sum(n for _, n, _ in taken)),
    ]
    rows += [(f"Amount taken ({currency})", amount) for currency, _, amount in taken]
    return Table("summary", "Summary", ("Measure", "Value"), rows)


def daily(session: Session, rng: ReportRange) -> Table:
    day = _day(session, Call.started_at)
    moved = _transferred(Call.ended_reason)
    calls = {
        d: (n, c, t)
        for d, n, c, t in session.execute(
            select(day, func.count(Call.id), _count_if(_contained()), _count_if(moved))
            .where(rng.covers(Call.started_at))
            .group_by(day)
        )
    }
    pay_day = _day(session, Payment.created_at)
    taken: dict[str, int] = {}
    amounts: dict[tuple[str, str], Decimal] = {}
    for d, currency, n, amount in session.execute(
        select(pay_day, Payment.currency, func.count(Payment.id), func.sum(Payment.amount))
        .where(rng.covers(Payment.created_at), Payment.status.in_(PAID))
        .group_by(pay_day, Payment.currency)
    ):
        taken[d] = taken.get(d, 0) + n
        amounts[(d, currency)] = amount
    currencies = sorted({currency for _, currency in amounts})
    rows: list[tuple[Cell, ...]] = []
    for each in rng.days:
        n, contained, transferred = calls.get(each.isoformat(), (0, 0, 0))
        money = [amounts.get((each.isoformat(), c), Decimal("0.00")) for c in currencies]
        rows.append(
            (each, n, contained or 0, transferred or 0, taken.get(each.isoformat(), 0), *money)
        )
    columns = (
        "Day",
        "Calls",
        "Contained",
        "Transferred",
        "Payments taken",
        *(f"Amount taken ({c})" for c in currencies),
    )
    return Table("daily", "Day by day", columns, rows)


def payments(session: Session, rng: ReportRange) -> Table:
    found = session.execute(
        select(
            Payment.channel,
            Payment.status,
            Payment.currency,
            func.count(Payment.id),
            func.sum(Payment.amount),
        )
        .where(rng.covers(Payment.created_at))
        .group_by(Payment.channel, Payment.status, Payment.currency)
        .order_by(Payment.channel, Payment.status, Payment.currency)
    ).all()
    columns = ("Channel", "Outcome", "Currency", "Payments", "Amount")
    return Table(
        "payments", "Payments by channel and outcome", columns, [tuple(row) for row in found]
    )


def dropoff(session: Session, rng: ReportRange) -> Table:
    step = func.coalesce(AuditEvent.detail["step"].as_string(), "unknown")
    hung_up = AuditEvent.detail["reason"].as_string() == "caller hung up"
    found = session.execute(
        select(step, func.count(AuditEvent.id), _count_if(hung_up))
        .where(_ended(rng), _dropped())
        .group_by(step)
        .order_by(func.count(AuditEvent.id).desc(), step)
    ).all()
    columns = ("Step", "Calls dropped", "Of which the caller hung up")
    return Table("dropoff", "Drop-off by step", columns, [(s, n, h or 0) for s, n, h in found])


def declines(session: Session, rng: ReportRange) -> Table:
    reason = func.coalesce(Payment.decline_code, "unknown")
    found = session.execute(
        select(reason, Payment.currency, func.count(Payment.id), func.sum(Payment.amount))
        .where(rng.covers(Payment.created_at), Payment.status == PaymentStatus.DECLINED.value)
        .group_by(reason, Payment.currency)
        .order_by(func.count(Payment.id).desc(), reason)
    ).all()
    columns = ("Reason", "Currency", "Declines", "Amount")
    return Table("declines", "Declines by reason", columns, [tuple(row) for row in found])


def transfers(session: Session, rng: ReportRange) -> Table:
    found = session.execute(
        select(Call.ended_reason, func.count(Call.id))
        .where(rng.covers(Call.started_at), _transferred(Call.ended_reason))
        .group_by(Call.ended_reason)
    ).all()
    counted: dict[str, int] = {}
    for reason, n in found:
        label = reason[len(TRANSFERRED) :].strip() or "unknown"
        counted[label] = counted.get(label, 0) + n
    rows = sorted(counted.items(), key=lambda item: (-item[1], item[0]))
    return Table("transfers", "Transfers by reason", ("Reason", "Transfers"), rows)


def sessions(session: Session, rng: ReportRange) -> Table:
    outcome = func.coalesce(PaymentSession.failure_reason, "")
    found = session.execute(
        select(
            PaymentSession.status,
            outcome,
            PaymentSession.currency,
            func.count(PaymentSession.id),
            func.sum(PaymentSession.amount),
        )
        .where(rng.covers(PaymentSession.created_at))
        .group_by(PaymentSession.status, outcome, PaymentSession.currency)
        .order_by(PaymentSession.status, outcome)
    ).all()
    columns = ("Status", "Failure reason", "Currency", "Sessions", "Amount")
    return Table(
        "sessions", "Contact-centre payment sessions", columns, [tuple(row) for row in found]
    )


def agents(session: Session, rng: ReportRange) -> Table:
    """Agent-assisted payments per agent and currency: how many were asked for, how each ended,
    and the amount the succeeded ones took."""
    result, amount = AgentActivity.result, AgentActivity.amount
    found = session.execute(
        select(
            AgentActivity.agent,
            AgentActivity.currency,
            func.count(AgentActivity.id),
            *(_count_if(result == ending) for ending in AGENT_RESULTS),
            func.sum(case((result == AGENT_RESULTS[0], amount), else_=Decimal("0.00"))),
        )
        .where(rng.covers(AgentActivity.requested_at))
        .group_by(AgentActivity.agent, AgentActivity.currency)
        .order_by(AgentActivity.agent, AgentActivity.currency)
    ).all()
    columns = (
        "Agent",
        "Currency",
        "Requests",
        *(ending.capitalize() for ending in AGENT_RESULTS),
        "Amount taken",
    )
    rows = [(a, c, n, *(k or 0 for k in ks), taken) for a, c, n, *ks, taken in found]
    return Table("agents", "Agent-assisted payments", columns, rows)


REPORTS: dict[str, Callable[[Session, ReportRange], Table]] = {
    "summary": summary,
    "daily": daily,
    "payments": payments,
    "dropoff": dropoff,
    "declines": declines,
    "transfers": transfers,
    "sessions": sessions,
    "agents": agents,
}


def report(engine: Engine, rng: ReportRange, name: str) -> Table:
    """One report by name (a name not in :data:`REPORTS` is a ``KeyError``)."""
    query = REPORTS[name]
    with Session(engine) as session:
        return query(session, rng)


def all_reports(engine: Engine, rng: ReportRange) -> list[Table]:
    """Every report, in the page's order."""
    with Session(engine) as session:
        return [query(session, rng) for query in REPORTS.values()]


def live_steps(steps: list[str]) -> Table:
    """The calls on this bridge now, by the step each is at (real time, from memory)."""
    counted: dict[str, int] = {}
    for step in steps:
        counted[step] = counted.get(step, 0) + 1
    rows = sorted(counted.items(), key=lambda item: (-item[1], item[0]))
    return Table("live", "Live calls now, by step", ("Step", "Calls"), rows)
