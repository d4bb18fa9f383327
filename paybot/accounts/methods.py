"""An account's stored payment methods: the one the bot offers and the caller can name, and
saving a new one (a gateway token, never the card or bank digits)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session

from paybot import audit
from paybot.db import queries
from paybot.db.engine import session_scope
from paybot.db.models import PaymentMethod
from paybot.gateway.base import TokenInfo


@dataclass(frozen=True)
class StoredMethod:
    id: int
    brand: str
    last4: str


def default_method(engine: Engine, account_id: int) -> StoredMethod | None:
    """The account's default reusable, not deleted payment method, if any (blocking)."""
    with Session(engine) as session:
        method = queries.default_payment_method(session=session, account_id=account_id)
        if method is None or method.id is None:
            return None
        return StoredMethod(method.id, method.brand, method.last4)


def save_method(engine: Engine, *, account_id: int, gateway: str, info: TokenInfo) -> int:
    """Store the token ``info`` of ``gateway`` as a payment method of the account (audited);
    its id (blocking)."""
    with session_scope(engine) as session:
        method = PaymentMethod(
            account_id=account_id,
            gateway=gateway,
            token=info.token,
            kind=info.kind,
            brand=info.brand,
            last4=info.last4,
            exp_month=info.exp_month,
            exp_year=info.exp_year,
            reusable=info.reusable,
        )
        session.add(method)
        session.flush()
        audit.record(session, "payment_method.saved", account_id=account_id, brand=info.brand)
        assert method.id is not None
        return method.id


def is_on_file(method: PaymentMethod, account_id: int) -> bool:
    """``method`` is one of the account's kept, not deleted payment methods (a token made for
    one payment is not, until the caller agreed to keep it and it was saved)."""
    return (
        method.account_id == account_id
        and method.deleted_at is None
        and method.saved_at is not None
    )
