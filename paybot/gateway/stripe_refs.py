"""The Stripe gateway's own records in the paybot database (``stripe_refs``).

- ``intent``: the PaymentIntent made under a ledger idempotency key, with the fingerprint of
  the request (amount, currency, instrument). Written *before* the intent is created and
  updated with its id before it is confirmed, so a retry with the same key resumes the same
  intent and never charges twice, and :meth:`StripeGateway.find_charge` can ask Stripe about
  a key without a search.
- ``customer``: the Stripe Customer a paybot account's reusable tokens are attached to.
- ``deleted``: a token paybot deleted (a one-time one cannot be detached at Stripe: it is
  refused here from then on).

Ids and request fingerprints only, never card data. Blocking: the gateway runs in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from paybot.db.engine import session_scope
from paybot.db.models import StripeRef

INTENT, CUSTOMER, DELETED = "intent", "customer", "deleted"


@dataclass(frozen=True)
class Ref:
    stripe_id: str | None
    fingerprint: str | None


class StripeRefs:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, kind: str, ref: str) -> Ref | None:
        with Session(self._engine) as session:
            row = session.exec(
                select(StripeRef).where(StripeRef.kind == kind, StripeRef.ref == ref)
            ).first()
            return Ref(row.stripe_id, row.fingerprint) if row is not None else None

    def claim(
        self, kind: str, ref: str, *, stripe_id: str | None = None, fingerprint: str | None = None
    ) -> Ref:
        """Add the record, or return the one already there (a concurrent add wins)."""
        try:
            with session_scope(self._engine) as session:
                session.add(
                    StripeRef(kind=kind, ref=ref, stripe_id=stripe_id, fingerprint=fingerprint)
                )
            return Ref(stripe_id, fingerprint)
        except IntegrityError:
            found = self.get(kind, ref)
            assert found is not None  # the insert failed on the unique (kind, ref)
            return found

    def set_id(self, kind: str, ref: str, stripe_id: str) -> None:
        """Record the Stripe id of a claimed record (once)."""
        with session_scope(self._engine) as session:
            session.execute(
                update(StripeRef)
                .where(StripeRef.kind == kind, StripeRef.ref == ref)
                .where(StripeRef.stripe_id.is_(None))  # type: ignore[union-attr]
                .values(stripe_id=stripe_id)
            )
