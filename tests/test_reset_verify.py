"""Password reset (`/auth/forgot-password`, `/auth/reset-password`) and e-mail verification
(`/auth/request-verify-token`, `/auth/verify`) through the JSON API, as a client would drive
them: each token is taken from the mail the in-process SMTP server received."""

from typing import Any

import httpx
import pytest

from app.models import UserDB
from tests.conftest import PASSWORD, CreateUser, Login, Mailbox, assert_error, token_in

NEW_PASSWORD = "a completely different passphrase"
RESET = "Reset"
VERIFICATION = "Verification"
BAD_TOKENS = ["garbage", "", "a.b.c"]


SUBJECTS = {RESET: "Reset your password", VERIFICATION: "Verify your e-mail address"}


async def mailed_tokens(mailbox: Mailbox, kind: str) -> list[str]:
    """The tokens of `kind` ("Reset" or "Verification") mailed so far."""
    return [token_in(m) for m in await mailbox.messages() if m["Subject"] == SUBJECTS[kind]]


async def request_token(client: httpx.AsyncClient, mailbox: Mailbox, kind: str, email: str) -> str:
    """Ask for a token of `kind` for `email` and return the one token that was mailed."""
    path = "/auth/forgot-password" if kind == RESET else "/auth/request-verify-token"
    mailbox.clear()
    response = await client.post(path, json={"email": email})
    assert response.status_code == 202, response.text
    tokens = await mailed_tokens(mailbox, kind)
    assert len(tokens) == 1, tokens
    return tokens[0]


async def login_response(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/auth/jwt/login", data={"username": email, "password": password})


async def reset(client: httpx.AsyncClient, token: str, password: str) -> httpx.Response:
    return await client.post("/auth/reset-password", json={"token": token, "password": password})


async def verify(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/auth/verify", json={"token": token})


# --- POST /auth/forgot-password ------------------------------------------------------------


async def test_forgot_password_mails_a_reset_token_for_an_existing_user(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox
) -> None:
    response = await client.post("/auth/forgot-password", json={"email": user.email})

    assert response.status_code == 202
    assert response.json() is None
    assert len(await mailed_tokens(mailbox, RESET)) == 1


@pytest.mark.parametrize("email", ["USER@EXAMPLE.COM", "User@Example.com"])
async def test_forgot_password_matches_the_email_in_any_case(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox, email: str
) -> None:
    token = await request_token(client, mailbox, RESET, email)

    assert (await reset(client, token, NEW_PASSWORD)).status_code == 200
    assert (await login_response(client, user.email, NEW_PASSWORD)).status_code == 200


async def test_forgot_password_answers_unknown_email_like_a_known_one(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox
) -> None:
    known = await client.post("/auth/forgot-password", json={"email": user.email})
    assert len(await mailed_tokens(mailbox, RESET)) == 1
    mailbox.clear()

    unknown = await client.post("/auth/forgot-password", json={"email": "nobody@example.com"})

    assert unknown.status_code == known.status_code == 202
    assert unknown.content == known.content
    assert await mailed_tokens(mailbox, RESET) == []


async def test_forgot_password_of_an_inactive_user_mails_no_token(
    client: httpx.AsyncClient, create_user: CreateUser, mailbox: Mailbox
) -> None:
    inactive = await create_user("inactive@example.com", is_active=False)

    response = await client.post("/auth/forgot-password", json={"email": inactive.email})

    assert response.status_code == 202
    assert response.json() is None
    assert await mailed_tokens(mailbox, RESET) == []


# --- POST /auth/reset-password -------------------------------------------------------------


async def test_reset_password_replaces_the_password(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox
) -> None:
    token = await request_token(client, mailbox, RESET, user.email)

    response = await reset(client, token, NEW_PASSWORD)

    assert response.status_code == 200, response.text
    old = await login_response(client, user.email, PASSWORD)
    assert_error(old, "LOGIN_BAD_CREDENTIALS", error="invalid_grant")
    assert (await login_response(client, user.email, NEW_PASSWORD)).status_code == 200


async def test_reset_token_cannot_be_used_twice(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox
) -> None:
    token = await request_token(client, mailbox, RESET, user.email)
    assert (await reset(client, token, NEW_PASSWORD)).status_code == 200

    again = await reset(client, token, "yet another passphrase")

    assert_error(again, "RESET_PASSWORD_BAD_TOKEN")
    assert (await login_response(client, user.email, NEW_PASSWORD)).status_code == 200


async def test_reset_token_is_void_once_the_password_changed_otherwise(
    client: httpx.AsyncClient,
    user: UserDB,
    auth_headers: dict[str, str],
    mailbox: Mailbox,
) -> None:
    token = await request_token(client, mailbox, RESET, user.email)
    changed = await client.patch(
        "/users/me",
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
        headers=auth_headers,
    )
    assert changed.status_code == 200, changed.text

    response = await reset(client, token, "yet another passphrase")

    assert_error(response, "RESET_PASSWORD_BAD_TOKEN")


@pytest.mark.parametrize("token", BAD_TOKENS)
async def test_reset_password_with_a_bad_token_is_refused(
    client: httpx.AsyncClient, user: UserDB, token: str
) -> None:
    response = await reset(client, token, NEW_PASSWORD)

    assert_error(response, "RESET_PASSWORD_BAD_TOKEN")


async def test_reset_password_too_short_is_refused_and_the_token_stays_usable(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox
) -> None:
    token = await request_token(client, mailbox, RESET, user.email)

    response = await reset(client, token, "short")

    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail["code"] == "RESET_PASSWORD_INVALID_PASSWORD"
    assert isinstance(detail["reason"], str)
    assert detail["reason"]
    assert (await login_response(client, user.email, PASSWORD)).status_code == 200
    assert (await reset(client, token, NEW_PASSWORD)).status_code == 200


async def test_verification_token_is_not_a_reset_token(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox
) -> None:
    token = await request_token(client, mailbox, VERIFICATION, user.email)

    response = await reset(client, token, NEW_PASSWORD)

    assert_error(response, "RESET_PASSWORD_BAD_TOKEN")
    assert (await login_response(client, user.email, PASSWORD)).status_code == 200


async def test_reset_token_of_a_user_deactivated_since_is_refused(
    client: httpx.AsyncClient,
    user: UserDB,
    superuser_headers: dict[str, str],
    mailbox: Mailbox,
) -> None:
    token = await request_token(client, mailbox, RESET, user.email)
    deactivated = await client.patch(
        f"/users/{user.id}", json={"is_active": False}, headers=superuser_headers
    )
    assert deactivated.status_code == 200, deactivated.text

    response = await reset(client, token, NEW_PASSWORD)

    assert_error(response, "RESET_PASSWORD_BAD_TOKEN")


async def test_reset_token_of_a_deleted_user_is_refused(
    client: httpx.AsyncClient,
    user: UserDB,
    superuser_headers: dict[str, str],
    mailbox: Mailbox,
) -> None:
    token = await request_token(client, mailbox, RESET, user.email)
    deleted = await client.delete(f"/users/{user.id}", headers=superuser_headers)
    assert deleted.status_code == 204

    response = await reset(client, token, NEW_PASSWORD)

    assert_error(response, "RESET_PASSWORD_BAD_TOKEN")


# --- POST /auth/request-verify-token -------------------------------------------------------


@pytest.mark.parametrize("email", ["user@example.com", "USER@Example.COM"])
async def test_request_verify_token_mails_a_token_for_an_unverified_user(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox, email: str
) -> None:
    response = await client.post("/auth/request-verify-token", json={"email": email})

    assert response.status_code == 202
    assert response.json() is None
    assert len(await mailed_tokens(mailbox, VERIFICATION)) == 1


@pytest.mark.parametrize(
    ("email", "fields"),
    [
        pytest.param("nobody@example.com", None, id="unknown"),
        pytest.param("verified@example.com", {"is_verified": True}, id="already-verified"),
        pytest.param("inactive@example.com", {"is_active": False}, id="inactive"),
    ],
)
async def test_request_verify_token_mails_no_token_when_there_is_nothing_to_verify(
    client: httpx.AsyncClient,
    create_user: CreateUser,
    mailbox: Mailbox,
    email: str,
    fields: dict[str, bool] | None,
) -> None:
    if fields is not None:
        await create_user(email, **fields)

    response = await client.post("/auth/request-verify-token", json={"email": email})

    assert response.status_code == 202
    assert response.json() is None
    assert await mailed_tokens(mailbox, VERIFICATION) == []


# --- POST /auth/verify ---------------------------------------------------------------------


async def test_verify_marks_the_user_verified(
    client: httpx.AsyncClient,
    user: UserDB,
    auth_headers: dict[str, str],
    mailbox: Mailbox,
) -> None:
    token = await request_token(client, mailbox, VERIFICATION, user.email)

    response = await verify(client, token)

    assert response.status_code == 200, response.text
    assert response.json()["id"] == str(user.id)
    assert response.json()["is_verified"] is True
    me = await client.get("/users/me", headers=auth_headers)
    assert me.json()["is_verified"] is True


async def test_verify_twice_is_refused_as_already_verified(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox
) -> None:
    token = await request_token(client, mailbox, VERIFICATION, user.email)
    assert (await verify(client, token)).status_code == 200

    again = await verify(client, token)

    assert_error(again, "VERIFY_USER_ALREADY_VERIFIED")


@pytest.mark.parametrize("token", BAD_TOKENS)
async def test_verify_with_a_bad_token_is_refused(
    client: httpx.AsyncClient, user: UserDB, token: str
) -> None:
    response = await verify(client, token)

    assert_error(response, "VERIFY_USER_BAD_TOKEN")


async def test_reset_token_is_not_a_verification_token(
    client: httpx.AsyncClient,
    user: UserDB,
    auth_headers: dict[str, str],
    mailbox: Mailbox,
) -> None:
    token = await request_token(client, mailbox, RESET, user.email)

    response = await verify(client, token)

    assert_error(response, "VERIFY_USER_BAD_TOKEN")
    me = await client.get("/users/me", headers=auth_headers)
    assert me.json()["is_verified"] is False


async def test_verification_token_is_void_after_an_email_change(
    client: httpx.AsyncClient,
    user: UserDB,
    auth_headers: dict[str, str],
    mailbox: Mailbox,
) -> None:
    token = await request_token(client, mailbox, VERIFICATION, user.email)
    changed = await client.patch(
        "/users/me",
        json={"email": "new@example.com", "current_password": PASSWORD},
        headers=auth_headers,
    )
    assert changed.status_code == 200, changed.text

    response = await verify(client, token)

    assert_error(response, "VERIFY_USER_BAD_TOKEN")
    me = await client.get("/users/me", headers=auth_headers)
    assert me.json()["is_verified"] is False


async def test_verification_token_does_not_verify_a_new_owner_of_the_old_email(
    client: httpx.AsyncClient,
    user: UserDB,
    auth_headers: dict[str, str],
    create_user: CreateUser,
    login: Login,
    mailbox: Mailbox,
) -> None:
    token = await request_token(client, mailbox, VERIFICATION, user.email)
    changed = await client.patch(
        "/users/me",
        json={"email": "new@example.com", "current_password": PASSWORD},
        headers=auth_headers,
    )
    assert changed.status_code == 200, changed.text
    await create_user("user@example.com")
    newcomer_headers = await login("user@example.com")

    response = await verify(client, token)

    assert_error(response, "VERIFY_USER_BAD_TOKEN")
    newcomer = await client.get("/users/me", headers=newcomer_headers)
    assert newcomer.json()["is_verified"] is False


# --- request validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/auth/forgot-password", {}, id="forgot-no-email"),
        pytest.param("/auth/forgot-password", {"email": "not-an-email"}, id="forgot-bad-email"),
        pytest.param("/auth/reset-password", {"password": NEW_PASSWORD}, id="reset-no-token"),
        pytest.param("/auth/reset-password", {"token": "x"}, id="reset-no-password"),
        pytest.param("/auth/reset-password", {}, id="reset-empty"),
        pytest.param("/auth/request-verify-token", {}, id="request-verify-no-email"),
        pytest.param(
            "/auth/request-verify-token", {"email": "not-an-email"}, id="request-verify-bad-email"
        ),
        pytest.param("/auth/verify", {}, id="verify-no-token"),
    ],
)
async def test_missing_or_malformed_fields_are_422(
    client: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    response = await client.post(path, json=body)

    assert response.status_code == 422
