"""SQLite as the service uses it: WAL, and writers that wait for a lock instead of failing."""

import asyncio
import sys
from urllib.parse import urlsplit

import httpx
import pytest
from tortoise import connections

from app.settings import Settings
from tests.conftest import PASSWORD

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

# Another process takes SQLite's write lock, says so, and holds it for a while.
HOLD_WRITE_LOCK = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("COMMIT")
"""


def sqlite_path(settings: Settings) -> str:
    """The file behind a sqlite:// DATABASE_URL."""
    parts = urlsplit(settings.database_url)
    return parts.netloc + parts.path


async def test_the_connection_uses_wal_and_the_busy_timeout(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    connection = connections.get("default")

    _, [journal] = await connection.execute_query("PRAGMA journal_mode")
    _, [timeout] = await connection.execute_query("PRAGMA busy_timeout")

    assert journal[0] == "wal"
    assert timeout[0] == settings.sqlite_busy_timeout_ms


async def test_a_write_waits_for_another_process_holding_the_lock(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD_WRITE_LOCK, sqlite_path(settings), "1.0",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert await holder.stdout.readline() == b"locked\n"

        response = await client.post(
            "/auth/register", json={"email": "waiter@example.com", "password": PASSWORD}
        )
    finally:
        assert await asyncio.wait_for(holder.wait(), timeout=30) == 0

    assert response.status_code == 201, response.text
