"""The users router (`/users/me`, `/users/{id}`) and who may reach the authenticated routes."""

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from app.models import UserDB
from app.settings import Settings
from tests.conftest import PASSWORD, CreateUser, Login, assert_error

NEW_PASSWORD = "a completely different passphrase"
# Valid JSON whose string is lone surrogates: Python text with no UTF-8 encoding.
UNENCODABLE_PASSWORD_BODY = (
    b'{"current_password": "' + PASSWORD.encode() + b'", "password": "' + b"\\ud800" * 8 + b'"}'
)
OTHER_SECRET = "some-other-secret-that-is-long-enough-for-hs256"
USER_ROUTE_METHODS = [
    pytest.param("GET", None, id="GET"),
    pytest.param("PATCH", {"is_verified": True}, id="PATCH"),
    pytest.param("DELETE", None, id="DELETE"),
]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login_status(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/auth/jwt/login", data={"username": email, "password": password})


async def get_me(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, object]:
    response = await client.get("/users/me", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


# --- GET /users/me -------------------------------------------------------------------------


async def test_get_me_returns_the_current_user(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str]
) -> None:
    response = await client.get("/users/me", headers=auth_headers)

    assert response.status_code == 200
    assert response.json() == {
        "id": str(user.id),
        "email": "user@example.com",
        "is_active": True,
        "is_superuser": False,
        "is_verified": False,
    }


@pytest.mark.parametrize("method", ["GET", "PATCH"])
async def test_me_without_token_is_401(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, "/users/me", json={})

    assert response.status_code == 401


def access_token(headers: dict[str, str], secret: str, lifetime_seconds: int) -> str:
    """The access token in `headers`, made by hand again: signed with `secret`, a new expiry."""
    claims = jwt.decode(
        headers["Authorization"].removeprefix("Bearer "),
        options={"verify_signature": False},
    )
    claims["exp"] = datetime.now(UTC) + timedelta(seconds=lifetime_seconds)
    return jwt.encode(claims, secret, algorithm="HS256")


async def test_hand_made_access_token_is_accepted(
    client: httpx.AsyncClient, auth_headers: dict[str, str], settings: Settings
) -> None:
    token = access_token(auth_headers, settings.jwt_secret, 60)

    response = await client.get("/users/me", headers=bearer(token))

    assert response.status_code == 200


@pytest.mark.parametrize("method", ["GET", "PATCH"])
@pytest.mark.parametrize("kind", ["garbage", "other-secret", "expired"])
async def test_me_with_bad_token_is_401(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    settings: Settings,
    method: str,
    kind: str,
) -> None:
    token = {
        "garbage": "not-a-jwt",
        "other-secret": access_token(auth_headers, OTHER_SECRET, 60),
        "expired": access_token(auth_headers, settings.jwt_secret, -60),
    }[kind]

    response = await client.request(method, "/users/me", json={}, headers=bearer(token))

    assert response.status_code == 401


async def test_unverified_user_reaches_the_authenticated_routes(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str]
) -> None:
    assert user.is_verified is False

    me = await client.get("/users/me", headers=auth_headers)
    greeting = await client.get("/authenticated-route", headers=auth_headers)

    assert me.status_code == 200
    assert greeting.status_code == 200
    assert greeting.json() == {"message": "Hello user@example.com!"}


# --- PATCH /users/me -----------------------------------------------------------------------


async def test_patch_me_email_is_stored_lowercase_and_unverifies(
    client: httpx.AsyncClient, create_user: CreateUser, login: Login
) -> None:
    await create_user("user@example.com", is_verified=True)
    headers = await login("user@example.com")

    response = await client.patch(
        "/users/me",
        json={"email": "New.Address@Example.COM", "current_password": PASSWORD},
        headers=headers,
    )

    assert response.status_code == 200, response.text
    assert response.json()["email"] == "new.address@example.com"
    assert response.json()["is_verified"] is False
    me = await get_me(client, headers)
    assert me["email"] == "new.address@example.com"
    assert me["is_verified"] is False
    assert (await login_status(client, "new.address@example.com", PASSWORD)).status_code == 200
    assert (await login_status(client, "user@example.com", PASSWORD)).status_code == 400


@pytest.mark.parametrize("taken", ["admin@example.com", "Admin@EXAMPLE.com"])
async def test_patch_me_to_a_taken_email_is_refused(
    client: httpx.AsyncClient,
    superuser: UserDB,
    auth_headers: dict[str, str],
    taken: str,
) -> None:
    response = await client.patch(
        "/users/me", json={"email": taken, "current_password": PASSWORD}, headers=auth_headers
    )

    assert_error(response, "UPDATE_USER_EMAIL_ALREADY_EXISTS")
    assert (await get_me(client, auth_headers))["email"] == "user@example.com"


async def test_patch_me_own_email_in_other_case_changes_nothing(
    client: httpx.AsyncClient, create_user: CreateUser, login: Login
) -> None:
    await create_user("user@example.com", is_verified=True)
    headers = await login("user@example.com")

    response = await client.patch("/users/me", json={"email": "USER@Example.com"}, headers=headers)

    assert response.status_code == 200, response.text
    assert response.json()["email"] == "user@example.com"
    assert response.json()["is_verified"] is True


async def test_patch_me_too_short_password_is_refused(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str], settings: Settings
) -> None:
    short = "x" * (settings.password_min_length - 1)

    response = await client.patch(
        "/users/me", json={"password": short, "current_password": PASSWORD}, headers=auth_headers
    )

    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail["code"] == "UPDATE_USER_INVALID_PASSWORD"
    assert str(settings.password_min_length) in detail["reason"]
    assert (await login_status(client, user.email, short)).status_code == 400
    assert (await login_status(client, user.email, PASSWORD)).status_code == 200


async def test_patch_me_unencodable_password_is_refused(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str]
) -> None:
    response = await client.patch(
        "/users/me",
        content=UNENCODABLE_PASSWORD_BODY,
        headers={**auth_headers, "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["detail"]["code"] == "UPDATE_USER_INVALID_PASSWORD"


async def test_patch_me_password_replaces_the_old_one(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str]
) -> None:
    response = await client.patch(
        "/users/me",
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
        headers=auth_headers,
    )

    assert response.status_code == 200, response.text
    assert "password" not in response.json()
    assert "hashed_password" not in response.json()
    old = await login_status(client, user.email, PASSWORD)
    assert_error(old, "LOGIN_BAD_CREDENTIALS", error="invalid_grant")
    assert (await login_status(client, user.email, NEW_PASSWORD)).status_code == 200


@pytest.mark.parametrize(
    ("field", "value"),
    [("is_superuser", True), ("is_active", False), ("is_verified", True)],
)
async def test_patch_me_cannot_change_privilege_fields(
    client: httpx.AsyncClient,
    user: UserDB,
    auth_headers: dict[str, str],
    field: str,
    value: bool,
) -> None:
    response = await client.patch("/users/me", json={field: value}, headers=auth_headers)

    assert response.status_code == 200, response.text
    assert response.json()[field] is (not value)
    assert (await get_me(client, auth_headers))[field] is (not value)


@pytest.mark.parametrize("field", ["id", "hashed_password"])
async def test_patch_me_ignores_fields_outside_the_update_schema(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str], field: str
) -> None:
    response = await client.patch(
        "/users/me", json={field: str(uuid.uuid4())}, headers=auth_headers
    )

    assert response.status_code == 200, response.text
    assert (await get_me(client, auth_headers))["id"] == str(user.id)
    assert (await login_status(client, user.email, PASSWORD)).status_code == 200


async def test_patch_me_cannot_reach_superuser_routes_by_escalating(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str]
) -> None:
    patched = await client.patch("/users/me", json={"is_superuser": True}, headers=auth_headers)
    assert patched.status_code == 200, patched.text

    response = await client.get(f"/users/{user.id}", headers=auth_headers)

    assert response.status_code == 403


@pytest.mark.parametrize("field", ["email", "password", "is_active", "is_verified"])
async def test_patch_me_explicit_null_is_422(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str], field: str
) -> None:
    response = await client.patch("/users/me", json={field: None}, headers=auth_headers)

    assert response.status_code == 422
    me = await get_me(client, auth_headers)
    assert me["email"] == "user@example.com"
    assert me["is_active"] is True


async def test_patch_me_with_invalid_email_is_422(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str]
) -> None:
    response = await client.patch("/users/me", json={"email": "not-an-email"}, headers=auth_headers)

    assert response.status_code == 422


# --- /users/{id} ---------------------------------------------------------------------------


async def test_superuser_gets_a_user_by_id(
    client: httpx.AsyncClient, user: UserDB, superuser_headers: dict[str, str]
) -> None:
    response = await client.get(f"/users/{user.id}", headers=superuser_headers)

    assert response.status_code == 200
    assert response.json() == {
        "id": str(user.id),
        "email": "user@example.com",
        "is_active": True,
        "is_superuser": False,
        "is_verified": False,
    }


async def test_superuser_patches_privilege_fields_of_a_user(
    client: httpx.AsyncClient,
    user: UserDB,
    superuser_headers: dict[str, str],
    auth_headers: dict[str, str],
) -> None:
    response = await client.patch(
        f"/users/{user.id}",
        json={"is_superuser": True, "is_verified": True},
        headers=superuser_headers,
    )

    assert response.status_code == 200, response.text
    assert response.json()["is_superuser"] is True
    assert response.json()["is_verified"] is True
    me = await get_me(client, auth_headers)
    assert me["is_superuser"] is True
    assert me["is_verified"] is True


async def test_superuser_patches_email_of_a_user_to_lowercase(
    client: httpx.AsyncClient, create_user: CreateUser, superuser_headers: dict[str, str]
) -> None:
    target = await create_user("user@example.com", is_verified=True)

    response = await client.patch(
        f"/users/{target.id}", json={"email": "Renamed@Example.com"}, headers=superuser_headers
    )

    assert response.status_code == 200, response.text
    assert response.json()["email"] == "renamed@example.com"
    assert response.json()["is_verified"] is False
    assert (await login_status(client, "Renamed@Example.com", PASSWORD)).status_code == 200


async def test_superuser_sets_a_password_of_a_user(
    client: httpx.AsyncClient, user: UserDB, superuser_headers: dict[str, str]
) -> None:
    response = await client.patch(
        f"/users/{user.id}", json={"password": NEW_PASSWORD}, headers=superuser_headers
    )

    assert response.status_code == 200, response.text
    assert (await login_status(client, user.email, PASSWORD)).status_code == 400
    assert (await login_status(client, user.email, NEW_PASSWORD)).status_code == 200


async def test_superuser_patch_with_too_short_password_is_refused(
    client: httpx.AsyncClient, user: UserDB, superuser_headers: dict[str, str]
) -> None:
    response = await client.patch(
        f"/users/{user.id}", json={"password": "short"}, headers=superuser_headers
    )

    assert response.status_code == 400
    assert response.json()["detail"]["code"] == "UPDATE_USER_INVALID_PASSWORD"
    assert isinstance(response.json()["detail"]["reason"], str)


@pytest.mark.parametrize("taken", ["admin@example.com", "ADMIN@example.com"])
async def test_superuser_patch_to_a_taken_email_is_refused(
    client: httpx.AsyncClient, user: UserDB, superuser_headers: dict[str, str], taken: str
) -> None:
    response = await client.patch(
        f"/users/{user.id}", json={"email": taken}, headers=superuser_headers
    )

    assert_error(response, "UPDATE_USER_EMAIL_ALREADY_EXISTS")
    unchanged = await client.get(f"/users/{user.id}", headers=superuser_headers)
    assert unchanged.json()["email"] == "user@example.com"


@pytest.mark.parametrize("field", ["email", "is_active", "is_superuser"])
async def test_superuser_patch_with_explicit_null_is_422(
    client: httpx.AsyncClient, user: UserDB, superuser_headers: dict[str, str], field: str
) -> None:
    response = await client.patch(
        f"/users/{user.id}", json={field: None}, headers=superuser_headers
    )

    assert response.status_code == 422


async def test_superuser_deletes_a_user(
    client: httpx.AsyncClient,
    user: UserDB,
    superuser_headers: dict[str, str],
    auth_headers: dict[str, str],
) -> None:
    response = await client.delete(f"/users/{user.id}", headers=superuser_headers)

    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get("/users/me", headers=auth_headers)).status_code == 401
    gone = await client.get(f"/users/{user.id}", headers=superuser_headers)
    assert gone.status_code == 404
    assert (await login_status(client, user.email, PASSWORD)).status_code == 400


@pytest.mark.parametrize(("method", "body"), USER_ROUTE_METHODS)
@pytest.mark.parametrize("target", ["self", "other"])
async def test_regular_user_is_forbidden_on_user_routes(
    client: httpx.AsyncClient,
    user: UserDB,
    superuser: UserDB,
    auth_headers: dict[str, str],
    superuser_headers: dict[str, str],
    method: str,
    body: dict[str, bool] | None,
    target: str,
) -> None:
    target_id = user.id if target == "self" else superuser.id

    response = await client.request(method, f"/users/{target_id}", json=body, headers=auth_headers)

    assert response.status_code == 403
    untouched = await client.get(f"/users/{target_id}", headers=superuser_headers)
    assert untouched.status_code == 200
    assert untouched.json()["is_verified"] is (target == "other")


@pytest.mark.parametrize(("method", "body"), USER_ROUTE_METHODS)
async def test_user_routes_without_token_are_401(
    client: httpx.AsyncClient, user: UserDB, method: str, body: dict[str, bool] | None
) -> None:
    response = await client.request(method, f"/users/{user.id}", json=body)

    assert response.status_code == 401


@pytest.mark.parametrize(("method", "body"), USER_ROUTE_METHODS)
@pytest.mark.parametrize(
    "user_id",
    [str(uuid.uuid4()), "not-a-uuid", "123"],
    ids=["unknown-uuid", "not-a-uuid", "integer"],
)
async def test_user_routes_with_unknown_id_are_404(
    client: httpx.AsyncClient,
    superuser_headers: dict[str, str],
    method: str,
    body: dict[str, bool] | None,
    user_id: str,
) -> None:
    response = await client.request(
        method, f"/users/{user_id}", json=body, headers=superuser_headers
    )

    assert response.status_code == 404


# --- inactive users ------------------------------------------------------------------------


async def test_deactivated_user_loses_access_and_cannot_log_in(
    client: httpx.AsyncClient,
    user: UserDB,
    superuser_headers: dict[str, str],
    auth_headers: dict[str, str],
) -> None:
    response = await client.patch(
        f"/users/{user.id}", json={"is_active": False}, headers=superuser_headers
    )

    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is False
    assert (await client.get("/users/me", headers=auth_headers)).status_code == 401
    assert (await client.patch("/users/me", json={}, headers=auth_headers)).status_code == 401
    assert (await client.get("/authenticated-route", headers=auth_headers)).status_code == 401
    login = await login_status(client, user.email, PASSWORD)
    assert_error(login, "LOGIN_BAD_CREDENTIALS", error="invalid_grant")


async def test_reactivated_user_can_log_in_again(
    client: httpx.AsyncClient, user: UserDB, superuser_headers: dict[str, str]
) -> None:
    for active in (False, True):
        response = await client.patch(
            f"/users/{user.id}", json={"is_active": active}, headers=superuser_headers
        )
        assert response.status_code == 200, response.text

    assert (await login_status(client, user.email, PASSWORD)).status_code == 200


async def test_deactivated_superuser_loses_superuser_routes(
    client: httpx.AsyncClient,
    create_user: CreateUser,
    login: Login,
    user: UserDB,
    superuser_headers: dict[str, str],
) -> None:
    other = await create_user("other-admin@example.com", is_superuser=True)
    other_headers = await login(other.email)

    await client.patch(f"/users/{other.id}", json={"is_active": False}, headers=superuser_headers)

    response = await client.get(f"/users/{user.id}", headers=other_headers)
    assert response.status_code == 401
