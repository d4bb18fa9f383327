"""The Stripe gateway's records, and when a payment method was kept for the customer.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from paybot.db.types import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stripe_refs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ref", sa.String(255), nullable=False),
        sa.Column("stripe_id", sa.String(64), nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("kind", "ref"),
    )
    op.add_column("payment_methods", sa.Column("saved_at", UTCDateTime(), nullable=True))
    # Every method stored so far was kept for its customer.
    op.execute("UPDATE payment_methods SET saved_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("payment_methods") as batch:  # SQLite cannot drop in place
        batch.drop_column("saved_at")
    op.drop_table("stripe_refs")
