"""Sessions through HTTP: login, refresh with rotation and reuse detection, logout, the session
lists, and what password changes, resets, deactivation and deletion end, on every database."""

import asyncio
import time
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from app.models import Session, UserDB
from app.sessions import Sessions
from tests.conftest import (
    PASSWORD,
    TEST_SECRET,
    CreateUser,
    Mailbox,
    assert_error,
    text_of,
    token_in,
    with_settings,
)

with warnings.catch_warnings():
    # authlib announces its move to httpx2 on import, after setting its own warnings to
    # "always" (in authlib.deprecate); ignored here, on top of that.
    import authlib.deprecate

    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from authlib.integrations.base_client.errors import OAuthError
    from authlib.integrations.httpx_client import AsyncOAuth2Client

NEW_PASSWORD = "a different horse battery staple"


async def log_in(
    client: httpx.AsyncClient, email: str = "user@example.com", user_agent: str = "test-agent"
) -> dict[str, Any]:
    """The token response of a password login."""
    response = await client.post(
        "/auth/jwt/login",
        data={"username": email, "password": PASSWORD},
        headers={"User-Agent": user_agent},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    """Bearer headers for the access token of `tokens`."""
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def claims(tokens: dict[str, Any]) -> dict[str, Any]:
    """The claims of the access token of `tokens`."""
    decoded: dict[str, Any] = jwt.decode(
        tokens["access_token"], TEST_SECRET, algorithms=["HS256"], audience="fastapi-users:auth"
    )
    return decoded


async def refresh(client: httpx.AsyncClient, tokens: dict[str, Any]) -> httpx.Response:
    """POST /auth/jwt/refresh with the refresh token of `tokens` (JSON)."""
    return await client.post("/auth/jwt/refresh", json={"refresh_token": tokens["refresh_token"]})


async def works(client: httpx.AsyncClient, tokens: dict[str, Any]) -> bool:
    """Whether the access token of `tokens` is accepted (200) rather than refused (401)."""
    status = (await client.get("/users/me", headers=bearer(tokens))).status_code
    assert status in (200, 401)
    return status == 200


def assert_refresh_refused(response: httpx.Response, error: str = "invalid_grant") -> None:
    """A refused refresh: 400 REFRESH_TOKEN_INVALID with RFC 6749's `error`."""
    assert_error(response, "REFRESH_TOKEN_INVALID", error=error)


async def test_login_answers_an_rfc_6749_token_pair(
    client: httpx.AsyncClient, user: UserDB
) -> None:
    response = await client.post(
        "/auth/jwt/login", data={"username": user.email, "password": PASSWORD}
    )

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {
        "access_token", "token_type", "expires_in", "refresh_token", "refresh_expires_in"
    }  # fmt: skip
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["refresh_expires_in"] == 7 * 86400
    token = claims(body)
    assert token["sub"] == str(user.id)
    assert token["exp"] - token["iat"] == 3600
    assert abs(token["auth_time"] - time.time()) < 5
    uuid.UUID(token["sid"])


async def test_two_logins_are_two_sessions(client: httpx.AsyncClient, user: UserDB) -> None:
    first, second = await log_in(client), await log_in(client)

    assert claims(first)["sid"] != claims(second)["sid"]
    assert first["refresh_token"] != second["refresh_token"]
    assert await works(client, first)
    assert await works(client, second)
    assert await Session.filter(user_id=user.id).count() == 2


async def test_no_column_holds_a_credential(client: httpx.AsyncClient, user: UserDB) -> None:
    tokens = await log_in(client)

    [row] = await Session.filter(user_id=user.id).values()
    assert not {str(value) for value in row.values()} & {
        tokens["refresh_token"], tokens["access_token"], tokens["refresh_token"].split(".")[2]
    }  # fmt: skip


async def test_logout_ends_the_access_and_the_refresh_token_at_once(
    client: httpx.AsyncClient, user: UserDB
) -> None:
    phone, laptop = await log_in(client), await log_in(client)

    response = await client.post("/auth/jwt/logout", headers=bearer(phone))

    assert response.status_code == 204
    assert not await works(client, phone)
    assert_refresh_refused(await refresh(client, phone))
    assert await works(client, laptop)
    assert (await refresh(client, laptop)).status_code == 200


async def test_refresh_rotates_the_pair(client: httpx.AsyncClient, user: UserDB) -> None:
    first = await log_in(client)

    response = await refresh(client, first)

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert claims(second)["sid"] == claims(first)["sid"]
    assert claims(second)["auth_time"] == claims(first)["auth_time"]  # refresh is no login
    assert await works(client, second)
    third = await refresh(client, second)
    assert third.status_code == 200
    assert third.json()["refresh_token"] not in (first["refresh_token"], second["refresh_token"])


async def test_the_rfc_6749_refresh_form_works(client: httpx.AsyncClient, user: UserDB) -> None:
    tokens = await log_in(client)

    response = await client.post(
        "/auth/jwt/refresh",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )

    assert response.status_code == 200, response.text
    assert await works(client, response.json())


@pytest.mark.parametrize(
    ("request_kwargs", "error"),
    [
        pytest.param({"json": {}}, "invalid_request", id="json-without-token"),
        pytest.param({"json": {"refresh_token": 5}}, "invalid_request", id="json-not-a-string"),
        pytest.param({"json": ["x"]}, "invalid_request", id="json-not-an-object"),
        pytest.param(
            {"content": b"{", "headers": {"content-type": "application/json"}},
            "invalid_request",
            id="bad-json",
        ),
        pytest.param(
            {"content": b"x", "headers": {"content-type": "text/plain"}},
            "invalid_request",
            id="other-content-type",
        ),
        pytest.param({"data": {"refresh_token": "x"}}, "invalid_request", id="form-no-grant"),
        pytest.param(
            {"data": {"grant_type": "password", "refresh_token": "x"}},
            "unsupported_grant_type",
            id="form-other-grant",
        ),
        pytest.param({"json": {"refresh_token": "garbage"}}, "invalid_grant", id="garbage"),
        pytest.param(
            {"json": {"refresh_token": f"{uuid.uuid4()}.0.AAAA"}}, "invalid_grant", id="forged"
        ),
    ],
)
async def test_bad_refresh_requests_are_400(
    client: httpx.AsyncClient, request_kwargs: dict[str, Any], error: str
) -> None:
    response = await client.post("/auth/jwt/refresh", **request_kwargs)

    assert_refresh_refused(response, error)


async def test_a_refresh_token_with_a_changed_generation_is_refused(
    client: httpx.AsyncClient, user: UserDB
) -> None:
    sid, generation, mac = (await log_in(client))["refresh_token"].split(".")

    response = await refresh(client, {"refresh_token": f"{sid}.{int(generation) + 1}.{mac}"})

    assert_refresh_refused(response)


async def test_login_with_an_unknown_grant_type_is_400_not_422(
    client: httpx.AsyncClient, user: UserDB
) -> None:
    response = await client.post(
        "/auth/jwt/login",
        data={"grant_type": "client_credentials", "username": user.email, "password": PASSWORD},
    )
    explicit = await client.post(
        "/auth/jwt/login",
        data={"grant_type": "password", "username": user.email, "password": PASSWORD},
    )

    assert_error(response, "UNSUPPORTED_GRANT_TYPE", error="unsupported_grant_type")
    assert explicit.status_code == 200


async def test_a_retried_refresh_within_the_grace_gets_the_current_pair(
    client: httpx.AsyncClient, user: UserDB
) -> None:
    tokens = await log_in(client)

    first, again = await refresh(client, tokens), await refresh(client, tokens)

    assert first.status_code == again.status_code == 200
    assert first.json()["refresh_token"] == again.json()["refresh_token"]
    assert await works(client, again.json())


async def test_ten_parallel_refreshes_give_one_successor(
    client: httpx.AsyncClient, user: UserDB
) -> None:
    tokens = await log_in(client)

    responses = await asyncio.gather(*(refresh(client, tokens) for _ in range(10)))

    assert [response.status_code for response in responses] == [200] * 10
    successors = {response.json()["refresh_token"] for response in responses}
    assert len(successors) == 1
    [successor] = successors
    next_pair = await refresh(client, {"refresh_token": successor})
    assert next_pair.status_code == 200
    assert await works(client, next_pair.json())
    assert await Session.filter(user_id=user.id).count() == 1


@with_settings(refresh_reuse_grace_seconds=0)
async def test_reuse_after_the_grace_ends_the_session_and_mails_the_owner(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    stolen = await log_in(client, user_agent="victim-phone")
    other_device = await log_in(client)
    successor = (await refresh(client, stolen)).json()
    mailbox.clear()

    reuse = await refresh(client, stolen)

    assert_refresh_refused(reuse)
    assert not await works(client, successor)
    assert not await works(client, stolen)
    assert_refresh_refused(await refresh(client, successor))
    assert await works(client, other_device)
    mail = await mailbox.only_message()
    assert mail["To"] == user.email
    assert mail["Subject"] == "A sign-in to your account was ended"
    assert "victim-phone" in text_of(mail)
    assert "Refresh token reuse" in caplog.text
    listed = (await client.get("/users/me/sessions", headers=bearer(other_device))).json()
    assert {s["revoked_reason"] for s in listed if s["id"] == claims(stolen)["sid"]} == {
        "refresh_reuse"
    }


async def test_an_older_refresh_token_is_reuse_even_within_the_grace(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox
) -> None:
    first = await log_in(client)
    second = (await refresh(client, first)).json()
    third = (await refresh(client, second)).json()
    mailbox.clear()

    reuse = await refresh(client, first)

    assert_refresh_refused(reuse)
    assert not await works(client, third)
    assert_refresh_refused(await refresh(client, third))
    assert len(await mailbox.messages()) == 1


async def test_my_sessions_lists_open_and_ended_sessions(
    client: httpx.AsyncClient, user: UserDB
) -> None:
    ended = await log_in(client, user_agent="old-browser")
    await client.post("/auth/jwt/logout", headers=bearer(ended))
    other = await log_in(client, user_agent="tablet")
    current = await log_in(client, user_agent="x" * 1000)

    response = await client.get("/users/me/sessions", headers=bearer(current))

    assert response.status_code == 200
    listed = {session["id"]: session for session in response.json()}
    assert list(listed) == [claims(t)["sid"] for t in (current, other, ended)]  # newest first
    mine = listed[claims(current)["sid"]]
    assert mine["current"] is True
    assert mine["user_agent"] == "x" * 255
    assert mine["ip"] == "127.0.0.1"
    assert mine["revoked_at"] is None
    assert set(mine) == {
        "id", "created_at", "auth_time", "last_refreshed_at", "expires_at", "ip", "user_agent",
        "current", "revoked_at", "revoked_reason", "aal",
    }  # fmt: skip
    assert mine["aal"] == 1  # a password-only login
    assert listed[claims(other)["sid"]]["current"] is False
    assert listed[claims(ended)["sid"]]["revoked_reason"] == "logout"
    assert listed[claims(ended)["sid"]]["revoked_at"] is not None


async def test_end_one_of_my_sessions(
    client: httpx.AsyncClient, user: UserDB, create_user: CreateUser
) -> None:
    await create_user("other@example.com")
    foreign = await log_in(client, "other@example.com")
    lost, current = await log_in(client), await log_in(client)

    ended = await client.delete(
        f"/users/me/sessions/{claims(lost)['sid']}", headers=bearer(current)
    )
    not_mine = await client.delete(
        f"/users/me/sessions/{claims(foreign)['sid']}", headers=bearer(current)
    )

    assert ended.status_code == 204
    assert not await works(client, lost)
    assert_refresh_refused(await refresh(client, lost))
    assert_error(not_mine, "SESSION_NOT_FOUND", status=404)
    assert await works(client, foreign)
    assert await works(client, current)


async def test_end_all_my_other_sessions(client: httpx.AsyncClient, user: UserDB) -> None:
    others = [await log_in(client) for _ in range(3)]
    current = await log_in(client)

    response = await client.delete("/users/me/sessions", headers=bearer(current))

    assert response.status_code == 204
    for tokens in others:
        assert not await works(client, tokens)
    assert await works(client, current)
    listed = (await client.get("/users/me/sessions", headers=bearer(current))).json()
    assert sorted(s["revoked_reason"] or "open" for s in listed) == ["logout_all"] * 3 + ["open"]


@with_settings(session_fresh_seconds=0)
async def test_ending_other_sessions_needs_a_recent_login(
    client: httpx.AsyncClient, user: UserDB
) -> None:
    other, current = await log_in(client), await log_in(client)

    one = await client.delete(f"/users/me/sessions/{claims(other)['sid']}", headers=bearer(current))
    every = await client.delete("/users/me/sessions", headers=bearer(current))
    own = await client.delete(
        f"/users/me/sessions/{claims(current)['sid']}", headers=bearer(current)
    )

    assert_error(one, "REAUTHENTICATION_REQUIRED", status=403)
    assert_error(every, "REAUTHENTICATION_REQUIRED", status=403)
    assert await works(client, other)
    assert own.status_code == 204  # ending the current one is a logout
    assert not await works(client, current)


async def test_password_change_ends_the_other_sessions_in_the_same_transaction(
    client: httpx.AsyncClient, user: UserDB
) -> None:
    other, current = await log_in(client), await log_in(client)

    response = await client.patch(
        "/users/me",
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
        headers=bearer(current),
    )

    assert response.status_code == 200, response.text
    assert not await works(client, other)
    assert_refresh_refused(await refresh(client, other))
    assert await works(client, current)
    assert (await refresh(client, current)).status_code == 200
    reasons = await Session.filter(user_id=user.id).values_list("revoked_reason", flat=True)
    assert sorted(reasons, key=str) == [None, "password_change"]


async def test_other_changes_of_my_account_end_no_session(
    client: httpx.AsyncClient, user: UserDB
) -> None:
    other, current = await log_in(client), await log_in(client)

    response = await client.patch(
        "/users/me",
        json={"email": "new@example.com", "current_password": PASSWORD},
        headers=bearer(current),
    )

    assert response.status_code == 200
    assert await works(client, other)


async def test_password_reset_ends_every_session(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox
) -> None:
    sessions = [await log_in(client), await log_in(client)]
    await client.post("/auth/forgot-password", json={"email": user.email})
    token = token_in(await mailbox.only_message())

    response = await client.post(
        "/auth/reset-password", json={"token": token, "password": NEW_PASSWORD}
    )

    assert response.status_code == 200, response.text
    for tokens in sessions:
        assert not await works(client, tokens)
        assert_refresh_refused(await refresh(client, tokens))
    reasons = await Session.filter(user_id=user.id).values_list("revoked_reason", flat=True)
    assert reasons == ["password_reset"] * 2


async def test_deactivation_ends_every_session_and_reactivation_brings_none_back(
    client: httpx.AsyncClient, user: UserDB, superuser: UserDB
) -> None:
    tokens = await log_in(client)
    admin = await log_in(client, superuser.email)

    deactivated = await client.patch(
        f"/users/{user.id}", json={"is_active": False}, headers=bearer(admin)
    )
    refused = await works(client, tokens)
    reactivated = await client.patch(
        f"/users/{user.id}", json={"is_active": True}, headers=bearer(admin)
    )

    assert deactivated.status_code == reactivated.status_code == 200
    assert not refused
    assert not await works(client, tokens)
    assert_refresh_refused(await refresh(client, tokens))
    assert await works(client, await log_in(client))
    assert await works(client, admin)


async def test_admin_password_change_ends_every_session_of_the_user(
    client: httpx.AsyncClient, user: UserDB, superuser: UserDB
) -> None:
    tokens = await log_in(client)
    admin = await log_in(client, superuser.email)

    response = await client.patch(
        f"/users/{user.id}", json={"password": NEW_PASSWORD}, headers=bearer(admin)
    )

    assert response.status_code == 200
    assert not await works(client, tokens)
    assert await works(client, admin)


async def test_deleting_a_user_deletes_its_sessions(
    client: httpx.AsyncClient, user: UserDB, superuser: UserDB
) -> None:
    tokens = await log_in(client)
    admin = await log_in(client, superuser.email)

    response = await client.delete(f"/users/{user.id}", headers=bearer(admin))

    assert response.status_code == 204
    assert not await works(client, tokens)
    assert_refresh_refused(await refresh(client, tokens))
    assert await Session.filter(user_id=user.id).count() == 0


async def test_superusers_list_and_end_a_users_sessions(
    client: httpx.AsyncClient, user: UserDB, superuser: UserDB
) -> None:
    first, second, third = [await log_in(client) for _ in range(3)]
    admin = await log_in(client, superuser.email)

    listed = await client.get(f"/users/{user.id}/sessions", headers=bearer(admin))
    one = await client.delete(
        f"/users/{user.id}/sessions/{claims(first)['sid']}", headers=bearer(admin)
    )
    still = await works(client, second)
    every = await client.delete(f"/users/{user.id}/sessions", headers=bearer(admin))

    assert listed.status_code == 200
    assert {s["id"] for s in listed.json()} == {claims(t)["sid"] for t in (first, second, third)}
    assert not any(s["current"] for s in listed.json())
    assert one.status_code == every.status_code == 204
    assert still
    for tokens in (first, second, third):
        assert not await works(client, tokens)
    assert await works(client, admin)
    reasons = await Session.filter(user_id=user.id).values_list("revoked_reason", flat=True)
    assert sorted(reasons) == ["admin"] * 3


async def test_the_admin_session_routes_refuse_others(
    client: httpx.AsyncClient, user: UserDB, superuser: UserDB
) -> None:
    tokens = await log_in(client)
    admin = await log_in(client, superuser.email)
    sid = claims(tokens)["sid"]
    unknown = uuid.uuid4()

    as_user = [
        await client.get(f"/users/{superuser.id}/sessions", headers=bearer(tokens)),
        await client.delete(f"/users/{superuser.id}/sessions", headers=bearer(tokens)),
        await client.delete(f"/users/{user.id}/sessions/{sid}", headers=bearer(tokens)),
    ]
    anonymous = await client.get(f"/users/{user.id}/sessions")
    no_user = await client.get(f"/users/{unknown}/sessions", headers=bearer(admin))
    wrong_user = await client.delete(f"/users/{superuser.id}/sessions/{sid}", headers=bearer(admin))

    assert [response.status_code for response in as_user] == [403, 403, 403]
    assert anonymous.status_code == 401
    assert no_user.status_code == 404
    assert_error(wrong_user, "SESSION_NOT_FOUND", status=404)
    assert await works(client, tokens)
    assert await works(client, admin)


@with_settings(session_idle_seconds=1)
async def test_an_idle_session_cannot_be_refreshed(client: httpx.AsyncClient, user: UserDB) -> None:
    tokens = await log_in(client)
    assert tokens["refresh_expires_in"] == tokens["expires_in"] == 1

    await asyncio.sleep(2.1)

    assert_refresh_refused(await refresh(client, tokens))
    assert not await works(client, tokens)
    listed = (await client.get("/users/me/sessions", headers=bearer(await log_in(client)))).json()
    assert [s["revoked_reason"] for s in listed] == [None, "expired"]


@with_settings(session_max_seconds=2, session_idle_seconds=60)
async def test_a_session_ends_at_its_absolute_expiry_whatever_the_refreshes(
    client: httpx.AsyncClient, user: UserDB
) -> None:
    tokens = await log_in(client)
    assert tokens["expires_in"] <= 2
    await asyncio.sleep(1.1)
    refreshed = await refresh(client, tokens)
    assert refreshed.status_code == 200
    assert refreshed.json()["expires_in"] <= 1

    await asyncio.sleep(1.5)

    assert not await works(client, refreshed.json())
    assert_refresh_refused(await refresh(client, refreshed.json()))


@with_settings(max_sessions_per_user=2)
async def test_past_the_limit_the_oldest_session_is_evicted(
    client: httpx.AsyncClient, user: UserDB
) -> None:
    oldest = await log_in(client)
    middle = await log_in(client)

    newest = await log_in(client)

    assert not await works(client, oldest)
    assert await works(client, middle)
    assert await works(client, newest)
    reasons = await Session.filter(user_id=user.id).values_list("revoked_reason", flat=True)
    assert sorted(reasons, key=str) == [None, None, "evicted"]


@with_settings(session_history_seconds=60)
async def test_login_purges_long_ended_sessions(
    client: httpx.AsyncClient, user: UserDB, app: FastAPI, create_user: CreateUser
) -> None:
    other = await create_user("other@example.com")
    for tokens in [await log_in(client), await log_in(client, other.email)]:
        await client.post("/auth/jwt/logout", headers=bearer(tokens))
    recent = await log_in(client)
    await client.post("/auth/jwt/logout", headers=bearer(recent))
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    await Session.exclude(id=claims(recent)["sid"]).update(revoked_at=long_ago)
    await Session.filter(user_id=other.id).update(expires_at=long_ago)

    await log_in(client)

    left = await Session.all().values_list("id", flat=True)
    assert len(left) == 2  # the recent one and the new one
    assert uuid.UUID(claims(recent)["sid"]) in left
    sessions: Sessions = app.state.sessions
    assert await sessions.purge(datetime.now(UTC) + timedelta(days=400)) == 2
    assert await Session.all().count() == 0


async def test_an_oauth2_client_library_logs_in_and_refreshes(
    client: httpx.AsyncClient, app: FastAPI, user: UserDB
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with AsyncOAuth2Client(
        token_endpoint_auth_method="none", transport=transport, base_url="http://test"
    ) as oauth:
        with pytest.raises(OAuthError) as refused:
            await oauth.fetch_token(
                "http://test/auth/jwt/login", username=user.email, password="wrong password"
            )
        token = await oauth.fetch_token(
            "http://test/auth/jwt/login", username=user.email, password=PASSWORD
        )
        refreshed = await oauth.refresh_token(
            "http://test/auth/jwt/refresh", refresh_token=token["refresh_token"]
        )
        me = await oauth.get("http://test/users/me")

    assert refused.value.error == "invalid_grant"
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert me.status_code == 200
    assert me.json()["email"] == user.email


async def test_token_types_are_not_interchangeable(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox
) -> None:
    tokens = await log_in(client)
    await client.post("/auth/forgot-password", json={"email": user.email})
    reset_token = token_in(await mailbox.only_message())

    refresh_as_bearer = await client.get(
        "/users/me", headers={"Authorization": f"Bearer {tokens['refresh_token']}"}
    )
    access_as_refresh = await refresh(client, {"refresh_token": tokens["access_token"]})
    reset_as_refresh = await refresh(client, {"refresh_token": reset_token})

    assert refresh_as_bearer.status_code == 401
    assert_refresh_refused(access_as_refresh)
    assert_refresh_refused(reset_as_refresh)
    assert (await refresh(client, tokens)).status_code == 200


async def test_openapi_documents_the_session_routes(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]

    operations = {
        ("/auth/jwt/login", "post"), ("/auth/jwt/refresh", "post"), ("/auth/jwt/logout", "post"),
        ("/users/me/sessions", "get"), ("/users/me/sessions", "delete"),
        ("/users/me/sessions/{session_id}", "delete"), ("/users/{user_id}/sessions", "get"),
        ("/users/{user_id}/sessions", "delete"),
        ("/users/{user_id}/sessions/{session_id}", "delete"),
    }  # fmt: skip
    for path, method in operations:
        assert paths[path][method]["description"], (path, method)
    assert set(paths["/auth/jwt/refresh"]["post"]["requestBody"]["content"]) == {
        "application/json", "application/x-www-form-urlencoded"
    }  # fmt: skip
    assert "400" in paths["/auth/jwt/refresh"]["post"]["responses"]
    assert "204" in paths["/auth/jwt/logout"]["post"]["responses"]
    assert "403" in paths["/users/me/sessions"]["delete"]["responses"]
    login_form = paths["/auth/jwt/login"]["post"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" in login_form
    schemes = spec["components"]["securitySchemes"]
    assert schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == "auth/jwt/login"
