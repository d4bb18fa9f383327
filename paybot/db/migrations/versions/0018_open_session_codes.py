"""One open contact-centre payment session per session code: a partial unique index, so two
sessions created at once cannot share the code a transferred caller keys
(paybot.contact_centre.sessions draws another code when the insert collides).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_OPEN = sa.text("status = 'created'")


def upgrade() -> None:
    op.create_index(
        "uq_payment_sessions_open_code", "payment_sessions", ["code"], unique=True,
        sqlite_where=_OPEN, postgresql_where=_OPEN,
    )


def downgrade() -> None:
    op.drop_index("uq_payment_sessions_open_code", table_name="payment_sessions")
