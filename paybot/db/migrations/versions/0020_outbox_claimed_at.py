"""When a sender took each outbound message (``outbound_messages.claimed_at``): a message left
``sending`` by a sender that stopped mid-send is then marked ``unknown`` once the claim is old,
instead of staying ``sending`` for ever.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from paybot.db.types import UTCDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbound_messages") as batch:
        batch.add_column(sa.Column("claimed_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbound_messages") as batch:
        batch.drop_column("claimed_at")
