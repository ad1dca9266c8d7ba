"""The service behind PgBouncer in transaction mode, with asyncpg's statement cache off.

A PgBouncer of the test's own (Debian's, installed by `make test`) listens on a free
loopback port in front of the shared PostgreSQL, with two server connections for many
clients, so that transactions of different app connections take turns on the same
server connection: named prepared statements would collide there, unnamed ones do not.
"""

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.app import create_app
from app.settings import Settings
from tests.conftest import (
    PASSWORD,
    SERVER_URLS,
    TEST_PUBLIC_URL,
    TEST_SECRET,
    Aerich,
    Backend,
    forget_cached_sql,
    free_port,
)

STARTUP_SECONDS = 10


@pytest.fixture(scope="module")
def pgbouncer_database(aerich: Aerich) -> Iterator[str]:
    """A migrated database on the shared PostgreSQL, dropped afterwards; its name."""
    backend = Backend("postgres", SERVER_URLS["postgres"])
    backend.check_reachable()
    url = backend.recreate("pgbouncer_test")
    aerich.upgrade(url)
    yield urlsplit(url).path.lstrip("/")
    for name in backend.created:
        backend.drop(name)


@pytest.fixture(scope="module")
def pgbouncer(pgbouncer_database: str) -> Iterator[int]:
    """PgBouncer in transaction mode on a free port (as `postgres`: it refuses root); its port."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists() or os.geteuid() != 0:
        reason = "needs root and Debian's pgbouncer (`make test` installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    server = urlsplit(SERVER_URLS["postgres"])
    folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    port = free_port()
    (folder / "users.txt").write_text(f'"{server.username}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"[databases]\n{pgbouncer_database} = host={server.hostname} port={server.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 2\nmax_client_conn = 100\n"
        f"logfile = {folder / 'pgbouncer.log'}\n"
    )
    shutil.chown(folder, "postgres")
    process = subprocess.Popen(  # noqa: S603 (Debian's pgbouncer, fixed arguments)
        ["runuser", "-u", "postgres", "--", binary, str(folder / "pgbouncer.ini")],  # noqa: S607
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not port_open(port):
            assert process.poll() is None, (folder / "pgbouncer.log").read_text()
            assert time.monotonic() < deadline, "pgbouncer did not listen in time"
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def port_open(port: int) -> bool:
    """Whether something listens on loopback `port`."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
async def client_via_pgbouncer(
    pgbouncer: int, pgbouncer_database: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The service on DATABASE_URL through PgBouncer with `statement_cache_size=0`."""
    via_pgbouncer = f"postgres://postgres@127.0.0.1:{pgbouncer}/{pgbouncer_database}"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"{via_pgbouncer}?statement_cache_size=0",
        database_pool_max=8,
        secret=TEST_SECRET,
        dev_secret_file=tmp_path / "dev-secret",
        password_hash_time_cost=1,
        password_hash_memory_cost=8,
        public_url=TEST_PUBLIC_URL,
        rate_limits_enabled=False,
    )
    forget_cached_sql()
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def test_transaction_mode_serves_concurrent_requests(
    client_via_pgbouncer: httpx.AsyncClient,
) -> None:
    """Registrations, logins and authenticated reads at once, on two server connections."""
    client = client_via_pgbouncer
    emails = [f"bouncer-{n}@example.com" for n in range(8)]

    registered = await asyncio.gather(
        *(client.post("/auth/register", json={"email": e, "password": PASSWORD}) for e in emails)
    )
    logins = await asyncio.gather(
        *(client.post("/auth/jwt/login", data={"username": e, "password": PASSWORD})
          for e in emails)
    )  # fmt: skip
    tokens = [login.json()["access_token"] for login in logins]
    reads = await asyncio.gather(
        *(
            client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
            for token in tokens * 5
        )
    )

    assert [r.status_code for r in registered] == [201] * len(emails), registered[0].text
    assert [r.status_code for r in logins] == [200] * len(emails), logins[0].text
    assert [r.status_code for r in reads] == [200] * len(reads), reads[0].text
    assert {r.json()["email"] for r in reads} == set(emails)
