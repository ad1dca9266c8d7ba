"""`make migration`, end to end, on a copy of the project, as README's "Adding a field to
the user" tells a newcomer: add a nullable `first_name` to `User` and `UserRead`, run
`make migration name=add_first_name`, then upgrade and downgrade each database.
"""

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, Aerich, Backend, child_environment, free_port
from tests.test_migrations import connected, read_user_table

FIELD = "    first_name = fields.CharField(max_length=100, null=True)\n"
READ_FIELD = "    first_name: str | None = None\n"
# Run in the copy: the new column through the adapter, on each of its read paths.
PROBE = """
import asyncio
from datetime import UTC, datetime, timedelta
from tortoise import Tortoise
from app.db import open_sqlite_reader, tortoise_config
from app.models import Session, UserRead
from app.settings import load_settings
from app.user_db import TortoiseUserDatabase

async def main():
    await Tortoise.init(config=tortoise_config(load_settings()))
    users = TortoiseUserDatabase()
    created = await users.create(
        {"email": "ada@example.com", "hashed_password": "x", "first_name": "Ada"}
    )
    reader = open_sqlite_reader()
    now = datetime.now(UTC)
    session = await Session.create(user_id=created.id, auth_time=now, last_refreshed_at=now,
                                   expires_at=now + timedelta(hours=1))
    found = [
        created,
        await users.get(created.id),
        await users.get_by_email("ada@example.com"),
        await TortoiseUserDatabase(reader).get(created.id),
        await users.get_by_session(created.id, session.id, now),
        await TortoiseUserDatabase(reader).get_by_session(created.id, session.id, now),
        await users.update(created, {"first_name": "Augusta"}),
    ]
    shown = UserRead.model_validate(found[-1])
    print(" ".join(user.first_name for user in found), shown.first_name)
    await Tortoise.close_connections()

asyncio.run(main())
"""


def project_copy(folder: Path) -> Path:
    """A copy of the project's sources, migrations and Makefile in `folder`."""
    for name in ("app", "migrations"):
        shutil.copytree(ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "Makefile"):
        shutil.copy(ROOT / name, folder)
    return folder


def make_migration(
    copy: Path, bytecode_cache: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """`make migration name=add_first_name` in `copy`, with this venv's Python."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(
        ["make", "--no-print-directory", "migration", "name=add_first_name", "RUN="],  # noqa: S607
        cwd=copy, env={**child_environment(bytecode_cache), "PATH": path, **env},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def extended(tmp_path_factory: pytest.TempPathFactory, bytecode_cache: Path) -> Path:
    """A copy of the project with `first_name`, and the migration `make migration` wrote."""
    copy = project_copy(tmp_path_factory.mktemp("project"))
    models = copy / "app" / "models.py"
    text = models.read_text()
    last_field = "    is_verified = fields.BooleanField(default=False)\n"
    text = text.replace(last_field, last_field + FIELD)
    text = text.replace('    """A user as the API shows it."""\n',
                        '    """A user as the API shows it."""\n\n' + READ_FIELD)  # fmt: skip
    assert FIELD in text
    assert READ_FIELD in text
    models.write_text(text)

    result = make_migration(copy, bytecode_cache)

    assert result.returncode == 0, result.stdout + result.stderr
    return copy


def test_one_file_with_each_dialects_sql(extended: Path) -> None:
    [new] = sorted((extended / "migrations" / "models").glob("*_add_first_name.py"))
    text = new.read_text()
    shipped = len(list((ROOT / "migrations" / "models").glob("[0-9]*.py")))

    assert new.name.startswith(f"{shipped}_")
    assert 'ALTER TABLE "user" ADD "first_name" VARCHAR(100)' in text  # SQLite, PostgreSQL
    assert "ALTER TABLE `user` ADD `first_name` VARCHAR(100)" in text  # MariaDB
    assert "MODELS_STATE = (" in text


def test_upgrade_and_downgrade_on_each_database(
    extended: Path, backend: Backend, aerich: Aerich, bytecode_cache: Path
) -> None:
    url = backend.recreate("fastapi_users_make_migration")

    upgraded = aerich(url, "upgrade", cwd=extended)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert "add_first_name" in upgraded.stdout
    assert "first_name" in columns(url)
    probe = subprocess.run(  # noqa: S603 (this venv's Python, fixed program)
        [sys.executable, "-c", PROBE], cwd=extended,
        env={**child_environment(bytecode_cache), "DATABASE_URL": url, "PYTHONPATH": str(extended)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["Ada"] * 6 + ["Augusta", "Augusta"]

    downgraded = aerich(url, "downgrade", "--yes", cwd=extended)
    assert downgraded.returncode == 0, downgraded.stdout + downgraded.stderr
    assert "add_first_name" in downgraded.stdout
    assert "first_name" not in columns(url)
    assert "email" in columns(url)


def columns(url: str) -> set[str]:
    """The columns of the user table at `url`."""

    async def read() -> set[str]:
        async with connected(url) as conn:
            return set((await read_user_table(conn)).columns)

    return asyncio.run(read())


def test_a_missing_server_stops_it_in_one_line(tmp_path: Path, bytecode_cache: Path) -> None:
    copy = project_copy(tmp_path)
    closed = f"postgres://postgres@127.0.0.1:{free_port()}"

    result = make_migration(copy, bytecode_cache, TEST_POSTGRES_URL=closed)

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("make migration:")]
    assert "postgres" in line
    assert "unreachable" in line
    assert not list((copy / "migrations" / "models").glob("*_add_first_name.py"))
