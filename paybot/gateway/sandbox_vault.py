"""The sandbox's vault of payment tokens (``sandbox_tokens``).

A token keeps kind, brand, last four, expiry and the test outcome its number selected
(:mod:`paybot.gateway.sandbox_outcomes`), never a card number, CVC or full account number:
:meth:`TokenVault.add` takes only those fields, so it has nowhere to put one.
"""

from __future__ import annotations

import logging

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Engine, Row
from sqlmodel import Session

from paybot.db.engine import session_scope
from paybot.db.models import SandboxToken
from paybot.db.types import utcnow
from paybot.gateway.base import TokenInfo, UnknownToken
from paybot.gateway.sandbox_requests import new_id

log = logging.getLogger(__name__)
_TOKENS = SandboxToken.__table__
_LOAD = select(_TOKENS).where(_TOKENS.c.id == bindparam("token"))


class TokenVault:
    """Tokens stored in the paybot database (blocking: the gateway runs in a thread)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(
        self,
        *,
        kind: str,
        brand: str,
        last4: str,
        outcome: str,
        exp_month: int | None = None,
        exp_year: int | None = None,
        reusable: bool = True,
    ) -> TokenInfo:
        """Store a new token (``kind`` "card" or "bank") and return what paybot may know."""
        row = SandboxToken(
            id=new_id("tok"),
            kind=kind,
            brand=brand,
            last4=last4,
            exp_month=exp_month,
            exp_year=exp_year,
            outcome=outcome,
            reusable=reusable,
        )
        with session_scope(self._engine) as session:
            session.add(row)
        log.info("sandbox tokenized %s (%s %s)", row.id, row.kind, row.brand)
        return TokenInfo(
            token=row.id,
            kind=row.kind,
            brand=row.brand,
            last4=row.last4,
            exp_month=row.exp_month,
            exp_year=row.exp_year,
            reusable=row.reusable,
        )

    def load(self, token: str) -> Row:
        """The live token ``token``.

        Raises:
            UnknownToken: it never existed or was deleted.
        """
        with session_scope(self._engine) as session:
            return self.load_in(session, token)

    @staticmethod
    def load_in(session: Session, token: str) -> Row:
        """:meth:`load` in the caller's transaction (a Core row of all of the token's
        columns: no ORM object is made for a charge)."""
        row = session.execute(_LOAD, {"token": token}).first() if isinstance(token, str) else None
        if row is None or row.deleted_at is not None:
            raise UnknownToken("no such payment token (or it was deleted)")
        return row

    def delete(self, token: str) -> None:
        """Mark ``token`` deleted; deleting an already deleted token does nothing.

        Raises:
            UnknownToken: the token never existed.
        """
        with session_scope(self._engine) as session:
            row = session.get(SandboxToken, token) if isinstance(token, str) else None
            if row is None:
                raise UnknownToken("no such payment token")
            if row.deleted_at is None:
                row.deleted_at = utcnow()
        log.info("sandbox deleted token %s", token)

    @staticmethod
    def use_up(session: Session, token_id: str) -> None:
        """Delete a single-use token in the charge's transaction, unless a rival did first."""
        stmt = (
            update(_TOKENS)
            .where(_TOKENS.c.id == token_id, _TOKENS.c.deleted_at.is_(None))
            .values(deleted_at=utcnow())
        )
        if session.execute(stmt).rowcount != 1:
            raise UnknownToken("single-use payment token already used")
