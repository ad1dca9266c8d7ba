"""Import and export of users with their password hashes (`python -m app import|export`).

A file is JSON Lines (`.jsonl`, one object a line) or CSV (`.csv`, a header row) with
the fields `email`, `hashed_password`, `is_active`, `is_verified`, `is_superuser` and
optionally `created_at`. The file is read as a stream and written in batches, each in
one transaction; a user whose e-mail is already there is skipped, updated or stops
the import (`on_conflict`), so a run interrupted halfway is finished by running it
again. Hashes are stored as they are and replaced by argon2id at the user's next login
(`app/passwords.py`); a hash no login could verify is refused with its row.
"""

import csv
import functools
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import orjson
from email_validator import EmailNotValidError, validate_email
from email_validator.syntax import validate_email_local_part
from tortoise import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.admin import UserFilter, list_users
from app.models import User, normalize_email
from app.passwords import is_known_hash
from app.sessions import revoke_all_sessions
from app.user_db import LastSuperuser, is_storable_email, keep_a_superuser

FIELDS = ("email", "hashed_password", "is_active", "is_verified", "is_superuser", "created_at")
FLAGS = {"is_active": True, "is_verified": False, "is_superuser": False}
TRUE_WORDS = frozenset({"true", "1", "yes", "t", "y"})
FALSE_WORDS = frozenset({"false", "0", "no", "f", "n", ""})
# Rows a transaction: each commit costs a WAL write and sync, so fewer, larger ones are
# faster; 5000 stays far below every database's limit of query parameters (the IN list).
BATCH_SIZE = 5000
HASH_MAX_LENGTH: int = User._meta.fields_map["hashed_password"].max_length  # type: ignore[attr-defined]
# The progress bar hears of bytes read in steps of this size, not per line.
PROGRESS_STEP_BYTES = 1 << 20
EXPORT_PAGE_SIZE = 1000


class OnConflict(StrEnum):
    """What to do with a row whose e-mail is already a user."""

    skip = "skip"
    update = "update"
    fail = "fail"


class ImportError_(Exception):
    """An import cannot go on (bad file, conflict with `fail`); the message is one line."""


class RowError(ValueError):
    """A row that cannot be imported; the message says why."""


@dataclass
class Row:
    """One valid row of the file, as the columns of `User`."""

    number: int
    values: dict[str, Any]


@dataclass
class Summary:
    """What an import did (or would do, on a dry run)."""

    created: int = 0
    updated: int = 0
    skipped: int = 0
    refused: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Rows read."""
        return self.created + self.updated + self.skipped + len(self.refused)


def file_format(path: Path) -> str:
    """`jsonl` or `csv`, from the file's extension."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise ImportError_(f"{path}: unknown format; name it .jsonl or .csv")


def parse_flag(name: str, value: Any) -> bool:
    """A boolean field from JSON (true/false) or CSV text (true/false, 1/0, yes/no)."""
    if value is None:
        return FLAGS[name]
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return FLAGS[name] if text == "" else False
    raise RowError(f"{name} is {value!r}, not true or false")


@functools.lru_cache(maxsize=4096)
def domain_problem(domain: str) -> str | None:
    """Why `domain` is no valid e-mail domain, or None; cached, as most users share a few."""
    try:
        validate_email(f"x@{domain}", check_deliverability=False)
    except EmailNotValidError as exc:
        return str(exc)
    return None


def email_problem(email: str) -> str | None:
    """Why `email` is no valid address (email-validator's rules, as registration's), or None.

    The domain is checked once per distinct domain and the local part per row: checking
    the whole address per row was most of an import's time.
    """
    local, at, domain = email.rpartition("@")
    if not at or not local:
        return "An email address must have an @-sign and something before it."
    try:
        validate_email_local_part(local, allow_smtputf8=True)
    except EmailNotValidError as exc:
        return str(exc)
    return domain_problem(domain)


def parse_row(number: int, record: dict[str, Any]) -> Row:
    """The columns of one record of the file; raises `RowError`."""
    email = record.get("email")
    if not isinstance(email, str) or not email.strip():
        raise RowError("email is missing")
    email = normalize_email(email)
    if not is_storable_email(email):
        raise RowError("email is not a storable address")
    problem = email_problem(email)
    if problem is not None:
        raise RowError(f"email {email!r} is invalid: {problem}")
    hashed = record.get("hashed_password")
    if not isinstance(hashed, str) or not hashed:
        raise RowError("hashed_password is missing")
    if len(hashed) > HASH_MAX_LENGTH:
        raise RowError(f"hashed_password is longer than {HASH_MAX_LENGTH} characters")
    if not is_known_hash(hashed):
        raise RowError(
            "hashed_password is in no supported format (argon2, bcrypt, Django "
            "pbkdf2_sha256, Werkzeug pbkdf2:sha256 or scrypt)"
        )
    values: dict[str, Any] = {"email": email, "hashed_password": hashed}
    for name in FLAGS:
        values[name] = parse_flag(name, record.get(name))
    created_at = record.get("created_at")
    if created_at not in (None, ""):
        try:
            moment = datetime.fromisoformat(str(created_at).strip())
        except ValueError:
            raise RowError(f"created_at {created_at!r} is not an ISO 8601 date-time") from None
        # Stored in UTC like every other timestamp, so the list's order holds.
        values["created_at"] = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(
            UTC
        )
    return Row(number, values)


def read_lines(file: IO[bytes], on_bytes: Callable[[int], None]) -> Iterator[str]:
    """The file's lines as text, reporting the bytes read (for the progress bar)."""
    unreported = 0
    for line in file:
        unreported += len(line)
        if unreported >= PROGRESS_STEP_BYTES:
            on_bytes(unreported)
            unreported = 0
        yield line.decode("utf-8-sig")
    on_bytes(unreported)


def records(
    file: IO[bytes], fmt: str, on_bytes: Callable[[int], None]
) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """(row number, record) for each record of the file; a broken one comes as `RowError`.

    Rows are numbered as an editor shows them: the line of a JSON Lines record, the
    line of a CSV record's start (the header is line 1).
    """
    lines = read_lines(file, on_bytes)
    try:
        if fmt == "jsonl":
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    record = orjson.loads(line)
                except ValueError:
                    yield number, RowError("not a JSON object")
                    continue
                if not isinstance(record, dict):
                    yield number, RowError("not a JSON object")
                    continue
                yield number, record
            return
        reader = csv.DictReader(lines)
        if reader.fieldnames is None:
            return
        missing = {"email", "hashed_password"} - set(reader.fieldnames)
        if missing:
            raise ImportError_(f"the CSV header lacks {', '.join(sorted(missing))}")
        for record in reader:
            yield reader.line_num, dict(record)
    except UnicodeDecodeError as exc:
        raise ImportError_(f"the file is not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise ImportError_(f"the CSV is broken: {exc}") from None


async def insert_many(connection: BaseDBAsyncClient, rows: list[dict[str, Any]]) -> None:
    """Insert new users with one `executemany`, on the current transaction's connection.

    The SQL is Tortoise's. The values are converted here as Tortoise's fields convert them
    for every dialect (`to_db_value`: the UUID as text, booleans and aware datetimes as
    they are), since calling the fields per value cost more than the insert; `parse_row`
    has already checked what their validators check (lengths).
    """
    if not rows:
        return
    executor = connection.executor_class(User, connection)
    now = datetime.now(UTC)
    values = []
    for row in rows:
        user = {"id": str(uuid.uuid4()), "created_at": now, "updated_at": now, **row}
        values.append([user[name] for name in executor.regular_columns])
    await connection.execute_many(executor.insert_query, values)


async def update_existing(connection: BaseDBAsyncClient, row: Row) -> None:
    """Overwrite an existing user with `row`, keeping the rules an update through the API keeps.

    The last active superuser is not demoted or deactivated; a new password hash or a
    deactivation ends the user's sessions, as a password change or deactivation does.
    """
    email = row.values["email"]
    values = {k: v for k, v in row.values.items() if k != "email"}
    user = await User.filter(email=email).using_db(connection).get()
    if values.get("is_superuser") is False or values.get("is_active") is False:
        try:
            await keep_a_superuser(connection, user.id)
        except LastSuperuser:
            raise ImportError_(
                f"row {row.number}: {email} is the last active superuser; an import may "
                "not demote or deactivate it"
            ) from None
    await (
        User.filter(id=user.id).using_db(connection).update(**values, updated_at=datetime.now(UTC))
    )
    if values.get("is_active") is False:
        await revoke_all_sessions(user.id, "deactivated")
    elif values.get("hashed_password", user.hashed_password) != user.hashed_password:
        await revoke_all_sessions(user.id, "admin")


async def import_batch(
    rows: list[Row], on_conflict: OnConflict, dry_run: bool, summary: Summary
) -> None:
    """Write one batch in one transaction (nothing on a dry run)."""
    emails = [row.values["email"] for row in rows]
    for attempt in range(2):
        try:
            async with in_transaction() as connection:
                existing = set(await User.filter(email__in=emails).values_list("email", flat=True))
                new: dict[str, Row] = {}
                updates: list[Row] = []
                for row in rows:
                    email = row.values["email"]
                    if email in existing or email in new:
                        if on_conflict is OnConflict.fail:
                            raise ImportError_(f"row {row.number}: {email} is already a user")
                        if on_conflict is OnConflict.update:
                            updates.append(row)
                        else:
                            summary.skipped += 1
                    else:
                        new[email] = row
                if not dry_run:
                    await insert_many(connection, [row.values for row in new.values()])
                    for row in updates:
                        await update_existing(connection, row)
                summary.created += len(new)
                summary.updated += len(updates)
                return
        except IntegrityError:
            # Someone registered one of these addresses meanwhile: look again, once.
            if attempt:
                raise


async def import_users(
    path: Path,
    *,
    on_conflict: OnConflict = OnConflict.skip,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    on_bytes: Callable[[int], None] = lambda count: None,
    on_refused: Callable[[str], None] = lambda message: None,
) -> Summary:
    """Import the users of the file at `path`; see the module's docstring."""
    fmt = file_format(path)
    summary = Summary()
    batch: list[Row] = []
    try:
        file = path.open("rb")
    except OSError as exc:
        raise ImportError_(f"{path}: {exc.strerror}") from None
    with file:
        for number, record in records(file, fmt, on_bytes):
            try:
                if isinstance(record, RowError):
                    raise record
                row = parse_row(number, record)
            except RowError as exc:
                message = f"row {number}: {exc}"
                summary.refused.append(message)
                on_refused(message)
                continue
            batch.append(row)
            if len(batch) >= batch_size:
                await import_batch(batch, on_conflict, dry_run, summary)
                batch = []
        if batch:
            await import_batch(batch, on_conflict, dry_run, summary)
    return summary


def export_record(user: Any) -> dict[str, Any]:
    """A user as a record of the import format."""
    return {
        "email": user.email,
        "hashed_password": user.hashed_password,
        "is_active": user.is_active,
        "is_verified": user.is_verified,
        "is_superuser": user.is_superuser,
        "created_at": user.created_at.isoformat(),
    }


async def export_users(path: Path, on_row: Callable[[], None] = lambda: None) -> int:
    """Write every user to `path` (`.jsonl` or `.csv`), page by page; returns the count."""
    fmt = file_format(path)
    count = 0
    try:
        file = path.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise ImportError_(f"{path}: {exc.strerror}") from None
    with file:
        writer = csv.DictWriter(file, fieldnames=FIELDS) if fmt == "csv" else None
        if writer is not None:
            writer.writeheader()
        cursor: str | None = None
        while True:
            page = await list_users(UserFilter(), cursor, EXPORT_PAGE_SIZE)
            for user in page.users:
                record = export_record(user)
                if writer is not None:
                    writer.writerow(record)
                else:
                    file.write(json.dumps(record) + "\n")
                count += 1
                on_row()
            if page.next_cursor is None:
                return count
            cursor = page.next_cursor
