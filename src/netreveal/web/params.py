"""Integers the web routes take from paths, queries and bodies, bounded to what the database holds.

Every row id is an INTEGER column: PostgreSQL refuses anything above 2**31 - 1 and SQLite anything
above 2**63 - 1, both with a database error. Routes therefore declare ids as :data:`DbId`, so an
id out of range is a 422 before any query runs (a path converter such as ``{id:int}`` still makes
a non-number or a negative number a 404)::

    @router.get("/api/things/{thing_id:int}")
    def thing(thing_id: DbId): ...
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

DB_ID_MAX = 2**31 - 1  # the largest value of a PostgreSQL INTEGER column (and far below SQLite's)
DbId = Annotated[int, Field(ge=1, le=DB_ID_MAX)]
"""A row id: 1 to :data:`DB_ID_MAX` (path, query or body)."""
