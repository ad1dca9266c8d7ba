"""The operator's command line, `python -m app ...` (see docs/cli.md).

Each command reads the same settings as the service (environment and `.env`), opens
Tortoise with the same configuration, and goes through the user manager and the
adapter, so the password policy, e-mail normalization and hashing are the service's.
An expected failure prints one line to stderr and exits with 1; never a traceback.
"""

import asyncio
import gc
import getpass
import sys
import time
from collections.abc import Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from email_validator import EmailNotValidError, validate_email
from fastapi_users import InvalidPasswordException, exceptions
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from tortoise import Tortoise
from tortoise.exceptions import BaseORMException

from app import audit, checks
from app.admin import UserFilter, list_users
from app.db import DatabaseNotReady, check_database, require_reachable, tortoise_config
from app.mail import Mailer
from app.models import UserCreate, UserDB, UserUpdate, normalize_email
from app.passwords import PasswordHasher
from app.sessions import Sessions, revoke_all_sessions
from app.settings import ConfigError, Settings, load_settings, resolve_secret
from app.user_db import TortoiseUserDatabase
from app.user_import import (
    BATCH_SIZE,
    ImportError_,
    OnConflict,
    export_users,
    file_format,
    import_users,
)
from app.users import UserManager

# Exit codes besides 0 (done) and 2 (bad usage, from typer).
EXIT_FAILED = 1
EXIT_ALREADY_EXISTS = 3
LIST_PAGE_SIZE = 100

T = TypeVar("T")

cli = typer.Typer(
    name="python -m app",
    help="Operate the user service: users, imports, checks. `COMMAND --help` shows examples.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    add_completion=False,
)
users_cli = typer.Typer(help="List users.", no_args_is_help=True)
cli.add_typer(users_cli, name="users")
sessions_cli = typer.Typer(help="End a user's sessions; purge ended ones.", no_args_is_help=True)
cli.add_typer(sessions_cli, name="sessions")
audit_cli = typer.Typer(help="The audit trail: purge old events.", no_args_is_help=True)
cli.add_typer(audit_cli, name="audit")
err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


class CommandError(Exception):
    """An expected failure of a command; the message is one line."""


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print `message` as one line on stderr and exit with `code`."""
    err.print(f"error: {message}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


def settings() -> Settings:
    """The service's settings, or one line naming the bad variable."""
    try:
        return resolve_secret(load_settings())
    except ConfigError as exc:
        fail(str(exc).removeprefix("Configuration error: "))


@asynccontextmanager
async def database(config: Settings) -> Any:
    """Tortoise opened as the service opens it, on a reachable and migrated database."""
    try:
        await Tortoise.init(config=tortoise_config(config))
        await check_database()
    except DatabaseNotReady as exc:
        await Tortoise.close_connections()
        raise CommandError(str(exc)) from None
    try:
        yield
    finally:
        await Tortoise.close_connections()


def run(work: Callable[[Settings], Coroutine[Any, Any, T]]) -> T:
    """Run `work` on the database; expected failures end in one line."""
    config = settings()
    try:
        # A server that does not answer, or a SQLite file in a missing folder (where
        # aiosqlite's thread can fail after the loop ends, with a traceback).
        require_reachable(config)
    except ConfigError as exc:
        fail(str(exc))

    async def main() -> T:
        async with database(config):
            return await work(config)

    try:
        return asyncio.run(main())
    except CommandError as exc:
        fail(str(exc))
    except (BaseORMException, OSError) as exc:
        fail(f"database error: {exc}")
    except KeyboardInterrupt:
        fail("interrupted")


def manager(config: Settings) -> UserManager:
    """The service's user manager, on its own adapter, hasher and mailer."""
    return UserManager(TortoiseUserDatabase(), config, PasswordHasher(config), Mailer(config))


async def find(users: UserManager, email: str) -> UserDB:
    """The user with this e-mail, or a one-line failure."""
    try:
        return await users.get_by_email(normalize_email(email))
    except exceptions.UserNotExists:
        raise CommandError(f"no user with e-mail {normalize_email(email)}") from None


def read_password() -> str:
    """The new password: one line of standard input, or typed twice at a hidden prompt."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            fail("no password on standard input")
        return line.removesuffix("\n").removesuffix("\r")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Repeat the password: ") != password:
        fail("the two passwords differ")
    return password


EmailArgument = Annotated[str, typer.Argument(help="The user's e-mail (any letter case).")]


@cli.command("create-user", epilog="Examples:  python -m app create-user admin@example.com "
             "--superuser --verified  |  echo \"$PASSWORD\" | python -m app create-user "
             "admin@example.com --superuser --if-missing")  # fmt: skip
def create_user(
    email: EmailArgument,
    superuser: Annotated[bool, typer.Option(help="Make the user a superuser.")] = False,
    verified: Annotated[bool, typer.Option(help="Mark the e-mail as verified.")] = False,
    if_missing: Annotated[
        bool, typer.Option(help=f"Leave an existing user alone (exit code {EXIT_ALREADY_EXISTS}).")
    ] = False,
) -> None:
    """Create a user; the password comes from a hidden prompt or standard input, never argv.

    The password policy applies. Exit code 0: created; 3: with --if-missing, the user
    already existed and was left alone.
    """
    try:
        address = normalize_email(validate_email(email, check_deliverability=False).normalized)
    except EmailNotValidError as exc:
        fail(f"{email!r} is not an e-mail address: {exc}")

    async def exists(config: Settings) -> bool:
        return await TortoiseUserDatabase().get_by_email(address) is not None

    if run(exists):
        if if_missing:
            err.print(f"{address} already exists; left alone", markup=False)
            raise typer.Exit(EXIT_ALREADY_EXISTS)
        fail(f"{address} already exists")
    password = read_password()

    async def create(config: Settings) -> UserDB:
        user_create = UserCreate(
            email=address, password=password, is_superuser=superuser, is_verified=verified
        )
        try:
            return await manager(config).create(user_create)
        except InvalidPasswordException as exc:
            raise CommandError(f"password refused: {exc.reason}") from None
        except exceptions.UserAlreadyExists:
            raise CommandError(f"{address} already exists") from None

    user = run(create)
    kind = "superuser" if user.is_superuser else "user"
    out.print(f"Created {kind} {user.email} ({user.id})", markup=False)


def change(email: str, update: UserUpdate, done: str) -> None:
    """Apply `update` to the user through the manager and say what was done."""

    async def apply(config: Settings) -> UserDB:
        users = manager(config)
        user = await find(users, email)
        try:
            return await users.update(update, user, safe=False)
        except exceptions.FastAPIUsersException as exc:
            # A rule of the manager or the adapter refused the change (e.g. one that
            # keeps a last superuser); its name says which.
            raise CommandError(f"{user.email}: refused ({type(exc).__name__})") from None

    user = run(apply)
    out.print(f"{user.email}: {done}", markup=False, soft_wrap=True)


@cli.command("set-superuser", epilog="Example:  python -m app set-superuser ada@example.com")
def set_superuser(
    email: EmailArgument,
    revoke: Annotated[bool, typer.Option(help="Take the superuser right away instead.")] = False,
) -> None:
    """Make a user a superuser (or, with --revoke, a regular user)."""
    change(email, UserUpdate(is_superuser=not revoke),
           "no longer a superuser" if revoke else "superuser")  # fmt: skip


@cli.command(epilog="Example:  python -m app deactivate ada@example.com")
def deactivate(email: EmailArgument) -> None:
    """Deactivate a user: they can no longer log in, and their tokens stop working."""
    change(email, UserUpdate(is_active=False), "deactivated")


@cli.command(epilog="Example:  python -m app activate ada@example.com")
def activate(email: EmailArgument) -> None:
    """Activate a user again."""
    change(email, UserUpdate(is_active=True), "activated")


@users_cli.command("list", epilog="Examples:  python -m app users list --search ada  |  "
                   "python -m app users list --superusers --format json")  # fmt: skip
def users_list(
    search: Annotated[str | None, typer.Option(help="E-mail prefix (any letter case).")] = None,
    superusers: Annotated[bool, typer.Option(help="Only superusers.")] = False,
    inactive: Annotated[bool, typer.Option(help="Only deactivated users.")] = False,
    format: Annotated[str, typer.Option(help="table or json (one object a line).")] = "table",
) -> None:
    """List users, oldest first (by e-mail with --search)."""
    if format not in ("table", "json"):
        fail(f"--format {format!r}: use table or json")
    where = UserFilter(q=search, is_superuser=True if superusers else None,
                       is_active=False if inactive else None)  # fmt: skip
    columns = ("email", "id", "is_active", "is_verified", "is_superuser", "created_at")

    async def collect(config: Settings) -> list[UserDB]:
        found: list[UserDB] = []
        cursor: str | None = None
        while True:
            page = await list_users(where, cursor, LIST_PAGE_SIZE)
            if format == "json":
                for user in page.users:
                    sys.stdout.write(user.model_dump_json(exclude={"hashed_password"}) + "\n")
            else:
                found += page.users
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    found = run(collect)
    if format == "table":
        table = Table(*columns)
        for user in found:
            table.add_row(*(str(getattr(user, column)) for column in columns))
        out.print(table)


def progress_bar(console: Console) -> Progress:
    """A rich progress bar over the bytes of a file, with rate and time left."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
        DownloadColumn(), TransferSpeedColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=False,
    )  # fmt: skip


@cli.command("import", epilog="Examples:  python -m app import users.jsonl --dry-run  |  "
             "python -m app import users.csv --on-conflict update")  # fmt: skip
def import_command(
    file: Annotated[Path, typer.Argument(help="A .jsonl or .csv file (see docs/cli.md).")],
    dry_run: Annotated[bool, typer.Option(help="Check every row, write nothing.")] = False,
    on_conflict: Annotated[
        OnConflict, typer.Option(help="An e-mail already there: skip, update or fail.")
    ] = OnConflict.skip,
    batch_size: Annotated[
        int, typer.Option(min=1, max=10000, help="Rows a transaction.")
    ] = BATCH_SIZE,
) -> None:
    """Import users with their password hashes (argon2, bcrypt, Django, Werkzeug).

    Each hash is upgraded to argon2id at the user's next login. A row that cannot be
    imported is reported with its number and reason; the others are imported. Run it
    again after an interruption: with --on-conflict skip it imports only what is missing.
    Exit code 1 if any row was refused.
    """
    try:
        file_format(file)
        size = file.stat().st_size
    except ImportError_ as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{file}: {exc.strerror}")

    started = 0.0

    async def work(config: Settings) -> Any:
        nonlocal started
        # The app's modules are many long-lived objects, and the rows in flight make the
        # collector rescan them all again and again; this process ends after the import.
        gc.freeze()
        started = time.perf_counter()
        with progress_bar(err) as progress:
            task = progress.add_task("dry run" if dry_run else "import", total=size)
            try:
                return await import_users(
                    file, on_conflict=on_conflict, dry_run=dry_run, batch_size=batch_size,
                    on_bytes=lambda count: progress.advance(task, count),
                    on_refused=lambda message: progress.console.print(message, markup=False),
                )  # fmt: skip
            except ImportError_ as exc:
                raise CommandError(str(exc)) from None

    summary = run(work)
    seconds = time.perf_counter() - started
    verb = "would be " if dry_run else ""
    out.print(
        f"{summary.rows} rows: {summary.created} {verb}created, {summary.updated} {verb}updated,"
        f" {summary.skipped} skipped (already there), {len(summary.refused)} refused"
        f" in {seconds:.2f} s ({summary.rows / max(seconds, 1e-9):.0f} rows/s)",
        markup=False,
        soft_wrap=True,
    )
    if summary.refused:
        raise typer.Exit(EXIT_FAILED)


@cli.command(epilog="Example:  python -m app export backup.jsonl")
def export(
    file: Annotated[Path, typer.Argument(help="A .jsonl or .csv file to write.")],
) -> None:
    """Write every user with their password hash, in the format `import` reads."""

    async def work(config: Settings) -> int:
        try:
            return await export_users(file)
        except ImportError_ as exc:
            raise CommandError(str(exc)) from None

    count = run(work)
    out.print(f"{count} users written to {file}", markup=False)


@cli.command(epilog="Example:  python -m app check && deploy")
def check() -> None:
    """Check settings, database (reachable, fully migrated), Redis and SMTP when configured.

    One line per check; exit code 1 if any failed.
    """
    try:
        config = resolve_secret(load_settings())
    except ConfigError as exc:
        out.print(f"FAIL settings: {str(exc).removeprefix('Configuration error: ')}",
                  markup=False)  # fmt: skip
        raise typer.Exit(EXIT_FAILED) from None
    results = asyncio.run(checks.run_checks(config))
    for result in results:
        out.print(f"{'ok  ' if result.ok else 'FAIL'} {result.name}: {result.detail}",
                  markup=False, soft_wrap=True)  # fmt: skip
    if not all(result.ok for result in results):
        raise typer.Exit(EXIT_FAILED)


@sessions_cli.command("revoke", epilog="Example:  python -m app sessions revoke ada@example.com")
def sessions_revoke(email: EmailArgument) -> None:
    """End every session of a user: their access and refresh tokens stop working at once."""

    async def work(config: Settings) -> tuple[str, int]:
        user = await find(manager(config), email)
        ended = await revoke_all_sessions(user.id, "admin")
        await audit.record_sessions_revoked(None, user.id, "admin", ended)
        return user.email, ended

    address, ended = run(work)
    out.print(f"{address}: {ended} session(s) ended", markup=False)


@sessions_cli.command("purge", epilog="Example:  python -m app sessions purge  (e.g. daily)")
def sessions_purge() -> None:
    """Delete sessions that ended (or expired) more than SESSION_HISTORY_SECONDS ago."""

    async def work(config: Settings) -> int:
        return await Sessions(config, Mailer(config)).purge()

    out.print(f"{run(work)} ended session(s) deleted", markup=False)


@audit_cli.command("purge", epilog="Example:  python -m app audit purge  (e.g. daily)")
def audit_purge() -> None:
    """Delete audit events older than AUDIT_RETENTION_DAYS."""

    async def work(config: Settings) -> int:
        return await audit.purge(config.audit_retention_days)

    out.print(f"{run(work)} audit event(s) deleted", markup=False)


def main() -> None:
    """Entry point of `python -m app`."""
    cli()
