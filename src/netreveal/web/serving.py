"""What ``netreveal serve`` builds its app from, in one process or in several.

With ``--workers N`` (N > 1) uvicorn starts N worker processes sharing one listening socket; each
builds its own app by calling :func:`app_from_environment`, which reads the :class:`ServeSettings`
the ``serve`` command checked and wrote to the environment variable ``NETREVEAL_SERVE`` (JSON).
Every worker opens its own connection pool; the rate limits are counted in the database, so the
workers share them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import timedelta

from fastapi import FastAPI

from netreveal.errors import NetrevealError
from netreveal.store.db import Store, open_store

SETTINGS_ENV = "NETREVEAL_SERVE"
APP_FACTORY = "netreveal.web.serving:app_from_environment"  # what uvicorn's workers import


@dataclass(frozen=True)
class ServeSettings:
    """The app's settings, checked by ``netreveal serve``: the database (a SQLAlchemy URL), the
    study's name, the sessions' idle timeout and the largest request body."""

    database: str
    study: str
    idle_seconds: float
    max_body: int

    def to_environment(self) -> str:
        """The settings as the JSON text :meth:`from_environment` reads."""
        return json.dumps(asdict(self))

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> ServeSettings:
        """The settings ``netreveal serve`` wrote to ``$NETREVEAL_SERVE``; NetrevealError when
        missing or not what it writes."""
        text = environ.get(SETTINGS_ENV)
        if not text:
            raise NetrevealError(f"${SETTINGS_ENV} is not set: start the app with `netreveal serve`")
        try:
            values = json.loads(text)
            settings = cls(**{f.name: values[f.name] for f in fields(cls)})
        except (ValueError, TypeError, KeyError) as exc:
            raise NetrevealError(f"${SETTINGS_ENV} is not the settings `netreveal serve` writes ({exc})") from None
        return settings


def build_app(store: Store, settings: ServeSettings, *, close_store: bool = False) -> FastAPI:
    """The app serving ``settings.study`` from ``store``; ``close_store``: close the store when the
    app shuts down."""
    from netreveal.web.app import create_app

    return create_app(store, settings.study, session_idle=timedelta(seconds=settings.idle_seconds),
                      max_body=settings.max_body, close_store=close_store)


def app_from_environment() -> FastAPI:
    """The app of one worker process (uvicorn's factory): settings from ``$NETREVEAL_SERVE``, a
    store of its own (the schema is current: ``serve`` opened it first), closed at shutdown."""
    settings = ServeSettings.from_environment()
    store = open_store(settings.database, upgrade=False)
    try:
        return build_app(store, settings, close_store=True)
    except BaseException:
        store.close()
        raise
