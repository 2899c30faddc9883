"""Bringing a database to the current schema version.

Placeholder until the Alembic migrations land: creates missing tables from the models.
"""

from __future__ import annotations

from netreveal.store.db import Store
from netreveal.store.models import Base


def upgrade_schema(store: Store) -> None:
    """Create or upgrade the schema of ``store`` to the current version."""
    Base.metadata.create_all(store.engine)
