"""The Tortoise user-database adapter, tested directly on each database."""

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi_users.exceptions import UserAlreadyExists, UserNotExists
from tortoise import connections
from tortoise.transactions import in_transaction

from app.models import User, UserDB
from app.settings import Settings
from app.user_db import SQLiteReader, TortoiseUserDatabase, is_storable_email
from tests.conftest import Backend

pytestmark = pytest.mark.usefixtures("db")

HASH = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


def new_user(email: str = "ada@example.com", **fields: Any) -> dict[str, Any]:
    """A create_dict as FastAPI Users' manager passes it."""
    return {"email": email, "hashed_password": HASH, **fields}


@pytest.fixture
def user_db() -> TortoiseUserDatabase:
    """The adapter under test."""
    return TortoiseUserDatabase()


async def test_create_returns_a_complete_user(user_db: TortoiseUserDatabase) -> None:
    before = datetime.now(UTC)

    created = await user_db.create(new_user("Ada@Example.com"))

    assert isinstance(created, UserDB)
    assert isinstance(created.id, uuid.UUID)
    assert created.email == "ada@example.com"
    assert created.hashed_password == HASH
    assert (created.is_active, created.is_superuser, created.is_verified) == (True, False, False)
    assert created.created_at >= before.replace(microsecond=0)
    assert created.created_at.tzinfo is not None


async def test_create_keeps_given_flags(user_db: TortoiseUserDatabase) -> None:
    created = await user_db.create(new_user(is_superuser=True, is_verified=True, is_active=False))

    assert (created.is_active, created.is_superuser, created.is_verified) == (False, True, True)


async def test_get_finds_by_id(user_db: TortoiseUserDatabase) -> None:
    created = await user_db.create(new_user())

    assert await user_db.get(created.id) == created
    assert await user_db.get(uuid.uuid4()) is None


@pytest.mark.parametrize("spelling", ["ada@example.com", "ADA@EXAMPLE.COM", " Ada@example.com "])
async def test_get_by_email_ignores_case(user_db: TortoiseUserDatabase, spelling: str) -> None:
    created = await user_db.create(new_user("ada@example.com"))

    assert await user_db.get_by_email(spelling) == created


@pytest.mark.parametrize(
    "email",
    ["", "nobody@example.com", "nul\x00@example.com", "x" * 400, "lone\ud800@example.com"],
    ids=["empty", "unknown", "nul-byte", "too-long", "surrogate"],
)
async def test_get_by_email_finds_no_one(user_db: TortoiseUserDatabase, email: str) -> None:
    await user_db.create(new_user())

    assert await user_db.get_by_email(email) is None


def test_is_storable_email() -> None:
    assert is_storable_email("ada@example.com")
    assert is_storable_email("josé@exämple.com")
    assert not is_storable_email("")
    assert not is_storable_email("a\x00b")
    assert not is_storable_email("\udfff@example.com")


async def test_accents_are_distinct_addresses(user_db: TortoiseUserDatabase) -> None:
    """MariaDB's default collation would make these one; our column compares bytes."""
    jose = await user_db.create(new_user("jose@example.com"))
    jose_accented = await user_db.create(new_user("josé@example.com"))

    assert await user_db.get_by_email("jose@example.com") == jose
    assert await user_db.get_by_email("JOSÉ@example.com") == jose_accented


@pytest.mark.parametrize("second", ["ada@example.com", "ADA@example.com"])
async def test_create_with_a_taken_email_raises(user_db: TortoiseUserDatabase, second: str) -> None:
    await user_db.create(new_user("ada@example.com"))

    with pytest.raises(UserAlreadyExists):
        await user_db.create(new_user(second))
    assert await User.all().count() == 1


async def test_concurrent_creates_insert_one_row(user_db: TortoiseUserDatabase) -> None:
    results = await asyncio.gather(
        *(user_db.create(new_user("ada@example.com")) for _ in range(20)), return_exceptions=True
    )

    created = [r for r in results if isinstance(r, UserDB)]
    refused = [r for r in results if isinstance(r, UserAlreadyExists)]
    assert (len(created), len(refused)) == (1, 19)
    assert await User.all().count() == 1


async def test_create_reraises_other_integrity_errors(user_db: TortoiseUserDatabase) -> None:
    """A violated constraint that is not the e-mail's is not reported as a taken e-mail."""
    first = await user_db.create(new_user("ada@example.com"))

    with pytest.raises(Exception) as raised:  # noqa: PT011 (driver-specific type below)
        await user_db.create(new_user("grace@example.com", id=first.id))
    assert not isinstance(raised.value, UserAlreadyExists)


async def test_update_changes_only_the_given_fields(user_db: TortoiseUserDatabase) -> None:
    created = await user_db.create(new_user())

    updated = await user_db.update(created, {"is_verified": True, "email": "Ada.L@example.com"})

    assert updated.is_verified is True
    assert updated.email == "ada.l@example.com"
    assert updated.hashed_password == created.hashed_password
    assert updated.updated_at >= created.updated_at
    assert await user_db.get(created.id) == updated


async def test_update_does_not_overwrite_concurrent_changes(
    user_db: TortoiseUserDatabase,
) -> None:
    created = await user_db.create(new_user())
    await user_db.update(created, {"is_superuser": True})

    # `created` is now stale: updating another field must keep is_superuser.
    updated = await user_db.update(created, {"is_verified": True})

    assert (updated.is_superuser, updated.is_verified) == (True, True)


async def test_update_with_nothing_returns_the_stored_user(user_db: TortoiseUserDatabase) -> None:
    created = await user_db.create(new_user())

    assert await user_db.update(created, {}) == created


async def test_update_to_a_taken_email_raises(user_db: TortoiseUserDatabase) -> None:
    await user_db.create(new_user("ada@example.com"))
    grace = await user_db.create(new_user("grace@example.com"))

    with pytest.raises(UserAlreadyExists):
        await user_db.update(grace, {"email": "ADA@example.com"})
    assert (await user_db.get(grace.id)) == grace


async def test_update_of_a_deleted_user_raises(user_db: TortoiseUserDatabase) -> None:
    created = await user_db.create(new_user())
    await user_db.delete(created)

    with pytest.raises(UserNotExists):
        await user_db.update(created, {"is_verified": True})


async def test_delete_removes_the_row(user_db: TortoiseUserDatabase) -> None:
    ada = await user_db.create(new_user("ada@example.com"))
    grace = await user_db.create(new_user("grace@example.com"))

    await user_db.delete(ada)
    await user_db.delete(ada)  # already gone: not an error

    assert await user_db.get(ada.id) is None
    assert await user_db.get(grace.id) == grace


async def explain(sql: str, kind: str) -> str:
    """The database's plan for `sql`, as one lower-case string."""
    if kind == "sqlite":
        _, rows = await connections.get("default").execute_query(f"EXPLAIN QUERY PLAN {sql}")
        return " ".join(str(row["detail"]) for row in rows).lower()
    if kind == "postgres":
        async with in_transaction() as conn:
            # On a small table the planner rightly prefers a scan; forbidding scans
            # shows whether an index *can* serve the query.
            await conn.execute_query("SET LOCAL enable_seqscan = off")
            _, rows = await conn.execute_query(f"EXPLAIN {sql}")
        return " ".join(str(row["QUERY PLAN"]) for row in rows).lower()
    _, rows = await connections.get("default").execute_query(f"EXPLAIN {sql}")
    return " ".join(f"type={row['type']} key={row['key']}" for row in rows).lower()


def uses_email_index(plan: str, kind: str) -> bool:
    """Whether `plan` looks up the e-mail through an index rather than scanning."""
    if kind == "sqlite":
        return "using index" in plan and "scan" not in plan
    if kind == "postgres":
        return "index" in plan and "seq scan" not in plan
    return "type=const" in plan or "type=ref" in plan


async def test_lookup_by_email_uses_the_index(
    user_db: TortoiseUserDatabase, backend: Backend
) -> None:
    for i in range(50):
        await user_db.create(new_user(f"user{i}@example.com"))
    sql = user_db.select_by_email("User7@Example.com").sql(params_inline=True)

    plan = await explain(sql, backend.kind)

    assert uses_email_index(plan, backend.kind), plan


async def test_a_case_folding_query_would_scan(backend: Backend) -> None:
    """The counterpart: Tortoise's `iexact`, which we avoid, cannot use the index."""
    for i in range(50):
        await User.create(**new_user(f"user{i}@example.com"))
    sql = User.filter(email__iexact="User7@Example.com").sql(params_inline=True)

    plan = await explain(sql, backend.kind)

    assert not uses_email_index(plan, backend.kind), plan


async def test_update_ignores_keys_that_are_no_column(user_db: TortoiseUserDatabase) -> None:
    created = await user_db.create(new_user())

    updated = await user_db.update(created, {"password": None, "is_verified": True})

    assert updated.is_verified is True
    assert updated.hashed_password == HASH


@pytest.mark.parametrize("operation", ["create", "update"])
async def test_a_taken_email_inside_a_transaction_raises_and_the_transaction_goes_on(
    user_db: TortoiseUserDatabase, operation: str
) -> None:
    """On PostgreSQL a failed statement would abort the transaction: a savepoint keeps it."""
    taken = await user_db.create(new_user("taken@example.com"))
    other = await user_db.create(new_user("other@example.com"))

    async with in_transaction():
        await user_db.update(other, {"is_verified": True})
        clash = (
            user_db.create(new_user("TAKEN@example.com"))
            if operation == "create"
            else user_db.update(other, {"email": taken.email})
        )
        with pytest.raises(UserAlreadyExists):
            await clash
        renamed = await user_db.update(other, {"email": "renamed@example.com"})

    stored = await user_db.get(other.id)
    assert stored == renamed
    assert stored is not None
    assert (stored.email, stored.is_verified) == ("renamed@example.com", True)


async def test_reads_inside_a_transaction_see_its_writes(
    settings: Settings, backend: Backend
) -> None:
    """Even with the SQLite reader, which cannot see an open transaction's writes."""
    reader = None
    if backend.kind == "sqlite":
        parts = urlsplit(settings.database_url)
        reader = SQLiteReader(parts.netloc + parts.path)
    user_db = TortoiseUserDatabase(reader)
    created = await user_db.create(new_user())
    try:
        async with in_transaction():
            await user_db.update(created, {"is_active": False})
            inside = await user_db.get(created.id)
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    finally:
        if reader is not None:
            reader.close()

    assert inside is not None
    assert inside.is_active is False
    assert (await TortoiseUserDatabase().get(created.id)) == created
