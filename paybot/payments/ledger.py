"""The ledger: every charge is written down before the gateway hears of it.

The rules it keeps:

1. A ``payments`` row with a fresh idempotency key is committed before the gateway is called.
2. A gateway timeout is retried with the same key; if it still does not answer, the gateway
   is asked what happened to that key before anyone is told anything. Still unknown: the row
   is left ``unknown`` and the reconciler settles it later.
3. A crash between the gateway call and the settlement is found at start-up
   (:meth:`Ledger.reconcile`) and settled from the gateway's record of the key.
4. A payment is opened under a lock on its account row, and the principal of the account's
   open (``pending``/``unknown``) payments counts against its balance: two payments opened at
   once cannot together pay more than is owed. Amounts are whole cents before any gateway call.
5. Settlement is a conditional update from ``pending``/``unknown``, so a live call and the
   reconciler can never both settle one payment; a successful payment gets its confirmation
   number, a principal ledger line and, with a fee, a fee line to the fee account.

All methods block (database and gateway I/O): call them from async code with
``asyncio.to_thread``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from paybot import metrics
from paybot.accounts.methods import is_on_file
from paybot.db import queries
from paybot.db.engine import session_scope
from paybot.db.group_commit import GroupCommit
from paybot.db.models import Account, Payment, PaymentMethod, PaymentStatus
from paybot.db.types import utcnow
from paybot.gateway.base import ChargeResult, Gateway, GatewayError, GatewayTimeout
from paybot.gateway.card_data import BankAccount, CardData
from paybot.payments.fees import FeePolicy, Quote
from paybot.payments.new_payment import (  # noqa: F401 - new_idempotency_key re-exported
    KEY_LENGTH,
    PaymentRequest,
    new_idempotency_key,
)
from paybot.payments.opening import Opening, OpenRequest, existing_outcome
from paybot.payments.payable import held_amount
from paybot.payments.rules import AmountRules, PaymentRefused
from paybot.payments.settlement import OPEN, PaymentOutcome, Settlement
from paybot.payments.tokenized import TokenizedPayments

log = logging.getLogger(__name__)
_METHODS = PaymentMethod.__table__
# What a stored-method payment reads of the method (a Core row: no ORM object per payment).
_METHOD = select(
    _METHODS.c.account_id, _METHODS.c.deleted_at, _METHODS.c.saved_at, _METHODS.c.token,
    _METHODS.c.kind,
).where(_METHODS.c.id == bindparam("id"))  # fmt: skip


class Ledger:
    """Takes payments through a gateway and records them exactly once."""

    def __init__(
        self,
        engine: Engine,
        gateway: Gateway,
        *,
        rules: AmountRules | None = None,
        fees: FeePolicy | None = None,
        retries: int = 2,
        backoff_s: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.engine = engine
        self.gateway = gateway
        self.rules = rules or AmountRules()
        self.fees = fees or FeePolicy()
        self.retries = retries
        self.backoff_s = backoff_s
        self._sleep = sleep
        # Opening and settling payments share transactions across threads (group commit).
        self.writes = GroupCommit(engine, name="ledger")
        self.opening = Opening(self.rules, self.fees, lambda: self.gateway.name)
        self.settlement = Settlement(engine, fee_account=self.fees.account, writes=self.writes)
        self.tokens = TokenizedPayments(self)

    # Quotes ---------------------------------------------------------------------------
    def quote(self, account_id: int, amount: Decimal) -> Quote:
        """Check ``amount`` against the rules (less what open payments may already have paid)
        and return what would be charged."""
        amount = self.rules.exact(amount)
        with Session(self.engine) as session:
            account = _get_account(session, account_id)
            self.rules.check(account, amount, held=held_amount(session, account_id))
            return Quote(amount, self.fees.fee_for(amount), account.currency)

    # Paying ---------------------------------------------------------------------------
    def pay_with_stored_method(
        self,
        *,
        account_id: int,
        payment_method_id: int,
        amount: Decimal,
        channel: str,
        conversation_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> PaymentOutcome:
        """Charge a stored, tokenised payment method of the account."""
        request = self.new_request(account_id, amount, channel, conversation_id, idempotency_key)
        # The method is read (on file? its kind and token) with the account, in the shared
        # open transaction: one statement for all of a batch's payments.
        payment, done, claimed, token = self._open(
            request, None, None, payment_method_id, claim=True, stored=True
        )
        if done:
            return payment
        if token is None:  # opened by another worker under the same key at the same time
            token = self._stored_token(account_id, payment_method_id)
        return self.run_charge(
            payment.payment_id,
            request.idempotency_key,
            lambda: self.gateway.charge_token(
                token,
                payment.total,
                payment.currency,
                idempotency_key=request.idempotency_key,
                description=f"paybot payment {payment.payment_id}",
            ),
            claimed=claimed,
        )

    def pay_with_new_method(
        self,
        *,
        account_id: int,
        method: CardData | BankAccount,
        amount: Decimal,
        channel: str,
        save: bool = False,
        conversation_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> PaymentOutcome:
        """Charge newly keyed card or bank data in one go (one step).

        A card is charged as keyed and nothing is kept. A bank account (and a card with
        ``save``, the caller's consent to keep it) is tokenized once the payment row is
        written and the rules allow it, charged, and the token deleted (or, with ``save`` and
        success, kept once): :mod:`paybot.payments.tokenized`. The caller must drop
        ``method`` afterwards; nothing here stores or logs its digits.
        """
        request = self.new_request(account_id, amount, channel, conversation_id, idempotency_key)
        if save or isinstance(method, BankAccount):
            opened = self.tokens.tokenize(request, method, save=save)
            return self.tokens.charge(opened.payment_id)
        payment, done, claimed, _ = self._open(request, "card", "one-step", None, claim=True)
        if done:
            return payment
        return self.run_charge(
            payment.payment_id,
            request.idempotency_key,
            lambda: self.gateway.charge_card(
                method,
                payment.total,
                payment.currency,
                idempotency_key=request.idempotency_key,
                description=f"paybot payment {payment.payment_id}",
            ),
            claimed=claimed,
        )

    def _stored_token(self, account_id: int, payment_method_id: int) -> str:
        with Session(self.engine) as session:
            method = session.execute(_METHOD, {"id": payment_method_id}).first()
        if method is None or not is_on_file(method, account_id):
            raise PaymentRefused("unknown_method", "That payment method is not on file.")
        return method.token

    def charge_open_payment(
        self, payment_id: int, key: str, token: str, total: Decimal, currency: str
    ) -> PaymentOutcome:
        """Charge an already committed, open payment row (a scheduled one whose day came)."""
        return self.run_charge(
            payment_id,
            key,
            lambda: self.gateway.charge_token(
                token,
                total,
                currency,
                idempotency_key=key,
                description=f"paybot payment {payment_id}",
            ),
        )

    def open_delegated(
        self,
        *,
        account_id: int,
        amount: Decimal,
        kind: str,
        processor: str,
        reference: str,
        conversation_id: str,
        idempotency_key: str,
    ) -> tuple[PaymentOutcome, bool]:
        """Commit a payment that ``processor`` (Twilio ``<Pay>``) captures and charges: same
        lock, rules and key as any; (payment, already_settled). See payments.delegated."""
        request = self.new_request(account_id, amount, "voice", conversation_id, idempotency_key)
        return self.open_payment(replace(request, gateway=processor), kind, reference, None)

    def outcome(self, payment_id: int) -> PaymentOutcome:
        """The payment as the database has it now."""
        return self.settlement.outcome(payment_id)

    # Reconciliation -------------------------------------------------------------------
    def reconcile(self, older_than_s: float = 60.0) -> list[PaymentOutcome]:
        """Settle every payment left open (a crash, a lost answer) from the gateway's record;
        the ones this call settled.

        A payment the gateway has no record of was never charged and is marked ``failed``.
        One the gateway cannot be asked about right now stays open for the next run. At start
        only: a ``pending`` payment may be a live call's, while its process runs.
        """
        return self._ask_gateway(OPEN, settle_after_s=older_than_s, fail_after_s=older_than_s)

    def recheck_unknown(self, give_up_after_s: float = 60.0) -> list[PaymentOutcome]:
        """Ask the gateway again about every ``unknown`` payment (while running, safe beside
        other processes doing the same): one it charged or declined is settled now; one it has
        no record of is marked ``failed`` once ``give_up_after_s`` old (a late request could
        still land before that)."""
        return self._ask_gateway(
            (PaymentStatus.UNKNOWN.value,), settle_after_s=0.0, fail_after_s=give_up_after_s
        )

    def _ask_gateway(
        self, statuses: tuple[str, ...], *, settle_after_s: float, fail_after_s: float
    ) -> list[PaymentOutcome]:
        now = utcnow()
        with Session(self.engine) as session:
            found = queries.payments_awaiting_gateway(
                session=session,
                statuses=statuses,
                gateway=self.gateway.name,
                updated_before=now - timedelta(seconds=settle_after_s),
            )
        settled = []
        for payment_id, key, updated_at in found:
            try:
                result = metrics.timed(self.gateway.name, "find", self.gateway.find_charge, key)
            except GatewayError:
                log.warning("reconcile: gateway unavailable for payment %s", payment_id)
                continue
            if result is not None:
                outcome, changed = self.settlement.settle_open(
                    payment_id, result, actor="reconciler"
                )
            elif updated_at <= now - timedelta(seconds=fail_after_s):
                outcome, changed = self.settlement.fail_open(
                    payment_id, "not_submitted", "payment.not_submitted"
                )
            else:
                continue  # no record yet: asked again next time
            if changed:  # not settled meanwhile by a live call or another worker
                settled.append(outcome)
                log.info("reconciled payment %s", payment_id)
        return settled

    # Internals ------------------------------------------------------------------------
    def new_request(
        self,
        account_id: int,
        amount: Decimal,
        channel: str,
        conversation_id: str | None,
        idempotency_key: str | None,
    ) -> PaymentRequest:
        amount = self.rules.exact(amount)
        key = idempotency_key or new_idempotency_key()
        if len(key) > KEY_LENGTH:
            raise ValueError(f"idempotency keys are at most {KEY_LENGTH} characters")
        return PaymentRequest(account_id, amount, channel, conversation_id, key)

    def open_payment(
        self, request: PaymentRequest, kind: str, reference: str | None, method_id: int | None
    ) -> tuple[PaymentOutcome, bool]:
        """Commit the payment row before any gateway call. Returns (payment, already_done)."""
        payment, done, _, _ = self._open(request, kind, reference, method_id, claim=False)
        return payment, done

    def _open(
        self,
        request: PaymentRequest,
        kind: str | None,
        reference: str | None,
        method_id: int | None,
        *,
        claim: bool,
        stored: bool = False,
    ) -> tuple[PaymentOutcome, bool, bool, str | None]:
        """Commit the payment row (in a shared transaction: :mod:`paybot.db.group_commit`)
        before any gateway call. With ``claim`` a new row is written with its first gateway
        attempt already counted (``attempts`` 1), saving the separate count: the caller
        charges it next. With ``stored``, the kind and reference are the stored method's
        (refused unless on file). Returns (payment, already_done, claimed, reference), the
        reference None if another worker opened the key at the same time."""
        item = OpenRequest(request, kind, reference, method_id, claim, stored)
        try:
            payment, done, new, reference = self.writes.run_set(self.opening.open_all, item)
        except IntegrityError:  # the same key, opened concurrently by another worker
            with Session(self.engine) as session:
                existing = queries.payment_by_key(
                    session=session, idempotency_key=request.idempotency_key
                )
                assert existing is not None  # the insert failed on its unique key
                return (*self._existing(existing, request), False, None)
        if new:
            log.info("payment %s opened (channel=%s)", payment.payment_id, request.channel)
        return payment, done, new and claim, reference

    def _existing(self, payment: Payment, request: PaymentRequest) -> tuple[PaymentOutcome, bool]:
        # A repeated confirmation: report the settled outcome, or finish the open one.
        return existing_outcome(
            payment.account_id, payment.amount, request, PaymentOutcome.of(payment)
        )

    def run_charge(
        self,
        payment_id: int,
        key: str,
        charge: Callable[[], ChargeResult],
        *,
        claimed: bool = False,
    ) -> PaymentOutcome:
        """Charge an open payment and settle it. ``claimed``: its first attempt is already
        counted (the claim that kept the token sweep off it)."""
        try:
            result = self._charge_with_retries(payment_id, key, charge, claimed)
        except GatewayError as exc:
            return self.settlement.fail(payment_id, exc.code, "payment.failed")
        if result is None:
            return self.settlement.mark_unknown(payment_id)
        return self._settle(payment_id, result)

    def _charge_with_retries(
        self, payment_id: int, key: str, charge: Callable[[], ChargeResult], claimed: bool
    ) -> ChargeResult | None:
        """Call the gateway, retrying timeouts with the same key; None if still unknown."""
        for attempt in range(self.retries + 1):
            if attempt or not claimed:
                self._count_attempt(payment_id)
            try:
                return metrics.timed(self.gateway.name, "charge", charge)
            except GatewayTimeout:
                log.warning("payment %s: gateway timeout (attempt %d)", payment_id, attempt + 1)
                if attempt < self.retries:
                    self._sleep(self.backoff_s * (2**attempt))
        try:
            return metrics.timed(self.gateway.name, "find", self.gateway.find_charge, key)
        except GatewayError:
            return None

    def _count_attempt(self, payment_id: int) -> None:
        with session_scope(self.engine) as session:
            session.execute(
                update(Payment)
                .where(Payment.id == payment_id)
                .values(attempts=Payment.attempts + 1, updated_at=utcnow())
            )

    def _settle(
        self, payment_id: int, result: ChargeResult, actor: str = "system"
    ) -> PaymentOutcome:
        return self.settlement.settle(payment_id, result, actor=actor)


def _get_account(session: Session, account_id: int) -> Account:
    if (account := session.get(Account, account_id)) is None:
        raise PaymentRefused("unknown_account", "That account was not found.")
    return account
