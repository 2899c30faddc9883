"""Concept history, cached label embeddings, idempotent and imported guesses, declared background.

- new table ``concept_events`` (create / add / drop / rename / merge / split / remove);
- new table ``embeddings`` (sentence embeddings of cleaned labels, per model);
- ``guesses.request_id`` (unique; a retried submission is stored once), ``guesses.source``
  ("game" for every existing guess), ``guesses.language`` ("en" for every existing guess);
- ``accounts.background`` ("novice" / "expert" when declared; NULL for existing accounts).

Revision ID: 0002
Revises: 0001
Create Date: 2025-03-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "concept_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("concept_id", sa.Integer(), sa.ForeignKey("concepts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("annotator_id", sa.Integer(), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_concept_events_concept_id", "concept_events", ["concept_id"])
    op.create_table(
        "embeddings",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("text", sa.String(200), primary_key=True),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
    )
    # a plain ADD COLUMN on every backend (accounts is referenced by other tables: never copy it)
    op.add_column("accounts", sa.Column("background", sa.String(16), nullable=True))
    # existing guesses were all played in the game, in English
    with op.batch_alter_table("guesses") as batch:
        batch.add_column(sa.Column("request_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("language", sa.String(8), nullable=False, server_default="en"))
        batch.add_column(sa.Column("source", sa.String(8), nullable=False, server_default="game"))
        batch.create_unique_constraint("uq_guesses_request_id", ["request_id"])
    # the models set these defaults in Python; keep the schema the same as a fresh one
    with op.batch_alter_table("guesses") as batch:
        batch.alter_column("language", existing_type=sa.String(8), existing_nullable=False, server_default=None)
        batch.alter_column("source", existing_type=sa.String(8), existing_nullable=False, server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("guesses") as batch:
        batch.drop_constraint("uq_guesses_request_id", type_="unique")
        batch.drop_column("source")
        batch.drop_column("language")
        batch.drop_column("request_id")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("background")
    op.drop_table("embeddings")
    op.drop_index("ix_concept_events_concept_id", table_name="concept_events")
    op.drop_table("concept_events")
