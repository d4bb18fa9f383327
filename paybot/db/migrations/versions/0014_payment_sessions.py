"""Contact-centre payment sessions and their completion webhooks
(paybot.contact_centre.sessions, paybot.reconciliation.deliveries).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

from paybot.db.types import Money, UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_sessions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("public_id", sa.String(40), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column("caller", sa.String(16), nullable=True),
        sa.Column("code", sa.String(8), nullable=True),
        sa.Column("callback_url", sa.String(2048), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("call_sid", sa.String(64), nullable=True),
        sa.Column("payment_id", sa.Integer(), sa.ForeignKey("payments.id"), nullable=True),
        sa.Column("failure_reason", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("matched_at", UTCDateTime(), nullable=True),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("public_id"),
        sa.UniqueConstraint("call_sid"),
        sa.UniqueConstraint("client", "idempotency_key"),
    )
    for column in ("client", "caller", "code", "status"):
        op.create_index(f"ix_payment_sessions_{column}", "payment_sessions", [column])
    op.create_table(
        "session_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("session_id", sa.Integer(), sa.ForeignKey("payment_sessions.id"),
                  nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claim_token", sa.String(32), nullable=True),
        sa.Column("claimed_at", UTCDateTime(), nullable=True),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("session_id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index("ix_session_deliveries_status", "session_deliveries", ["status"])


def downgrade() -> None:
    op.drop_index("ix_session_deliveries_status", table_name="session_deliveries")
    op.drop_table("session_deliveries")
    for column in ("status", "code", "caller", "client"):
        op.drop_index(f"ix_payment_sessions_{column}", table_name="payment_sessions")
    op.drop_table("payment_sessions")
