"""Accounts mirrored from an HTTP CRM: the balance the CRM last reported and when it last
answered for the account (paybot.accounts.mirror).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

from paybot.db.types import Money, UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("crm_balance", Money(), nullable=True))
    op.add_column("accounts", sa.Column("crm_synced_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:  # SQLite cannot drop a column in place
        batch.drop_column("crm_synced_at")
        batch.drop_column("crm_balance")
