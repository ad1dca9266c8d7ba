"""`GET /users`, the admin user list: access, pages, search, filters, and its query plans."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tortoise import connections
from tortoise.transactions import in_transaction

from app.admin import UserFilter, encode_cursor, users_query
from app.models import User, UserDB
from tests.conftest import Backend, CreateUser, Login, assert_error

HASH = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
START = datetime(2026, 1, 1, tzinfo=UTC)


async def seed(count: int, **fields: Any) -> None:
    """`count` users, created one second apart (three share each second, to test ties)."""
    await User.bulk_create(
        [
            User(
                email=f"user{n:03}@example.com",  # 3 digits, then user1000@...
                hashed_password=HASH,
                created_at=START + timedelta(seconds=n // 3),
                **fields,
            )
            for n in range(count)
        ]
    )


async def all_pages(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    """Every item of the list, page by page."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/users", params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= params.get("limit", 50)
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


async def test_anonymous_is_401_and_regular_user_403(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    assert (await client.get("/users")).status_code == 401
    assert (await client.get("/users", headers=auth_headers)).status_code == 403


async def test_pages_go_through_every_user_once_in_creation_order(
    client: httpx.AsyncClient, superuser: UserDB, superuser_headers: dict[str, str]
) -> None:
    await seed(23)

    items = await all_pages(client, superuser_headers, limit=4)

    assert len(items) == 24
    keys = [(item["created_at"], item["id"]) for item in items if item["id"] != str(superuser.id)]
    assert len(keys) == 23
    created = [datetime.fromisoformat(key[0]) for key in keys]
    assert created == sorted(created)
    assert len({item["id"] for item in items}) == 24
    assert "hashed_password" not in items[0]


async def test_prefix_search_ignores_case_and_pages_by_email(
    client: httpx.AsyncClient, superuser_headers: dict[str, str]
) -> None:
    await seed(30)
    await User.create(email="userx@example.org", hashed_password=HASH)

    items = await all_pages(client, superuser_headers, q="  USER01", limit=3)
    none = await all_pages(client, superuser_headers, q="nobody")

    assert [item["email"] for item in items] == [f"user{n:03}@example.com" for n in range(10, 20)]
    assert none == []


@pytest.mark.parametrize("q", ["%", "_", "user\\", "\x00", "user%"])
async def test_search_treats_wildcards_as_text(
    client: httpx.AsyncClient, superuser_headers: dict[str, str], q: str
) -> None:
    await seed(3)

    items = await all_pages(client, superuser_headers, q=q)

    assert items == []


async def test_filters(
    client: httpx.AsyncClient, superuser: UserDB, superuser_headers: dict[str, str]
) -> None:
    await seed(6)
    await seed(0)
    await User.create(email="off@example.com", hashed_password=HASH, is_active=False)
    await User.create(email="ok@example.com", hashed_password=HASH, is_verified=True)

    inactive = await all_pages(client, superuser_headers, is_active="false")
    verified = await all_pages(client, superuser_headers, is_verified=True)
    superusers = await all_pages(client, superuser_headers, is_superuser=True)
    searched = await all_pages(client, superuser_headers, q="o", is_active=True)

    assert [item["email"] for item in inactive] == ["off@example.com"]
    assert {item["email"] for item in verified} == {"ok@example.com", superuser.email}
    assert [item["email"] for item in superusers] == [superuser.email]
    assert [item["email"] for item in searched] == ["ok@example.com"]


@pytest.mark.parametrize(
    "cursor",
    ["garbage!", encode_cursor(["2026-01-01T00:00:00", str(uuid.uuid4())]), encode_cursor([1]),
     encode_cursor(["x@example.com"]), "", "e30"],
    ids=["garbage", "naive-time", "number", "search-cursor", "empty", "object"],
)  # fmt: skip
async def test_a_bad_cursor_is_400(
    client: httpx.AsyncClient, superuser_headers: dict[str, str], cursor: str
) -> None:
    response = await client.get("/users", params={"cursor": cursor}, headers=superuser_headers)

    if cursor == "":
        assert response.status_code == 200  # no cursor: the first page
    else:
        assert_error(response, "LIST_USERS_INVALID_CURSOR")


async def test_a_list_cursor_is_400_for_a_search(
    client: httpx.AsyncClient, superuser_headers: dict[str, str]
) -> None:
    cursor = encode_cursor([START.isoformat(), str(uuid.uuid4())])

    response = await client.get(
        "/users", params={"cursor": cursor, "q": "a"}, headers=superuser_headers
    )

    assert_error(response, "LIST_USERS_INVALID_CURSOR")


@pytest.mark.parametrize("limit", [0, 101, "x"])
async def test_limit_is_1_to_100(
    client: httpx.AsyncClient, superuser_headers: dict[str, str], limit: Any
) -> None:
    response = await client.get("/users", params={"limit": limit}, headers=superuser_headers)

    assert response.status_code == 422


async def test_items_show_userread_and_timestamps(
    client: httpx.AsyncClient, create_user: CreateUser, login: Login
) -> None:
    """UserRead (and the timestamps) decide what is shown, never the hash."""
    admin = await create_user("root@example.com", is_superuser=True)
    headers = await login(admin.email)

    [item] = (await client.get("/users", headers=headers)).json()["items"]

    assert set(item) == {
        "id", "email", "is_active", "is_superuser", "is_verified", "created_at", "updated_at",
    }  # fmt: skip


# --- query plans --------------------------------------------------------------------------


async def explain(sql: str, kind: str) -> str:
    """The database's plan for `sql`, as one lower-case string (scans made dear on PostgreSQL)."""
    if kind == "sqlite":
        _, rows = await connections.get("default").execute_query(f"EXPLAIN QUERY PLAN {sql}")
        return " ".join(str(row["detail"]) for row in rows).lower()
    if kind == "postgres":
        async with in_transaction() as conn:
            # On a small table the planner rightly prefers a scan; forbidding scans (and
            # sorts) shows whether an index *can* serve the query in its order.
            await conn.execute_query("SET LOCAL enable_seqscan = off")
            await conn.execute_query("SET LOCAL enable_sort = off")
            _, rows = await conn.execute_query(f"EXPLAIN {sql}")
        return " ".join(str(row["QUERY PLAN"]) for row in rows).lower()
    # The statistics of a table just filled are a guess until analyzed.
    await connections.get("default").execute_query("ANALYZE TABLE `user`")
    _, rows = await connections.get("default").execute_query(f"EXPLAIN {sql}")
    return " ".join(
        f"type={row['type']} key={row['key']} extra={row['Extra']}" for row in rows
    ).lower()


def served_by_index(plan: str, kind: str, index: str) -> bool:
    """Whether `plan` reads along `index` in order: no full scan, no sort."""
    if kind == "sqlite":
        return f"using index {index}" in plan and "temp b-tree" not in plan
    if kind == "postgres":
        return f"index scan using {index}" in plan and "sort" not in plan and "seq scan" not in plan
    return f"key={index}" in plan and "type=range" in plan and "filesort" not in plan


PAGE_INDEX = "idx_user_created_5e2aef"
EMAIL_INDEX = {"sqlite": "sqlite_autoindex_user_2", "postgres": "user_email_key", "mysql": "email"}


@pytest.mark.usefixtures("db")
@pytest.mark.parametrize("first_page", [True, False], ids=["first-page", "next-page"])
async def test_a_page_reads_the_created_at_index(backend: Backend, first_page: bool) -> None:
    # MariaDB reads a small table whole and sorts it; at a few thousand rows a page of
    # ten is read along the index, as it is at any larger size.
    await seed(3000)
    middle = START + timedelta(seconds=660)  # a cursor two thirds in
    cursor = None if first_page else encode_cursor([middle.isoformat(), str(uuid.uuid4())])
    sql = users_query(UserFilter(), cursor, 11).sql(params_inline=True)
    if backend.kind == "mysql":
        # Tortoise inlines the time in ISO form, which MariaDB compares as text; the
        # driver sends the parameter of the real query in MariaDB's own form.
        sql = sql.replace(middle.isoformat(), f"{middle:%Y-%m-%d %H:%M:%S}")

    plan = await explain(sql, backend.kind)

    if first_page and backend.kind == "mysql":
        # No range to read: MariaDB walks the index from its start (type=index).
        assert f"key={PAGE_INDEX}" in plan and "filesort" not in plan, plan  # noqa: PT018
    else:
        assert served_by_index(plan, backend.kind, PAGE_INDEX), plan


@pytest.mark.usefixtures("db")
@pytest.mark.parametrize("next_page", [False, True], ids=["first-page", "next-page"])
async def test_a_prefix_search_reads_the_email_index(backend: Backend, next_page: bool) -> None:
    await seed(3000)
    cursor = encode_cursor(["user050@example.com"]) if next_page else None
    sql = users_query(UserFilter(q="User05"), cursor, 11).sql(params_inline=True)

    plan = await explain(sql, backend.kind)

    assert served_by_index(plan, backend.kind, EMAIL_INDEX[backend.kind]), plan
