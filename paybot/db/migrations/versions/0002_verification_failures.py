"""Failed identity checks, for lockouts across conversations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

from paybot.db.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "verification_failures",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("account_number", sa.String(32), nullable=True),
        sa.Column("caller_phone", sa.String(16), nullable=True),
        sa.Column("conversation_id", sa.String(128), nullable=True),
    )
    op.create_index(
        "ix_verification_failures_account_number", "verification_failures", ["account_number"]
    )
    op.create_index(
        "ix_verification_failures_caller_phone", "verification_failures", ["caller_phone"]
    )


def downgrade() -> None:
    op.drop_table("verification_failures")
