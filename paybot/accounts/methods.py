"""An account's stored payment method: the one the bot offers and the caller can name."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from paybot.db.models import PaymentMethod


@dataclass(frozen=True)
class StoredMethod:
    id: int
    brand: str
    last4: str


def default_method(engine: Engine, account_id: int) -> StoredMethod | None:
    """The account's default reusable, not deleted payment method, if any (blocking)."""
    with Session(engine) as session:
        method = session.exec(
            select(PaymentMethod)
            .where(PaymentMethod.account_id == account_id)
            .where(PaymentMethod.deleted_at.is_(None))  # type: ignore[union-attr]
            .where(PaymentMethod.reusable.is_(True))  # type: ignore[attr-defined]
            .order_by(PaymentMethod.is_default.desc(), PaymentMethod.id.desc())  # type: ignore
        ).first()
        if method is None or method.id is None:
            return None
        return StoredMethod(method.id, method.brand, method.last4)
