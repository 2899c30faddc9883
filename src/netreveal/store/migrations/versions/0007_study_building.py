"""Studies written in batches: ``studies.building_at``.

A large study is stored in several transactions so other writers (a live game on the same
database) are not locked out meanwhile. Until the last batch is stored, ``building_at`` holds the
time of the latest batch and the study is neither served nor exported; it is None once the study is
complete, as for every study stored before this revision.

Revision ID: 0007
Revises: 0006
Create Date: 2025-05-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("studies", sa.Column("building_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # an unfinished study would look complete without the column: remove it (foreign keys are off
    # during schema changes on SQLite, so its rows are deleted table by table)
    unfinished = "SELECT id FROM studies WHERE building_at IS NOT NULL"
    op.execute(f"DELETE FROM reveal_frames WHERE item_id IN (SELECT id FROM items WHERE study_id IN ({unfinished}))")
    op.execute(f"DELETE FROM eval_pictures WHERE question_id IN "
               f"(SELECT id FROM eval_questions WHERE study_id IN ({unfinished}))")
    for table in ("eval_questions", "items", "images", "media"):
        op.execute(f"DELETE FROM {table} WHERE study_id IN ({unfinished})")
    op.execute("DELETE FROM studies WHERE building_at IS NOT NULL")
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("building_at")
