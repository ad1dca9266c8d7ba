"""Two uvicorn workers on one database: a session ended on one is refused on the other at once,
and one TOTP code is accepted by one of them only.

Each worker is its own `uvicorn app.app:app` process on its own port (so the test knows
which one answers), both on the test database; nothing is cached between them.
"""

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyotp
import pytest

from app.models import MfaTotp
from app.sessions import utcnow
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


async def test_two_workers_cannot_both_accept_one_code(workers: tuple[str, str]) -> None:
    """One TOTP code sent to both workers at once (two logins) signs in exactly once."""
    first, second = workers
    email = "two-factors@example.com"
    async with httpx.AsyncClient(timeout=10) as http:
        registered = await http.post(
            f"{first}/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert registered.status_code == 201
        tokens = (
            await http.post(
                f"{first}/auth/jwt/login", data={"username": email, "password": PASSWORD}
            )
        ).json()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        enrolment = await http.post(
            f"{first}/users/me/mfa/totp", json={"current_password": PASSWORD}, headers=headers
        )
        # Confirmed here, so the code of the current step is still unused for the login.
        await MfaTotp.all().update(confirmed_at=utcnow())
        mfa_tokens = []
        for _ in range(2):
            step = await http.post(
                f"{first}/auth/jwt/login", data={"username": email, "password": PASSWORD}
            )
            assert step.status_code == 401, step.text
            mfa_tokens.append(step.json()["mfa_token"])
        if time.time() % 30 > 27:  # too close to the next step: take that one
            await asyncio.sleep(30 - time.time() % 30)
        code = pyotp.TOTP(enrolment.json()["secret"]).now()

        answers = await asyncio.gather(
            *(
                http.post(f"{url}/auth/mfa/verify", json={"mfa_token": token, "code": code})
                for url, token in zip((first, second), mfa_tokens, strict=True)
            )
        )

    assert sorted(answer.status_code for answer in answers) == [200, 400]
    [refused] = [answer for answer in answers if answer.status_code == 400]
    assert refused.json() == {"detail": "MFA_INVALID_CODE"}
