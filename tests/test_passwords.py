"""Password hashing: off the event loop, bounded, and at least as strong as OWASP asks.

These tests hash with real (not test-cheap) parameters, since hashing is their subject.
"""

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from app.models import UserDB
from app.passwords import NoInlineHashing, PasswordHasher
from app.settings import Settings
from tests.conftest import PASSWORD

# Costly enough that a hash outlasts many turns of the event loop.
SLOW_HASH = {"password_hash_time_cost": 3, "password_hash_memory_cost": 65536}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test settings with slow hashing and room for two hashes at a time."""
    return settings.model_copy(update={**SLOW_HASH, "password_hash_concurrency": 2})


def test_defaults_are_no_weaker_than_owasp_argon2id() -> None:
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]

    assert defaults.password_hash_memory_cost >= 19 * 1024
    assert defaults.password_hash_time_cost >= 2
    assert defaults.password_hash_parallelism >= 1
    assert defaults.password_hash_concurrency >= 1


async def test_the_event_loop_serves_requests_while_a_login_hashes(
    client: httpx.AsyncClient, app: FastAPI, user: UserDB, auth_headers: dict[str, str]
) -> None:
    limiter = app.state.password_hasher.limiter
    login = asyncio.create_task(
        client.post("/auth/jwt/login", data={"username": user.email, "password": PASSWORD})
    )
    # Seen from the event loop, a hash in flight proves the loop is not the one hashing.
    while limiter.borrowed_tokens == 0 and not login.done():  # noqa: ASYNC110 (polling is the point)
        await asyncio.sleep(0)
    assert limiter.borrowed_tokens == 1, "the login finished without hashing in a thread"

    served = await client.get("/authenticated-route", headers=auth_headers)

    assert served.status_code == 200
    assert (await login).status_code == 200


async def test_concurrent_hashes_are_bounded(client: httpx.AsyncClient, app: FastAPI) -> None:
    limiter = app.state.password_hasher.limiter
    registrations = [
        asyncio.create_task(
            client.post("/auth/register", json={"email": f"u{n}@example.com", "password": PASSWORD})
        )
        for n in range(6)
    ]
    most_at_once = most_waiting = 0
    while not all(task.done() for task in registrations):
        most_at_once = max(most_at_once, limiter.borrowed_tokens)
        most_waiting = max(most_waiting, limiter.statistics().tasks_waiting)
        await asyncio.sleep(0)

    assert [(await task).status_code for task in registrations] == [201] * 6
    assert most_at_once == 2
    assert most_waiting >= 1


async def test_hasher_verifies_what_it_hashed_and_flags_outdated_hashes(
    settings: Settings,
) -> None:
    hasher = PasswordHasher(settings)
    cheaper = PasswordHasher(settings.model_copy(update={"password_hash_time_cost": 1}))
    hashed = await hasher.hash(PASSWORD)

    assert await hasher.verify_and_update(PASSWORD, hashed) == (True, None)
    assert await hasher.verify_and_update("not the password", hashed) == (False, None)
    verified, upgraded = await hasher.verify_and_update(PASSWORD, await cheaper.hash(PASSWORD))
    assert verified
    assert upgraded is not None
    assert "t=3" in upgraded


def test_fingerprint_changes_with_the_hash_and_the_secret(settings: Settings) -> None:
    hasher = PasswordHasher(settings)
    other_secret = PasswordHasher(settings.model_copy(update={"secret": "x" * 40}))

    assert hasher.fingerprint("$argon2id$a") == hasher.fingerprint("$argon2id$a")
    assert hasher.fingerprint("$argon2id$a") != hasher.fingerprint("$argon2id$b")
    assert hasher.fingerprint("$argon2id$a") != other_secret.fingerprint("$argon2id$a")


def test_the_base_manager_cannot_hash_on_the_event_loop() -> None:
    helper = NoInlineHashing()

    with pytest.raises(RuntimeError):
        helper.hash(PASSWORD)
    with pytest.raises(RuntimeError):
        helper.verify_and_update(PASSWORD, "$argon2id$")
    assert helper.generate()
