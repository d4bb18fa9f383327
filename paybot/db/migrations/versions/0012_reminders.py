"""Payment reminders: one row per account, offset and due date (the claim that keeps a
reminder from going out twice), with its text's outbox row or its call, and the reply.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

from paybot.db.types import Money, UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reminders",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("offset_days", sa.Integer(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("to", sa.String(16), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column(
            "message_id", sa.Integer(), sa.ForeignKey("outbound_messages.id"), nullable=True
        ),
        sa.Column("call_sid", sa.String(64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("replied_at", UTCDateTime(), nullable=True),
        sa.Column("reply", sa.String(16), nullable=True),
        sa.UniqueConstraint("account_id", "offset_days", "due_date", name="uq_reminder_once"),
    )
    op.create_index("ix_reminders_account_id", "reminders", ["account_id"])
    op.create_index("ix_reminders_to", "reminders", ["to"])
    op.create_index("ix_reminders_status", "reminders", ["status"])


def downgrade() -> None:
    op.drop_index("ix_reminders_status", "reminders")
    op.drop_index("ix_reminders_to", "reminders")
    op.drop_index("ix_reminders_account_id", "reminders")
    op.drop_table("reminders")
