"""The database behind studies, the reveal game and the naming studio (SQLAlchemy 2)."""

from netreveal.store.db import Store, database_url, open_store

__all__ = ["Store", "database_url", "open_store"]
