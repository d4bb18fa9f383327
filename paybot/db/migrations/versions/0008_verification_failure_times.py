"""An index on when identity checks failed: the global rate limit counts every failure of
the last minute, and the lockouts those of the last half hour.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_verification_failures_at", "verification_failures", ["at"])


def downgrade() -> None:
    op.drop_index("ix_verification_failures_at", "verification_failures")
