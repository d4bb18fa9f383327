"""Issuing, finding and consuming secure pay links (the ``pay_links`` table).

* :meth:`PayLinks.issue` writes a link for one account and amount, expiring after
  ``PAYBOT_PAY_LINK_TTL_S``, with its own idempotency key: every charge made through the link
  is made under that one key, so the ledger charges it at most once.
* :meth:`PayLinks.find` looks a token up by its hash and checks its signature against the
  row: unknown, forged or tampered-with links, used ones and expired ones are refused
  (:class:`LinkRefused`, with a code only).
* :meth:`PayLinks.claim` consumes a link: a conditional update from ``issued`` (and not yet
  expired) to ``used``. Of two submits racing, exactly one wins. :meth:`PayLinks.release`
  gives a claimed link back when the ledger refused the payment before any charge;
  :meth:`PayLinks.finish` records the payment it paid.

Everything blocks (database I/O): call it from async code with ``asyncio.to_thread``. Logs
carry link ids, never tokens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from paybot import audit
from paybot.db.engine import session_scope
from paybot.db.models import Account, PayLink, PayLinkStatus
from paybot.db.types import utcnow
from paybot.paylinks import tokens
from paybot.payments.ledger import new_idempotency_key
from paybot.settings import Settings

log = logging.getLogger(__name__)
PAY_PATH = "/pay/"
ISSUED, USED, EXPIRED = (s.value for s in PayLinkStatus)
RefusalCode = Literal["unknown", "used", "expired"]


class LinkRefused(Exception):
    """The link cannot be used: ``unknown`` (never issued, forged or tampered with), ``used``
    or ``expired``. Carries the code only."""

    def __init__(self, code: RefusalCode) -> None:
        super().__init__(code)
        self.code: RefusalCode = code


@dataclass(frozen=True)
class IssuedLink:
    """A link just issued: the URL to send (it holds the token) and when it stops working."""

    link_id: int
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class LinkView:
    """A valid, unused link as the pay page needs it."""

    link_id: int
    token_hash: str
    account_id: int
    account_last4: str
    amount: Decimal
    currency: str
    channel: str
    conversation_id: str | None
    notify_to: str | None
    idempotency_key: str
    expires_at: datetime


class PayLinks:
    """Pay links over one database, signed with ``secret``, working for ``ttl_s`` seconds."""

    def __init__(self, engine: Engine, secret: str, ttl_s: int) -> None:
        self.engine = engine
        self._secret = secret
        self.ttl = timedelta(seconds=ttl_s)

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> PayLinks:
        """Links signed with ``PAYBOT_PAY_LINK_SECRET``, working ``PAYBOT_PAY_LINK_TTL_S``."""
        return cls(engine, settings.pay_link_secret.get_secret_value(), settings.pay_link_ttl_s)

    def issue(
        self,
        *,
        account_id: int,
        amount: Decimal,
        channel: str,
        base_url: str,
        conversation_id: str | None = None,
        notify_to: str | None = None,
        now: datetime | None = None,
    ) -> IssuedLink:
        """Issue a link to pay ``amount`` (whole cents, above zero) on the account.

        Raises:
            ValueError: the amount is not a positive amount of whole cents.
            LookupError: the account does not exist.
        """
        if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
            raise ValueError("a pay link needs a positive amount in whole cents")
        amount = amount.quantize(Decimal("0.01"))
        # Whole seconds: the signature binds the expiry to the second.
        expires_at = ((now or utcnow()) + self.ttl).replace(microsecond=0)
        with session_scope(self.engine) as session:
            account = session.get(Account, account_id)
            if account is None:
                raise LookupError("account not found")
            bound = tokens.binding(account_id, amount, account.currency, expires_at)
            token = tokens.new_token(self._secret, bound)
            link = PayLink(
                token_hash=tokens.token_hash(token),
                account_id=account_id,
                amount=amount,
                currency=account.currency,
                channel=channel,
                conversation_id=conversation_id,
                notify_to=notify_to,
                idempotency_key=new_idempotency_key(),
                expires_at=expires_at,
            )
            session.add(link)
            session.flush()
            assert link.id is not None
            audit.record(
                session, "paylink.issued", account_id=account_id,
                conversation_id=conversation_id, link_id=link.id, amount=amount,
            )  # fmt: skip
            link_id = link.id
        log.info("pay link %s issued for account %s", link_id, account_id)
        return IssuedLink(link_id, base_url.rstrip("/") + PAY_PATH + token, expires_at)

    def find(self, token: str, now: datetime | None = None) -> LinkView:
        """The issued, unexpired link ``token`` opens.

        Raises:
            LinkRefused: ``unknown`` (no such link, or its signature does not match what the
                row binds), ``used`` or ``expired`` (an issued link past its time is marked so).
        """
        if not tokens.well_formed(token):
            raise LinkRefused("unknown")
        digest = tokens.token_hash(token)
        with Session(self.engine) as session:
            link = session.exec(select(PayLink).where(PayLink.token_hash == digest)).first()
            account = session.get(Account, link.account_id) if link is not None else None
        if link is None or link.id is None or account is None:
            raise LinkRefused("unknown")
        bound = tokens.binding(link.account_id, link.amount, link.currency, link.expires_at)
        if not tokens.signed_for(self._secret, token, bound):
            log.warning("pay link %s: the token does not match the stored link", link.id)
            raise LinkRefused("unknown")
        if link.status == USED:
            raise LinkRefused("used")
        if link.status != ISSUED or link.expires_at <= (now or utcnow()):
            self._expire(link.id)
            raise LinkRefused("expired")
        return LinkView(
            link_id=link.id,
            token_hash=digest,
            account_id=link.account_id,
            account_last4=account.account_number[-4:],
            amount=link.amount,
            currency=link.currency,
            channel=link.channel,
            conversation_id=link.conversation_id,
            notify_to=link.notify_to,
            idempotency_key=link.idempotency_key,
            expires_at=link.expires_at,
        )

    def claim(self, link: LinkView, now: datetime | None = None) -> None:
        """Consume ``link`` for one payment: ``issued`` becomes ``used`` only if it still is
        issued and unexpired, in one conditional update.

        Raises:
            LinkRefused: ``used`` (another submit won) or ``expired``.
        """
        now = now or utcnow()
        with session_scope(self.engine) as session:
            won = session.execute(
                update(PayLink)
                .where(
                    PayLink.id == link.link_id,
                    PayLink.status == ISSUED,
                    PayLink.expires_at > now,
                )
                .values(status=USED, used_at=now)
            ).rowcount
            if won == 1:
                audit.record(
                    session, "paylink.used", account_id=link.account_id,
                    conversation_id=link.conversation_id, link_id=link.link_id,
                )  # fmt: skip
                return
            status = session.get(PayLink, link.link_id).status  # type: ignore[union-attr]
        if status == USED:
            raise LinkRefused("used")
        self._expire(link.link_id)
        raise LinkRefused("expired")

    def release(self, link: LinkView) -> None:
        """Give back a claimed link the ledger refused before any charge (no payment made)."""
        with session_scope(self.engine) as session:
            session.execute(
                update(PayLink)
                .where(
                    PayLink.id == link.link_id,
                    PayLink.status == USED,
                    PayLink.payment_id.is_(None),  # type: ignore[union-attr]
                )
                .values(status=ISSUED, used_at=None)
            )

    def finish(self, link: LinkView, payment_id: int) -> None:
        """Record the payment the claimed link made."""
        with session_scope(self.engine) as session:
            session.execute(
                update(PayLink).where(PayLink.id == link.link_id).values(payment_id=payment_id)
            )

    def _expire(self, link_id: int) -> None:
        with session_scope(self.engine) as session:
            session.execute(
                update(PayLink)
                .where(PayLink.id == link_id, PayLink.status == ISSUED)
                .values(status=EXPIRED)
            )
