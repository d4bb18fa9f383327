"""Scheduled payments: taken later, on a date up to the due date, with a stored method.

A scheduled payment is a ``payments`` row in state ``scheduled`` with its idempotency key and
confirmation number from the start. :meth:`Scheduler.run_due` charges the ones whose day has
come, through the ledger's usual path (same key, retries, settlement); a payment can be
cancelled until then. On its day the rules are checked again, under a lock on the account: an
account no longer active, a balance (less open payments) it would overpay, or a payment method
deleted, no longer reusable or expired marks the payment ``skipped`` with the reason in
``decline_code`` and an audit event, and nothing is charged. No convenience fee is charged on
scheduled payments.
"""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal

from sqlalchemy import update
from sqlmodel import Session

from paybot import audit
from paybot.accounts.methods import is_on_file
from paybot.db import queries
from paybot.db.engine import session_scope, write_scope
from paybot.db.models import Account, Payment, PaymentMethod, PaymentStatus
from paybot.db.types import utcnow
from paybot.payments.confirmation import new_confirmation_number
from paybot.payments.ledger import Ledger, new_idempotency_key
from paybot.payments.payable import held_amount, lock_account
from paybot.payments.rules import PaymentRefused
from paybot.payments.settlement import PaymentOutcome

log = logging.getLogger(__name__)
SCHEDULED = PaymentStatus.SCHEDULED.value


class Scheduler:
    """Schedules, lists, cancels and runs future payments through a :class:`Ledger`."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.engine = ledger.engine

    def schedule(
        self,
        *,
        account_id: int,
        payment_method_id: int,
        amount: Decimal,
        pay_on: date,
        channel: str,
        today: date | None = None,
        conversation_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> PaymentOutcome:
        """Record a payment to be taken on ``pay_on`` (after today, no later than the due date)."""
        today = today or date.today()
        key = idempotency_key or new_idempotency_key()
        with session_scope(self.engine) as session:
            existing = queries.payment_by_key(session=session, idempotency_key=key)
            if existing is not None:
                return PaymentOutcome.of(existing)
            account = session.get(Account, account_id)
            method = session.get(PaymentMethod, payment_method_id)
            if account is None:
                raise PaymentRefused("unknown_account", "That account was not found.")
            if method is None or not is_on_file(method, account_id):
                raise PaymentRefused("unknown_method", "That payment method is not on file.")
            self.ledger.rules.check(account, amount, held=held_amount(session, account_id))
            if pay_on <= today or (account.due_date and pay_on > account.due_date):
                raise PaymentRefused("date_out_of_range", "That date can't be used.")
            payment = self._new_row(account, method, amount, pay_on, channel, conversation_id, key)
            session.add(payment)
            session.flush()
            audit.record(
                session,
                "payment.scheduled",
                account_id=account_id,
                payment_id=payment.id,
                conversation_id=conversation_id,
                pay_on=pay_on.isoformat(),
                amount=amount,
            )
        log.info("payment %s scheduled", payment.id)
        return PaymentOutcome.of(payment)

    def _new_row(self, account, method, amount, pay_on, channel, conversation_id, key) -> Payment:
        return Payment(
            account_id=account.id,
            payment_method_id=method.id,
            amount=amount,
            fee=Decimal("0.00"),
            total=amount,
            currency=account.currency,
            status=SCHEDULED,
            channel=channel,
            conversation_id=conversation_id,
            method_kind=method.kind,
            method_brand=method.brand,
            method_last4=method.last4,
            gateway=self.ledger.gateway.name,
            gateway_reference=method.token,
            confirmation_number=new_confirmation_number(),
            idempotency_key=key,
            scheduled_for=pay_on,
        )

    def list_scheduled(self, account_id: int) -> list[PaymentOutcome]:
        """The account's scheduled payments, soonest first."""
        with Session(self.engine) as session:
            rows = queries.scheduled_payments(session=session, account_id=account_id)
            return [PaymentOutcome.of(p) for p in rows]

    def cancel(self, payment_id: int, *, account_id: int, conversation_id: str | None = None):
        """Cancel a scheduled payment of ``account_id``; False if it was not (or no longer) one."""
        with session_scope(self.engine) as session:
            result = session.execute(
                update(Payment)
                .where(Payment.id == payment_id, Payment.account_id == account_id)
                .where(Payment.status == SCHEDULED)
                .values(status=PaymentStatus.CANCELLED.value, updated_at=utcnow())
            )
            if result.rowcount != 1:
                return False
            audit.record(
                session,
                "payment.schedule_cancelled",
                account_id=account_id,
                payment_id=payment_id,
                conversation_id=conversation_id,
            )
        return True

    def run_due(self, today: date | None = None) -> list[PaymentOutcome]:
        """Charge (or skip) every scheduled payment whose day has come; their outcomes."""
        today = today or date.today()
        with Session(self.engine) as session:
            due = queries.due_scheduled_payment_ids(session=session, today=today)
        return [o for o in (self._run_one(pid, today) for pid in due) if o is not None]

    def _run_one(self, payment_id: int, today: date | None = None) -> PaymentOutcome | None:
        today = today or date.today()
        with write_scope(self.engine) as session:
            payment = session.get(Payment, payment_id)
            if payment is None or payment.status != SCHEDULED:
                return None
            lock_account(session, payment.account_id)
            session.refresh(payment)  # as it is now that the account is ours
            reason = self._reason_to_skip(session, payment, today)
            status = PaymentStatus.SKIPPED if reason else PaymentStatus.PENDING
            claimed = session.execute(
                update(Payment)
                .where(Payment.id == payment_id, Payment.status == SCHEDULED)
                .values(status=status.value, decline_code=reason, updated_at=utcnow())
            )
            if claimed.rowcount != 1:  # cancelled, or another worker took it
                return None
            if reason:
                audit.record(
                    session,
                    "payment.schedule_skipped",
                    account_id=payment.account_id,
                    payment_id=payment_id,
                    reason=reason,
                )
                log.info("scheduled payment %s skipped (%s)", payment_id, reason)
                session.refresh(payment)
                return PaymentOutcome.of(payment)
            token, key, total, currency = (
                payment.gateway_reference,
                payment.idempotency_key,
                payment.total,
                payment.currency,
            )
        return self.ledger.charge_open_payment(payment_id, key, token, total, currency)

    def _reason_to_skip(self, session: Session, payment: Payment, today: date) -> str | None:
        """Why ``payment`` may not be charged today (a stable code), or None."""
        account = session.get(Account, payment.account_id)
        assert account is not None and payment.id is not None
        try:
            held = held_amount(session, account.id, exclude=payment.id)
            self.ledger.rules.check(account, payment.amount, held=held)
        except PaymentRefused as refused:
            return refused.code
        method = (
            session.get(PaymentMethod, payment.payment_method_id)
            if payment.payment_method_id is not None
            else None
        )
        if (
            method is None
            or method.account_id != account.id
            or not is_on_file(method, account.id)
            or not method.reusable
            or method.token != payment.gateway_reference
        ):
            return "method_unavailable"
        if method.exp_year and method.exp_month and (method.exp_year, method.exp_month) < (
            today.year,
            today.month,
        ):
            return "method_expired"
        return None
