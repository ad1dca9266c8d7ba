"""A database outage answers 503 SERVICE_UNAVAILABLE with Retry-After, and heals by itself.

The app talks to PostgreSQL or MariaDB through a TCP relay that the test cuts and restores
(tests/test_scale.py does the same under load behind HAProxy, on PostgreSQL).
"""

import socket
from typing import cast

import asyncmy
import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import Request
from tortoise.exceptions import OperationalError

from app.app import create_app
from app.outages import database_unavailable, is_outage
from app.settings import Settings
from tests.conftest import PASSWORD, Backend, TcpRelay, assert_error, forget_cached_sql


@pytest.mark.parametrize("backend", ["postgres", "mysql"], indirect=True)
async def test_a_cut_database_answers_503_then_serves_again(
    backend: Backend, settings: Settings
) -> None:
    default_port = 5432 if backend.kind == "postgres" else 3306
    relay = TcpRelay(settings.database_url, default_port)
    url = await relay.start()
    app = create_app(settings.model_copy(update={"database_url": url}))
    forget_cached_sql()
    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                account = {"email": "outage@example.com", "password": PASSWORD}
                await http.post("/auth/register", json=account)
                login = await http.post(
                    "/auth/jwt/login", data={"username": account["email"], "password": PASSWORD}
                )
                headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

                await relay.cut()
                during = [
                    await http.get("/users/me", headers=headers),
                    await http.post("/auth/jwt/login", data={"username": "a@b.c", "password": "x"}),
                    await http.post(
                        "/auth/register", json={"email": "new@example.com", "password": PASSWORD}
                    ),
                ]
                relay = TcpRelay(settings.database_url, default_port)
                await relay.start(relay_port(url))
                after = await http.get("/users/me", headers=headers)
    finally:
        if relay.server.is_serving():
            await relay.cut()

    for response in during:
        assert_error(response, "SERVICE_UNAVAILABLE", 503)
        assert response.headers["Retry-After"] == "5"
    assert after.status_code == 200


def relay_port(url: str) -> int:
    """The port of a relay URL (to start a new relay where the old one was)."""
    port = httpx.URL(url).port
    assert port is not None
    return port


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (ConnectionRefusedError(111, "Connection refused"), True),
        (TimeoutError(), True),
        (OSError("Multiple exceptions: [Errno 111] ..., [Errno 99] ..."), True),
        (socket.gaierror(-2, "Name or service not known"), True),
        (FileNotFoundError(2, "No such file or directory"), False),
        (asyncpg.AdminShutdownError("terminating connection"), True),
        (asyncpg.InterfaceError("the underlying connection is closed"), True),
        (asyncpg.UndefinedColumnError("column does not exist"), False),
        (asyncmy.errors.OperationalError(2013, "Lost connection"), True),
        (OperationalError("(2013, 'Lost connection')"), False),  # a cause is needed
        (ValueError("not a database error"), False),
    ],
)
def test_what_counts_as_an_outage(error: Exception, outage: bool) -> None:
    assert is_outage(error) is outage


def test_a_wrapped_driver_error_is_judged_by_the_error_it_follows() -> None:
    for code, outage in ((2003, True), (2006, True), (1054, False)):
        caused = OperationalError(f"({code}, ...)")
        caused.__cause__ = asyncmy.errors.OperationalError(code, "...")
        following = OperationalError(f"({code}, ...)")
        following.__context__ = asyncmy.errors.OperationalError(code, "...")
        assert is_outage(caused) is is_outage(following) is outage


async def test_an_error_that_is_no_outage_stays_an_error() -> None:
    """Re-raised by the handler, so it ends as the 500 it was (a bug, not an outage)."""
    error = OperationalError("column does not exist")
    error.__cause__ = asyncpg.UndefinedColumnError("column does not exist")
    with pytest.raises(OperationalError):
        await database_unavailable(cast(Request, None), error)
