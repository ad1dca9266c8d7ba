"""`python -m app`, run as an operator runs it (a subprocess), on SQLite and PostgreSQL.

The CLI's queries are the adapter's and the list's, tested on all three databases in
tests/test_user_db.py, tests/test_admin.py and tests/test_import.py; here each command
goes through its real entry point, on the test database the `client` fixture cleared.
"""

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app.models import AuditEvent, Session, User
from tests.conftest import (
    PASSWORD,
    ROOT,
    TEST_SECRET,
    Backend,
    child_environment,
    free_port,
)
from tests.test_import import DJANGO_HASH, DJANGO_PASSWORD

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


class CLI:
    """`python -m app` on the test database, from an empty folder (no `.env`)."""

    def __init__(self, database_url: str, folder: Path, bytecode_cache: Path) -> None:
        self.folder = folder
        self.env = {
            **child_environment(bytecode_cache),
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": database_url,
            "SECRET": TEST_SECRET,
            "ENVIRONMENT": "development",
            "PASSWORD_HASH_TIME_COST": "1",
            "PASSWORD_HASH_MEMORY_COST": "8",
            "LOG_LEVEL": "warning",
        }
        for name in ("SMTP_HOST", "REDIS_URL", "SMTP_PORT"):
            self.env.pop(name, None)

    def __call__(self, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
        """Run the command; it never waits for a terminal."""
        return subprocess.run(  # noqa: S603 (this venv's Python, fixed arguments)
            [sys.executable, "-m", "app", *args], cwd=self.folder, env={**self.env, **env},
            input=stdin, capture_output=True, text=True, timeout=60,
        )  # fmt: skip


@pytest.fixture
def cli(database_url: str, tmp_path: Path, bytecode_cache: Path) -> CLI:
    """The command line on the test database."""
    return CLI(database_url, tmp_path, bytecode_cache)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The failure's one line on stderr (and no traceback)."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


async def login_status(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> int:
    """The status of a login over HTTP."""
    response = await client.post("/auth/jwt/login", data={"username": email, "password": password})
    return response.status_code


def test_help_shows_the_commands_and_examples(cli: CLI) -> None:
    result = cli("--help")
    create = cli("create-user", "--help")

    assert result.returncode == 0
    for command in ("create-user", "set-superuser", "deactivate", "activate", "users", "import",
                    "export", "check"):  # fmt: skip
        assert command in result.stdout
    assert "Example" in create.stdout
    assert "--password" not in create.stdout


def test_the_password_is_never_an_argument(cli: CLI) -> None:
    result = cli("create-user", "ada@example.com", "--password", PASSWORD)

    assert result.returncode == 2


async def test_create_user_reads_the_password_from_stdin(
    cli: CLI, client: httpx.AsyncClient
) -> None:
    result = cli("create-user", "Ada@Example.com", "--superuser", "--verified",
                 stdin=PASSWORD + "\n")  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "Created superuser ada@example.com" in result.stdout
    ada = await User.get(email="ada@example.com")
    assert (ada.is_superuser, ada.is_verified, ada.is_active) == (True, True, True)
    assert ada.hashed_password.startswith("$argon2id$")
    assert await login_status(client, "ADA@example.com") == 200


async def test_create_user_if_missing_and_existing(cli: CLI, client: httpx.AsyncClient) -> None:
    assert cli("create-user", "ada@example.com", stdin=PASSWORD).returncode == 0

    again = cli("create-user", "ADA@example.com", "--if-missing", stdin="other password 123")
    refused = cli("create-user", "ada@example.com", stdin=PASSWORD)

    assert again.returncode == 3
    assert "already exists" in again.stderr
    assert "already exists" in one_line_error(refused)
    assert await login_status(client, "ada@example.com") == 200


@pytest.mark.usefixtures("client")
@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("ada@example.com", "short", "password refused: Password should be at least"),
        ("ada@example.com", "ada@example.com-1", "password refused"),
        ("not-an-address", PASSWORD, "is not an e-mail address"),
        ("ada@example.com", "", "no password on standard input"),
    ],
)
async def test_create_user_refusals_are_one_line(
    cli: CLI, email: str, password: str, message: str
) -> None:
    result = cli("create-user", email, stdin=f"{password}\n" if password else "")

    assert message in one_line_error(result)
    assert await User.all().count() == 0


async def test_superuser_and_active_flags(cli: CLI, client: httpx.AsyncClient) -> None:
    cli("create-user", "admin@example.com", "--superuser", stdin=PASSWORD)
    cli("create-user", "ada@example.com", stdin=PASSWORD)

    steps = [
        (("set-superuser", "ADA@example.com"), "is_superuser", True),
        (("set-superuser", "ada@example.com", "--revoke"), "is_superuser", False),
        (("deactivate", "ada@example.com"), "is_active", False),
    ]
    for args, field, value in steps:
        result = cli(*args)
        assert result.returncode == 0, result.stderr
        assert getattr(await User.get(email="ada@example.com"), field) is value
    assert await login_status(client, "ada@example.com") == 400

    assert cli("activate", "ada@example.com").returncode == 0
    assert await login_status(client, "ada@example.com") == 200
    assert "no user with e-mail nobody@example.com" in one_line_error(
        cli("deactivate", "Nobody@example.com")
    )


@pytest.mark.usefixtures("client")
async def test_users_list(cli: CLI) -> None:
    for email in ("ada@example.com", "adam@example.com", "grace@example.com"):
        await User.create(email=email, hashed_password=DJANGO_HASH)
    await User.filter(email="adam@example.com").update(is_active=False)
    await User.filter(email="grace@example.com").update(is_superuser=True)

    def emails(*args: str) -> list[str]:
        result = cli("users", "list", "--format", "json", *args)
        assert result.returncode == 0, result.stderr
        return [json.loads(line)["email"] for line in result.stdout.splitlines()]

    assert emails() == ["ada@example.com", "adam@example.com", "grace@example.com"]
    assert emails("--search", "ADA") == ["ada@example.com", "adam@example.com"]
    assert emails("--inactive") == ["adam@example.com"]
    assert emails("--superusers") == ["grace@example.com"]
    assert "hashed_password" not in cli("users", "list", "--format", "json").stdout
    assert "grace@example.com" in cli("users", "list", COLUMNS="200").stdout
    assert cli("users", "list", "--format", "xml").returncode == 1


async def test_import_then_login_then_export(
    cli: CLI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    source = tmp_path / "users.jsonl"
    source.write_text(
        json.dumps({"email": "Ada@example.com", "hashed_password": DJANGO_HASH}) + "\n"
        + json.dumps({"email": "md5@example.com", "hashed_password": "md5$x$y"}) + "\n"
        + json.dumps({"email": "grace@example.com", "hashed_password": DJANGO_HASH,
                      "is_superuser": True, "created_at": "2020-05-01T00:00:00Z"}) + "\n"
    )  # fmt: skip

    dry = cli("import", str(source), "--dry-run")
    assert await User.all().count() == 0
    result = cli("import", str(source))
    again = cli("import", str(source))

    assert "2 would be created" in dry.stdout
    assert result.returncode == 1  # a row was refused
    assert "row 2: hashed_password is in no supported format" in result.stderr
    assert "3 rows: 2 created, 0 updated, 0 skipped (already there), 1 refused" in result.stdout
    assert "0 created, 0 updated, 2 skipped" in again.stdout
    assert await login_status(client, "ada@example.com", DJANGO_PASSWORD) == 200
    assert (await User.get(email="ada@example.com")).hashed_password.startswith("$argon2id$")

    for name in ("backup.jsonl", "backup.csv"):
        exported = cli("export", str(tmp_path / name))
        assert exported.returncode == 0, exported.stderr
        assert "2 users written" in exported.stdout
    records = [json.loads(line) for line in (tmp_path / "backup.jsonl").read_text().splitlines()]
    assert [record["email"] for record in records] == ["grace@example.com", "ada@example.com"]
    assert records[0]["is_superuser"] is True
    await User.all().delete()
    restored = cli("import", str(tmp_path / "backup.csv"))
    assert restored.returncode == 0, restored.stderr
    assert await User.filter(is_superuser=True).count() == 1
    assert await login_status(client, "grace@example.com", DJANGO_PASSWORD) == 200


@pytest.mark.usefixtures("client")
def test_import_of_a_missing_or_unknown_file_is_one_line(cli: CLI, tmp_path: Path) -> None:
    (tmp_path / "users.txt").write_text("x")

    assert "No such file" in one_line_error(cli("import", str(tmp_path / "nope.jsonl")))
    assert "unknown format" in one_line_error(cli("import", str(tmp_path / "users.txt")))


@pytest.mark.usefixtures("client")
def test_check_passes_and_fails_one_line_each(cli: CLI) -> None:
    good = cli("check")
    no_smtp = cli("check", SMTP_HOST="127.0.0.1", SMTP_PORT=str(free_port()), SMTP_TLS="none")

    assert good.returncode == 0, good.stdout
    assert [line.split()[:2] for line in good.stdout.splitlines()] == [
        ["ok", "settings:"], ["ok", "database:"], ["ok", "redis:"], ["ok", "smtp:"],
    ]  # fmt: skip
    assert no_smtp.returncode == 1
    assert "FAIL smtp:" in no_smtp.stdout
    assert len(no_smtp.stdout.splitlines()) == 4


def test_an_unmigrated_database_is_one_line(cli: CLI, backend: Backend, tmp_path: Path) -> None:
    empty = backend.recreate("fastapi_users_cli_empty")

    listed = cli("users", "list", DATABASE_URL=empty)
    checked = cli("check", DATABASE_URL=empty)

    assert "run `aerich upgrade` first" in one_line_error(listed)
    assert checked.returncode == 1
    assert "FAIL database:" in checked.stdout


def test_a_bad_or_unreachable_database_is_one_line(cli: CLI, backend: Backend) -> None:
    bad = cli("users", "list", DATABASE_URL="nosuch://x")
    missing_url = (
        f"{backend.server_url}/no_such_database_here"
        if backend.kind != "sqlite"
        else "sqlite:///no/such/folder/db.sqlite3"
    )
    missing = cli("users", "list", DATABASE_URL=missing_url)

    assert "DATABASE_URL" in one_line_error(bad)
    assert one_line_error(missing)


async def test_sessions_revoke_ends_every_session_at_once(
    cli: CLI, client: httpx.AsyncClient
) -> None:
    cli("create-user", "ada@example.com", stdin=PASSWORD)
    form = {"username": "ada@example.com", "password": PASSWORD}
    pairs = [(await client.post("/auth/jwt/login", data=form)).json() for _ in range(2)]

    result = cli("sessions", "revoke", "ADA@example.com")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ada@example.com: 2 session(s) ended"
    for pair in pairs:
        headers = {"Authorization": f"Bearer {pair['access_token']}"}
        assert (await client.get("/users/me", headers=headers)).status_code == 401
        refresh = {"refresh_token": pair["refresh_token"]}
        assert (await client.post("/auth/jwt/refresh", json=refresh)).status_code == 400
    event = await AuditEvent.get(action="sessions_revoked")
    assert event.details == {"reason": "admin", "count": 2}


async def test_sessions_and_audit_purge_delete_only_what_has_expired(
    cli: CLI, client: httpx.AsyncClient
) -> None:
    cli("create-user", "ada@example.com", stdin=PASSWORD)
    user = await User.get(email="ada@example.com")
    # A login purges the user's ended sessions itself: log in before the old one exists.
    live = (await client.post("/auth/jwt/login", data={"username": user.email,
                                                       "password": PASSWORD})).json()  # fmt: skip
    long_ago = datetime.now(UTC) - timedelta(days=400)
    await Session.create(user=user, auth_time=long_ago, last_refreshed_at=long_ago,
                         expires_at=long_ago + timedelta(days=30))  # fmt: skip
    old_event = await AuditEvent.create(action="login", subject_id=user.id)
    await AuditEvent.filter(id=old_event.id).update(created_at=long_ago)

    sessions = cli("sessions", "purge")
    events = cli("audit", "purge")

    assert (sessions.returncode, sessions.stdout.strip()) == (0, "1 ended session(s) deleted")
    assert (events.returncode, events.stdout.strip()) == (0, "1 audit event(s) deleted")
    headers = {"Authorization": f"Bearer {live['access_token']}"}
    assert (await client.get("/users/me", headers=headers)).status_code == 200
    assert not await AuditEvent.filter(id=old_event.id).exists()
    assert await AuditEvent.filter(action="login").exists()


async def test_the_last_superuser_is_kept(cli: CLI, client: httpx.AsyncClient) -> None:
    cli("create-user", "admin@example.com", "--superuser", stdin=PASSWORD)

    demoted = cli("set-superuser", "admin@example.com", "--revoke")
    deactivated = cli("deactivate", "admin@example.com")

    assert "admin@example.com: refused (LastSuperuser)" in one_line_error(demoted)
    assert "admin@example.com: refused (LastSuperuser)" in one_line_error(deactivated)
    admin = await User.get(email="admin@example.com")
    assert (admin.is_superuser, admin.is_active) == (True, True)
