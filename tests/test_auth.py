"""Register, login, logout, the authenticated route, and what a bearer token must be."""

import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from app.models import User, UserDB
from app.settings import Settings
from tests.conftest import (
    PASSWORD,
    TEST_SECRET,
    CreateUser,
    Login,
    Mailbox,
    assert_error,
    token_in,
)


async def register(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    """POST /auth/register."""
    return await client.post("/auth/register", json={"email": email, "password": password})


async def test_register_creates_an_active_unverified_user(client: httpx.AsyncClient) -> None:
    response = await register(client, "new@example.com")

    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "new@example.com"
    assert (body["is_active"], body["is_superuser"], body["is_verified"]) == (True, False, False)
    assert uuid.UUID(body["id"])
    assert "password" not in body
    assert "hashed_password" not in body


async def test_register_ignores_privileged_fields(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/register",
        json={"email": "sly@example.com", "password": PASSWORD, "is_superuser": True,
              "is_verified": True, "is_active": False},
    )  # fmt: skip

    assert response.status_code == 201
    body = response.json()
    assert (body["is_active"], body["is_superuser"], body["is_verified"]) == (True, False, False)


async def test_register_stores_the_email_in_lower_case(client: httpx.AsyncClient) -> None:
    response = await register(client, "Alice@Example.COM")

    assert response.status_code == 201
    assert response.json()["email"] == "alice@example.com"


@pytest.mark.parametrize("second", ["user@example.com", "USER@example.com", "User@Example.Com"])
async def test_register_twice_is_refused_whatever_the_case(
    client: httpx.AsyncClient, user: UserDB, second: str
) -> None:
    response = await register(client, second)

    assert_error(response, "REGISTER_USER_ALREADY_EXISTS")


async def test_register_refuses_a_short_password(client: httpx.AsyncClient) -> None:
    response = await register(client, "short@example.com", "1234567")

    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail["code"] == "REGISTER_INVALID_PASSWORD"
    assert "8 characters" in detail["reason"]


async def test_register_refuses_an_unencodable_password(client: httpx.AsyncClient) -> None:
    # A lone surrogate is valid JSON but cannot be encoded for hashing.
    content = '{"email": "odd@example.com", "password": "abcdefgh\\ud800"}'
    response = await client.post(
        "/auth/register", content=content, headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["detail"]["code"] == "REGISTER_INVALID_PASSWORD"


@pytest.mark.parametrize(
    "body",
    [
        {"password": PASSWORD},
        {"email": "no-password@example.com"},
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "a" * 310 + "@example.com", "password": PASSWORD},
        {"email": "nul\u0000@example.com", "password": PASSWORD},
    ],
    ids=["no-email", "no-password", "bad-email", "too-long-email", "nul-in-email"],
)
async def test_register_validates_the_body(client: httpx.AsyncClient, body: dict[str, str]) -> None:
    response = await client.post("/auth/register", json=body)

    assert response.status_code == 422


@pytest.mark.parametrize("spelling", ["user@example.com", "USER@EXAMPLE.COM", "User@example.com"])
async def test_login_with_any_case_of_the_email(
    client: httpx.AsyncClient, user: UserDB, spelling: str
) -> None:
    response = await client.post(
        "/auth/jwt/login", data={"username": spelling, "password": PASSWORD}
    )

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    claims = jwt.decode(
        body["access_token"], TEST_SECRET, algorithms=["HS256"], audience="fastapi-users:auth"
    )
    assert claims["sub"] == str(user.id)


async def test_login_token_lives_for_the_configured_lifetime(
    client: httpx.AsyncClient, user: UserDB, login: Login, settings: Settings
) -> None:
    headers = await login(user.email)
    token = headers["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, options={"verify_signature": False})

    assert settings.jwt_lifetime_seconds == 3600
    assert abs(claims["exp"] - time.time() - 3600) < 60


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("user@example.com", "wrong password!"),
        ("nobody@example.com", PASSWORD),
        ("not an email at all", PASSWORD),
        ("nul\x00@example.com", PASSWORD),
        ("x" * 5000, PASSWORD),
    ],
    ids=["wrong-password", "unknown-user", "not-an-email", "nul-byte", "very-long"],
)
async def test_login_refuses_bad_credentials(
    client: httpx.AsyncClient, user: UserDB, username: str, password: str
) -> None:
    response = await client.post(
        "/auth/jwt/login", data={"username": username, "password": password}
    )

    assert_error(response, "LOGIN_BAD_CREDENTIALS", error="invalid_grant")


async def test_login_refuses_an_inactive_user(
    client: httpx.AsyncClient, create_user: CreateUser
) -> None:
    inactive = await create_user("inactive@example.com", is_active=False)

    response = await client.post(
        "/auth/jwt/login", data={"username": inactive.email, "password": PASSWORD}
    )

    assert_error(response, "LOGIN_BAD_CREDENTIALS", error="invalid_grant")


async def test_login_requires_both_fields(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/jwt/login", data={"username": "user@example.com"})

    assert response.status_code == 422


async def test_logout_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/jwt/logout")

    assert response.status_code == 401


async def test_logout_with_a_token(client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
    response = await client.post("/auth/jwt/logout", headers=auth_headers)

    assert response.status_code == 204
    assert (await client.get("/users/me", headers=auth_headers)).status_code == 401


async def test_authenticated_route_greets_the_user(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    response = await client.get("/authenticated-route", headers=auth_headers)

    assert response.status_code == 200
    assert response.json() == {"message": "Hello user@example.com!"}


async def test_authenticated_route_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/authenticated-route")

    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}


async def test_full_flow_register_login_me(client: httpx.AsyncClient, login: Login) -> None:
    assert (await register(client, "Flow@Example.com")).status_code == 201
    headers = await login("flow@example.COM")

    response = await client.get("/users/me", headers=headers)

    assert response.status_code == 200
    assert response.json()["email"] == "flow@example.com"


def forge(claims: dict[str, object], secret: str = TEST_SECRET, algorithm: str = "HS256") -> str:
    """A token with these claims, signed as asked."""
    return jwt.encode(claims, secret, algorithm=algorithm)


def alg_none(claims: dict[str, object]) -> str:
    """An unsigned token (`alg: none`)."""
    return jwt.encode(claims, None, algorithm="none")


def claims_of(headers: dict[str, str]) -> dict[str, Any]:
    """The claims of the access token in bearer `headers`."""
    token = headers["Authorization"].removeprefix("Bearer ")
    claims: dict[str, Any] = jwt.decode(
        token, TEST_SECRET, algorithms=["HS256"], audience="fastapi-users:auth"
    )
    return claims


def valid(claims: dict[str, Any], **changes: object) -> dict[str, Any]:
    """`claims` with `changes`; a change to None removes the claim."""
    changed = {**claims, **changes}
    return {name: value for name, value in changed.items() if value is not None}


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda c: forge(c, "another-secret" * 4), id="wrong-secret"),
        pytest.param(lambda c: alg_none(c), id="none"),
        pytest.param(lambda c: forge(valid(c, exp=1)), id="expired"),
        pytest.param(lambda c: forge(valid(c, exp=None)), id="no-exp"),
        pytest.param(lambda c: forge(valid(c, iat=None)), id="no-iat"),
        pytest.param(lambda c: forge(valid(c, sid=None)), id="no-sid"),
        pytest.param(lambda c: forge(valid(c, sid=str(uuid.uuid4()))), id="unknown-sid"),
        pytest.param(lambda c: forge(valid(c, sid="not-a-uuid")), id="bad-sid"),
        pytest.param(lambda c: forge(valid(c, aud=["somebody-else"])), id="wrong-aud"),
        pytest.param(lambda c: forge(valid(c, aud=None)), id="no-aud"),
        pytest.param(lambda c: forge(valid(c, aud=["fastapi-users:reset"])), id="reset-aud"),
        pytest.param(lambda c: forge(valid(c, aud=["fastapi-users:verify"])), id="verify-aud"),
        pytest.param(lambda c: forge(valid(c, sub="not-a-uuid")), id="bad-sub"),
        pytest.param(lambda c: forge(valid(c, sub=str(uuid.uuid4()))), id="other-user"),
        pytest.param(lambda c: forge(valid(c, sub=None)), id="no-sub"),
        pytest.param(lambda c: forge({"sub": c["sub"], "aud": c["aud"]}), id="pre-session"),
        pytest.param(lambda c: "not.a.jwt", id="garbage"),
    ],
)
async def test_tampered_tokens_are_refused(
    client: httpx.AsyncClient, auth_headers: dict[str, str], make_token: object
) -> None:
    assert callable(make_token)
    token = make_token(claims_of(auth_headers))

    response = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401


async def test_a_well_forged_token_is_accepted(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    """The counterpart of the tampering cases: the same claims, properly signed, work."""
    token = forge(valid(claims_of(auth_headers), iat=int(time.time()) - 5))

    response = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200


async def test_reset_token_from_the_flow_is_not_a_bearer_token(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox
) -> None:
    await client.post("/auth/forgot-password", json={"email": user.email})
    token = token_in(await mailbox.only_message())

    response = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401


async def test_openapi_lists_the_routes(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")

    paths = set(response.json()["paths"])
    assert {
        "/auth/jwt/login", "/auth/jwt/logout", "/auth/register", "/auth/forgot-password",
        "/auth/reset-password", "/auth/request-verify-token", "/auth/verify", "/users/me",
        "/users/{id}", "/authenticated-route",
    } <= paths  # fmt: skip
    docs = await client.get("/docs")
    assert docs.status_code == 200


@pytest.mark.parametrize(
    "old_hash",
    [
        pytest.param(lambda pw: BcryptHasher().hash(pw), id="bcrypt"),
        pytest.param(
            lambda pw: Argon2Hasher(time_cost=2, memory_cost=16, parallelism=1).hash(pw),
            id="argon2-other-parameters",
        ),
    ],
)
async def test_login_upgrades_an_old_hash(
    client: httpx.AsyncClient, user: UserDB, settings: Settings, old_hash: object
) -> None:
    assert callable(old_hash)
    await User.filter(id=user.id).update(hashed_password=old_hash(PASSWORD))

    response = await client.post(
        "/auth/jwt/login", data={"username": user.email, "password": PASSWORD}
    )

    assert response.status_code == 200
    stored = (await User.get(id=user.id)).hashed_password
    assert stored.startswith("$argon2id$")
    assert f"m={settings.password_hash_memory_cost},t={settings.password_hash_time_cost}" in stored
