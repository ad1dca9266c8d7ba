"""The password policy on register, reset and update, and re-authentication on `PATCH /users/me`."""

import httpx
import pytest

from app.models import User, UserDB
from app.password_policy import password_problem
from app.settings import Settings
from tests.conftest import (
    PASSWORD,
    CreateUser,
    Login,
    Mailbox,
    assert_error,
    token_in,
    with_settings,
)

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

NEW_PASSWORD = "a completely different passphrase"
# 200 characters, strong from its first word; bcrypt would have kept only 72 bytes of it.
LONG_PASSWORD = ("quartz lantern " + "".join(f"{i:03d}" for i in range(100)))[:200]


@pytest.mark.usefixtures("backend")
@pytest.mark.parametrize(
    ("password", "email", "reason"),
    [
        (PASSWORD, "user@example.com", None),
        (LONG_PASSWORD, "user@example.com", None),
        ("Tr0ub4dor&3", "user@example.com", None),
        ("short", "user@example.com", "at least 8 characters"),
        ("password123", "user@example.com", "too easy to guess"),
        ("qwertyuiop", "user@example.com", "too easy to guess"),
        ("aaaaaaaaaaaaaaaa", "user@example.com", "too easy to guess"),
        ("alice.smith plus horses", "alice.smith@example.com", "e-mail"),
        ("my ALICE.SMITH horses", "Alice.Smith@example.com", "e-mail"),
        ("jo quartz lantern", "jo@example.com", None),
        ("abcdefgh\ud800", "user@example.com", "cannot be encoded"),
    ],
    ids=[
        "passphrase", "long", "mixed", "too-short", "common", "keyboard", "repeats",
        "contains-local-part", "contains-local-part-any-case", "short-local-part-not-checked",
        "unencodable",
    ],
)  # fmt: skip
def test_password_problem(password: str, email: str, reason: str | None) -> None:
    problem = password_problem(password, email, Settings(_env_file=None))  # type: ignore[call-arg]

    if reason is None:
        assert problem is None
    else:
        assert problem is not None
        assert reason in problem


async def register(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/auth/register", json={"email": email, "password": password})


async def login_status(client: httpx.AsyncClient, email: str, password: str) -> int:
    response = await client.post("/auth/jwt/login", data={"username": email, "password": password})
    return response.status_code


def assert_invalid_password(response: httpx.Response, code: str, reason: str) -> None:
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert detail["code"] == code
    assert reason in detail["reason"]


@pytest.mark.parametrize(
    ("email", "password", "reason"),
    [
        ("weak@example.com", "password123", "too easy to guess"),
        ("alice.smith@example.com", "alice.smith rides horses", "e-mail"),
    ],
    ids=["common", "contains-email"],
)
async def test_register_refuses_a_weak_password(
    client: httpx.AsyncClient, email: str, password: str, reason: str
) -> None:
    response = await register(client, email, password)

    assert_invalid_password(response, "REGISTER_INVALID_PASSWORD", reason)
    assert not await User.exists(email=email)


async def test_a_long_password_is_accepted_and_hashed_in_full(client: httpx.AsyncClient) -> None:
    response = await register(client, "long@example.com", LONG_PASSWORD)

    assert response.status_code == 201, response.text
    assert await login_status(client, "long@example.com", LONG_PASSWORD) == 200
    for prefix in (LONG_PASSWORD[:72], LONG_PASSWORD[:128], LONG_PASSWORD[:-1]):
        assert await login_status(client, "long@example.com", prefix) == 400


async def test_a_password_longer_than_the_estimate_is_checked_whole(
    client: httpx.AsyncClient,
) -> None:
    password = PASSWORD + " " + "z" * 5000

    response = await register(client, "huge@example.com", password)

    assert response.status_code == 201, response.text
    assert await login_status(client, "huge@example.com", password) == 200
    assert await login_status(client, "huge@example.com", password[:256]) == 400


@with_settings(password_min_length=20)
async def test_the_minimum_length_is_a_setting(client: httpx.AsyncClient) -> None:
    response = await register(client, "len@example.com", "quartz lantern ok")

    assert_invalid_password(response, "REGISTER_INVALID_PASSWORD", "at least 20 characters")


@with_settings(password_min_strength=0)
async def test_the_minimum_strength_is_a_setting(client: httpx.AsyncClient) -> None:
    response = await register(client, "weak@example.com", "password123")

    assert response.status_code == 201, response.text


async def test_reset_applies_the_policy(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox
) -> None:
    await client.post("/auth/forgot-password", json={"email": user.email})
    token = token_in(await mailbox.only_message())

    response = await client.post(
        "/auth/reset-password", json={"token": token, "password": "password123"}
    )

    assert_invalid_password(response, "RESET_PASSWORD_INVALID_PASSWORD", "too easy to guess")
    assert await login_status(client, user.email, PASSWORD) == 200


async def test_update_me_applies_the_policy(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str]
) -> None:
    response = await client.patch(
        "/users/me",
        json={"password": "user horses gallop", "current_password": PASSWORD},
        headers=auth_headers,
    )

    assert_invalid_password(response, "UPDATE_USER_INVALID_PASSWORD", "e-mail")
    assert await login_status(client, user.email, PASSWORD) == 200


async def test_superuser_update_applies_the_policy(
    client: httpx.AsyncClient, user: UserDB, superuser_headers: dict[str, str]
) -> None:
    response = await client.patch(
        f"/users/{user.id}", json={"password": "password123"}, headers=superuser_headers
    )

    assert_invalid_password(response, "UPDATE_USER_INVALID_PASSWORD", "too easy to guess")


# --- re-authentication ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [{"password": NEW_PASSWORD}, {"email": "new@example.com"}],
    ids=["password", "email"],
)
@pytest.mark.parametrize(
    "current",
    [{}, {"current_password": "not my password"}, {"current_password": ""}],
    ids=["missing", "wrong", "empty"],
)
async def test_changing_own_email_or_password_needs_the_current_password(
    client: httpx.AsyncClient,
    user: UserDB,
    auth_headers: dict[str, str],
    change: dict[str, str],
    current: dict[str, str],
) -> None:
    response = await client.patch("/users/me", json=change | current, headers=auth_headers)

    assert_error(response, "UPDATE_USER_INVALID_CURRENT_PASSWORD")
    assert await login_status(client, "user@example.com", PASSWORD) == 200
    assert await login_status(client, "new@example.com", PASSWORD) == 400


async def test_an_unencodable_current_password_is_wrong_not_an_error(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str]
) -> None:
    response = await client.patch(
        "/users/me",
        content=b'{"password": "a new passphrase here", "current_password": "\\ud800\\ud800"}',
        headers={**auth_headers, "content-type": "application/json"},
    )

    assert_error(response, "UPDATE_USER_INVALID_CURRENT_PASSWORD")


async def test_the_right_current_password_allows_both_changes(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str]
) -> None:
    response = await client.patch(
        "/users/me",
        json={"email": "new@example.com", "password": NEW_PASSWORD, "current_password": PASSWORD},
        headers=auth_headers,
    )

    assert response.status_code == 200, response.text
    assert "current_password" not in response.json()
    assert await login_status(client, "new@example.com", NEW_PASSWORD) == 200


async def test_other_changes_need_no_current_password(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str]
) -> None:
    response = await client.patch(
        "/users/me", json={"email": "USER@example.com", "is_superuser": True}, headers=auth_headers
    )

    assert response.status_code == 200, response.text


async def test_a_superuser_needs_it_for_their_own_account_too(
    client: httpx.AsyncClient, superuser: UserDB, superuser_headers: dict[str, str]
) -> None:
    response = await client.patch(
        "/users/me", json={"password": NEW_PASSWORD}, headers=superuser_headers
    )

    assert_error(response, "UPDATE_USER_INVALID_CURRENT_PASSWORD")


@pytest.mark.parametrize(
    "current", [{}, {"current_password": "whatever"}], ids=["without", "with-wrong"]
)
async def test_a_superuser_edits_another_user_without_it(
    client: httpx.AsyncClient,
    create_user: CreateUser,
    superuser_headers: dict[str, str],
    login: Login,
    current: dict[str, str],
) -> None:
    target = await create_user("target@example.com")

    response = await client.patch(
        f"/users/{target.id}",
        json={"email": "moved@example.com", "password": NEW_PASSWORD} | current,
        headers=superuser_headers,
    )

    assert response.status_code == 200, response.text
    assert await login_status(client, "moved@example.com", NEW_PASSWORD) == 200


async def test_openapi_describes_current_password(client: httpx.AsyncClient) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]

    field = schemas["UserUpdate"]["properties"]["current_password"]
    assert "PATCH /users/me" in field["description"]
