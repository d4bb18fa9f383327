"""Payments captured and charged by someone else: Twilio ``<Pay>`` and its Pay Connector.

The row is opened by the ledger before the call is handed over
(:meth:`~paybot.payments.ledger.Ledger.open_delegated`: the same account lock, amount rules
and idempotency key as any payment, with the processor's name as its gateway). What the
processor later reports is a :class:`DelegatedResult`, settled here through the one
settlement path: a conditional update from an open state, so a repeated report changes
nothing and says so (``changed`` False).

Only a confirmation code, a brand and a last four ever arrive here; nothing here takes a
card number, masked or not. Progress reports (which field, which attempt, which error) are
audit events with counts and step names only, for the agent console.

Synchronous (database I/O): call through ``asyncio.to_thread``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from paybot import audit
from paybot.db.engine import session_scope
from paybot.db.models import AuditEvent, Payment
from paybot.gateway.base import ChargeResult
from paybot.payments.settlement import PaymentOutcome, Settlement

log = logging.getLogger(__name__)
TWILIO_PAY = "twilio_pay"  # the gateway name of payments Twilio <Pay> takes
# Failure codes of a capture that ended before any charge was sent, and the capture status
# the bot hears for each (as from the keypad capture: cancelled or failed).
NOT_SUBMITTED = {
    "caller_cancelled": "cancelled",
    "too_many_attempts": "failed",
    "caller_hung_up": "failed",
    "pay_validation_error": "failed",
    "pay_internal_error": "failed",
    "pay_not_started": "failed",
}
PROGRESS = "pay.progress"
PROCESSING = "pay.processing"  # the details went to the Pay Connector

DelegatedStatus = Literal["succeeded", "declined", "failed", "unknown"]


@dataclass(frozen=True)
class DelegatedResult:
    """What the processor reported: a status, a decline or failure code, and for a charge
    its confirmation code, brand and last four."""

    status: DelegatedStatus
    code: str | None = None
    transaction_id: str | None = None
    brand: str | None = None
    last4: str | None = None


def settle_delegated(
    settlement: Settlement, payment_id: int, result: DelegatedResult
) -> tuple[PaymentOutcome, bool]:
    """Settle the open payment from ``result``: its outcome, and whether this call did (False:
    it was settled before, by an earlier report, and nothing changed)."""
    if result.status == "unknown":
        return settlement.mark_unknown_open(payment_id)
    if result.status == "failed":
        return settlement.fail_open(payment_id, result.code or "failed", "payment.failed")
    outcome = settlement.outcome(payment_id)
    charge = ChargeResult(
        approved=result.status == "succeeded",
        transaction_id=result.transaction_id or "",
        amount=outcome.total,
        currency=outcome.currency,
        brand=result.brand or "",
        last4=result.last4 or "",
        decline_code=None if result.status == "succeeded" else (result.code or "generic_decline"),
    )
    return settlement.settle_open(payment_id, charge, actor=TWILIO_PAY)


def record_progress(
    engine: Engine, payment_id: int, *, step: str, attempt: int | None, error: str | None
) -> None:
    """One progress report: the step (``payment-card-number``, ...), the attempt, the error
    type. Reaching ``payment-processing`` is kept apart: from then on the charge may happen."""
    with session_scope(engine) as session:
        payment = session.get(Payment, payment_id)
        if payment is None:
            raise LookupError(f"no payment {payment_id}")
        audit.record(
            session,
            PROCESSING if step == "payment-processing" else PROGRESS,
            account_id=payment.account_id,
            payment_id=payment_id,
            conversation_id=payment.conversation_id,
            actor=TWILIO_PAY,
            step=step[:40],
            attempt=attempt,
            error=(error or None) and error[:64],
        )


def processing_started(engine: Engine, payment_id: int) -> bool:
    """Whether the processor said it was charging (the details reached the connector)."""
    with Session(engine) as session:
        query = select(AuditEvent.id).where(
            AuditEvent.payment_id == payment_id, AuditEvent.kind == PROCESSING
        )
        return session.exec(query).first() is not None


def progress_counts(engine: Engine, payment_id: int) -> dict[str, int]:
    """How many progress reports each step got, and how many carried an error (the agent
    console's view of a ``<Pay>`` under way)."""
    counts: dict[str, int] = {}
    with Session(engine) as session:
        query = select(AuditEvent.detail).where(
            AuditEvent.payment_id == payment_id,
            AuditEvent.kind.in_((PROGRESS, PROCESSING)),  # type: ignore[attr-defined]
        )
        for detail in session.exec(query).all():
            step = str(detail.get("step") or "unknown")
            counts[step] = counts.get(step, 0) + 1
            if detail.get("error"):
                counts["errors"] = counts.get("errors", 0) + 1
    return counts
