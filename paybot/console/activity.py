"""Activity records of agent-assisted payments, and their webhook to the CRM.

When an agent-assisted payment ends (voice_bridge.call.agent_pay) one row is written to
``agent_activities`` (:func:`record_activity`; its request id is unique, so a second write of
the same request is a no-op) and queued for the activity webhook
(``PAYBOT_AGENT_ACTIVITY_URL``, else ``PAYBOT_CRM_WEBHOOK_URL``). :class:`ActivityPoster`
posts each row until the CRM accepts it, exactly as the CRM webhook posts payments: the same
signed headers (:mod:`paybot.reconciliation.signing`), the same back-off and refusals
(:func:`paybot.reconciliation.poster.outcome`), each attempt claimed with a conditional UPDATE
(:func:`paybot.reconciliation.deliveries.take`) so one worker posts it, under an idempotency key
(the request id) the receiver dedupes on. Brand and last four only; logs carry ids.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import aiohttp
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from paybot.db.engine import session_scope
from paybot.db.models import AgentActivity
from paybot.db.types import utcnow
from paybot.reconciliation import deliveries
from paybot.reconciliation.columns import money, utc_iso
from paybot.reconciliation.poster import outcome, post_signed
from paybot.reconciliation.signing import canonical_body
from paybot.settings import Settings

log = logging.getLogger(__name__)
EVENT = "agent_payment.completed"


@dataclass(frozen=True)
class Activity:
    """One agent-assisted payment as it ended."""

    request_id: str
    agent: str
    call_sid: str
    account_number: str
    item: str
    amount: Decimal
    currency: str
    result: str
    reason: str | None = None
    payment_id: int | None = None
    transaction_id: str | None = None
    confirmation_number: str | None = None
    method_brand: str | None = None
    method_last4: str | None = None
    requested_at: datetime | None = None


def record_activity(engine: Engine, activity: Activity) -> bool:
    """Write ``activity`` and queue its webhook; False if its request was recorded already."""
    row = AgentActivity(
        request_id=activity.request_id, agent=activity.agent, call_sid=activity.call_sid,
        account_number=activity.account_number, item=activity.item, amount=activity.amount,
        currency=activity.currency, result=activity.result, reason=activity.reason,
        payment_id=activity.payment_id, transaction_id=activity.transaction_id,
        confirmation_number=activity.confirmation_number, method_brand=activity.method_brand,
        method_last4=activity.method_last4, requested_at=activity.requested_at or utcnow(),
    )  # fmt: skip
    try:
        with session_scope(engine) as session:
            session.add(row)
    except IntegrityError:
        return False
    return True


def activities(engine: Engine, limit: int = 50) -> list[AgentActivity]:
    """The latest activity records, newest first."""
    with Session(engine) as session:
        found = session.execute(
            select(AgentActivity).order_by(AgentActivity.id.desc()).limit(limit)  # type: ignore[union-attr]
        ).scalars().all()
        session.expunge_all()
        return list(found)


@dataclass(frozen=True)
class ActivityPosted:
    """The body of one POST (amounts are strings with the currency's places)."""

    event: str
    idempotency_key: str
    agent: str
    call_sid: str
    account_number: str
    item: str
    amount: str
    currency: str
    status: str
    reason: str | None
    transaction_id: str | None
    confirmation_number: str | None
    method_brand: str | None
    method_last4: str | None
    requested_at: str
    completed_at: str

    @classmethod
    def of(cls, row: AgentActivity) -> ActivityPosted:
        return cls(
            event=EVENT, idempotency_key=row.request_id, agent=row.agent, call_sid=row.call_sid,
            account_number=row.account_number, item=row.item,
            amount=money(row.amount, row.currency), currency=row.currency, status=row.result,
            reason=row.reason, transaction_id=row.transaction_id,
            confirmation_number=row.confirmation_number, method_brand=row.method_brand,
            method_last4=row.method_last4, requested_at=utc_iso(row.requested_at),
            completed_at=utc_iso(row.completed_at),
        )  # fmt: skip

    def body(self) -> bytes:
        return canonical_body(self)


@dataclass(frozen=True)
class ActivityWebhook:
    url: str
    secret: str
    timeout_s: float = 10.0
    max_attempts: int = 10
    backoff_s: float = 30.0

    @classmethod
    def of(cls, settings: Settings) -> ActivityWebhook | None:
        """The activity webhook: its own URL and secret, else the CRM webhook's; None: off."""
        url = settings.agent_activity_url or settings.crm_webhook_url
        secret = settings.agent_activity_secret or settings.crm_webhook_secret
        if not url or secret is None:
            return None
        return cls(url, secret.get_secret_value(), settings.crm_webhook_timeout_s,
                   settings.crm_webhook_max_attempts, settings.crm_webhook_backoff_s)

    @property
    def lease_s(self) -> float:
        return max(60.0, 3 * self.timeout_s)


class ActivityPoster:
    """One worker posting activity records; several may run against one database."""

    def __init__(self, engine: Engine, http: aiohttp.ClientSession, webhook: ActivityWebhook):
        self.engine = engine
        self.http = http
        self.webhook = webhook

    async def run_once(self) -> Counter[str]:
        """Post every due record once; the outcomes by status."""
        outcomes: Counter[str] = Counter()
        due = await asyncio.to_thread(
            deliveries.due_rows, self.engine, AgentActivity, self.webhook.lease_s
        )
        for row_id in due:
            claimed = await asyncio.to_thread(self._claim, row_id)
            if claimed is not None:
                outcomes[await self._attempt(*claimed)] += 1
        return outcomes

    def _claim(self, row_id: int) -> tuple[str, AgentActivity] | None:
        with session_scope(self.engine) as session:
            token = deliveries.take(session, AgentActivity, row_id, self.webhook.lease_s)
            if token is None:
                return None
            row = session.get(AgentActivity, row_id)
            session.refresh(row)
            session.expunge(row)
            return token, row

    async def _attempt(self, token: str, row: AgentActivity) -> str:
        hook = self.webhook
        error = await post_signed(self.http, hook.url, hook.secret, ActivityPosted.of(row).body(),
                                  row.request_id, hook.timeout_s)
        status, next_at = outcome(error, row.attempts, hook.max_attempts, hook.backoff_s)
        await asyncio.to_thread(
            deliveries.release, self.engine, AgentActivity, row.id, token, status,
            error=error, next_attempt_at=next_at,
        )
        log.info("activity webhook: record %s attempt %d: %s", row.id, row.attempts,
                 error or "delivered")
        return status
