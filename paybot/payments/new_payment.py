"""A new payment, before the ledger writes it: its idempotency key, the request that makes up
its identity, its ``payments`` row, its ``payment.created`` audit event and the outcome the
ledger reports for it while it is open (:class:`paybot.payments.ledger.Ledger`)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from paybot import audit
from paybot.db.models import Account, Payment, PaymentStatus
from paybot.db.types import utcnow
from paybot.payments.settlement import PaymentOutcome

_NINE_DIGITS = re.compile(r"\d{9}")
KEY_LENGTH = Payment.__table__.c.idempotency_key.type.length  # type: ignore[attr-defined]


def new_idempotency_key() -> str:
    """A fresh payment key: 32 hex digits, whatever the channel or conversation id (those
    are stored beside it), so it fits its column on every database. No run of nine decimal
    digits: the log redaction masks those (``paybot/redaction.py``), and the key is the
    capture's id in the logs (about one random hex key in eight has such a run)."""
    while True:
        key = uuid.uuid4().hex
        if not _NINE_DIGITS.search(key):
            return key


@dataclass(frozen=True)
class PaymentRequest:
    """The parts of a payment request that make up its identity."""

    account_id: int
    amount: Decimal
    channel: str
    conversation_id: str | None
    idempotency_key: str
    gateway: str | None = None  # another processor's name (Twilio <Pay>), not our gateway's


def payment_row(
    request: PaymentRequest, account: Account, fee: Decimal, kind: str, reference: str | None,
    method_id: int | None, gateway: str, claim: bool,
) -> dict[str, Any]:
    """The ``payments`` row of a new, pending payment (``claim``: its first gateway attempt
    already counted, for a caller that charges it next)."""
    now = utcnow()
    return {
        "account_id": account.id,
        "payment_method_id": method_id,
        "amount": request.amount,
        "fee": fee,
        "total": request.amount + fee,
        "currency": account.currency,
        "status": PaymentStatus.PENDING.value,
        "channel": request.channel,
        "conversation_id": request.conversation_id,
        "method_kind": kind,
        "gateway": gateway,
        "gateway_reference": reference,
        "idempotency_key": request.idempotency_key,
        "attempts": 1 if claim else 0,
        "created_at": now,
        "updated_at": now,
    }  # fmt: skip


def created_event(request: PaymentRequest, payment_id: int, fee: Decimal) -> dict[str, Any]:
    """The ``payment.created`` audit row of a new payment."""
    return audit.row(
        "payment.created",
        account_id=request.account_id,
        payment_id=payment_id,
        conversation_id=request.conversation_id,
        channel=request.channel,
        amount=request.amount,
        fee=fee,
    )


def opened(request: PaymentRequest, payment_id: int, fee: Decimal, currency: str) -> PaymentOutcome:
    """What the ledger reports of a payment it has just opened."""
    return PaymentOutcome(
        payment_id=payment_id,
        status=PaymentStatus.PENDING.value,
        amount=request.amount,
        fee=fee,
        total=request.amount + fee,
        currency=currency,
        confirmation_number=None,
        brand=None,
        last4=None,
        decline_code=None,
    )
