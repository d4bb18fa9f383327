"""Settling a payment: the one place a payment leaves ``pending``/``unknown``.

Every transition is a conditional update from an open state, so a live call and the
reconciler can never both settle one payment. A successful payment gets its confirmation
number, a principal ledger line, a fee line when there is a fee, and the account's new balance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from paybot import audit, metrics
from paybot.db.engine import session_scope
from paybot.db.models import Account, LedgerEntry, Payment, PaymentStatus
from paybot.db.types import utcnow
from paybot.gateway.base import ChargeResult
from paybot.payments.confirmation import new_confirmation_number

log = logging.getLogger(__name__)
OPEN = (PaymentStatus.PENDING.value, PaymentStatus.UNKNOWN.value)


@dataclass(frozen=True)
class PaymentOutcome:
    """What the dialog may tell the payer, read back from the database."""

    payment_id: int
    status: str
    amount: Decimal
    fee: Decimal
    total: Decimal
    currency: str
    confirmation_number: str | None
    brand: str | None
    last4: str | None
    decline_code: str | None
    scheduled_for: date | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == PaymentStatus.SUCCEEDED.value

    @classmethod
    def of(cls, p: Payment) -> PaymentOutcome:
        assert p.id is not None
        return cls(
            payment_id=p.id,
            status=p.status,
            amount=p.amount,
            fee=p.fee,
            total=p.total,
            currency=p.currency,
            confirmation_number=p.confirmation_number,
            brand=p.method_brand,
            last4=p.method_last4,
            decline_code=p.decline_code,
            scheduled_for=p.scheduled_for,
        )


class Settlement:
    """Moves open payments to their final state and books successful ones."""

    def __init__(self, engine: Engine, *, fee_account: str) -> None:
        self.engine = engine
        self.fee_account = fee_account

    def outcome(self, payment_id: int) -> PaymentOutcome:
        """The payment as the database has it now."""
        with Session(self.engine) as session:
            payment = session.get(Payment, payment_id)
            if payment is None:
                raise LookupError(f"no payment {payment_id}")
            return PaymentOutcome.of(payment)

    def _transition(
        self, session: Session, payment_id: int, *, unclaimed: bool = False, **values
    ) -> bool:
        """Move an open payment to a final state; False if someone else already did.
        ``unclaimed``: only while no gateway call was ever counted (``attempts`` 0)."""
        stmt = (
            update(Payment)
            .where(Payment.id == payment_id)
            .where(Payment.status.in_(OPEN))  # type: ignore[attr-defined]
            .values(updated_at=utcnow(), **values)
        )
        if unclaimed:
            stmt = stmt.where(Payment.attempts == 0)
        result = session.execute(stmt)
        return result.rowcount == 1

    def settle(
        self, payment_id: int, result: ChargeResult, *, actor: str = "system"
    ) -> PaymentOutcome:
        return self.settle_open(payment_id, result, actor=actor)[0]

    def settle_open(
        self, payment_id: int, result: ChargeResult, *, actor: str = "system"
    ) -> tuple[PaymentOutcome, bool]:
        """Settle the payment if it is still open: its outcome, and whether this call did."""
        changed = False
        for _ in range(5):  # a confirmation number collision is retried with a new number
            try:
                changed = self._settle_once(payment_id, result, actor)
                break
            except IntegrityError:
                log.warning("payment %s: confirmation number collision, retrying", payment_id)
        return self.outcome(payment_id), changed

    def _settle_once(self, payment_id: int, result: ChargeResult, actor: str) -> bool:
        approved = result.approved
        with session_scope(self.engine) as session:
            changed = self._transition(
                session,
                payment_id,
                status=(PaymentStatus.SUCCEEDED if approved else PaymentStatus.DECLINED).value,
                gateway_transaction_id=result.transaction_id,
                decline_code=result.decline_code,
                method_brand=result.brand,
                method_last4=result.last4,
                # A scheduled payment keeps the number it was given when it was scheduled.
                confirmation_number=(
                    func.coalesce(Payment.confirmation_number, new_confirmation_number())
                    if approved
                    else Payment.confirmation_number
                ),
                completed_at=utcnow(),
            )
            if not changed:
                return False
            payment = session.get(Payment, payment_id)
            assert payment is not None
            if approved:
                self._book(session, payment)
            audit.record(
                session,
                "payment.succeeded" if approved else "payment.declined",
                account_id=payment.account_id,
                payment_id=payment_id,
                conversation_id=payment.conversation_id,
                actor=actor,
                decline_code=result.decline_code,
                replayed=result.replayed,
            )
        status = PaymentStatus.SUCCEEDED if approved else PaymentStatus.DECLINED
        metrics.PAYMENTS.labels(status=status.value).inc()
        log.info("payment %s %s", payment_id, status.value, extra={"payment_id": payment_id})
        return True

    def _book(self, session: Session, payment: Payment) -> None:
        """Ledger lines for a successful payment, and the account's new balance."""
        account = session.get(Account, payment.account_id)
        assert account is not None and payment.id is not None
        session.add(
            LedgerEntry(
                payment_id=payment.id,
                kind="principal",
                ledger_account=account.account_number,
                amount=payment.amount,
                currency=payment.currency,
            )
        )
        if payment.fee > 0:
            session.add(
                LedgerEntry(
                    payment_id=payment.id,
                    kind="fee",
                    ledger_account=self.fee_account,
                    amount=payment.fee,
                    currency=payment.currency,
                )
            )
        session.execute(
            update(Account)
            .where(Account.id == account.id)
            .values(balance=Account.balance - payment.amount, updated_at=utcnow())
        )

    def fail(self, payment_id: int, code: str, kind: str) -> PaymentOutcome:
        return self.fail_open(payment_id, code, kind)[0]

    def fail_open(
        self, payment_id: int, code: str, kind: str, *, unclaimed: bool = False
    ) -> tuple[PaymentOutcome, bool]:
        """Fail the payment if it is still open (and, with ``unclaimed``, the gateway was
        never called for it): its outcome, and whether this call did."""
        with session_scope(self.engine) as session:
            changed = self._transition(
                session,
                payment_id,
                unclaimed=unclaimed,
                status=PaymentStatus.FAILED.value,
                decline_code=code,
                completed_at=utcnow(),
            )
            if changed:
                payment = session.get(Payment, payment_id)
                assert payment is not None
                audit.record(
                    session,
                    kind,
                    account_id=payment.account_id,
                    payment_id=payment_id,
                    conversation_id=payment.conversation_id,
                    code=code,
                )
        if changed:
            metrics.PAYMENTS.labels(status=PaymentStatus.FAILED.value).inc()
        log.info("payment %s failed (%s)", payment_id, code, extra={"payment_id": payment_id})
        return self.outcome(payment_id), changed

    def mark_unknown(self, payment_id: int) -> PaymentOutcome:
        return self.mark_unknown_open(payment_id)[0]

    def mark_unknown_open(self, payment_id: int) -> tuple[PaymentOutcome, bool]:
        """``pending`` to ``unknown``: its outcome, and whether this call moved it."""
        with session_scope(self.engine) as session:
            moved = session.execute(
                update(Payment)
                .where(Payment.id == payment_id)
                .where(Payment.status == PaymentStatus.PENDING.value)
                .values(status=PaymentStatus.UNKNOWN.value, updated_at=utcnow())
            )
            payment = session.get(Payment, payment_id)
            assert payment is not None
            if moved.rowcount == 1:
                audit.record(
                    session,
                    "payment.outcome_unknown",
                    account_id=payment.account_id,
                    payment_id=payment_id,
                    conversation_id=payment.conversation_id,
                )
        if moved.rowcount == 1:
            metrics.PAYMENTS.labels(status=PaymentStatus.UNKNOWN.value).inc()
        log.warning("payment %s: outcome unknown, left for reconciliation", payment_id,
                    extra={"payment_id": payment_id})
        return self.outcome(payment_id), moved.rowcount == 1
