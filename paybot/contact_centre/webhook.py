"""The completion webhook of a contact-centre payment session: POSTed to the session's
callback URL once it finishes, signed with its client's webhook secret, until accepted.

The wire format and the retry rules are the CRM webhook's (:mod:`paybot.reconciliation.signing`,
:func:`paybot.reconciliation.poster.post_signed` and ``outcome``): the same headers
(``X-Paybot-Timestamp``, ``X-Paybot-Signature: v1=<hex HMAC-SHA256(secret, ts.body)>``,
``Idempotency-Key``), the same back-off. Each attempt is claimed with a conditional UPDATE on
``session_deliveries`` (:func:`paybot.reconciliation.deliveries.take`), so one worker posts it.
Logs carry delivery and session ids, never the body.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass

import aiohttp
from sqlalchemy import select
from sqlalchemy.engine import Engine

from paybot.contact_centre import sessions
from paybot.contact_centre.clients import ApiClient
from paybot.db.engine import session_scope
from paybot.db.models import PaymentSession, SessionDelivery
from paybot.reconciliation import deliveries
from paybot.reconciliation.columns import money, utc_iso
from paybot.reconciliation.poster import outcome, post_signed
from paybot.reconciliation.signing import canonical_body

log = logging.getLogger(__name__)
EVENT = "payment_session.completed"


@dataclass(frozen=True)
class SessionCompleted:
    """The body of one POST (amounts are strings with the currency's places)."""

    event: str
    idempotency_key: str
    session_id: str
    status: str
    reference: str
    account_number: str
    amount: str
    currency: str
    confirmation_number: str | None
    method_brand: str | None
    method_last4: str | None
    failure_reason: str | None
    completed_at: str | None

    @classmethod
    def of(cls, view: sessions.SessionView, idempotency_key: str) -> SessionCompleted:
        return cls(
            event=EVENT, idempotency_key=idempotency_key, session_id=view.id,
            status=view.status, reference=view.reference, account_number=view.account_number,
            amount=money(view.amount, view.currency), currency=view.currency,
            confirmation_number=view.confirmation_number, method_brand=view.method_brand,
            method_last4=view.method_last4, failure_reason=view.failure_reason,
            completed_at=utc_iso(view.completed_at) if view.completed_at else None,
        )  # fmt: skip

    def body(self) -> bytes:
        return canonical_body(self)


@dataclass(frozen=True)
class Policy:
    timeout_s: float = 10.0
    max_attempts: int = 10
    backoff_s: float = 30.0

    @property
    def lease_s(self) -> float:
        return max(60.0, 3 * self.timeout_s)


@dataclass(frozen=True)
class _Claimed:
    delivery_id: int
    claim_token: str
    attempts: int
    idempotency_key: str
    client: str
    url: str
    view: sessions.SessionView


class SessionWebhookPoster:
    """One worker posting session completions; several may run against one database."""

    def __init__(self, engine: Engine, http: aiohttp.ClientSession,
                 clients: dict[str, ApiClient], policy: Policy):
        self.engine = engine
        self.http = http
        self.clients = clients
        self.policy = policy

    async def run_once(self) -> Counter[str]:
        """Post every due completion once; the outcomes by status."""
        outcomes: Counter[str] = Counter()
        due = await asyncio.to_thread(
            deliveries.due_rows, self.engine, SessionDelivery, self.policy.lease_s
        )
        for delivery_id in due:
            claimed = await asyncio.to_thread(self._claim, delivery_id)
            if claimed is not None:
                outcomes[await self._attempt(claimed)] += 1
        return outcomes

    def _claim(self, delivery_id: int) -> _Claimed | None:
        with session_scope(self.engine) as session:
            token = deliveries.take(session, SessionDelivery, delivery_id, self.policy.lease_s)
            if token is None:
                return None
            delivery, row = session.execute(
                select(SessionDelivery, PaymentSession)
                .join(PaymentSession, PaymentSession.id == SessionDelivery.session_id)
                .where(SessionDelivery.id == delivery_id)
            ).one()
        view = sessions.get(self.engine, row.client, row.public_id)
        assert view is not None and row.callback_url is not None
        return _Claimed(delivery_id, token, delivery.attempts, delivery.idempotency_key,
                        row.client, row.callback_url, view)

    async def _attempt(self, claimed: _Claimed) -> str:
        client = self.clients.get(claimed.client)
        if client is None or client.webhook_secret is None:
            error: str | None = "refused: no webhook secret"
        else:
            body = SessionCompleted.of(claimed.view, claimed.idempotency_key).body()
            error = await post_signed(self.http, claimed.url, client.webhook_secret, body,
                                      claimed.idempotency_key, self.policy.timeout_s)
        status, next_at = outcome(error, claimed.attempts, self.policy.max_attempts,
                                  self.policy.backoff_s)
        await asyncio.to_thread(
            deliveries.release, self.engine, SessionDelivery, claimed.delivery_id,
            claimed.claim_token, status, error=error, next_attempt_at=next_at,
        )
        log.info("session webhook: delivery %s (session %s) attempt %d: %s",
                 claimed.delivery_id, claimed.view.id, claimed.attempts, error or "delivered")
        return status
