"""Two uvicorn workers on one database: a session ended on one is refused on the other at once.

Each worker is its own `uvicorn app.app:app` process on its own port (so the test knows
which one answers), both on the test database; nothing is cached between them.
"""

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests.conftest import PASSWORD, ROOT, TEST_SECRET, child_environment, free_port

STARTUP_SECONDS = 20


def start_worker(settings: Settings, bytecode_cache: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A uvicorn process serving the app on the test database; returns it and its URL."""
    port = free_port()
    env = {
        **child_environment(bytecode_cache),
        "ENVIRONMENT": "development",
        "DATABASE_URL": settings.database_url,
        "SECRET": TEST_SECRET,
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_COST": "8",
        "PASSWORD_HASH_PARALLELISM": "1",
        "RATE_LIMITS_ENABLED": "false",
        "LOG_LEVEL": "warning",
    }
    process = subprocess.Popen(  # noqa: S603 (this interpreter's uvicorn, fixed arguments)
        [sys.executable, "-m", "uvicorn", "app.app:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


def wait_until_serving(process: subprocess.Popen[bytes], url: str) -> None:
    """Wait (bounded) until the worker answers."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, "uvicorn exited during start-up"
        try:
            if httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"uvicorn did not answer within {STARTUP_SECONDS} s")


@pytest.fixture
def workers(db: None, settings: Settings, bytecode_cache: Path) -> Iterator[tuple[str, str]]:
    """Two workers on the (emptied) test database: their URLs."""
    started = [start_worker(settings, bytecode_cache) for _ in range(2)]
    try:
        for process, url in started:
            wait_until_serving(process, url)
        yield started[0][1], started[1][1]
    finally:
        for process, _ in started:
            process.terminate()
        for process, _ in started:
            process.wait(timeout=15)


def test_logout_on_one_worker_is_refused_on_the_other(workers: tuple[str, str]) -> None:
    first, second = workers
    email = "worker@example.com"
    with httpx.Client(timeout=10) as http:
        assert (
            http.post(
                f"{first}/auth/register", json={"email": email, "password": PASSWORD}
            ).status_code
            == 201
        )
        tokens = http.post(
            f"{first}/auth/jwt/login", data={"username": email, "password": PASSWORD}
        ).json()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert http.get(f"{second}/users/me", headers=headers).status_code == 200

        assert http.post(f"{first}/auth/jwt/logout", headers=headers).status_code == 204

        assert http.get(f"{second}/users/me", headers=headers).status_code == 401
        refreshed = http.post(
            f"{second}/auth/jwt/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 400
