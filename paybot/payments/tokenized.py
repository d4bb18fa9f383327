"""Paying with a token made for the payment: the two-step style, and a bank account (or a
card the caller agreed to keep) in one step.

The order is what keeps tokens honest:

1. The payment row is written and the amount rules checked first (:meth:`Ledger.open_payment`):
   a refused request makes no token. The row is then claimed for tokenizing with a conditional
   update, so a repeated request (the same key) makes no second token.
2. The token is recorded as a payment method of the account that is *not kept*
   (``saved_at`` None) and linked to the payment.
3. The charge (:meth:`TokenizedPayments.charge`) claims the payment (a conditional update),
   charges the token under the payment's idempotency key, and settles it.
4. Then the token is disposed of, whatever the outcome: kept (``saved_at`` set) only when it
   is reusable (the caller agreed), the payment succeeded and the account does not have the same
   instrument on file already; deleted at the gateway otherwise.
5. :meth:`TokenizedPayments.sweep` (each bridge's recheck job, and start-up) fails a payment
   whose token was never charged (the caller hung up) once it is old, and disposes of any
   token a crash left behind.

All methods block (database and gateway I/O).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import update
from sqlmodel import Session, select

from paybot import audit
from paybot.db import queries
from paybot.db.engine import session_scope
from paybot.db.models import Account, Payment, PaymentMethod, PaymentStatus
from paybot.db.types import utcnow
from paybot.gateway.base import CardDeclined, ChargeResult, GatewayError, TokenInfo, UnknownToken
from paybot.gateway.card_data import BankAccount, CardData
from paybot.payments.settlement import PaymentOutcome

if TYPE_CHECKING:
    from paybot.payments.ledger import Ledger, PaymentRequest

log = logging.getLogger(__name__)
TOKENIZING = "tokenizing"  # gateway_reference while the token is being made


class TokenizedPayments:
    """Tokenize after the rules, charge the token, keep or delete it (see the module)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.engine = ledger.engine

    # Step one: the token --------------------------------------------------------------
    def tokenize(
        self, request: PaymentRequest, method: CardData | BankAccount, *, save: bool
    ) -> PaymentOutcome:
        """Open the payment, then tokenize ``method`` for it (reusable only with ``save``).

        Returns the payment, still ``pending`` when the token is ready; a payment already
        settled, or already tokenized, comes back as it is and nothing is tokenized.

        Raises:
            PaymentRefused: the rules refuse the amount (no row, no token).
        """
        kind = "card" if isinstance(method, CardData) else "bank"
        payment, done = self.ledger.open_payment(request, kind, None, None)
        if done or not self._claim_for_token(payment.payment_id):
            return self.ledger.outcome(payment.payment_id)
        gateway = self.ledger.gateway
        customer = self._account_number(request.account_id)
        try:
            if isinstance(method, CardData):
                info = gateway.tokenize_card(method, reusable=save, customer=customer)
            else:
                info = gateway.tokenize_bank_account(method, reusable=save, customer=customer)
        except CardDeclined as declined:
            result = ChargeResult(
                False, "", payment.total, payment.currency, "", method.last4,
                decline_code=declined.decline_code,
            )
            return self.ledger.settlement.settle(payment.payment_id, result)
        except GatewayError as exc:
            return self.ledger.settlement.fail(payment.payment_id, exc.code, "payment.failed")
        self._record_token(payment.payment_id, request.account_id, info)
        log.info("payment %s tokenized (%s)", payment.payment_id, info.kind)
        return self.ledger.outcome(payment.payment_id)

    def _claim_for_token(self, payment_id: int) -> bool:
        with session_scope(self.engine) as session:
            claimed = session.execute(
                update(Payment)
                .where(Payment.id == payment_id, Payment.gateway_reference.is_(None))  # type: ignore
                .where(Payment.status == PaymentStatus.PENDING.value)
                .values(gateway_reference=TOKENIZING, updated_at=utcnow())
            )
            return claimed.rowcount == 1

    def _account_number(self, account_id: int) -> str | None:
        with Session(self.engine) as session:
            account = session.get(Account, account_id)
            return account.account_number if account is not None else None

    def _record_token(self, payment_id: int, account_id: int, info: TokenInfo) -> None:
        with session_scope(self.engine) as session:
            method = PaymentMethod(
                account_id=account_id,
                gateway=self.ledger.gateway.name,
                token=info.token,
                kind=info.kind,
                brand=info.brand,
                last4=info.last4,
                exp_month=info.exp_month,
                exp_year=info.exp_year,
                reusable=info.reusable,
                is_default=False,
                saved_at=None,
            )
            session.add(method)
            session.flush()
            session.execute(
                update(Payment)
                .where(Payment.id == payment_id)
                .values(
                    payment_method_id=method.id,
                    gateway_reference=info.token,
                    method_brand=info.brand,
                    method_last4=info.last4,
                    updated_at=utcnow(),
                )
            )

    # Step two: the charge -------------------------------------------------------------
    def charge(self, payment_id: int) -> PaymentOutcome:
        """Charge the payment's token once, settle the payment, then keep or delete the token.

        A payment that is not ``pending`` with a token (settled, or never tokenized) is
        returned as it is; its token, if one is left, is still disposed of.
        """
        with Session(self.engine) as session:
            payment = session.get(Payment, payment_id)
            if payment is None:
                raise LookupError(f"no payment {payment_id}")
            token, key = payment.gateway_reference, payment.idempotency_key
            total, currency = payment.total, payment.currency
            tokenized = payment.payment_method_id is not None
        if not tokenized or not self._claim_for_charge(payment_id):
            self.dispose(payment_id)
            return self.ledger.outcome(payment_id)
        assert token is not None
        try:
            return self.ledger.run_charge(
                payment_id,
                key,
                lambda: self.ledger.gateway.charge_token(
                    token,
                    total,
                    currency,
                    idempotency_key=key,
                    description=f"paybot payment {payment_id}",
                ),
                claimed=True,
            )
        finally:
            self.dispose(payment_id)

    def _claim_for_charge(self, payment_id: int) -> bool:
        """Count the first attempt, only while the payment is pending: the sweep fails a
        payment only while none was counted, so the two never both act."""
        with session_scope(self.engine) as session:
            claimed = session.execute(
                update(Payment)
                .where(Payment.id == payment_id)
                .where(Payment.status == PaymentStatus.PENDING.value)
                .values(attempts=Payment.attempts + 1, updated_at=utcnow())
            )
            return claimed.rowcount == 1

    # Step three: keep or delete -------------------------------------------------------
    def dispose(self, payment_id: int) -> None:
        """Keep the payment's token for the customer (reusable, paid, not on file already) or
        delete it at the gateway. A gateway error leaves it for the next sweep."""
        with Session(self.engine) as session:
            payment = session.get(Payment, payment_id)
            method = (
                session.get(PaymentMethod, payment.payment_method_id)
                if payment is not None and payment.payment_method_id is not None
                else None
            )
            if payment is None or method is None:
                return
            if method.saved_at is not None or method.deleted_at is not None:
                return
            if payment.status == PaymentStatus.PENDING.value:
                return  # not charged yet
            keep = (
                method.reusable
                and payment.status == PaymentStatus.SUCCEEDED.value
                and not _on_file_already(session, method)
            )
        if keep:
            self._keep(method)
        else:
            self._delete(method)

    def _keep(self, method: PaymentMethod) -> None:
        with session_scope(self.engine) as session:
            if not _claim_method(session, method.id, saved_at=utcnow(), is_default=True):
                return  # kept or deleted meanwhile by the call or another worker's sweep
            audit.record(
                session, "payment_method.saved", account_id=method.account_id, brand=method.brand
            )
        log.info("payment method %s kept for its account", method.id)

    def _delete(self, method: PaymentMethod) -> None:
        """Delete the token at the gateway once: the row is claimed first (``deleted_at``
        set while neither kept nor deleted), so the live call and every worker's sweep never
        both delete it; a gateway error gives the claim back for the next sweep."""
        claimed_at = utcnow()
        with session_scope(self.engine) as session:
            if not _claim_method(session, method.id, deleted_at=claimed_at):
                return
        try:
            self.ledger.gateway.delete_token(method.token)
        except UnknownToken:
            pass  # already gone at the gateway
        except GatewayError as exc:
            with session_scope(self.engine) as session:
                session.execute(
                    update(PaymentMethod)
                    .where(PaymentMethod.id == method.id, PaymentMethod.deleted_at == claimed_at)  # type: ignore
                    .values(deleted_at=None)
                )
            log.warning("token of method %s not deleted yet (%s)", method.id, exc.code)
            return
        with session_scope(self.engine) as session:
            audit.record(
                session, "payment_method.deleted", account_id=method.account_id, brand=method.brand
            )
        log.info("token of method %s deleted after use", method.id)

    # The sweep -------------------------------------------------------------------------
    def sweep(self, older_than_s: float = 60.0) -> list[PaymentOutcome]:
        """Fail payments never charged and older than ``older_than_s`` (``abandoned``), then
        dispose of every token left after its payment; the payments this call failed."""
        cutoff = utcnow() - timedelta(seconds=older_than_s)
        with Session(self.engine) as session:
            unclaimed = queries.unclaimed_payment_ids(session=session, updated_before=cutoff)
        failed = []
        for payment_id in unclaimed:
            outcome, changed = self.ledger.settlement.fail_open(
                payment_id, "abandoned", "payment.abandoned", unclaimed=True
            )
            if changed:
                failed.append(outcome)
        with Session(self.engine) as session:
            leftovers = queries.used_token_payment_ids(session=session)
        for payment_id in leftovers:
            self.dispose(payment_id)
        return failed


def _claim_method(session: Session, method_id: int | None, **values: object) -> bool:
    """Set ``values`` on the method while it is neither kept nor deleted; whether this did."""
    claimed = session.execute(
        update(PaymentMethod)
        .where(
            PaymentMethod.id == method_id,
            PaymentMethod.saved_at.is_(None),  # type: ignore[union-attr]
            PaymentMethod.deleted_at.is_(None),  # type: ignore[union-attr]
        )
        .values(**values)
    )
    return claimed.rowcount == 1


def _on_file_already(session: Session, method: PaymentMethod) -> bool:
    """The account keeps the same instrument already (kind, brand, last four, expiry)."""
    query = select(PaymentMethod.id).where(
        PaymentMethod.account_id == method.account_id,
        PaymentMethod.id != method.id,
        PaymentMethod.saved_at.is_not(None),  # type: ignore[union-attr]
        PaymentMethod.deleted_at.is_(None),  # type: ignore[union-attr]
        PaymentMethod.kind == method.kind,
        PaymentMethod.brand == method.brand,
        PaymentMethod.last4 == method.last4,
        PaymentMethod.exp_month == method.exp_month,
        PaymentMethod.exp_year == method.exp_year,
    )
    return session.exec(query).first() is not None
