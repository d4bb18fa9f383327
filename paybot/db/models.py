"""The tables. Money columns are ``Decimal``; phone numbers E.164; times UTC.

No table has a column for a card number, security code or bank account number: payment
methods are gateway tokens plus brand, last four and expiry. The tables of what paybot sends
out (texts, opt-outs, pay links, reminders, deliveries to the CRM) are in
:mod:`paybot.db.outreach`, the agent console's users and sessions in :mod:`paybot.db.console`,
its activity records in :mod:`paybot.db.agent_activity`; this module re-exports them.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy import JSON, Column, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from paybot.db.agent_activity import AgentActivity  # noqa: F401 - re-exported
from paybot.db.console import (  # noqa: F401 - the console's tables, re-exported
    ConsoleLoginFailure,
    ConsoleRole,
    ConsoleSession,
    ConsoleUser,
)
from paybot.db.outreach import (  # noqa: F401 - the outreach tables, re-exported
    CrmDelivery,
    OutboundMessage,
    PayLink,
    PayLinkStatus,
    Reminder,
    SmsConsent,
)
from paybot.db.types import UTCDateTime, utcnow
from paybot.db.types import money_field as _money
from paybot.db.types import timestamp_field as _timestamp


class AccountStatus(str, enum.Enum):
    ACTIVE = "active"
    CLOSED = "closed"
    SUSPENDED = "suspended"


class PaymentStatus(str, enum.Enum):
    PENDING = "pending"  # row written, gateway not yet answered
    UNKNOWN = "unknown"  # gateway did not answer after retries; reconcile before telling
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    FAILED = "failed"  # never charged (gateway error, or not submitted before a crash)
    SCHEDULED = "scheduled"
    SKIPPED = "skipped"  # a scheduled payment the rules no longer allowed on its day
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


class Channel(str, enum.Enum):
    VOICE = "voice"
    SMS = "sms"
    CHAT = "chat"
    CONSOLE = "console"
    API = "api"


class Account(SQLModel, table=True):
    """A biller's customer account: who owes what, by when, and how to recognise them."""

    __tablename__ = "accounts"

    id: int | None = Field(default=None, primary_key=True)
    account_number: str = Field(sa_column=Column(String(32), unique=True, nullable=False))
    name: str = Field(max_length=200)
    phone: str | None = Field(default=None, max_length=16, index=True)  # E.164
    email: str | None = Field(default=None, max_length=254)
    billing_zip: str = Field(max_length=10)
    # Where the service is ("12 Oak Street"): tells apart several accounts on one number.
    service_address: str | None = Field(default=None, max_length=200)
    balance: Decimal = _money()
    minimum_payment: Decimal = _money()
    due_date: date | None = None
    currency: str = Field(default="USD", max_length=3)
    status: str = Field(default=AccountStatus.ACTIVE.value, max_length=16)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()
    # Accounts mirrored from an HTTP CRM (paybot.accounts.mirror): the balance the CRM last
    # reported, and when it last answered for the account. Both None for local accounts.
    crm_balance: Decimal | None = _money(nullable=True)
    crm_synced_at: datetime | None = _timestamp(nullable=True, default=False)

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name.strip() else self.name


class PaymentMethod(SQLModel, table=True):
    """A stored, gateway-tokenised way to pay. Never a PAN, CVV or full bank account number."""

    __tablename__ = "payment_methods"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    gateway: str = Field(max_length=32)
    token: str = Field(max_length=128)
    kind: str = Field(max_length=8)  # "card" or "bank"
    brand: str = Field(max_length=32)  # "visa", "mastercard", ... or "checking"/"savings"
    last4: str = Field(max_length=4)
    exp_month: int | None = None
    exp_year: int | None = None
    reusable: bool = True
    is_default: bool = True
    created_at: datetime = _timestamp()
    deleted_at: datetime | None = _timestamp(nullable=True, default=False)
    # Kept for the customer (offered on later calls). None: a token made for one payment
    # (two-step style), deleted after use unless the caller agreed to keep it.
    saved_at: datetime | None = _timestamp(nullable=True)


class Payment(SQLModel, table=True):
    """One attempt to take money. Written (with its idempotency key) before the gateway call."""

    __tablename__ = "payments"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    payment_method_id: int | None = Field(default=None, foreign_key="payment_methods.id")
    amount: Decimal = _money()
    fee: Decimal = _money()
    total: Decimal = _money()
    currency: str = Field(default="USD", max_length=3)
    status: str = Field(default=PaymentStatus.PENDING.value, max_length=16, index=True)
    channel: str = Field(max_length=16)
    conversation_id: str | None = Field(default=None, max_length=128, index=True)
    method_kind: str | None = Field(default=None, max_length=8)
    method_brand: str | None = Field(default=None, max_length=32)
    method_last4: str | None = Field(default=None, max_length=4)
    gateway: str = Field(max_length=32)
    gateway_reference: str | None = Field(default=None, max_length=128)  # token or "one-step"
    gateway_transaction_id: str | None = Field(default=None, max_length=128)
    decline_code: str | None = Field(default=None, max_length=64)
    confirmation_number: str | None = Field(
        default=None, sa_column=Column(String(16), unique=True, nullable=True)
    )
    idempotency_key: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    attempts: int = 0
    scheduled_for: date | None = None
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()
    completed_at: datetime | None = _timestamp(nullable=True, default=False)


class LedgerEntry(SQLModel, table=True):
    """One line of a successful payment: the principal to the customer's account, a fee to
    the fee account. A payment with a fee has two lines."""

    __tablename__ = "ledger_entries"
    __table_args__ = (UniqueConstraint("payment_id", "kind", name="uq_ledger_payment_kind"),)

    id: int | None = Field(default=None, primary_key=True)
    payment_id: int = Field(foreign_key="payments.id", index=True)
    kind: str = Field(max_length=16)  # "principal" or "fee"
    ledger_account: str = Field(max_length=64)  # the account number, or the fee account
    amount: Decimal = _money()
    currency: str = Field(default="USD", max_length=3)
    created_at: datetime = _timestamp()


class AuditEvent(SQLModel, table=True):
    """Append-only record of what happened. ``detail`` holds ids and outcomes, never payloads."""

    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _timestamp()
    kind: str = Field(max_length=64, index=True)
    account_id: int | None = Field(default=None, index=True)
    payment_id: int | None = Field(default=None, index=True)
    conversation_id: str | None = Field(default=None, max_length=128)
    actor: str = Field(default="system", max_length=64)
    detail: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class SandboxToken(SQLModel, table=True):
    """The embedded sandbox gateway's vault: what a token stands for, without the PAN."""

    __tablename__ = "sandbox_tokens"

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    kind: str = Field(max_length=8)
    brand: str = Field(max_length=32)
    last4: str = Field(max_length=4)
    exp_month: int | None = None
    exp_year: int | None = None
    outcome: str = Field(max_length=32)  # the test behaviour the number selected
    reusable: bool = True
    created_at: datetime = _timestamp()
    deleted_at: datetime | None = _timestamp(nullable=True, default=False)


class SandboxCharge(SQLModel, table=True):
    """A charge the sandbox processed, stored with its idempotency key and response."""

    __tablename__ = "sandbox_charges"

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    idempotency_key: str = Field(sa_column=Column(String(255), unique=True, nullable=False))
    request_fingerprint: str = Field(max_length=64)
    token_id: str | None = Field(default=None, max_length=40)
    amount: Decimal = _money()
    currency: str = Field(max_length=3)
    status: str = Field(max_length=16)  # "succeeded" or "declined"
    decline_code: str | None = Field(default=None, max_length=64)
    brand: str = Field(max_length=32)
    last4: str = Field(max_length=4)
    refunded: Decimal = _money()
    description: str | None = Field(default=None, max_length=200)
    created_at: datetime = _timestamp()


class StripeRef(SQLModel, table=True):
    """The Stripe gateway's own records: the PaymentIntent made under a ledger idempotency key
    (``kind`` "intent"), the Customer of a paybot account ("customer"), a token paybot deleted
    ("deleted"). Ids and fingerprints of requests only, never card data."""

    __tablename__ = "stripe_refs"
    __table_args__ = (UniqueConstraint("kind", "ref"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)
    ref: str = Field(max_length=255)  # the idempotency key, account number or token
    stripe_id: str | None = Field(default=None, max_length=64)
    fingerprint: str | None = Field(default=None, max_length=64)
    created_at: datetime = _timestamp()


class VerificationFailure(SQLModel, table=True):
    """A failed identity check, counted per account and per caller number for lockouts."""

    __tablename__ = "verification_failures"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=True)
    )
    account_number: str | None = Field(default=None, max_length=32, index=True)
    caller_phone: str | None = Field(default=None, max_length=16, index=True)
    conversation_id: str | None = Field(default=None, max_length=128)


class CallStatus(str, enum.Enum):
    """Twilio's call statuses. A call only moves forward through them (see ``rank``)."""

    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    FAILED = "failed"
    NO_ANSWER = "no-answer"
    CANCELED = "canceled"

    @property
    def rank(self) -> int:
        """Order of the lifecycle: every ending ranks last, so the first ending sticks."""
        return {"queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3}.get(self.value, 4)


class Call(SQLModel, table=True):
    """One phone call Twilio told us about: who, when, how it went. Never what was said."""

    __tablename__ = "calls"

    id: int | None = Field(default=None, primary_key=True)
    call_sid: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    caller: str | None = Field(default=None, max_length=16, index=True)  # E.164; None: withheld
    called: str | None = Field(default=None, max_length=16)  # E.164
    status: str = Field(default=CallStatus.RINGING.value, max_length=16, index=True)
    direction: str | None = Field(default=None, max_length=32)  # "inbound", "outbound-api"...
    started_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()
    duration_s: int | None = None
    ended_reason: str | None = Field(default=None, max_length=64)
    # The voice webhook answered with a stream token (once: a replay gets no second token),
    # and that token opened the call's stream (once: a second socket with it is refused).
    answered_at: datetime | None = _timestamp(nullable=True, default=False)
    stream_started_at: datetime | None = _timestamp(nullable=True, default=False)
class PaymentSessionStatus(str, enum.Enum):
    """A contact-centre payment session's life (paybot.contact_centre.sessions)."""

    CREATED = "created"  # waiting for the caller's call
    MATCHED = "matched"  # a call was tied to it
    IN_PROGRESS = "in_progress"  # the bot took the caller to the payment
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"  # no call came in time
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self.value in ("succeeded", "failed", "expired", "cancelled")


class PaymentSession(SQLModel, table=True):
    """A payment a contact centre's IVR set up for a caller before transferring the call:
    the account it vouched for, the amount, and how the call ended. No card data."""

    __tablename__ = "payment_sessions"
    __table_args__ = (
        UniqueConstraint("client", "idempotency_key"),
        # One open session per code: two IVRs creating sessions at once cannot both get the
        # code a transferred caller keys (the loser draws another).
        sa.Index(
            "uq_payment_sessions_open_code", "code", unique=True,
            sqlite_where=sa.text("status = 'created'"),
            postgresql_where=sa.text("status = 'created'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(sa_column=Column(String(40), unique=True, nullable=False))  # ps_<32 hex>
    client: str = Field(max_length=64, index=True)  # the API client that made it
    idempotency_key: str | None = Field(default=None, max_length=128)
    request_hash: str | None = Field(default=None, max_length=64)  # sha256 of the request
    account_id: int = Field(foreign_key="accounts.id")
    amount: Decimal = _money()
    currency: str = Field(default="USD", max_length=3)
    reference: str = Field(max_length=64)
    caller: str | None = Field(default=None, max_length=16, index=True)  # E.164
    code: str | None = Field(default=None, max_length=8, index=True)  # keyed/SIP session code
    callback_url: str | None = Field(default=None, max_length=2048)
    status: str = Field(default=PaymentSessionStatus.CREATED.value, max_length=16, index=True)
    call_sid: str | None = Field(sa_column=Column(String(64), unique=True, nullable=True))
    payment_id: int | None = Field(default=None, foreign_key="payments.id")
    failure_reason: str | None = Field(default=None, max_length=64)
    created_at: datetime = _timestamp()
    expires_at: datetime = _timestamp()
    matched_at: datetime | None = _timestamp(nullable=True, default=False)
    completed_at: datetime | None = _timestamp(nullable=True, default=False)


class SessionDelivery(SQLModel, table=True):
    """A finished payment session's completion webhook, posted to the client's callback URL
    once (the same outbox columns as :class:`CrmDelivery`; paybot.reconciliation.deliveries)."""

    __tablename__ = "session_deliveries"

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(
        sa_column=Column(Integer, ForeignKey("payment_sessions.id"), unique=True, nullable=False)
    )
    idempotency_key: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    status: str = Field(default="queued", max_length=16, index=True)
    attempts: int = 0
    claim_token: str | None = Field(default=None, max_length=32)
    claimed_at: datetime | None = _timestamp(nullable=True, default=False)
    next_attempt_at: datetime | None = _timestamp(nullable=True, default=False)
    delivered_at: datetime | None = _timestamp(nullable=True, default=False)
    last_error: str | None = Field(default=None, max_length=64)
    created_at: datetime = _timestamp()


class RefundStatus(str, enum.Enum):
    PENDING = "pending"  # row written, gateway not yet answered
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Refund(SQLModel, table=True):
    """Money given back on a succeeded payment (paybot.payments.refunds), written with its
    idempotency key before the gateway call; who asked for it and why."""

    __tablename__ = "refunds"

    id: int | None = Field(default=None, primary_key=True)
    payment_id: int = Field(foreign_key="payments.id", index=True)
    amount: Decimal = _money()
    currency: str = Field(default="USD", max_length=3)
    reason: str = Field(max_length=500)
    actor: str = Field(max_length=64)
    idempotency_key: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    status: str = Field(default=RefundStatus.PENDING.value, max_length=16)
    gateway_transaction_id: str | None = Field(default=None, max_length=128)
    error_code: str | None = Field(default=None, max_length=64)
    created_at: datetime = _timestamp()
    completed_at: datetime | None = _timestamp(nullable=True, default=False)


class ReconciliationRun(SQLModel, table=True):
    """A day's reconciliation file as the bridges' daily job published it
    (paybot.reconciliation.runs): the day is the key, so of several bridges one claims the day
    and writes and uploads its file; the others find the row and skip it."""

    __tablename__ = "reconciliation_runs"

    day: date = Field(sa_column=Column(Date, primary_key=True))
    status: str = Field(default="running", max_length=16)  # running, done, failed
    claimed_at: datetime = _timestamp()
    finished_at: datetime | None = _timestamp(nullable=True, default=False)
