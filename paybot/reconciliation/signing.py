"""The CRM webhook's wire format: the JSON body of a completed payment and its signature.

Every POST carries::

    Content-Type: application/json
    Idempotency-Key: <32 hex digits, the same on every attempt for one payment>
    X-Paybot-Timestamp: <Unix seconds when this attempt was signed>
    X-Paybot-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>

The receiver recomputes the HMAC over the raw body bytes, compares in constant time, refuses a
timestamp too far from its clock (replays), and keeps the idempotency keys it has accepted (a
retry after a lost answer carries the same key). Any 2xx answer means "accepted".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from paybot.reconciliation.columns import PaidRow, money, utc_iso

EVENT = "payment.completed"
SIGNATURE_HEADER = "X-Paybot-Signature"
TIMESTAMP_HEADER = "X-Paybot-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
TOLERANCE_S = 300


@dataclass(frozen=True)
class PaymentCompleted:
    """The body of one POST: amounts are strings with the currency's places."""

    event: str
    idempotency_key: str
    confirmation_number: str | None
    account_number: str
    amount: str
    fee: str
    total: str
    currency: str
    channel: str
    status: str
    paid_at: str
    method_kind: str | None
    method_brand: str | None
    method_last4: str | None
    gateway_transaction_id: str | None

    @classmethod
    def of(cls, row: PaidRow, idempotency_key: str) -> PaymentCompleted:
        return cls(
            event=EVENT,
            idempotency_key=idempotency_key,
            confirmation_number=row.confirmation_number,
            account_number=row.account_number,
            amount=money(row.amount, row.currency),
            fee=money(row.fee, row.currency),
            total=money(row.total, row.currency),
            currency=row.currency,
            channel=row.channel,
            status=row.status,
            paid_at=utc_iso(row.paid_at),
            method_kind=row.method_kind,
            method_brand=row.method_brand,
            method_last4=row.method_last4,
            gateway_transaction_id=row.gateway_transaction_id,
        )

    def body(self) -> bytes:
        return canonical_body(self)


def canonical_body(event: Any) -> bytes:
    """A dataclass event as compact JSON with sorted keys: the exact bytes that are signed."""
    return json.dumps(asdict(event), sort_keys=True, separators=(",", ":")).encode("utf-8")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``v1=<hex>``: HMAC-SHA256 with ``secret`` over ``timestamp.body``."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signed_headers(secret: str, body: bytes, idempotency_key: str, now: float | None = None
                   ) -> dict[str, str]:
    """The headers of one attempt, signed now."""
    timestamp = str(int(time.time() if now is None else now))
    return {
        "Content-Type": "application/json",
        IDEMPOTENCY_HEADER: idempotency_key,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None
           ) -> bool:
    """What a receiver checks: the signature over the raw body, and a fresh timestamp."""
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    if not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > TOLERANCE_S:
        return False
    expected = signature(secret, timestamp, body)
    return hmac.compare_digest(expected, headers.get(SIGNATURE_HEADER, ""))
