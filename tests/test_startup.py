"""Start-up: the app refuses a database it cannot use, saying why in one sentence.

`python main.py` (`make run`, and the documented way to run several workers) checks the
settings and the database once, before any worker starts, and serves on uvicorn's h11
parser with the request head bounded (MAX_HEADER_BYTES).
"""

import contextlib
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.app import create_app
from app.db import DatabaseNotReady
from app.health import migration_files
from app.settings import Settings
from tests.conftest import ROOT, TEST_SECRET, Aerich, child_environment, free_port


@pytest.mark.parametrize(
    ("broken_url", "message"),
    [
        ("sqlite://{tmp}/never-migrated.sqlite3", "run `aerich upgrade` first"),
        ("postgres://postgres@127.0.0.1:1/nowhere", "Cannot reach the database"),
        ("mysql://root:@127.0.0.1:1/nowhere", "Cannot reach the database"),
    ],
    ids=["not-migrated", "postgres-unreachable", "mysql-unreachable"],
)
async def test_startup_checks_the_database(tmp_path: Path, broken_url: str, message: str) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=broken_url.format(tmp=tmp_path),
        secret=TEST_SECRET,
    )

    with pytest.raises(DatabaseNotReady, match=message):
        async with LifespanManager(create_app(settings)):
            pass


def test_make_run_on_an_unmigrated_database_says_so_in_one_line(
    tmp_path: Path, bytecode_cache: Path
) -> None:
    """`python main.py` (what `make run` starts) checks the database before uvicorn starts."""
    env = {
        **child_environment(bytecode_cache),
        "DATABASE_URL": f"sqlite://{tmp_path}/never-migrated.sqlite3",
        "SECRET": TEST_SECRET,
        "PORT": str(free_port()),
    }

    result = subprocess.run(  # noqa: S603 (this venv's Python, fixed arguments)
        [sys.executable, str(ROOT / "main.py")], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "run `aerich upgrade` first" in line


def run_main(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python main.py` as `make run` starts it, to its end (bounded)."""
    return subprocess.run(  # noqa: S603 (this venv's Python, fixed arguments)
        [sys.executable, str(ROOT / "main.py")], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def assert_one_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    """The run failed (non-zero) with one line on stderr containing `expected`."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert expected in line


def test_several_workers_with_a_missing_production_setting_stop_once(
    tmp_path: Path, bytecode_cache: Path
) -> None:
    """WEB_CONCURRENCY=2 in production without SMTP_HOST: one line and exit 1, no worker."""
    env = {
        **child_environment(bytecode_cache),
        "ENVIRONMENT": "production",
        "SECRET": TEST_SECRET,
        "PUBLIC_URL": "https://users.example.com",
        "MAIL_FROM": "noreply@example.com",
        "WEB_CONCURRENCY": "2",
        "PORT": str(free_port()),
    }
    env.pop("SMTP_HOST", None)

    result = run_main(env, tmp_path)

    assert_one_line(result, "Configuration error: SMTP_HOST must be set in production")
    assert "Started server process" not in result.stdout + result.stderr


def test_several_workers_on_an_unreachable_database_stop_once(
    tmp_path: Path, bytecode_cache: Path
) -> None:
    """WEB_CONCURRENCY=2 on a PostgreSQL nobody listens on: one line and exit 1, no worker."""
    env = {
        **child_environment(bytecode_cache),
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/nowhere",
        "SECRET": TEST_SECRET,
        "WEB_CONCURRENCY": "2",
        "PORT": str(free_port()),
    }

    result = run_main(env, tmp_path)

    assert_one_line(result, "Cannot reach the database (DATABASE_URL):")


def test_main_names_a_pending_migration(
    tmp_path: Path, bytecode_cache: Path, aerich: Aerich
) -> None:
    """A database one migration behind the release: `python main.py` names it and stops."""
    database = tmp_path / "behind.sqlite3"
    aerich.upgrade(f"sqlite://{database}")
    last = migration_files()[-1]
    with closing(sqlite3.connect(database)) as connection, connection:
        connection.execute("DELETE FROM aerich WHERE version = ?", (last,))
    env = {
        **child_environment(bytecode_cache),
        "DATABASE_URL": f"sqlite://{database}",
        "SECRET": TEST_SECRET,
        "PORT": str(free_port()),
    }

    result = run_main(env, tmp_path)

    assert_one_line(result, f"The database lacks migration {last}; run `aerich upgrade` first")


@pytest.fixture
def served(tmp_path: Path, bytecode_cache: Path, aerich: Aerich) -> Iterator[str]:
    """`python main.py` with two workers on a migrated SQLite database; its base URL."""
    with serving(tmp_path, bytecode_cache, aerich, WEB_CONCURRENCY="2") as url:
        yield url


@contextlib.contextmanager
def serving(tmp_path: Path, bytecode_cache: Path, aerich: Aerich, **settings: str) -> Iterator[str]:
    """`python main.py` with `settings` on a migrated SQLite database; its base URL."""
    database = f"sqlite://{tmp_path / 'served.sqlite3'}"
    aerich.upgrade(database)
    port = free_port()
    env = {
        **child_environment(bytecode_cache),
        "DATABASE_URL": database,
        "SECRET": TEST_SECRET,
        "PORT": str(port),
        "LOG_LEVEL": "warning",
        **settings,
    }
    process = subprocess.Popen(  # noqa: S603 (this venv's Python, fixed arguments)
        [sys.executable, str(ROOT / "main.py")], cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "main.py exited"
            assert time.monotonic() < deadline, "main.py did not answer within 30 s"
            try:
                httpx.get(f"{url}/health/live", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def send_raw(port: int, request: bytes) -> bytes:
    """Send `request` on a new connection; whatever comes back before the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
        return received


def test_a_one_megabyte_header_is_refused_quickly_while_others_are_served(served: str) -> None:
    """MAX_HEADER_BYTES (16 KiB) bounds the request head; other clients keep their latency."""
    port = int(served.rsplit(":", 1)[1])
    huge = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n"
    small = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Fine: " + b"a" * 8_000 + b"\r\n"
    small += b"Connection: close\r\n\r\n"
    statuses: list[int] = []
    latencies: list[float] = []
    stop = threading.Event()

    def other_client() -> None:
        with httpx.Client(base_url=served, timeout=10) as client:
            while not stop.is_set():
                started = time.monotonic()
                statuses.append(client.get("/health/live").status_code)
                latencies.append(time.monotonic() - started)

    other = threading.Thread(target=other_client)
    other.start()
    answers: list[tuple[float, bytes]] = []
    try:
        # Huge heads back to back, until the other client has had 50 answers meanwhile.
        deadline = time.monotonic() + 20
        while len(statuses) < 50 and time.monotonic() < deadline:
            started = time.monotonic()
            answer = send_raw(port, huge)
            answers.append((time.monotonic() - started, answer))
    finally:
        stop.set()
        other.join(timeout=30)

    assert send_raw(port, small).startswith(b"HTTP/1.1 200 ")
    assert len(statuses) >= 50, "the other client was held up"
    assert set(statuses) == {200}
    assert max(latencies) < 1, f"another client waited {max(latencies):.2f} s"
    for seconds, answer in answers:  # a 400, or the connection closed under the sender
        assert answer == b"" or answer.startswith(b"HTTP/1.1 400 "), answer[:100]
        assert seconds < 1, f"a 1 MB header took {seconds:.2f} s to refuse"


def test_behind_a_proxy_the_faster_parser_can_be_chosen(
    tmp_path: Path, bytecode_cache: Path, aerich: Aerich
) -> None:
    """HTTP_PARSER=httptools: no head limit of its own (the proxy's bounds it), h11 refuses."""
    head = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000
    head += b"\r\nConnection: close\r\n\r\n"
    with serving(tmp_path, bytecode_cache, aerich, HTTP_PARSER="httptools") as url:
        assert send_raw(int(url.rsplit(":", 1)[1]), head).startswith(b"HTTP/1.1 200 ")
    with serving(tmp_path, bytecode_cache, aerich, HTTP_PARSER="h11") as url:
        answer = send_raw(int(url.rsplit(":", 1)[1]), head)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 400 "), answer[:100]
