"""The Aerich migrations, run through the real `aerich` command line on each database.

They must build the schema the models describe (compared with Tortoise's own
`generate_schemas`), record what they applied, revert cleanly, and leave `aerich migrate`
nothing to do. The databases used here are apart from the shared `fastapi_users_test`.
"""

import asyncio
import shutil
import tomllib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pytest
from tortoise import BaseDBAsyncClient
from tortoise.connection import get_connection
from tortoise.contrib.fastapi import RegisterTortoise

from app.db import tortoise_config
from app.models import User
from app.settings import Settings
from tests.conftest import ROOT, SERVER_URLS, Aerich, Backend, forget_cached_sql

MIGRATIONS = ROOT / "migrations" / "models"
# The columns the model describes, and those of them it allows to be NULL.
USER_COLUMNS = {field.source_field or name for name, field in User._meta.fields_map.items()}
NULLABLE_COLUMNS = {
    field.source_field or name for name, field in User._meta.fields_map.items() if field.null
}


def migration_files() -> list[str]:
    """The migration files in the repository, in the order Aerich applies them."""
    names = [path.name for path in MIGRATIONS.glob("*.py") if not path.name.startswith("__")]
    return sorted(names, key=lambda name: int(name.split("_", 1)[0]))


class Column(NamedTuple):
    """A column as the database reports it."""

    type: str
    nullable: bool
    collation: str | None


@dataclass(frozen=True)
class Table:
    """What matters of a table: its columns, and the column lists of its indexes."""

    columns: dict[str, Column]
    unique: frozenset[tuple[str, ...]]  # besides the primary key
    indexes: frozenset[tuple[str, ...]] = frozenset()  # every index but the primary key


@asynccontextmanager
async def connected(
    database_url: str, *, generate_schemas: bool = False
) -> AsyncIterator[BaseDBAsyncClient]:
    """Tortoise, configured as the app and Aerich configure it, connected to `database_url`."""
    forget_cached_sql()
    settings = Settings(_env_file=None, database_url=database_url)
    config = tortoise_config(settings)
    async with RegisterTortoise(config=config, generate_schemas=generate_schemas):
        yield get_connection("default")


async def read_user_table(conn: BaseDBAsyncClient, table: str = "user") -> Table:
    """The `table` as the database describes it (no columns if it does not exist)."""
    dialect = conn.capabilities.dialect
    unique, indexed = set(), set()
    if dialect == "sqlite":
        rows = await conn.execute_query_dict(f'PRAGMA table_info("{table}")')
        columns = {row["name"]: Column(row["type"], not row["notnull"], None) for row in rows}
        for index in await conn.execute_query_dict(f'PRAGMA index_list("{table}")'):
            if index["origin"] != "pk":
                parts = await conn.execute_query_dict(f'PRAGMA index_info("{index["name"]}")')
                names = tuple(part["name"] for part in sorted(parts, key=lambda p: p["seqno"]))
                indexed.add(names)
                if index["unique"]:
                    unique.add(names)
    elif dialect == "postgres":
        rows = await conn.execute_query_dict(
            "SELECT column_name, data_type, character_maximum_length AS length,"
            " is_nullable, collation_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = $1",
            [table],
        )
        columns = {
            row["column_name"]: Column(
                row["data_type"] + (f"({row['length']})" if row["length"] else ""),
                row["is_nullable"] == "YES",
                row["collation_name"],
            )
            for row in rows
        }
        indexes = await conn.execute_query_dict(
            "SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey, a.attnum))"
            " AS columns, bool_and(i.indisunique) AS is_unique FROM pg_index i JOIN pg_attribute a"
            " ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
            " WHERE i.indrelid = to_regclass(quote_ident($1))"
            " AND NOT i.indisprimary GROUP BY i.indexrelid",
            [table],
        )
        unique = {tuple(index["columns"]) for index in indexes if index["is_unique"]}
        indexed = {tuple(index["columns"]) for index in indexes}
    else:
        rows = await conn.execute_query_dict(
            "SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type, IS_NULLABLE AS nullable,"
            " COLLATION_NAME AS collation FROM information_schema.COLUMNS"
            " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            [table],
        )
        columns = {
            row["name"]: Column(row["type"], row["nullable"] == "YES", row["collation"])
            for row in rows
        }
        indexes = await conn.execute_query_dict(
            "SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) AS columns,"
            " MIN(NON_UNIQUE) AS non_unique"
            " FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()"
            " AND TABLE_NAME = %s AND INDEX_NAME <> 'PRIMARY'"
            " GROUP BY INDEX_NAME",
            [table],
        )
        indexed = {tuple(index["columns"].split(",")) for index in indexes}
        unique = {
            tuple(index["columns"].split(",")) for index in indexes if not index["non_unique"]
        }
    return Table(columns, frozenset(unique), frozenset(indexed))


def user_table(database_url: str, table: str = "user") -> Table:
    """The `table` (`user` by default) of `database_url`."""

    async def read() -> Table:
        async with connected(database_url) as conn:
            return await read_user_table(conn, table)

    return asyncio.run(read())


def applied_versions(database_url: str) -> list[str]:
    """The migrations Aerich has recorded as applied, in the order it applied them."""

    async def read() -> list[str]:
        async with connected(database_url) as conn:
            rows = await conn.execute_query_dict(
                "SELECT version FROM aerich WHERE app = 'models' ORDER BY id"
            )
            return [row["version"] for row in rows]

    return asyncio.run(read())


@dataclass(frozen=True)
class Migrated:
    """A database that `aerich upgrade` built from empty, and what the command printed."""

    url: str
    output: str


UPGRADE_OPTIONS = {"plain": (), "ini": ("-c", "aerich.ini"), "round_trip": ()}


@pytest.fixture(scope="module")
def upgraded(backend: Backend, aerich: Aerich) -> dict[str, Migrated]:
    """Fresh databases of this backend, each migrated by its own `aerich [options] upgrade`.

    "plain" is shared and left as migrated; "ini" was upgraded with `-c aerich.ini`;
    "round_trip" belongs to the downgrade test. The commands run in parallel.
    """
    urls = {name: backend.recreate(f"fastapi_users_migrations_{name}") for name in UPGRADE_OPTIONS}

    def run(name: str) -> Migrated:
        return Migrated(urls[name], aerich.upgrade(urls[name], *UPGRADE_OPTIONS[name]).stdout)

    with ThreadPoolExecutor(max_workers=len(UPGRADE_OPTIONS)) as pool:
        return dict(zip(UPGRADE_OPTIONS, pool.map(run, UPGRADE_OPTIONS), strict=True))


@pytest.fixture(scope="module")
def migrated(upgraded: dict[str, Migrated]) -> Migrated:
    """A database of this backend that `aerich upgrade` built from empty (not modified)."""
    return upgraded["plain"]


def test_upgrade_creates_user_table(migrated: Migrated) -> None:
    """The user table has the model's columns, NOT NULL as the model says, a unique e-mail."""
    table = user_table(migrated.url)

    assert set(table.columns) == USER_COLUMNS
    assert {name for name, column in table.columns.items() if column.nullable} == NULLABLE_COLUMNS
    assert {"id", "email", "hashed_password", "created_at"} <= USER_COLUMNS - NULLABLE_COLUMNS
    assert ("email",) in table.unique


def test_upgrade_records_every_migration(migrated: Migrated) -> None:
    """Every migration file is applied, reported, and recorded in the `aerich` table."""
    files = migration_files()

    assert files, "no migration in migrations/models"
    assert applied_versions(migrated.url) == files
    for name in files:
        assert f"Success upgrading to {name}" in migrated.output


def test_second_upgrade_is_a_no_op(migrated: Migrated, aerich: Aerich) -> None:
    """Upgrading a database that is up to date applies and records nothing."""
    table_before = user_table(migrated.url)

    result = aerich.upgrade(migrated.url)

    assert "No upgrade items found" in result.stdout
    assert applied_versions(migrated.url) == migration_files()
    assert user_table(migrated.url) == table_before


def test_upgrade_with_aerich_ini_matches_plain_upgrade(upgraded: dict[str, Migrated]) -> None:
    """`aerich -c aerich.ini upgrade` builds the same schema and records the same versions."""
    ini, plain = upgraded["ini"], upgraded["plain"]

    assert ini.output == plain.output
    assert user_table(ini.url) == user_table(plain.url)
    assert applied_versions(ini.url) == applied_versions(plain.url)


def test_downgrade_reverts_each_migration_and_upgrade_restores_them(
    upgraded: dict[str, Migrated], aerich: Aerich
) -> None:
    """Each `aerich downgrade --yes` reverts the last migration; upgrading again restores all."""
    url = upgraded["round_trip"].url
    files = migration_files()
    tables = {name: user_table(url, name) for name in ("user", "auth_session", "audit_event")}
    assert all(table.columns for table in tables.values())

    for applied in range(len(files), 0, -1):
        result = aerich(url, "downgrade", "--yes")

        assert result.returncode == 0, result.stdout + result.stderr
        assert f"Success downgrading to {files[applied - 1]}" in result.stdout
        assert applied_versions(url) == files[: applied - 1]

    assert all(user_table(url, name).columns == {} for name in tables)

    aerich.upgrade(url)

    assert {name: user_table(url, name) for name in tables} == tables
    assert applied_versions(url) == files


def test_migrate_detects_no_changes(migrated: Migrated, aerich: Aerich, tmp_path: Path) -> None:
    """The migrations are in step with the models: `aerich migrate` writes nothing."""
    for folder in ("app", "migrations"):
        shutil.copytree(
            ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)

    def snapshot() -> dict[Path, bytes]:
        folder = tmp_path / "migrations"
        return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}

    before = snapshot()

    result = aerich(migrated.url, "migrate", "--no-input", cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes detected" in result.stdout, result.stdout
    assert snapshot() == before


def test_migrated_schema_matches_generated_schema(backend: Backend, migrated: Migrated) -> None:
    """The migrated user table equals the one Tortoise generates from the models.

    One difference is deliberate: the migrations give the e-mail a binary collation, on
    MySQL/MariaDB so that addresses differing in case or accents stay distinct, and on
    PostgreSQL ("C") so that its unique index serves prefix searches.
    """
    generated_url = backend.recreate("fastapi_users_generated")

    async def generate() -> Table:
        async with connected(generated_url, generate_schemas=True) as conn:
            return await read_user_table(conn)

    async def generate_sessions() -> Table:
        async with connected(generated_url) as conn:
            return await read_user_table(conn, "auth_session")

    generated = asyncio.run(generate())
    migrated_table = user_table(migrated.url)
    assert user_table(migrated.url, "auth_session") == asyncio.run(generate_sessions())

    expected = dict(generated.columns)
    binary = {"mysql": "utf8mb4_bin", "postgres": "C"}.get(backend.kind)
    if binary is not None:
        assert migrated_table.columns["email"].collation == binary
        expected["email"] = expected["email"]._replace(collation=binary)
    assert migrated_table.columns == expected
    assert migrated_table.unique == generated.unique


def test_migrated_audit_table_matches_generated_schema(
    backend: Backend, migrated: Migrated
) -> None:
    """The migrated `audit_event` table, with its filter and cursor indexes, is the model's."""
    generated_url = backend.recreate("fastapi_users_generated_audit")

    async def generate() -> Table:
        async with connected(generated_url, generate_schemas=True) as conn:
            return await read_user_table(conn, "audit_event")

    generated = asyncio.run(generate())
    migrated_table = user_table(migrated.url, "audit_event")

    assert migrated_table == generated
    assert {("subject_id", "id"), ("action", "id"), ("created_at",)} <= migrated_table.indexes


def test_aerich_ini_matches_pyproject() -> None:
    """aerich.ini carries the same [tool.aerich] table as pyproject.toml."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    ini = tomllib.loads((ROOT / "aerich.ini").read_text())

    assert ini["tool"]["aerich"] == pyproject["tool"]["aerich"]
    assert set(ini) == {"tool"}
    assert set(ini["tool"]) == {"aerich"}


def test_upgrade_with_bad_database_url_fails_in_one_line(aerich: Aerich) -> None:
    """A bad DATABASE_URL stops `aerich upgrade` with one line naming it, no traceback."""
    result = aerich("nosuch://x", "upgrade")

    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "DATABASE_URL" in lines[0]


@pytest.mark.parametrize(
    "url",
    [
        f"{SERVER_URLS['postgres']}/no_such_database_anywhere",
        f"{SERVER_URLS['mysql']}/no_such_database_anywhere",
        "postgres://postgres@127.0.0.1:1/nowhere",
        "sqlite:///no/such/folder/db.sqlite3",
    ],
    ids=["postgres-no-database", "mysql-no-database", "no-server", "sqlite-no-folder"],
)
def test_upgrade_of_an_unreachable_database_fails_in_one_line(aerich: Aerich, url: str) -> None:
    """A missing database or server stops `aerich upgrade` with one line, no traceback."""
    result = aerich(url, "upgrade")

    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Cannot reach the database (DATABASE_URL)")
