"""What every authenticated request goes through stays lean (the benchmark measures how lean)."""

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute
from tortoise import connections

from app.ratelimit import enforce_rate_limits
from app.users import get_user_manager
from tests.conftest import Backend


def calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """Every dependency callable under `dependant`, depth first."""
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from calls(sub)


def route_dependencies(
    routes: list[BaseRoute], inherited: tuple[Callable[..., Any], ...] = ()
) -> Iterator[tuple[str, list[Callable[..., Any]]]]:
    """(route name, its dependency callables) for every API route, in included routers too."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route.name, [*inherited, *calls(route.dependant)]
        elif (included := getattr(route, "original_router", None)) is not None:
            # FastAPI keeps an included router whole, with its include-time dependencies.
            added = tuple(
                call
                for depends in route.include_context.dependencies  # type: ignore[attr-defined]
                for dependant in [get_dependant(path="", call=depends.dependency)]
                for call in (depends.dependency, *calls(dependant))
            )
            yield from route_dependencies(included.routes, inherited + added)


def is_async(call: object) -> bool:
    """Whether FastAPI awaits `call` on the event loop rather than in its thread pool."""
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
        getattr(call, "__call__", None)  # noqa: B004 (instances with an async __call__)
    )


def test_no_dependency_runs_in_the_thread_pool(app: FastAPI) -> None:
    found = dict(route_dependencies(app.routes))

    blocking = {
        f"{name}: {getattr(call, '__name__', call)}"
        for name, route_calls in found.items()
        for call in route_calls
        if not is_async(call)
    }

    assert {
        "authenticated_route", "users:current_user", "auth:jwt.login", "auth:jwt.refresh",
        "sessions:my_sessions",
    } <= set(found)  # fmt: skip
    assert get_user_manager in found["authenticated_route"]
    assert enforce_rate_limits in found["auth:jwt.login"]
    assert blocking == set()


async def test_sqlite_reads_users_on_the_loop_and_servers_do_not(
    client: httpx.AsyncClient, app: FastAPI, backend: Backend
) -> None:
    reader = app.state.sqlite_reader

    assert (reader is not None) == (backend.kind == "sqlite")


async def test_an_authenticated_request_makes_one_query(
    client: httpx.AsyncClient,
    app: FastAPI,
    backend: Backend,
    auth_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The user and the session are read together: one query, on the loop on SQLite."""
    queries: list[str] = []
    running: list[str] = []  # a query method calling another (MySQL's) counts once
    connection = connections.get("default")
    for method in ("execute_query", "execute_query_dict"):
        original = getattr(connection, method)

        async def counted(sql: str, *args: Any, _original: Any = original) -> Any:
            if not running:
                queries.append(sql)
            running.append(sql)
            try:
                return await _original(sql, *args)
            finally:
                running.pop()

        monkeypatch.setattr(connection, method, counted)
    reader = app.state.sqlite_reader
    if reader is not None:
        read = reader.fetch_one

        def counted_read(sql: str, params: list[Any]) -> Any:
            queries.append(f"reader: {sql}")
            return read(sql, params)

        monkeypatch.setattr(reader, "fetch_one", counted_read)

    response = await client.get("/authenticated-route", headers=auth_headers)

    assert response.status_code == 200
    assert len(queries) == 1, queries
    assert "auth_session" in queries[0]
    assert queries[0].startswith("reader: ") == (backend.kind == "sqlite")
