"""Alembic migrations of the netreveal store, run in-process by :func:`netreveal.store.schema.upgrade_schema`.

Users never see Alembic: ``open_store`` brings any database (empty, older, or made by
``Base.metadata.create_all``) to the newest revision. The version is kept in the table
``netreveal_version`` so a PostgreSQL database shared with another Alembic project does not clash.

Adding a revision (whenever a model in ``netreveal/store/models.py`` changes):

1. Change the model.
2. Run ``python -m netreveal.store.migrations "add items.note"``. It builds a scratch SQLite
   database at the current head, autogenerates ``versions/NNNN_<slug>.py`` against the models
   and prints its path.
3. Read and finish the file: autogenerate does not see renames, and a new NOT NULL column needs a
   ``server_default`` so existing rows get a value (drop the default afterwards if the model has
   none, as ``0002`` does). SQLite cannot alter most things in place: use
   ``with op.batch_alter_table(...)`` (the table is copied; foreign keys are off during upgrades
   and checked before commit). Never import the models in a revision: write the columns out.
4. Run ``pytest tests/test_migrations.py`` (with ``NETREVEAL_TEST_POSTGRES_URL`` set to also cover
   PostgreSQL): ``test_models_match_head`` fails until models and head agree.
"""

from __future__ import annotations

from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parent
VERSION_TABLE = "netreveal_version"

__all__ = ["MIGRATIONS_DIR", "VERSION_TABLE"]
