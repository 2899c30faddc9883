"""Invitations and the sessions' idle timeout.

- new table ``invitations``: one-time links made by an admin that create an annotator or admin
  account (only the SHA-256 of the token is stored; role, who made it, expiry, when and by whom
  it was used);
- ``web_sessions.last_seen_at``: the last activity of a logged-in browser (NULL for existing
  sessions, which then count from their creation).

Revision ID: 0006
Revises: 0005
Create Date: 2025-04-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invitations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_by", sa.Integer(), sa.ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True),
        sa.UniqueConstraint("token_hash"),
    )
    # a plain ADD COLUMN on every backend
    op.add_column("web_sessions", sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("web_sessions") as batch:
        batch.drop_column("last_seen_at")
    op.drop_table("invitations")
