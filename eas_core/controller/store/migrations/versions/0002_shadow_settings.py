"""Shadow traffic: a service's mirror to a candidate (eas_core.controller.store.shadow).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("shadow_settings"):
        return  # made by a development build that created its tables without migrations
    op.create_table(
        "shadow_settings",
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("percent", sa.Float(), nullable=False),
        # Microseconds since the epoch: past 32 bits.
        sa.Column("since", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["service"], ["services.name"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["target"], ["services.name"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("service"),
    )


def downgrade() -> None:
    op.drop_table("shadow_settings")
