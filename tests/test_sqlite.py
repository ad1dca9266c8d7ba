"""SQLite as the service uses it: WAL, writers that wait for a lock, and the read-only reader."""

import asyncio
import sqlite3
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from tortoise import connections

from app.settings import Settings
from app.user_db import SQLiteReader, TortoiseUserDatabase
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


@pytest.fixture
def sqlite_reader(db: None, settings: Settings) -> Iterator[SQLiteReader]:
    """A reader on the test database, as the app's lifespan opens one."""
    reader = SQLiteReader(sqlite_path(settings))
    yield reader
    reader.close()


async def test_the_reader_reads_what_tortoise_reads(sqlite_reader: SQLiteReader) -> None:
    created = await TortoiseUserDatabase().create(
        {"email": "ada@example.com", "hashed_password": "x"}
    )

    read = await TortoiseUserDatabase(sqlite_reader).get(created.id)

    assert read == created == await TortoiseUserDatabase().get(created.id)
    assert read is not None
    assert read.created_at.utcoffset() is not None
    assert await TortoiseUserDatabase(sqlite_reader).get(uuid.uuid4()) is None


async def test_the_reader_sees_a_change_at_once(sqlite_reader: SQLiteReader) -> None:
    adapter = TortoiseUserDatabase(sqlite_reader)
    created = await adapter.create({"email": "ada@example.com", "hashed_password": "x"})

    await adapter.update(created, {"is_active": False})
    deactivated = await adapter.get(created.id)
    await adapter.delete(created)

    assert deactivated is not None
    assert deactivated.is_active is False
    assert await adapter.get(created.id) is None


async def test_a_locked_file_fails_the_reader_at_once_and_get_takes_the_usual_path(
    db: None, settings: Settings, tmp_path: Path
) -> None:
    created = await TortoiseUserDatabase().create(
        {"email": "ada@example.com", "hashed_password": "x"}
    )
    # A copy of the database in rollback-journal mode, where a writer's exclusive lock
    # keeps readers out; only the usual path (the test database) has the user.
    locked = tmp_path / "locked.sqlite3"
    with closing(sqlite3.connect(sqlite_path(settings))) as source:
        source.execute("VACUUM INTO ?", [str(locked)])
    reader = SQLiteReader(str(locked))
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD_WRITE_LOCK.replace("IMMEDIATE", "EXCLUSIVE"), str(locked), "5",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert await holder.stdout.readline() == b"locked\n"
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            reader.fetch_one("SELECT 1 FROM user", [])

        read = await TortoiseUserDatabase(reader).get(created.id)
    finally:
        holder.kill()
        await holder.wait()
        reader.close()

    assert read == created
