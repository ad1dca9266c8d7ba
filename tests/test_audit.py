"""The audit trail: an event per security action, committed with its change; reading; purge."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app import audit
from app.models import AuditEvent, UserDB
from tests.conftest import (
    PASSWORD,
    CreateUser,
    Login,
    Mailbox,
    assert_error,
    token_in,
    with_settings,
)

NEW_PASSWORD = "a different passphrase entirely 42"
HEADERS = {"User-Agent": "audit-test/1.0", "X-Request-ID": "audit-req-1"}


async def events(**filters: Any) -> list[AuditEvent]:
    """The stored events, oldest first."""
    return await AuditEvent.filter(**filters).order_by("id")


async def only_event(action: str) -> AuditEvent:
    """The one stored event of `action`."""
    found = await events(action=action)
    assert len(found) == 1, [(e.action, e.outcome) for e in await events()]
    return found[0]


async def test_register_is_audited_with_its_request(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/register", json={"email": "new@example.com", "password": PASSWORD}, headers=HEADERS
    )

    event = await only_event("register")
    assert response.status_code == 201
    assert str(event.subject_id) == response.json()["id"]
    assert event.outcome == "success"
    assert event.client_ip == "127.0.0.1"
    assert event.user_agent == "audit-test/1.0"
    assert event.request_id == "audit-req-1"
    assert event.details == {}


async def test_login_outcomes_are_audited(
    client: httpx.AsyncClient, user: UserDB, create_user: CreateUser
) -> None:
    inactive = await create_user("off@example.com", is_active=False)

    ok = await client.post("/auth/jwt/login", data={"username": user.email, "password": PASSWORD})
    wrong = await client.post("/auth/jwt/login", data={"username": user.email, "password": "no"})
    unknown = await client.post(
        "/auth/jwt/login", data={"username": "ghost@example.com", "password": PASSWORD}
    )
    off = await client.post(
        "/auth/jwt/login", data={"username": inactive.email, "password": PASSWORD}
    )

    assert [r.status_code for r in (ok, wrong, unknown, off)] == [200, 400, 400, 400]
    login = await only_event("login")
    assert login.subject_id == user.id
    assert login.actor_id == user.id
    failed = [(e.subject_id, e.outcome) for e in await events(action="login_failed")]
    assert failed == [
        (user.id, "bad_credentials"),
        (None, "bad_credentials"),
        (inactive.id, "inactive"),
    ]


async def test_logout_is_audited(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str]
) -> None:
    response = await client.post("/auth/jwt/logout", headers=auth_headers)

    assert response.status_code == 204
    event = await only_event("logout")
    assert event.subject_id == user.id


async def test_own_password_and_email_changes_are_audited(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str]
) -> None:
    password = await client.patch(
        "/users/me",
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
        headers=auth_headers,
    )
    email = await client.patch(
        "/users/me",
        json={"email": "moved@example.org", "current_password": NEW_PASSWORD},
        headers=auth_headers,
    )

    assert password.status_code == 200
    assert email.status_code == 200
    change = await only_event("password_change")
    assert change.subject_id == user.id
    assert change.actor_id == user.id
    assert change.details == {}
    moved = await only_event("email_change")
    assert moved.details == {"old": "***@example.com", "new": "***@example.org"}


async def test_reset_flow_is_audited(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox
) -> None:
    await client.post("/auth/forgot-password", json={"email": user.email})
    token = token_in(await mailbox.only_message())
    await client.post("/auth/forgot-password", json={"email": "nobody@example.com"})
    reset = await client.post(
        "/auth/reset-password", json={"token": token, "password": NEW_PASSWORD}
    )

    assert reset.status_code == 200
    requested = await only_event("password_reset_requested")
    assert requested.subject_id == user.id
    done = await only_event("password_reset")
    assert done.subject_id == user.id
    assert done.actor_id is None


async def test_verification_is_audited(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox
) -> None:
    await client.post("/auth/request-verify-token", json={"email": user.email})
    token = token_in(await mailbox.only_message())

    response = await client.post("/auth/verify", json={"token": token})

    assert response.status_code == 200
    assert (await only_event("verify")).subject_id == user.id


async def test_admin_update_and_delete_are_audited(
    client: httpx.AsyncClient,
    user: UserDB,
    superuser: UserDB,
    superuser_headers: dict[str, str],
) -> None:
    updated = await client.patch(
        f"/users/{user.id}",
        json={"is_verified": True, "password": NEW_PASSWORD},
        headers=superuser_headers,
    )
    deleted = await client.delete(f"/users/{user.id}", headers=superuser_headers)

    assert updated.status_code == 200
    assert deleted.status_code == 204
    edit = await only_event("user_updated_by_admin")
    assert edit.subject_id == user.id
    assert edit.actor_id == superuser.id
    assert edit.details == {"fields": ["is_verified", "password"]}
    gone = await only_event("user_deleted")
    assert gone.subject_id == user.id
    assert gone.actor_id == superuser.id


@with_settings(rate_limits_enabled=True, rate_limit_login_per_ip="1/minute")
async def test_rate_limit_refusals_are_audited_once_per_window(
    client: httpx.AsyncClient, user: UserDB
) -> None:
    form = {"username": user.email, "password": "wrong"}
    statuses = [(await client.post("/auth/jwt/login", data=form)).status_code for _ in range(4)]

    assert statuses == [400, 429, 429, 429]
    event = await only_event("rate_limited")
    assert event.outcome == "refused"
    assert event.details == {"route": "login", "scope": "ip"}
    assert event.client_ip == "127.0.0.1"


async def test_a_change_and_its_event_commit_together(
    client: httpx.AsyncClient,
    user: UserDB,
    auth_headers: dict[str, str],
    login: Login,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the event cannot be written, the password change is rolled back with it."""
    written = audit.record

    async def failing_record(event: audit.Event, *args: Any, **kwargs: Any) -> None:
        await written(event, *args, **kwargs)
        if event.action == "password_change":
            raise RuntimeError("the audit write failed")

    monkeypatch.setattr(audit, "record", failing_record)

    with pytest.raises(RuntimeError, match="the audit write failed"):
        await client.patch(
            "/users/me",
            json={"password": NEW_PASSWORD, "current_password": PASSWORD},
            headers=auth_headers,
        )

    assert await login(user.email)  # the old password still works
    assert await events(action="password_change") == []


async def test_audit_events_are_for_superusers(
    client: httpx.AsyncClient, auth_headers: dict[str, str], superuser_headers: dict[str, str]
) -> None:
    assert (await client.get("/audit-events")).status_code == 401
    assert (await client.get("/audit-events", headers=auth_headers)).status_code == 403
    response = await client.get("/audit-events", headers=superuser_headers)

    assert response.status_code == 200
    items = response.json()["items"]
    assert sorted(item["action"] for item in items) == ["login", "login", "register", "register"]
    assert [item["id"] for item in items] == sorted((item["id"] for item in items), reverse=True)


async def test_audit_events_filter_and_paginate(
    client: httpx.AsyncClient,
    user: UserDB,
    superuser: UserDB,
    superuser_headers: dict[str, str],
) -> None:
    for _ in range(5):
        await client.post("/auth/jwt/login", data={"username": user.email, "password": "no"})

    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"action": "login_failed", "subject_id": str(user.id), "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/audit-events", params=params, headers=superuser_headers)).json()
        pages.append([item["id"] for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    ids = [event.id for event in await events(action="login_failed", subject_id=user.id)]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [event_id for page in pages for event_id in page] == sorted(ids, reverse=True)

    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    later = await client.get("/audit-events", params={"since": future}, headers=superuser_headers)
    earlier = await client.get(
        "/audit-events", params={"until": future, "action": "register"}, headers=superuser_headers
    )
    assert later.json() == {"items": [], "next_cursor": None}
    assert {item["subject_id"] for item in earlier.json()["items"]} == {
        str(user.id),
        str(superuser.id),
    }


@pytest.mark.parametrize(
    "params",
    [
        {"action": "nonsense"},
        {"cursor": "abc"},
        {"cursor": "9" * 40},
        {"subject_id": "not-a-uuid"},
        {"since": "yesterday"},
        {"limit": "0"},
        {"limit": "1000"},
    ],
    ids=lambda params: "-".join(params),
)
async def test_bad_filters_are_422(
    client: httpx.AsyncClient, superuser_headers: dict[str, str], params: dict[str, str]
) -> None:
    response = await client.get("/audit-events", params=params, headers=superuser_headers)

    assert response.status_code == 422


async def test_times_beyond_what_databases_store_filter_as_their_edge(
    client: httpx.AsyncClient, superuser: UserDB, superuser_headers: dict[str, str]
) -> None:
    everything = {"since": "1715-11-05T07:33:02-06:30", "until": "9999-12-31T23:59:59-23:59"}
    nothing = {"since": "9999-12-31T23:59:59-23:59"}

    wide = await client.get("/audit-events", params=everything, headers=superuser_headers)
    late = await client.get("/audit-events", params=nothing, headers=superuser_headers)

    assert wide.status_code == 200
    assert [item["action"] for item in wide.json()["items"]] == ["login", "register"]
    assert late.status_code == 200
    assert late.json()["items"] == []


async def test_people_see_their_own_security_events_only(
    client: httpx.AsyncClient,
    user: UserDB,
    superuser: UserDB,
    auth_headers: dict[str, str],
    superuser_headers: dict[str, str],
) -> None:
    await client.post("/auth/jwt/login", data={"username": user.email, "password": "no"})

    mine = await client.get("/users/me/security-events", headers=auth_headers)
    anonymous = await client.get("/users/me/security-events")

    assert mine.status_code == 200
    items = mine.json()["items"]
    assert {item["subject_id"] for item in items} == {str(user.id)}
    assert [item["action"] for item in items] == ["login_failed", "login", "register"]
    assert_error(anonymous, "Unauthorized", 401)


async def test_purge_deletes_only_events_past_retention(
    client: httpx.AsyncClient, user: UserDB
) -> None:
    old = await AuditEvent.create(action="login", subject_id=user.id, details={})
    await AuditEvent.filter(id=old.id).update(created_at=datetime.now(UTC) - timedelta(days=91))
    kept = await events()

    deleted = await audit.purge(90)

    assert deleted == 1
    assert await events() == [event for event in kept if event.id != old.id]


async def log_in_pair(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> dict[str, Any]:
    """A fresh login's token pair."""
    response = await client.post("/auth/jwt/login", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    pair: dict[str, Any] = response.json()
    return pair


@with_settings(refresh_reuse_grace_seconds=0)
async def test_refresh_reuse_is_audited_with_the_revocation(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox
) -> None:
    first = await log_in_pair(client, user.email)
    rotated = await client.post("/auth/jwt/refresh", json={"refresh_token": first["refresh_token"]})
    reused = await client.post(
        "/auth/jwt/refresh", json={"refresh_token": first["refresh_token"]}, headers=HEADERS
    )

    assert rotated.status_code == 200
    assert_error(reused, "REFRESH_TOKEN_INVALID", error="invalid_grant")
    event = await only_event("refresh_reuse")
    assert event.subject_id == user.id
    assert event.details["generation"] == 0
    assert event.request_id == "audit-req-1"
    assert event.user_agent == "audit-test/1.0"
    assert len(await mailbox.messages()) == 1  # the owner is told, once


async def test_ended_sessions_are_audited_with_reason_and_count(
    client: httpx.AsyncClient, user: UserDB, superuser: UserDB
) -> None:
    own = await log_in_pair(client, user.email)
    await log_in_pair(client, user.email)
    await log_in_pair(client, user.email)
    admin = await log_in_pair(client, superuser.email)
    own_headers = {"Authorization": f"Bearer {own['access_token']}"}

    others = await client.delete("/users/me/sessions", headers=own_headers)
    changed = await client.patch(
        "/users/me",
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
        headers=own_headers,
    )
    await log_in_pair(client, user.email, NEW_PASSWORD)
    by_admin = await client.delete(
        f"/users/{user.id}/sessions",
        headers={"Authorization": f"Bearer {admin['access_token']}"},
    )

    assert [others.status_code, changed.status_code, by_admin.status_code] == [204, 200, 204]
    ended = [(e.subject_id, e.details) for e in await events(action="sessions_revoked")]
    assert ended == [
        (user.id, {"reason": "logout_all", "count": 2}),
        # The password change ended nothing more: only the current session was open.
        (user.id, {"reason": "admin", "count": 2}),
    ]
