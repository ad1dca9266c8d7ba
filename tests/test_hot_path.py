"""What every authenticated request goes through stays lean (the benchmark measures how lean)."""

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from fastapi.routing import APIRoute
from fastapi.security import OAuth2PasswordRequestForm
from starlette.routing import BaseRoute

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


# FastAPI Users' login takes its form as a class, which FastAPI builds in the thread
# pool; beside the password hash that login costs, the hop does not count.
UPSTREAM_SYNC_DEPENDENCIES = {OAuth2PasswordRequestForm}


def test_no_dependency_runs_in_the_thread_pool(app: FastAPI) -> None:
    found = dict(route_dependencies(app.routes))

    blocking = {
        f"{name}: {getattr(call, '__name__', call)}"
        for name, route_calls in found.items()
        for call in route_calls
        if not is_async(call) and call not in UPSTREAM_SYNC_DEPENDENCIES
    }

    assert {"authenticated_route", "users:current_user", "auth:jwt.login"} <= set(found)
    assert get_user_manager in found["authenticated_route"]
    assert enforce_rate_limits in found["auth:jwt.login"]
    assert blocking == set()


async def test_sqlite_reads_users_on_the_loop_and_servers_do_not(
    client: httpx.AsyncClient, app: FastAPI, backend: Backend
) -> None:
    reader = app.state.sqlite_reader

    assert (reader is not None) == (backend.kind == "sqlite")
