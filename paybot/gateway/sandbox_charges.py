"""The sandbox's charge log (``sandbox_charges``): every charge and refund, stored under its
idempotency key with the fingerprint of the request that made it.

The unique constraint on the key is what makes concurrent retries safe across threads and
processes: the second insert fails, and the first request's result is replayed. Rows keep
brand and last four, never a card or account number.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from paybot.db.engine import session_scope
from paybot.db.models import SandboxCharge
from paybot.db.types import utcnow
from paybot.gateway.base import ChargeResult, IdempotencyConflict
from paybot.gateway.sandbox_requests import InvalidRequest, new_id
from paybot.money import quantum

log = logging.getLogger(__name__)

SUCCEEDED, DECLINED, REFUND = "succeeded", "declined", "refund"  # sandbox_charges.status
_CHARGES = SandboxCharge.__table__
_INSERT = insert(_CHARGES)


@dataclass(frozen=True)
class NewCharge:
    """A ``sandbox_charges`` row about to be inserted (every column; a plain record, not an
    ORM object: it is written with one Core insert)."""

    id: str
    idempotency_key: str
    request_fingerprint: str
    amount: Decimal
    currency: str
    status: str
    brand: str
    last4: str
    refunded: Decimal
    token_id: str | None = None
    decline_code: str | None = None
    description: str | None = None
    created_at: datetime = field(default_factory=utcnow)


def charge_row(key: str, fingerprint: str, **fields: Any) -> NewCharge:
    """A new charge (``ch_sbx_...``) for the request ``fingerprint`` under ``key``."""
    return NewCharge(
        id=new_id("ch"),
        idempotency_key=key,
        request_fingerprint=fingerprint,
        refunded=Decimal("0.00"),
        **fields,
    )


def refund_row(charge: SandboxCharge, key: str, fingerprint: str, amount: Decimal) -> NewCharge:
    """A new refund (``re_sbx_...``) of ``amount`` of ``charge``, naming it in its description."""
    return NewCharge(
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


def result(row: SandboxCharge | NewCharge, replayed: bool = False) -> ChargeResult:
    """What the gateway answers for the stored charge or refund ``row``."""
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


class ChargeLog:
    """Charges and refunds stored in the paybot database (blocking: run it in a thread)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def stored(self, key: str) -> SandboxCharge | None:
        """The charge or refund stored under idempotency key ``key``, if any."""
        with session_scope(self._engine) as session:
            return _stored(session, key)

    def replay(self, key: str, fingerprint: str) -> ChargeResult | None:
        """The stored result for ``key``, or None; a different request raises a conflict."""
        with session_scope(self._engine) as session:
            return _replay(session, key, fingerprint)

    def record(
        self,
        key: str,
        fingerprint: str,
        build: Callable[[Session], NewCharge],
        also: Callable[[Session], None] | None = None,
    ) -> ChargeResult:
        """Insert the row ``build`` makes (and run ``also``) in one transaction, or replay the
        result already stored under ``key``.

        Optimistic: a new key (the usual case) costs the build's reads, the insert and one
        commit. If the insert fails on the unique key (a repeated request, or a concurrent one
        that committed first), or the build or ``also`` refuses (a token used up or deleted, a
        refund already taken, by that earlier request), the transaction is rolled back and
        the stored result replayed; a different request under the key raises a conflict, and
        with nothing stored the refusal stands.
        """
        try:
            with session_scope(self._engine) as session:
                row = build(session)
                session.execute(_INSERT, vars(row))
                if also is not None:
                    also(session)
        except Exception:
            replayed = self.replay(key, fingerprint)
            if replayed is None:
                raise
            return replayed
        log.info("sandbox %s %s: %s", row.status, row.id, row.decline_code or "ok")
        return result(row)

    def load_charge(self, charge_id: str) -> SandboxCharge:
        """The charge (not refund) ``charge_id``.

        Raises:
            InvalidRequest: there is no such charge.
        """
        with session_scope(self._engine) as session:
            row = session.get(SandboxCharge, charge_id) if isinstance(charge_id, str) else None
        if row is None or row.status == REFUND:
            raise InvalidRequest("no such charge")
        return row

    @staticmethod
    def take_from(session: Session, charge_id: str, amount: Decimal) -> None:
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


def _stored(session: Session, key: str) -> SandboxCharge | None:
    query = select(SandboxCharge).where(_CHARGES.c.idempotency_key == key)
    return session.exec(query).first()


def _replay(session: Session, key: str, fingerprint: str) -> ChargeResult | None:
    row = _stored(session, key)
    if row is None:
        return None
    if row.request_fingerprint != fingerprint:
        raise IdempotencyConflict("idempotency key already used for a different request")
    log.info("sandbox replay %s for a repeated idempotency key", row.id)
    return result(row, replayed=True)
