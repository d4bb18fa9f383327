"""Indexes for the reports on agent-assisted payments: ``agent_activities`` by the time the
payment was asked for (the report's date range) and by call (a call on which an agent asked for
a payment is not "contained"). Without them each report scanned the whole table.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_agent_activities_requested_at", "agent_activities", ["requested_at"])
    op.create_index("ix_agent_activities_call_sid", "agent_activities", ["call_sid"])


def downgrade() -> None:
    op.drop_index("ix_agent_activities_call_sid", table_name="agent_activities")
    op.drop_index("ix_agent_activities_requested_at", table_name="agent_activities")
