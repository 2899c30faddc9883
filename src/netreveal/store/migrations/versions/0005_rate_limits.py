"""Rate limits kept in the database, so they hold across server processes and restarts.

- ``login_throttles``: failed log-ins per account (how many in a row, the last one, and until when
  further attempts are refused);
- ``guesses``: the index on ``player_id`` becomes one on ``(player_id, created_at)``, so counting
  a player's guesses of the last minute reads only those index entries.

Revision ID: 0005
Revises: 0004
Create Date: 2025-04-14
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_throttles",
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_guesses_player_time", "guesses", ["player_id", "created_at"])
    op.drop_index("ix_guesses_player_id", table_name="guesses")


def downgrade() -> None:
    op.create_index("ix_guesses_player_id", "guesses", ["player_id"])
    op.drop_index("ix_guesses_player_time", table_name="guesses")
    op.drop_table("login_throttles")
