"""The tables of what paybot sends out and of the customers' say in it: the text outbox, opt-outs,
secure pay links, payment reminders and the payments posted to the biller's CRM. Re-exported
by :mod:`paybot.db.models`. Times UTC, money ``Decimal``, phone numbers E.164.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Column, ForeignKey, Integer, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from paybot.db.types import money_field as _money
from paybot.db.types import timestamp_field as _timestamp


class OutboundMessage(SQLModel, table=True):
    """A text message to send (receipts, notices): an outbox a sender works through."""

    __tablename__ = "outbound_messages"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = _timestamp()
    to: str = Field(max_length=16)  # E.164
    kind: str = Field(max_length=32)
    body: str = Field(max_length=640)
    # queued, sending, sent, unknown, failed (voice_bridge.jobs.receipt_sender); opted_out
    # (never sent: the number texted STOP); delivered or undelivered (Twilio's last word).
    status: str = Field(default="queued", max_length=16, index=True)
    payment_id: int | None = Field(default=None, foreign_key="payments.id")
    attempts: int = 0
    provider_id: str | None = Field(default=None, max_length=64, index=True)  # the MessageSid
    sent_at: datetime | None = _timestamp(nullable=True, default=False)
    # Retries (voice_bridge.jobs.receipt_sender): when a queued row is due again, and why the last
    # attempt failed ("http 500 code 20500", "no answer"): never the provider's message or body.
    next_attempt_at: datetime | None = _timestamp(nullable=True, default=False)
    last_error: str | None = Field(default=None, max_length=64)
    # When a sender took it (``sending``): a row still ``sending`` long after that was left by a
    # sender that stopped mid-send, and is marked ``unknown`` (it may have gone out).
    claimed_at: datetime | None = _timestamp(nullable=True, default=False)
    # Twilio's status callbacks (voice_bridge.twilio.sms_status): the latest status it
    # reported (queued, sent, delivered, undelivered, failed...), its error code, and when.
    delivery_status: str | None = Field(default=None, max_length=16)
    error_code: int | None = None
    delivery_updated_at: datetime | None = _timestamp(nullable=True, default=False)


class SmsConsent(SQLModel, table=True):
    """Whether a phone number takes text messages: opted out by STOP (and the other opt-out
    keywords), back in by START. No row: never opted out (paybot.sms.consent)."""

    __tablename__ = "sms_consents"

    id: int | None = Field(default=None, primary_key=True)
    phone: str = Field(sa_column=Column(String(16), unique=True, nullable=False))  # E.164
    opted_out: bool = False
    keyword: str = Field(max_length=16)  # the keyword that last changed it: "STOP", "START"...
    changed_at: datetime = _timestamp()


class CrmDelivery(SQLModel, table=True):
    """A completed payment posted to the biller's CRM webhook (paybot.reconciliation.deliveries):
    one row per payment, taken by a conditional update so one worker posts each attempt, and
    an idempotency key the receiver dedupes on. Ids and outcomes only, never the body."""

    __tablename__ = "crm_deliveries"

    id: int | None = Field(default=None, primary_key=True)
    payment_id: int = Field(
        sa_column=Column(Integer, ForeignKey("payments.id"), unique=True, nullable=False)
    )
    idempotency_key: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    # queued, sending (claimed by a worker), delivered, failed (refused or out of attempts).
    status: str = Field(default="queued", max_length=16, index=True)
    attempts: int = 0
    claim_token: str | None = Field(default=None, max_length=32)
    claimed_at: datetime | None = _timestamp(nullable=True, default=False)
    next_attempt_at: datetime | None = _timestamp(nullable=True, default=False)
    delivered_at: datetime | None = _timestamp(nullable=True, default=False)
    last_error: str | None = Field(default=None, max_length=64)  # "http 500", "timeout"...
    created_at: datetime = _timestamp()


class PayLinkStatus(str, enum.Enum):
    """A pay link is issued, then used (once) or expired; never back (paybot.paylinks)."""

    ISSUED = "issued"
    USED = "used"
    EXPIRED = "expired"


class PayLink(SQLModel, table=True):
    """A secure pay link (paybot.paylinks): one payment of ``amount`` on one account, once,
    before ``expires_at``. Only a hash of its token is kept; the token itself is in the link."""

    __tablename__ = "pay_links"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    account_id: int = Field(foreign_key="accounts.id", index=True)
    amount: Decimal = _money()
    currency: str = Field(default="USD", max_length=3)
    status: str = Field(default=PayLinkStatus.ISSUED.value, max_length=16, index=True)
    channel: str = Field(max_length=16)
    conversation_id: str | None = Field(default=None, max_length=128)
    notify_to: str | None = Field(default=None, max_length=16)  # E.164: the confirmation text
    # The one key every charge through this link is made under (paybot.payments.ledger).
    idempotency_key: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    created_at: datetime = _timestamp()
    expires_at: datetime = _timestamp()
    used_at: datetime | None = _timestamp(nullable=True, default=False)
    payment_id: int | None = Field(default=None, foreign_key="payments.id")


class Reminder(SQLModel, table=True):
    """A payment reminder: one per account, offset (days before the due date) and due date,
    claimed by inserting this row (the unique key) so that no two runners both send it
    (paybot.reminders). A text goes through the outbox (``message_id``); a call is placed
    through Twilio (``call_sid``). A reply from the number is noted, never its text."""

    __tablename__ = "reminders"
    __table_args__ = (
        UniqueConstraint("account_id", "offset_days", "due_date", name="uq_reminder_once"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    offset_days: int
    due_date: date
    channel: str = Field(max_length=8)  # "sms" or "voice"
    to: str = Field(max_length=16, index=True)  # E.164
    amount: Decimal = _money()
    currency: str = Field(default="USD", max_length=3)
    # sms: "queued" (the outbox row says the rest); voice: "calling", "called", "retry",
    # "failed" or "unknown" (no answer after the request went out: not placed again).
    status: str = Field(max_length=16, index=True)
    message_id: int | None = Field(default=None, foreign_key="outbound_messages.id")
    call_sid: str | None = Field(default=None, max_length=64)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=64)
    created_at: datetime = _timestamp()
    # The first text from the number after the reminder: when, and what kind of answer it
    # was ("pay", "stop", "start", "help" or "other"); the text itself is never stored.
    replied_at: datetime | None = _timestamp(nullable=True, default=False)
    reply: str | None = Field(default=None, max_length=16)
