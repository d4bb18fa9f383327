"""The agent console's activity records: one row per agent-assisted payment (who asked, for
what, how much, how it ended), posted to the CRM's activity webhook from the same row, an
outbox with the columns of ``crm_deliveries`` (paybot.console.activity). Re-exported by
:mod:`paybot.db.models`. Brand and last four only; times UTC.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Column, String
from sqlmodel import Field, SQLModel

from paybot.db.types import money_field as _money
from paybot.db.types import timestamp_field as _timestamp

# The step of a call an agent is on (the live calls, the call's ``call.ended`` event): the bot
# is silent on it except for the agent's payment requests, so it never counts as a drop-off.
WITH_AGENT_STEP = "with the agent"


class AgentActivity(SQLModel, table=True):
    """An agent-assisted payment as it ended, and its delivery to the CRM."""

    __tablename__ = "agent_activities"

    id: int | None = Field(default=None, primary_key=True)
    # The console's request id: the payment's idempotency key and the webhook's.
    request_id: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    agent: str = Field(max_length=64)
    call_sid: str = Field(max_length=64, index=True)  # the reports look calls up by it
    account_number: str = Field(max_length=32)
    item: str = Field(max_length=64)  # the product or invoice reference the agent typed
    amount: Decimal = _money()
    currency: str = Field(default="USD", max_length=3)
    result: str = Field(max_length=16)  # succeeded, declined, failed, cancelled
    reason: str | None = Field(default=None, max_length=64)
    payment_id: int | None = Field(default=None, foreign_key="payments.id")
    transaction_id: str | None = Field(default=None, max_length=128)
    confirmation_number: str | None = Field(default=None, max_length=16)
    method_brand: str | None = Field(default=None, max_length=32)
    method_last4: str | None = Field(default=None, max_length=4)
    requested_at: datetime = _timestamp(index=True)  # the reports' date range
    completed_at: datetime = _timestamp()
    # The delivery: queued, sending (claimed by a worker), delivered, failed.
    status: str = Field(default="queued", max_length=16, index=True)
    attempts: int = 0
    claim_token: str | None = Field(default=None, max_length=32)
    claimed_at: datetime | None = _timestamp(nullable=True, default=False)
    next_attempt_at: datetime | None = _timestamp(nullable=True, default=False)
    delivered_at: datetime | None = _timestamp(nullable=True, default=False)
    last_error: str | None = Field(default=None, max_length=64)
