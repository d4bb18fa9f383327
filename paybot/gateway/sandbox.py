"""The embedded sandbox gateway: a test-mode processor that lives in the paybot database.

It behaves like a real processor in test mode, keyed on the well-known Stripe test numbers
(:mod:`paybot.gateway.sandbox_outcomes`). Like a lenient test mode, any other card that passes
validation (known brand, length, Luhn, future expiry, CVC length) is approved, and any other
valid bank account succeeds. Declines are results (``approved=False`` with a decline
code), never exceptions; invalid data raises ``InvalidPaymentData`` and is not stored.

The vault (``sandbox_tokens``, :mod:`paybot.gateway.sandbox_vault`) and the charge log
(``sandbox_charges``, :mod:`paybot.gateway.sandbox_charges`) hold brand, last four, expiry and
the test ``outcome`` the number selected, never a PAN, CVC or full bank account number. Every
charge and refund is stored with its idempotency key; the unique constraint on that key is what
makes concurrent retries safe across threads and processes. Requests are checked
(:mod:`paybot.gateway.sandbox_requests`) before anything is stored, and tests can inject
timeouts and errors (:mod:`paybot.gateway.sandbox_faults`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime, timezone
from decimal import Decimal
from functools import partial
from typing import TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session

from paybot.gateway.base import ChargeResult, Gateway, TokenInfo
from paybot.gateway.card_data import BankAccount, CardData
from paybot.gateway.cards import normalize_expiry, validate_bank_account, validate_card
from paybot.gateway.sandbox_charges import (
    DECLINED,
    SUCCEEDED,
    ChargeLog,
    NewCharge,
    charge_row,
    refund_row,
    result,
)
from paybot.gateway.sandbox_faults import Faults
from paybot.gateway.sandbox_outcomes import (
    bank_outcome,
    card_outcome,
    decline_code,
    token_decline_code,
)
from paybot.gateway.sandbox_requests import (
    InvalidRequest,
    check_key,
    check_money,
    cut_description,
    request_fingerprint,
)
from paybot.gateway.sandbox_vault import TokenVault

__all__ = ["InvalidRequest", "SandboxGateway"]

T = TypeVar("T")


class SandboxGateway(Gateway):
    """The default gateway: test-mode processing stored in ``sandbox_*`` tables.

    Args:
        engine: the paybot database.
        latency_ms: how long every call sleeps first, to simulate a network round trip.
        today: returns the date expiries are checked against; defaults to today in UTC.

    Attributes:
        faults: the fault-injection controls (see :class:`~paybot.gateway.sandbox_faults.Faults`).
    """

    name = "sandbox"

    def __init__(
        self,
        engine: Engine,
        *,
        latency_ms: int = 0,
        today: Callable[[], date] | None = None,
    ) -> None:
        if latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        self._vault = TokenVault(engine)
        self._charges = ChargeLog(engine)
        self.latency_ms = latency_ms
        self.faults = Faults()
        self._today = today or (lambda: datetime.now(timezone.utc).date())

    # -- plumbing ------------------------------------------------------------------------

    def _wait(self) -> None:
        """Sleep ``latency_ms``, as a network round trip would take."""
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)

    def _call(self, operation: str, work: Callable[[], T]) -> T:
        """Run ``work`` after the simulated latency, honouring any injected fault."""
        self._wait()
        return self.faults.run(operation, work)

    # -- tokens --------------------------------------------------------------------------

    def tokenize_card(
        self, card: CardData, *, reusable: bool = True, customer: str | None = None
    ) -> TokenInfo:
        """Validate ``card`` and vault it as a token (every valid card tokenizes; the sandbox
        keeps no customers, so ``customer`` is not used).

        Raises:
            InvalidPaymentData: the card fails validation (see :mod:`paybot.gateway.cards`).
        """
        return self._call("tokenize_card", lambda: self._tokenize_card(card, reusable))

    def _tokenize_card(self, card: CardData, reusable: bool) -> TokenInfo:
        brand = validate_card(card, today=self._today())
        expiry = normalize_expiry(card.exp_month, card.exp_year)
        return self._vault.add(
            kind="card",
            brand=brand,
            last4=card.last4,
            outcome=card_outcome(card),
            exp_month=expiry.month,
            exp_year=expiry.year,
            reusable=reusable,
        )

    def tokenize_bank_account(
        self, account: BankAccount, *, reusable: bool = True, customer: str | None = None
    ) -> TokenInfo:
        """Validate ``account`` (ABA routing checksum, 4-17 digit account) and vault it.

        Raises:
            InvalidPaymentData: the account fails validation.
        """
        work = partial(self._tokenize_bank, account, reusable)
        return self._call("tokenize_bank_account", work)

    def _tokenize_bank(self, account: BankAccount, reusable: bool) -> TokenInfo:
        validate_bank_account(account)
        return self._vault.add(
            kind="bank",
            brand=account.account_type,
            last4=account.last4,
            outcome=bank_outcome(account),
            reusable=reusable,
        )

    def delete_token(self, token: str) -> None:
        """Mark ``token`` deleted; later charges with it raise ``UnknownToken``.

        Deleting an already deleted token does nothing.

        Raises:
            UnknownToken: the token never existed.
        """
        self._wait()
        self._vault.delete(token)

    # -- charges -------------------------------------------------------------------------

    def charge_token(
        self,
        token: str,
        amount: Decimal,
        currency: str,
        *,
        idempotency_key: str,
        description: str | None = None,
    ) -> ChargeResult:
        """Charge a vaulted card or bank account.

        A single-use token (``reusable=False``) is used up by its first charge. A card token
        past its expiry month declines with ``expired_card``; a bank account charged in a
        currency other than USD declines with ``invalid_currency``.

        Raises:
            UnknownToken: the token does not exist or was deleted (unless the key replays).
            IdempotencyConflict: the key was used for a different request.
            InvalidRequest: bad amount, currency or key.
        """
        work = partial(self._charge_token, token, amount, currency, idempotency_key, description)
        return self._call("charge_token", work)

    def _charge_token(
        self, token: str, amount: Decimal, currency: str, key: str, description: str | None
    ) -> ChargeResult:
        amount, currency = check_money(amount, currency)
        fingerprint = request_fingerprint("charge_token", token, amount, currency)
        single_use: list[str] = []

        def build(session: Session) -> NewCharge:
            vaulted = self._vault.load_in(session, token)
            code = token_decline_code(vaulted, currency, self._today())
            if not vaulted.reusable:
                single_use.append(vaulted.id)
            return charge_row(
                key,
                fingerprint,
                token_id=vaulted.id,
                amount=amount,
                currency=currency,
                status=DECLINED if code else SUCCEEDED,
                decline_code=code,
                brand=vaulted.brand,
                last4=vaulted.last4,
                description=cut_description(description),
            )

        def use_up(session: Session) -> None:
            for token_id in single_use:
                self._vault.use_up(session, token_id)

        # The replay check, the token and the new charge: one transaction.
        return self._charges.record(check_key(key), fingerprint, build, use_up)

    def charge_card(
        self,
        card: CardData,
        amount: Decimal,
        currency: str,
        *,
        idempotency_key: str,
        description: str | None = None,
    ) -> ChargeResult:
        """Validate and charge ``card`` in one step; nothing is vaulted.

        Raises:
            InvalidPaymentData: the card fails validation (nothing is stored).
            IdempotencyConflict: the key was used for a different request.
            InvalidRequest: bad amount, currency or key.
        """
        work = partial(self._charge_card, card, amount, currency, idempotency_key, description)
        return self._call("charge_card", work)

    def _charge_card(
        self, card: CardData, amount: Decimal, currency: str, key: str, description: str | None
    ) -> ChargeResult:
        amount, currency = check_money(amount, currency)
        brand = validate_card(card, today=self._today())
        expiry = normalize_expiry(card.exp_month, card.exp_year)
        fingerprint = request_fingerprint(
            "charge_card", brand, card.last4, expiry.month, expiry.year, amount, currency
        )
        code = decline_code(card_outcome(card))
        row = charge_row(
            key,
            fingerprint,
            amount=amount,
            currency=currency,
            status=DECLINED if code else SUCCEEDED,
            decline_code=code,
            brand=brand,
            last4=card.last4,
            description=cut_description(description),
        )
        return self._charges.record(check_key(key), fingerprint, lambda _session: row)

    def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        """The charge (approved or declined) stored under ``idempotency_key``, else None.

        Refunds are not charges: a refund's key gives None.
        """
        self._wait()
        row = self._charges.stored(idempotency_key)
        if row is None or row.status not in (SUCCEEDED, DECLINED):
            return None
        return result(row)

    # -- refunds -------------------------------------------------------------------------

    def refund(
        self, transaction_id: str, amount: Decimal | None = None, *, idempotency_key: str
    ) -> ChargeResult:
        """Refund all that is left (``amount`` None) or part of a succeeded charge.

        The result's ``transaction_id`` is the refund's id (``re_sbx_...``) and ``amount`` the
        amount refunded. The refund row records the charge it refunds in its description.

        Raises:
            InvalidRequest: unknown or declined charge, bad amount, more than is left.
            IdempotencyConflict: the key was used for a different request.
        """
        return self._call("refund", partial(self._refund, transaction_id, amount, idempotency_key))

    def _refund(self, charge_id: str, amount: Decimal | None, key: str) -> ChargeResult:
        charge = self._charges.load_charge(charge_id)
        if amount is not None:
            amount, _ = check_money(amount, charge.currency)
        fingerprint = request_fingerprint("refund", charge.id, "full" if amount is None else amount)
        taken: list[Decimal] = []

        def build(_session: Session) -> NewCharge:
            left = charge.amount - charge.refunded
            if charge.status != SUCCEEDED or left <= 0:
                raise InvalidRequest("only a succeeded, not fully refunded charge can be refunded")
            taken.append(left if amount is None else amount)
            if taken[0] > left:
                raise InvalidRequest("refund exceeds the amount left to refund")
            return refund_row(charge, key, fingerprint, taken[0])

        def take(session: Session) -> None:
            self._charges.take_from(session, charge.id, taken[0])

        return self._charges.record(check_key(key), fingerprint, build, take)
