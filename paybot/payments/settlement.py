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

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine, Row
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from paybot import audit, metrics
from paybot.db.engine import session_scope
from paybot.db.group_commit import GroupCommit, defer_insert
from paybot.db.models import Account, AuditEvent, LedgerEntry, Payment, PaymentStatus
from paybot.db.types import utcnow
from paybot.gateway.base import ChargeResult
from paybot.payments.batch_settlement import settle_rows
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
    def of(cls, p: Payment | Row) -> PaymentOutcome:
        """From the ORM row, or a Core row of all of ``payments``' columns."""
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

    def __init__(
        self, engine: Engine, *, fee_account: str, writes: GroupCommit | None = None
    ) -> None:
        self.engine = engine
        self.fee_account = fee_account
        self.writes = writes or GroupCommit(engine, name="settlement")
        self._returning = bool(engine.dialect.full_returning)  # UPDATE ... RETURNING
        self._at_once = engine.dialect.name == "postgresql"  # batch_settlement's statement

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
        """Settle the payment if it is still open: its outcome, and whether this call did.

        The settlement (status, ledger lines, balance, audit event) is one transaction, shared
        with other payments' (group commit); the outcome is returned once it is committed."""
        for _ in range(5):  # a confirmation number collision is retried with a new number
            try:
                settled = self.writes.run_set(self._settle_all, (payment_id, result, actor))
                break
            except IntegrityError:
                log.warning("payment %s: confirmation number collision, retrying", payment_id)
        else:
            settled = None
        if settled is None:
            return self.outcome(payment_id), False
        metrics.PAYMENTS.labels(status=settled.status).inc()
        log.info("payment %s %s", payment_id, settled.status, extra={"payment_id": payment_id})
        return settled, True

    def _settle_all(
        self, session: Session, items: list[tuple[int, ChargeResult, str]]
    ) -> list[PaymentOutcome | None]:
        """The settling job, for all of a batch's settlements at once: per item the settled
        payment, or None if it was no longer open (one statement on PostgreSQL:
        :mod:`paybot.payments.batch_settlement`; one after the other elsewhere)."""
        if not self._at_once:
            return [self._settle_in(session, *item) for item in items]
        first: dict[int, ChargeResult] = {}  # a payment settled twice in a batch: the first
        for payment_id, result, _ in items:
            first.setdefault(payment_id, result)
        settled = settle_rows(session, list(first.items()))
        outcomes: list[PaymentOutcome | None] = []
        for payment_id, result, actor in items:
            payment = settled.pop(payment_id, None)  # the second time: no longer open
            if payment is None:
                outcomes.append(None)
                continue
            if result.approved:
                self._book(session, payment, payment.ledger_account)
            outcomes.append(self._audited(session, payment, result, actor))
        return outcomes

    def _settle_in(
        self, session: Session, payment_id: int, result: ChargeResult, actor: str
    ) -> PaymentOutcome | None:
        """One settlement (without ``UPDATE ... RETURNING``): the settled payment, or None if
        it was no longer open."""
        approved = result.approved
        number = new_confirmation_number()
        values = {
            "status": (PaymentStatus.SUCCEEDED if approved else PaymentStatus.DECLINED).value,
            "gateway_transaction_id": result.transaction_id,
            "decline_code": result.decline_code,
            "method_brand": result.brand,
            "method_last4": result.last4,
            # A scheduled payment keeps the number it was given when it was scheduled.
            "confirmation_number": (
                func.coalesce(Payment.confirmation_number, number)
                if approved
                else Payment.confirmation_number
            ),
            "completed_at": utcnow(),
        }
        payment = self._transition_row(session, payment_id, **values)
        if payment is None:
            return None
        if approved:
            self._book(session, payment, self._debit(session, payment))
        return self._audited(session, payment, result, actor)

    @staticmethod
    def _audited(
        session: Session, payment: Row, result: ChargeResult, actor: str
    ) -> PaymentOutcome:
        """The outcome's audit event (inserted with the batch); the settled payment."""
        defer_insert(
            session,
            AuditEvent.__table__,
            audit.row(
                "payment.succeeded" if result.approved else "payment.declined",
                account_id=payment.account_id,
                payment_id=payment.id,
                conversation_id=payment.conversation_id,
                actor=actor,
                decline_code=result.decline_code,
                replayed=result.replayed,
            ),
        )
        return PaymentOutcome.of(payment)

    def _transition_row(self, session: Session, payment_id: int, **values) -> Row | None:
        """:meth:`_transition`, giving the updated row (all columns), or None."""
        table = Payment.__table__
        stmt = (
            update(table)
            .where(table.c.id == payment_id)
            .where(table.c.status.in_(OPEN))
            .values(updated_at=utcnow(), **values)
        )
        if self._returning:
            return session.execute(stmt.returning(*table.c)).first()
        if session.execute(stmt).rowcount != 1:
            return None
        return session.execute(select(table).where(table.c.id == payment_id)).first()

    @staticmethod
    def _debit(session: Session, payment: Row) -> str:
        """Take the payment off its account's balance; the account number."""
        accounts = Account.__table__
        session.execute(
            update(accounts)
            .where(accounts.c.id == payment.account_id)
            .values(balance=accounts.c.balance - payment.amount, updated_at=utcnow())
        )
        return session.execute(
            select(accounts.c.account_number).where(accounts.c.id == payment.account_id)
        ).scalar_one()

    def _book(self, session: Session, payment: Row, number: str) -> None:
        """The ledger lines of a successful payment (inserted with the batch)."""
        lines = [("principal", number, payment.amount)]
        if payment.fee > 0:
            lines.append(("fee", self.fee_account, payment.fee))
        now = utcnow()
        for kind, ledger_account, amount in lines:
            row = {
                "payment_id": payment.id,
                "kind": kind,
                "ledger_account": ledger_account,
                "amount": amount,
                "currency": payment.currency,
                "created_at": now,
            }
            defer_insert(session, LedgerEntry.__table__, row)

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
        log.warning(
            "payment %s: outcome unknown, left for reconciliation",
            payment_id,
            extra={"payment_id": payment_id},
        )
        return self.outcome(payment_id), moved.rowcount == 1
