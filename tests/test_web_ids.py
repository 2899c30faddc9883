"""Integers in paths, queries and bodies out of the id columns' range are a 4xx, never a 5xx.

The route list comes from the app itself, so a new route with an integer parameter is covered
without touching this file (a new route with a body needs an example body below).
"""
# ruff: noqa: F811  (pytest fixtures imported from dbs are redefined as test arguments)

import inspect
import re
import typing
import uuid

import pytest
from dbs import make_tiny_study, store, store_url  # noqa: F401  (fixtures: each test runs on SQLite and PostgreSQL)
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel
from webstudy import PASSWORD, Client, counts, make_account, study_ids

from netreveal.store import accounts
from netreveal.web.app import create_app
from netreveal.web.ratelimit import RateLimit

ROOMY = RateLimit(guesses=1000, signups=1000, failed_logins=1000)
BAD_IDS = ("0", "-1", "2147483648", str(10**20))
PATH_PARAM = re.compile(r"{(\w+)(?::\w+)?}")
BODIES = {  # a valid body for each route that reads one, so only the integer under test is wrong
    "/api/rounds/{game_id:int}/guesses": {"request_id": "r-1", "guessed_class": "cat", "text": "x"},
    "/api/rounds/{game_id:int}/reveal": {"from_step": 1},
    "/studio/api/concepts/{concept_id}": {"name": "wheels"},
    "/studio/api/concepts/{concept_id}/items": {"items": [1]},
    "/studio/api/concepts/{concept_id}/items/drop": {"items": [1]},
    "/studio/api/concepts/{concept_id}/split": {"items": [1], "name": "wheels"},
}


def api_routes(routes):
    """Every APIRoute of ``routes``, looking into included routers (kept apart since FastAPI 0.12x;
    the app includes them without a prefix, so their paths are the served ones)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from api_routes(inner.routes)


def _is_int(annotation) -> bool:
    """True for ``int``, ``int | None`` and ``Annotated[int, ...]`` (the id types of the routes)."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _is_int(typing.get_args(annotation)[0])
    if annotation is int:
        return True
    return any(a is int for a in typing.get_args(annotation))


def integer_parameters(route: APIRoute) -> tuple[list[str], list[str]]:
    """The route's integer path parameters and integer query parameters."""
    in_path = set(PATH_PARAM.findall(route.path))
    hints = typing.get_type_hints(route.endpoint, include_extras=True)
    path, query = [], []
    for name in inspect.signature(route.endpoint).parameters:
        annotation = hints.get(name)
        if annotation is None or not _is_int(annotation):
            continue
        (path if name in in_path else query).append(name)
    return path, query


def body_model(route: APIRoute) -> bool:
    hints = typing.get_type_hints(route.endpoint)
    return any(isinstance(t, type) and issubclass(t, BaseModel) for t in hints.values()) or any(
        isinstance(a, type) and issubclass(a, BaseModel) for t in hints.values() for a in typing.get_args(t))


def admin_client(app, store) -> Client:
    with store.session() as s:
        accounts.create_account(s, "root", "admin-password", role="admin")
    c = Client(app)
    c.http = TestClient(app, raise_server_exceptions=False, cookies=c.http.cookies)
    assert c.login("root", "admin-password").status_code == 200
    return c


def test_every_integer_parameter_out_of_range_is_a_client_error(store):
    ids = study_ids(store, make_tiny_study(store))
    app = create_app(store, rate_limit=ROOMY)
    c = admin_client(app, store)
    before = counts(store)
    checked = []
    for route in api_routes(app.routes):
        path_ints, query_ints = integer_parameters(route)
        if not path_ints and not query_ints:
            continue
        for method in sorted(route.methods - {"HEAD"}):
            body = BODIES.get(route.path) if method != "GET" else None
            if method != "GET" and body_model(route):
                assert body is not None, f"add an example body for {method} {route.path} to BODIES"
            for bad in BAD_IDS:
                targets = [(p, None) for p in path_ints] + [(None, q) for q in query_ints]
                for in_path, in_query in targets:
                    url = PATH_PARAM.sub(lambda m, p=in_path, b=bad: b if m[1] == p else str(ids["items"][0]),
                                         route.path)
                    params = {in_query: bad} if in_query else {}
                    r = c.http.request(method, url, params=params, json=body, headers={"X-CSRF-Token": c.csrf})
                    assert r.status_code < 500, (method, url, params, r.status_code, r.text[:200])
                    if in_path or bad != "0":  # a query count may be 0 (e.g. examples=0)
                        assert r.status_code >= 400, (method, url, params, r.status_code)
                    checked.append((method, route.path, in_path or in_query))
    assert {p for _, p, _ in checked} >= {"/api/rounds/{game_id:int}", "/media/{media_id:int}.png",
                                          "/studio/api/concepts/{concept_id}", "/studio/api/gallery",
                                          "/studio/api/images/{image_id}/explanation",
                                          "/explanations/images/{image_id}"}
    assert counts(store) == before


@pytest.mark.parametrize("field", ["items", "concepts"])
def test_ids_out_of_range_in_bodies_are_a_client_error(store, field):
    make_tiny_study(store)
    app = create_app(store, rate_limit=ROOMY)
    c = admin_client(app, store)
    player = Client(app)
    make_account(store, "player1")
    assert player.login("player1", PASSWORD).status_code == 200
    before = counts(store)
    for bad in (0, 2**31, 10**20):
        if field == "items":
            r = c.post("/studio/api/concepts", {"name": "wheels", "items": [bad]})
        else:
            r = c.post("/studio/api/concepts/merge", {"concepts": [1, bad]})
        assert r.status_code == 422, (bad, r.status_code, r.text[:200])
    r = player.post("/api/rounds/1/guesses", {"request_id": str(uuid.uuid4()), "guessed_class": "cat", "text": "x",
                                         "step": 10**20})
    assert r.status_code in (404, 422)
    assert counts(store) == before
