"""Alembic environment: runs on the connection handed over in ``config.attributes["connection"]``
(see ``netreveal.store.schema``); with a ``sqlalchemy.url`` option instead it opens its own."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from netreveal.store.migrations import VERSION_TABLE
from netreveal.store.models import Base

config = context.config
target_metadata = Base.metadata
OPTIONS = {
    "target_metadata": target_metadata,
    "version_table": VERSION_TABLE,
    "render_as_batch": True,  # SQLite alters tables by copying them
    "compare_type": True,
}


def run_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_on(connection) -> None:
    context.configure(connection=connection, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
elif config.attributes.get("connection") is not None:
    run_on(config.attributes["connection"])
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.begin() as conn:
        run_on(conn)
    engine.dispose()
