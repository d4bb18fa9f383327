"""Posts completed payments to the biller's CRM webhook (``PAYBOT_CRM_WEBHOOK_URL``), each
until it is accepted, from as many workers as run it.

Each run queues the payments completed since the look-back that have no delivery yet, then
claims and posts the due ones (:mod:`paybot.reconciliation.deliveries`). Outcomes of an attempt:

* 2xx: ``delivered``;
* 408, 429, 5xx, a timeout or a connection error: ``queued`` again after an exponential
  back-off (``backoff_s * 2**(attempts-1)``, at most an hour) until ``max_attempts``; then
  ``failed``;
* any other status: ``failed`` at once (the receiver refused it: a bad secret, a bad URL).

Database work runs in worker threads; the POST on the event loop. Logs carry delivery and
payment ids and outcomes, never the body.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
from sqlalchemy.engine import Engine

from paybot.db.types import utcnow
from paybot.reconciliation import deliveries
from paybot.reconciliation.deliveries import Claimed
from paybot.reconciliation.signing import PaymentCompleted, signed_headers
from paybot.settings import Settings

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 3600.0
RETRIED_STATUSES = {408, 429}


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    secret: str
    timeout_s: float = 10.0
    max_attempts: int = 10
    backoff_s: float = 30.0
    lookback: timedelta = timedelta(days=7)

    @classmethod
    def of(cls, settings: Settings) -> WebhookConfig | None:
        """The configured webhook; None when ``PAYBOT_CRM_WEBHOOK_URL`` is unset."""
        if not settings.crm_webhook_url or settings.crm_webhook_secret is None:
            return None
        return cls(
            url=settings.crm_webhook_url,
            secret=settings.crm_webhook_secret.get_secret_value(),
            timeout_s=settings.crm_webhook_timeout_s,
            max_attempts=settings.crm_webhook_max_attempts,
            backoff_s=settings.crm_webhook_backoff_s,
            lookback=timedelta(days=settings.crm_webhook_lookback_days),
        )

    @property
    def lease_s(self) -> float:
        """How long a claimed delivery is left to its worker before another may post it."""
        return max(60.0, 3 * self.timeout_s)


class CrmPoster:
    """One worker posting deliveries; several may run against one database."""

    def __init__(self, engine: Engine, http: aiohttp.ClientSession, config: WebhookConfig):
        self.engine = engine
        self.http = http
        self.config = config

    async def run_once(self) -> Counter[str]:
        """Queue new payments and post every due delivery once; the outcomes by status."""
        since = utcnow() - self.config.lookback
        await asyncio.to_thread(deliveries.enqueue, self.engine, since)
        outcomes: Counter[str] = Counter()
        due = await asyncio.to_thread(deliveries.due_ids, self.engine, self.config.lease_s)
        for delivery_id in due:
            claimed = await asyncio.to_thread(
                deliveries.claim, self.engine, delivery_id, self.config.lease_s
            )
            if claimed is not None:
                outcomes[await self._attempt(claimed)] += 1
        return outcomes

    async def _attempt(self, claimed: Claimed) -> str:
        body = PaymentCompleted.of(claimed.row, claimed.idempotency_key).body()
        error = await post_signed(self.http, self.config.url, self.config.secret, body,
                                  claimed.idempotency_key, self.config.timeout_s)
        status, next_at = outcome(error, claimed.attempts, self.config.max_attempts,
                                  self.config.backoff_s)
        await asyncio.to_thread(
            deliveries.finish, self.engine, claimed, status, error=error, next_attempt_at=next_at
        )
        log.info("crm webhook: delivery %s (payment %s) attempt %d: %s", claimed.delivery_id,
                 claimed.row.payment_id, claimed.attempts, error or "delivered")
        return status


async def post_signed(http: aiohttp.ClientSession, url: str, secret: str, body: bytes,
                      idempotency_key: str, timeout_s: float) -> str | None:
    """POST ``body`` signed with ``secret`` (:mod:`paybot.reconciliation.signing`); None when
    accepted, else why not ("http 500", "timeout", "refused http 400")."""
    headers = signed_headers(secret, body, idempotency_key)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with http.post(url, data=body, headers=headers, timeout=timeout) as response:
            await response.read()
            status = response.status
    except asyncio.TimeoutError:
        return "timeout"
    except aiohttp.ClientError as exc:
        return f"connection {type(exc).__name__}"[:64]
    if 200 <= status < 300:
        return None
    if status >= 500 or status in RETRIED_STATUSES:
        return f"http {status}"
    return f"refused http {status}"


def outcome(error: str | None, attempts: int, max_attempts: int, backoff_s: float
            ) -> tuple[str, datetime | None]:
    """A delivery's status after attempt number ``attempts`` failed with ``error`` (None:
    accepted), and when to try again: ``backoff_s * 2**(attempts-1)``, at most an hour."""
    if error is None:
        return deliveries.DELIVERED, None
    if error.startswith("refused") or attempts >= max_attempts:
        return deliveries.FAILED, None
    delay = min(MAX_BACKOFF_S, backoff_s * 2 ** max(0, attempts - 1))
    return deliveries.QUEUED, utcnow() + timedelta(seconds=delay)
