"""Media foreign keys cascade (deleting a study in the database removes what shows its pictures);
an index for the naming studio's gallery, sorted by weight within a study.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

MEDIA_KEYS = (("images", "media_id"), ("items", "map_media_id"), ("reveal_frames", "media_id"))
SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s"}  # names for SQLite's unnamed keys


def _media_keys(ondelete: str | None) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, column in MEDIA_KEYS:
        name = f"fk_{table}_{column}" if sqlite else f"{table}_{column}_fkey"
        options = {"naming_convention": SQLITE_NAMES} if sqlite else {}
        with op.batch_alter_table(table, **options) as batch:
            batch.drop_constraint(name, type_="foreignkey")
            batch.create_foreign_key(name, "media", [column], ["id"], ondelete=ondelete)


def upgrade() -> None:
    _media_keys("CASCADE")
    op.create_index("ix_items_gallery", "items", ["study_id", "weight"])


def downgrade() -> None:
    op.drop_index("ix_items_gallery", table_name="items")
    _media_keys(None)
