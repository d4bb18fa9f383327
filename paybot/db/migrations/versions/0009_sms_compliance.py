"""Text-message compliance: opt-outs per number (STOP/START), and Twilio's delivery status of
every outbound message (its status callbacks, found by MessageSid).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

from paybot.db.types import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sms_consents",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("phone", sa.String(16), nullable=False, unique=True),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("keyword", sa.String(16), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
    )
    op.add_column("outbound_messages", sa.Column("delivery_status", sa.String(16), nullable=True))
    op.add_column("outbound_messages", sa.Column("error_code", sa.Integer(), nullable=True))
    op.add_column(
        "outbound_messages", sa.Column("delivery_updated_at", UTCDateTime(), nullable=True)
    )
    op.create_index("ix_outbound_messages_provider_id", "outbound_messages", ["provider_id"])


def downgrade() -> None:
    op.drop_index("ix_outbound_messages_provider_id", "outbound_messages")
    with op.batch_alter_table("outbound_messages") as batch:  # SQLite cannot drop in place
        batch.drop_column("delivery_updated_at")
        batch.drop_column("error_code")
        batch.drop_column("delivery_status")
    op.drop_table("sms_consents")
