"""The embedded sandbox gateway: a test-mode processor that lives in the paybot database.

It behaves like a real processor in test mode, keyed on the well-known Stripe test numbers
(:mod:`paybot.gateway.sandbox_outcomes`). Like a lenient test mode, any other card that passes
validation (known brand, length, Luhn, future expiry, CVC length) is approved, and any other
valid bank account succeeds. Declines are results (``approved=False`` with a decline
code), never exceptions; invalid data raises ``InvalidPaymentData`` and is not stored.

The vault (``sandbox_tokens``, :mod:`paybot.gateway.sandbox_vault`) and the charge log
(``sandbox_charges``) hold brand, last four,
expiry and the test ``outcome`` the number selected, never a PAN, CVC or full bank account
number. Every charge and refund is stored with its idempotency key; the unique constraint on
that key is what makes concurrent retries safe across threads and processes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date, datetime, timezone
from decimal import Decimal
from functools import partial
from typing import TypeVar

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from paybot.db.engine import session_scope
from paybot.db.models import SandboxCharge
from paybot.gateway.base import (
    ChargeResult,
    Gateway,
    IdempotencyConflict,
    TokenInfo,
)
from paybot.gateway.card_data import BankAccount, CardData
from paybot.gateway.cards import normalize_expiry, validate_bank_account, validate_card
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
    new_id,
    request_fingerprint,
)
from paybot.gateway.sandbox_vault import TokenVault
from paybot.money import quantum

__all__ = ["InvalidRequest", "SandboxGateway"]

log = logging.getLogger(__name__)
T = TypeVar("T")

SUCCEEDED, DECLINED, REFUND = "succeeded", "declined", "refund"  # sandbox_charges.status

_CHARGES = SandboxCharge.__table__


def _result(row: SandboxCharge, replayed: bool = False) -> ChargeResult:
    return ChargeResult(
        approved=row.status in (SUCCEEDED, REFUND),
        transaction_id=row.id,
        amount=row.amount.quantize(quantum(row.currency)),
        currency=row.currency,
        brand=row.brand,
        last4=row.last4,
        decline_code=row.decline_code,
        replayed=replayed,
    )


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
        self._engine = engine
        self._vault = TokenVault(engine)
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

    def _stored(self, key: str) -> SandboxCharge | None:
        with session_scope(self._engine) as session:
            query = select(SandboxCharge).where(_CHARGES.c.idempotency_key == key)
            return session.exec(query).first()

    def _replay(self, key: str, fingerprint: str) -> ChargeResult | None:
        """The stored result for ``key``, or None; a different request raises a conflict."""
        row = self._stored(key)
        if row is None:
            return None
        if row.request_fingerprint != fingerprint:
            raise IdempotencyConflict("idempotency key already used for a different request")
        log.info("sandbox replay %s for a repeated idempotency key", row.id)
        return _result(row, replayed=True)

    def _persist(
        self, row: SandboxCharge, also: Callable[[Session], None] | None = None
    ) -> ChargeResult:
        """Insert ``row`` (and run ``also`` in the same transaction), or replay on a race.

        A concurrent request with the same key that committed first makes the insert fail on
        the unique key; the transaction is rolled back and that request's result replayed.
        """
        try:
            with session_scope(self._engine) as session:
                session.add(row)
                session.flush()
                if also is not None:
                    also(session)
        except IntegrityError:
            replayed = self._replay(row.idempotency_key, row.request_fingerprint)
            if replayed is None:
                raise
            return replayed
        log.info("sandbox %s %s: %s", row.status, row.id, row.decline_code or "ok")
        return _result(row)

    def _charge_row(self, key: str, fingerprint: str, **fields: object) -> SandboxCharge:
        return SandboxCharge(
            id=new_id("ch"),
            idempotency_key=key,
            request_fingerprint=fingerprint,
            refunded=Decimal("0.00"),
            **fields,
        )

    # -- tokens --------------------------------------------------------------------------

    def tokenize_card(self, card: CardData, *, reusable: bool = True) -> TokenInfo:
        """Validate ``card`` and vault it as a token (every valid card tokenizes).

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

    def tokenize_bank_account(self, account: BankAccount) -> TokenInfo:
        """Validate ``account`` (ABA routing checksum, 4-17 digit account) and vault it.

        Raises:
            InvalidPaymentData: the account fails validation.
        """
        return self._call("tokenize_bank_account", lambda: self._tokenize_bank(account))

    def _tokenize_bank(self, account: BankAccount) -> TokenInfo:
        validate_bank_account(account)
        return self._vault.add(
            kind="bank",
            brand=account.account_type,
            last4=account.last4,
            outcome=bank_outcome(account),
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
        replayed = self._replay(check_key(key), fingerprint)
        if replayed is not None:
            return replayed
        vaulted = self._vault.load(token)
        code = token_decline_code(vaulted, currency, self._today())
        row = self._charge_row(
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
        also = None if vaulted.reusable else (lambda s: self._vault.use_up(s, vaulted.id))
        return self._persist(row, also)

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
        replayed = self._replay(check_key(key), fingerprint)
        if replayed is not None:
            return replayed
        code = decline_code(card_outcome(card))
        row = self._charge_row(
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
        return self._persist(row)

    def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        """The charge (approved or declined) stored under ``idempotency_key``, else None.

        Refunds are not charges: a refund's key gives None.
        """
        self._wait()
        row = self._stored(idempotency_key)
        if row is None or row.status not in (SUCCEEDED, DECLINED):
            return None
        return _result(row)

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
        charge = self._load_charge(charge_id)
        if amount is not None:
            amount, _ = check_money(amount, charge.currency)
        fingerprint = request_fingerprint("refund", charge.id, "full" if amount is None else amount)
        replayed = self._replay(check_key(key), fingerprint)
        if replayed is not None:
            return replayed
        left = charge.amount - charge.refunded
        if charge.status != SUCCEEDED or left <= 0:
            raise InvalidRequest("only a succeeded, not fully refunded charge can be refunded")
        amount = left if amount is None else amount
        if amount > left:
            raise InvalidRequest("refund exceeds the amount left to refund")
        row = SandboxCharge(
            id=new_id("re"),
            idempotency_key=key,
            request_fingerprint=fingerprint,
            amount=amount,
            currency=charge.currency,
            status=REFUND,
            brand=charge.brand,
            last4=charge.last4,
            refunded=Decimal("0.00"),
            description=f"refund of {charge.id}",
        )
        return self._persist(row, lambda s: self._take_from(s, charge.id, amount))

    def _load_charge(self, charge_id: str) -> SandboxCharge:
        with session_scope(self._engine) as session:
            row = session.get(SandboxCharge, charge_id) if isinstance(charge_id, str) else None
        if row is None or row.status == REFUND:
            raise InvalidRequest("no such charge")
        return row

    @staticmethod
    def _take_from(session: Session, charge_id: str, amount: Decimal) -> None:
        """Add ``amount`` to the charge's refunded total, atomically, never past its amount."""
        refunded = _CHARGES.c.refunded
        stmt = (
            update(_CHARGES)
            .where(
                _CHARGES.c.id == charge_id,
                _CHARGES.c.status == SUCCEEDED,
                refunded + amount <= _CHARGES.c.amount,
            )
            .values(refunded=refunded + amount)
        )
        if session.execute(stmt).rowcount != 1:
            raise InvalidRequest("refund exceeds the amount left to refund")
