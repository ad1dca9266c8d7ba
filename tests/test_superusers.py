"""The last active superuser is kept: it cannot be deleted, deactivated or demoted.

Through the API (`409 LAST_SUPERUSER`) and through the adapter a CLI would call
(`LastSuperuser`), on every database, with concurrent superusers demoting each other.
"""

import asyncio

import httpx
import pytest

from app.models import User, UserDB
from app.user_db import LastSuperuser, TortoiseUserDatabase
from tests.conftest import CreateUser, Login, assert_error

CHANGES = [
    pytest.param("DELETE", None, id="delete"),
    pytest.param("PATCH", {"is_superuser": False}, id="demote"),
    pytest.param("PATCH", {"is_active": False}, id="deactivate"),
    pytest.param("PATCH", {"is_superuser": False, "is_active": False}, id="both"),
]


async def active_superusers() -> int:
    return await User.filter(is_superuser=True, is_active=True).count()


@pytest.mark.parametrize(("method", "body"), CHANGES)
async def test_the_last_superuser_cannot_remove_itself(
    client: httpx.AsyncClient,
    superuser: UserDB,
    superuser_headers: dict[str, str],
    method: str,
    body: dict[str, bool] | None,
) -> None:
    response = await client.request(
        method, f"/users/{superuser.id}", json=body, headers=superuser_headers
    )

    assert_error(response, "LAST_SUPERUSER", 409)
    row = await User.get(id=superuser.id)
    assert row.is_superuser
    assert row.is_active


@pytest.mark.parametrize(("method", "body"), CHANGES)
async def test_a_superuser_may_remove_itself_while_another_remains(
    client: httpx.AsyncClient,
    create_user: CreateUser,
    superuser: UserDB,
    superuser_headers: dict[str, str],
    method: str,
    body: dict[str, bool] | None,
) -> None:
    await create_user("second-admin@example.com", is_superuser=True)

    response = await client.request(
        method, f"/users/{superuser.id}", json=body, headers=superuser_headers
    )

    assert response.status_code in (200, 204), response.text
    assert await active_superusers() == 1


async def test_an_inactive_superuser_does_not_count(
    client: httpx.AsyncClient,
    create_user: CreateUser,
    superuser: UserDB,
    superuser_headers: dict[str, str],
) -> None:
    dormant = await create_user("dormant-admin@example.com", is_superuser=True, is_active=False)

    demote = await client.patch(
        f"/users/{superuser.id}", json={"is_superuser": False}, headers=superuser_headers
    )
    delete_dormant = await client.delete(f"/users/{dormant.id}", headers=superuser_headers)

    assert_error(demote, "LAST_SUPERUSER", 409)
    assert delete_dormant.status_code == 204


async def test_other_changes_to_the_last_superuser_go_through(
    client: httpx.AsyncClient, superuser: UserDB, superuser_headers: dict[str, str]
) -> None:
    response = await client.patch(
        f"/users/{superuser.id}",
        json={"is_superuser": True, "is_active": True, "is_verified": False},
        headers=superuser_headers,
    )

    assert response.status_code == 200, response.text
    assert response.json()["is_verified"] is False


async def test_regular_users_are_deleted_and_deactivated_as_before(
    client: httpx.AsyncClient, user: UserDB, superuser_headers: dict[str, str]
) -> None:
    deactivated = await client.patch(
        f"/users/{user.id}", json={"is_active": False}, headers=superuser_headers
    )
    deleted = await client.delete(f"/users/{user.id}", headers=superuser_headers)

    assert deactivated.status_code == 200
    assert deleted.status_code == 204


@pytest.mark.parametrize("change", ["demote", "deactivate", "delete"])
async def test_two_superusers_removing_each_other_at_once_leave_one(
    client: httpx.AsyncClient, create_user: CreateUser, login: Login, change: str
) -> None:
    first = await create_user("first-admin@example.com", is_superuser=True)
    second = await create_user("second-admin@example.com", is_superuser=True)
    headers = {first.id: await login(first.email), second.id: await login(second.email)}

    async def remove(actor: UserDB, target: UserDB) -> httpx.Response:
        path, auth = f"/users/{target.id}", headers[actor.id]
        if change == "delete":
            return await client.delete(path, headers=auth)
        field = "is_superuser" if change == "demote" else "is_active"
        return await client.patch(path, json={field: False}, headers=auth)

    responses = await asyncio.gather(remove(first, second), remove(second, first))

    # One wins; the other is refused (409), or finds its own token gone with it (401, 403).
    statuses = [r.status_code for r in responses]
    assert len([s for s in statuses if s in (200, 204)]) == 1, statuses
    assert set(statuses) <= {200, 204, 401, 403, 409}, statuses
    assert await active_superusers() == 1


@pytest.mark.parametrize("rounds", [20])
async def test_adapter_keeps_one_superuser_under_concurrent_demotions(
    client: httpx.AsyncClient, create_user: CreateUser, rounds: int
) -> None:
    """What a CLI calls: many concurrent demotions and deletions leave exactly one superuser."""
    admins = [await create_user(f"admin{i}@example.com", is_superuser=True) for i in range(rounds)]

    async def remove(index: int, admin: UserDB) -> str:
        user_db = TortoiseUserDatabase()
        try:
            if index % 3 == 0:
                await user_db.delete(admin)
            else:
                field = "is_superuser" if index % 3 == 1 else "is_active"
                await user_db.update(admin, {field: False})
        except LastSuperuser:
            return "refused"
        return "done"

    outcomes = await asyncio.gather(*(remove(i, a) for i, a in enumerate(admins)))

    assert outcomes.count("refused") == 1
    assert outcomes.count("done") == rounds - 1
    assert await active_superusers() == 1


async def test_openapi_documents_409_on_patch_and_delete_by_id(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    for method in ("patch", "delete"):
        documented = paths["/users/{id}"][method]["responses"]["409"]
        assert "last active superuser" in documented["description"]
    assert "409" not in paths["/users/{id}"]["get"]["responses"]
    assert "409" not in paths["/users/me"]["patch"]["responses"]
