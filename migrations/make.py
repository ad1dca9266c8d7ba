"""`make migration name=NAME`: one migration for SQLite, PostgreSQL and MariaDB at once.

Aerich writes the SQL of one dialect, for the database it is connected to. This runs
`aerich upgrade` and then `aerich migrate` in a copy of the project against a throwaway
database of each kind (the servers the tests use: TEST_POSTGRES_URL, TEST_MYSQL_URL),
and merges the three files into one in `migrations/models/`, keyed by dialect like
`0_*_init.py`. A server that does not answer stops it with one line: a migration for
one dialect only would break the others.
"""

import argparse
import asyncio
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import asyncmy
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "migrations" / "models"
AERICH = str(Path(sys.executable).with_name("aerich"))
SERVER_URLS = {
    "postgres": os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432"),
    "mysql": os.environ.get("TEST_MYSQL_URL", "mysql://root:@127.0.0.1:3306"),
}
DIALECTS = ("sqlite", "postgres", "mysql")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,50}$")
MODELS_STATE = re.compile(r"^MODELS_STATE = \(.*?^\)$", re.MULTILINE | re.DOTALL)
TEMPLATE = '''"""{title} (written by `make migration name={name}`).

Aerich migrations are raw SQL for one dialect; this one carries the SQL for each
database we support and picks it by the connection's dialect.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

UPGRADE = {{
{upgrade}
}}

DOWNGRADE = {{
{downgrade}
}}


async def upgrade(db: BaseDBAsyncClient) -> str:
    """The SQL that applies this migration on `db`'s dialect."""
    return UPGRADE[db.capabilities.dialect]


async def downgrade(db: BaseDBAsyncClient) -> str:
    """The SQL that reverts this migration on `db`'s dialect."""
    return DOWNGRADE[db.capabilities.dialect]


{models_state}
'''


class Failure(Exception):
    """An expected failure, told in one line."""


@dataclass
class Generated:
    """What `aerich migrate` wrote for one dialect."""

    filename: str
    upgrade: str
    downgrade: str
    models_state: str


async def run_admin(kind: str, statement: str) -> None:
    """Run one statement on the server of `kind`, outside any database."""
    parts = urlsplit(SERVER_URLS[kind])
    if kind == "postgres":
        conn = await asyncpg.connect(
            host=parts.hostname, port=parts.port, user=parts.username,
            password=parts.password, database="postgres", timeout=5,
        )  # fmt: skip
        try:
            await conn.execute(statement)
        finally:
            await conn.close()
    else:
        mysql = await asyncmy.connect(
            host=parts.hostname, port=parts.port or 3306, user=parts.username,
            password=parts.password or "", connect_timeout=5,
        )  # fmt: skip
        try:
            async with mysql.cursor() as cursor:
                await cursor.execute(statement)
        finally:
            mysql.close()


def admin(kind: str, statement: str) -> None:
    """`run_admin`, with an unreachable server told in one line."""
    try:
        asyncio.run(run_admin(kind, statement))
    except (OSError, asyncpg.PostgresError, asyncmy.errors.Error) as exc:
        raise Failure(
            f"{kind} at {SERVER_URLS[kind]} is unreachable ({exc}); make migration needs "
            "SQLite, PostgreSQL and MariaDB (TEST_POSTGRES_URL, TEST_MYSQL_URL)"
        ) from None


def load(path: Path) -> ModuleType:
    """Import the migration file at `path`."""
    spec = importlib.util.spec_from_file_location(f"migration_{uuid.uuid4().hex}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def aerich(copy: Path, url: str, *args: str) -> str:
    """Run `aerich *args` in `copy` on `url`; its output, or a one-line `Failure`."""
    env = {**os.environ, "DATABASE_URL": url}
    result = subprocess.run(  # noqa: S603 (this venv's aerich, fixed arguments)
        [AERICH, *args], cwd=copy, env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:]
        raise Failure(f"aerich {' '.join(args)} failed on {url}: {' '.join(last)}")
    return result.stdout


def generate(kind: str, name: str, workdir: Path) -> Generated:
    """Run `aerich migrate` on a throwaway database of `kind` in a copy of the project."""
    copy = workdir / kind
    copy.mkdir()
    for folder in ("app", "migrations"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy)
    database = f"make_migration_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    if kind == "sqlite":
        url = f"sqlite://{copy / 'throwaway.sqlite3'}"
    else:
        admin(
            kind,
            f"CREATE DATABASE {database}" + (" CHARACTER SET utf8mb4" if kind == "mysql" else ""),
        )
        url = f"{SERVER_URLS[kind]}/{database}"
    try:
        aerich(copy, url, "upgrade")
        before = {path.name for path in (copy / "migrations" / "models").glob("*.py")}
        output = aerich(copy, url, "migrate", "--name", name, "--no-input")
        new = [
            path
            for path in (copy / "migrations" / "models").glob("*.py")
            if path.name not in before
        ]
        if not new:
            raise Failure(
                f"nothing to migrate: the models match the last migration ({output.strip()})"
            )
        [path] = new
        module = load(path)
        state = MODELS_STATE.search(path.read_text())
        assert state is not None, path
        return Generated(
            path.name,
            asyncio.run(module.upgrade(None)).strip(),
            asyncio.run(module.downgrade(None)).strip(),
            state.group(0),
        )
    finally:
        if kind != "sqlite":
            admin(kind, f"DROP DATABASE IF EXISTS {database}")


def sql_literal(sql: str) -> str:
    """`sql` as a triple-quoted Python string, one statement a line."""
    statements = [line.strip() for line in sql.splitlines() if line.strip()]
    body = "\n".join(statements).replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return f'"""\n{body}"""'


def merged(name: str, generated: dict[str, Generated]) -> str:
    """One migration file carrying each dialect's SQL."""
    states = {g.models_state for g in generated.values()}
    if len(states) != 1:
        raise Failure("aerich described the models differently per dialect; nothing written")
    title = name.replace("_", " ").capitalize()

    def table(part: str) -> str:
        return "\n".join(
            f'    "{kind}": {sql_literal(getattr(generated[kind], part))},' for kind in DIALECTS
        )

    return TEMPLATE.format(
        title=title,
        name=name,
        upgrade=table("upgrade"),
        downgrade=table("downgrade"),
        models_state=states.pop(),
    )


def make_migration(name: str) -> Path:
    """Write the migration `name` for the three dialects; returns its path."""
    if not NAME.match(name):
        raise Failure(f"name {name!r}: use lower case letters, digits and _ (e.g. add_first_name)")
    for kind in ("postgres", "mysql"):
        admin(kind, "SELECT 1")
    with (
        tempfile.TemporaryDirectory(prefix="make-migration-") as workdir,
        ThreadPoolExecutor(max_workers=len(DIALECTS)) as pool,
    ):
        futures = {kind: pool.submit(generate, kind, name, Path(workdir)) for kind in DIALECTS}
        generated = {kind: future.result() for kind, future in futures.items()}
    path = MODELS / generated["sqlite"].filename
    path.write_text(merged(name, generated))
    return path


def main() -> None:
    """Parse the name, write the migration, print its path; expected failures in one line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="what the migration does, e.g. add_first_name")
    name = parser.parse_args().name
    try:
        path = make_migration(name)
    except Failure as exc:
        sys.stderr.write(f"make migration: {exc}\n")
        raise SystemExit(1) from None
    sys.stdout.write(f"Wrote {path.relative_to(ROOT)}\n")


if __name__ == "__main__":
    main()
