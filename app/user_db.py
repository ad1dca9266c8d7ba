"""Our Tortoise adapter for FastAPI Users (the upstream one stopped at fastapi-users 9.x)."""

import sqlite3
import uuid
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi_users.db import BaseUserDatabase
from fastapi_users.exceptions import FastAPIUsersException, UserAlreadyExists, UserNotExists
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.queryset import QuerySetSingle
from tortoise.transactions import in_transaction

from app.models import (
    EMAIL_MAX_LENGTH,
    OAUTH_ACCOUNT_ID_MAX_LENGTH,
    OAuthAccount,
    OAuthAccountRead,
    Session,
    SessionUser,
    User,
    UserDB,
    UserWithOAuthAccounts,
    normalize_email,
)


class OAuthAccountTaken(FastAPIUsersException):
    """This provider identity is linked to an account already (unique provider, account id)."""


class LastSuperuser(FastAPIUsersException):
    """The change would leave no active superuser: deleting, deactivating or demoting the last."""


# The SELECTs behind `TortoiseUserDatabase.get` and `.get_by_session`, per SQL dialect.
SELECT_BY_ID: dict[str, str] = {}
SELECT_BY_SESSION: dict[str, str] = {}
SELECT_SESSION: dict[str, str] = {}
ROTATE_SESSION: dict[str, str] = {}
USER_COLUMNS = tuple(UserDB.model_fields)
QUOTE = {"sqlite": '"', "postgres": '"', "mysql": "`"}


def placeholder(dialect: str, n: int) -> str:
    """The `n`-th (1-based) query parameter in the dialect's SQL."""
    return {"sqlite": "?", "postgres": f"${n}", "mysql": "%s"}[dialect]


def select_by_session_sql(dialect: str) -> str:
    """The user joined with one live session: params user id, session id, now."""
    q = QUOTE[dialect]

    def p(n: int) -> str:
        return placeholder(dialect, n)

    columns = ", ".join(f"u.{q}{column}{q}" for column in USER_COLUMNS)
    # Only identifiers are formatted in; the values are bound parameters.
    return (
        f"SELECT {columns}, s.{q}auth_time{q} FROM {q}user{q} u"  # noqa: S608
        f" JOIN {q}auth_session{q} s ON s.{q}user_id{q} = u.{q}id{q}"
        f" WHERE u.{q}id{q} = {p(1)} AND s.{q}id{q} = {p(2)} AND s.{q}revoked_at{q} IS NULL"
        f" AND s.{q}expires_at{q} > {p(3)} AND u.{q}is_active{q}"
    )


def select_session_sql(dialect: str) -> str:
    """A session with its user's e-mail and active flag: param session id."""
    q = QUOTE[dialect]
    return (
        f"SELECT s.*, u.{q}email{q} AS user_email, u.{q}is_active{q} AS user_is_active"  # noqa: S608
        f" FROM {q}auth_session{q} s JOIN {q}user{q} u ON u.{q}id{q} = s.{q}user_id{q}"
        f" WHERE s.{q}id{q} = {placeholder(dialect, 1)}"
    )


def rotate_session_sql(dialect: str) -> str:
    """Rotate a live session's refresh counter; params now, id, generation, now, idle cutoff."""
    q = QUOTE[dialect]

    def p(n: int) -> str:
        return placeholder(dialect, n)

    return (
        f"UPDATE {q}auth_session{q} SET {q}refresh_counter{q} = {q}refresh_counter{q} + 1,"  # noqa: S608
        f" {q}last_refreshed_at{q} = {p(1)} WHERE {q}id{q} = {p(2)}"
        f" AND {q}refresh_counter{q} = {p(3)} AND {q}revoked_at{q} IS NULL"
        f" AND {q}expires_at{q} > {p(4)} AND {q}last_refreshed_at{q} > {p(5)}"
    )


def db_datetime(dialect: str, moment: datetime) -> Any:
    """`moment` (aware, UTC) as a query parameter compares with the dialect's stored values.

    SQLite keeps Tortoise's ISO text, MySQL/MariaDB naive UTC (the session time zone
    is UTC), PostgreSQL a timestamptz.
    """
    if dialect == "sqlite":
        return moment.isoformat(" ")
    if dialect == "mysql":
        return moment.replace(tzinfo=None)
    return moment


def in_a_transaction(connection: BaseDBAsyncClient) -> bool:
    """Whether `connection` (a model's `_meta.db`) is the current task's open transaction."""
    return isinstance(connection, TransactionalDBClient)


def is_storable_text(text: str, max_length: int) -> bool:
    """Whether `text` can be a query parameter that matches a stored value of `max_length`.

    Databases reject NUL bytes and unencodable text with an error, so such input
    must not reach a query.
    """
    if not text or len(text) > max_length or "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_storable_email(email: str) -> bool:
    """Whether `email` could be a stored address; anything else matches no one."""
    return is_storable_text(email, EMAIL_MAX_LENGTH)


class SQLiteReader:
    """A read-only connection to the SQLite file, used on the event loop itself.

    aiosqlite runs every query in its own thread, and for a one-row read by primary key
    the trip there and back costs several times the read; every authenticated request
    makes that read. In WAL mode a reader never waits for the writer. Its busy timeout
    is zero, so should the file be locked otherwise (an exclusive lock, a recovery) the
    read fails at once instead of stalling the loop, and the caller takes the usual path.
    """

    def __init__(self, path: str) -> None:
        uri = Path(path).resolve().as_uri() + "?mode=ro"
        self.connection = sqlite3.connect(uri, uri=True, timeout=0, isolation_level=None)
        self.connection.row_factory = sqlite3.Row

    def fetch_one(self, sql: str, params: list[Any]) -> dict[str, Any] | None:
        """The first row of `sql`, by column name, or None; raises `sqlite3.Error`."""
        row = self.connection.execute(sql, params).fetchone()
        return None if row is None else dict(row)

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


class TortoiseUserDatabase(BaseUserDatabase[UserDB, uuid.UUID]):
    """Reads and writes `User` rows; returns `UserDB` models.

    E-mails are stored normalized and matched exactly, so every lookup is served by
    the unique index. The database's unique constraint, not a prior check, decides
    whether an e-mail is taken: concurrent writers get `UserAlreadyExists`. Writes run in
    a transaction of their own, a savepoint inside the caller's, so a refused write
    leaves the caller's transaction usable (PostgreSQL aborts a transaction on an error).
    """

    def __init__(self, sqlite_reader: SQLiteReader | None = None) -> None:
        self.sqlite_reader = sqlite_reader

    async def get(self, id: uuid.UUID) -> UserDB | None:
        """The user with this id, or None.

        The SELECT Tortoise builds is kept per dialect and reused (building it is most of
        a Tortoise query's cost), and on SQLite it runs on `sqlite_reader` when there is
        one, except inside a transaction, whose own writes only its connection sees.
        """
        connection = User._meta.db
        dialect = connection.capabilities.dialect
        sql = SELECT_BY_ID.get(dialect)
        if sql is None:
            sql = SELECT_BY_ID[dialect] = User.filter(id=id).sql()
        params = [User._meta.pk.to_db_value(id, User)]
        if self.sqlite_reader is not None and not in_a_transaction(connection):
            try:
                row = self.sqlite_reader.fetch_one(sql, params)
            except sqlite3.OperationalError:
                pass  # locked: the usual path waits for it, off the event loop
            else:
                # pydantic reads SQLite's text and integer columns as they are.
                return None if row is None else UserDB.model_validate(row)
        rows = await connection.execute_query_dict(sql, params)
        return UserDB.model_validate(User._init_from_db(**rows[0])) if rows else None

    async def get_by_session(
        self, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime
    ) -> SessionUser | None:
        """The active user with this live session (not revoked, not expired), or None.

        Every authenticated request makes this one read, so it is lean like `get`: the
        SQL is built once per dialect, and on SQLite it runs on `sqlite_reader`.
        """
        connection = User._meta.db
        dialect = connection.capabilities.dialect
        sql = SELECT_BY_SESSION.get(dialect)
        if sql is None:
            sql = SELECT_BY_SESSION[dialect] = select_by_session_sql(dialect)
        params = [
            User._meta.pk.to_db_value(user_id, User),
            Session._meta.pk.to_db_value(session_id, Session),
            db_datetime(dialect, now),
        ]
        if self.sqlite_reader is not None and not in_a_transaction(connection):
            try:
                row = self.sqlite_reader.fetch_one(sql, params)
            except sqlite3.OperationalError:
                pass  # locked: the usual path waits for it, off the event loop
            else:
                if row is None:
                    return None
                return SessionUser.model_validate({**row, "session_id": session_id})
        rows = await connection.execute_query_dict(sql, params)
        if not rows:
            return None
        # Tortoise converts the driver's values; its instance is read straight into
        # SessionUser, with no UserDB in between (this runs on every request).
        user = User._init_from_db(**{column: rows[0][column] for column in USER_COLUMNS})
        auth_time = Session._meta.fields_map["auth_time"].to_python_value(rows[0]["auth_time"])
        values = {column: getattr(user, column) for column in USER_COLUMNS}
        return SessionUser.model_validate(
            {**values, "session_id": session_id, "auth_time": auth_time}
        )

    async def rotate_session(
        self, session_id: uuid.UUID, generation: int, now: datetime, idle_cutoff: datetime
    ) -> bool:
        """Move a live session from `generation` to the next; False if it was not there.

        One conditional UPDATE: of concurrent rotations of one generation, on any number
        of workers, exactly one succeeds, with no row lock. Built once per dialect.
        """
        connection = Session._meta.db
        dialect = connection.capabilities.dialect
        sql = ROTATE_SESSION.get(dialect)
        if sql is None:
            sql = ROTATE_SESSION[dialect] = rotate_session_sql(dialect)
        moment = db_datetime(dialect, now)
        params = [
            moment,
            Session._meta.pk.to_db_value(session_id, Session),
            generation,
            moment,
            db_datetime(dialect, idle_cutoff),
        ]
        changed, _ = await connection.execute_query(sql, params)
        return changed == 1

    async def get_session(self, session_id: uuid.UUID) -> tuple[Session, str, bool] | None:
        """The session, its user's e-mail and whether that user is active; or None.

        Every refresh makes this read after its UPDATE, so it is lean like `get`.
        """
        connection = Session._meta.db
        dialect = connection.capabilities.dialect
        sql = SELECT_SESSION.get(dialect)
        if sql is None:
            sql = SELECT_SESSION[dialect] = select_session_sql(dialect)
        params = [Session._meta.pk.to_db_value(session_id, Session)]
        row: dict[str, Any] | None = None
        read = False
        if self.sqlite_reader is not None and not in_a_transaction(connection):
            try:
                row = self.sqlite_reader.fetch_one(sql, params)
                read = True
            except sqlite3.OperationalError:
                pass  # locked: the usual path waits for it, off the event loop
        if not read:
            rows = await connection.execute_query_dict(sql, params)
            row = dict(rows[0]) if rows else None
        if row is None:
            return None
        email, is_active = row.pop("user_email"), row.pop("user_is_active")
        return Session._init_from_db(**row), email, bool(is_active)

    async def get_by_oauth_account(
        self, oauth: str, account_id: str
    ) -> UserWithOAuthAccounts | None:
        """The user this provider identity is linked to, with its linked accounts; or None."""
        if not is_storable_text(account_id, OAUTH_ACCOUNT_ID_MAX_LENGTH):
            return None
        account = await OAuthAccount.get_or_none(oauth_name=oauth, account_id=account_id)
        if account is None:
            return None
        user = await User.get_or_none(id=account.user_id)  # type: ignore[attr-defined]
        return None if user is None else await self.with_oauth_accounts(user)

    async def add_oauth_account(
        self, user: UserDB, create_dict: dict[str, Any]
    ) -> UserWithOAuthAccounts:
        """Link a provider identity (`oauth_name`, `account_id`, `account_email`) to the user.

        Raises `OAuthAccountTaken` if the identity is linked already (to anyone): the
        unique index decides, so two concurrent first sign-ins cannot both link it.
        Provider tokens in `create_dict` (FastAPI Users passes them) are not kept.
        """
        values = {
            key: create_dict[key]
            for key in ("oauth_name", "account_id", "account_email", "last_used_at")
            if key in create_dict
        }
        try:
            async with self._savepoint():
                await OAuthAccount.create(user_id=user.id, **values)
        except IntegrityError:
            raise OAuthAccountTaken() from None
        return await self.with_oauth_accounts(user)

    async def update_oauth_account(
        self, user: UserDB, oauth_account: Any, update_dict: dict[str, Any]
    ) -> UserWithOAuthAccounts:
        """Update a linked account of the user (`account_email`, `last_used_at`).

        Provider tokens in `update_dict` (FastAPI Users passes them) are not kept.
        """
        values = {
            key: update_dict[key] for key in ("account_email", "last_used_at") if key in update_dict
        }
        if values:
            await OAuthAccount.filter(id=oauth_account.id, user_id=user.id).update(**values)
        return await self.with_oauth_accounts(user)

    async def list_oauth_accounts(self, user_id: uuid.UUID) -> list[OAuthAccountRead]:
        """The user's linked provider identities, oldest first."""
        accounts = await OAuthAccount.filter(user_id=user_id).order_by("created_at", "id")
        return [OAuthAccountRead.model_validate(account) for account in accounts]

    async def with_oauth_accounts(self, user: User | UserDB) -> UserWithOAuthAccounts:
        """`user` with its linked provider identities."""
        values = {name: getattr(user, name) for name in UserDB.model_fields}
        return UserWithOAuthAccounts(
            **values, oauth_accounts=await self.list_oauth_accounts(user.id)
        )

    async def get_by_email(self, email: str) -> UserDB | None:
        """The user with this e-mail in any letter case, or None."""
        if not is_storable_email(email):
            return None
        user = await self.select_by_email(email)
        return None if user is None else UserDB.model_validate(user)

    def select_by_email(self, email: str) -> QuerySetSingle[User | None]:
        """The query behind `get_by_email` (kept apart so its plan can be tested)."""
        return User.get_or_none(email=normalize_email(email))

    async def create(self, create_dict: dict[str, Any]) -> UserDB:
        """Insert a user; raises `UserAlreadyExists` if the e-mail is taken."""
        values = self._normalized(create_dict)
        try:
            async with self._savepoint():
                user = await User.create(**values)
        except IntegrityError:
            await self._raise_if_email_taken(values)
            raise
        return UserDB.model_validate(user)

    async def update(self, user: UserDB, update_dict: dict[str, Any]) -> UserDB:
        """Apply `update_dict` to the user and return it fresh from the database.

        Raises `UserAlreadyExists` if the new e-mail is taken, `UserNotExists` if the
        user was deleted meanwhile, and `LastSuperuser` if it would demote or deactivate
        the last active superuser. Keys that are no column (FastAPI Users may pass
        `{"password": None}`) are ignored.
        """
        values = {
            key: value
            for key, value in self._normalized(update_dict).items()
            if key in User._meta.db_fields and key not in ("id", "updated_at")
        }
        if values.get("is_superuser") is False or values.get("is_active") is False:
            async with in_transaction() as connection:
                await keep_a_superuser(connection, user.id)
                await self._write(user, values)
        elif values:
            await self._write(user, values)
        updated = await User.get_or_none(id=user.id)
        if updated is None:
            raise UserNotExists()
        return UserDB.model_validate(updated)

    async def _write(self, user: UserDB, values: dict[str, Any]) -> None:
        # Only the given columns are written, so concurrent updates of other fields are
        # not overwritten with stale values.
        try:
            async with self._savepoint():
                await User.filter(id=user.id).update(**values, updated_at=datetime.now(UTC))
        except IntegrityError:
            await self._raise_if_email_taken(values)
            raise

    async def delete(self, user: UserDB) -> None:
        """Delete the user; one already gone is no error, the last active superuser is.

        Raises `LastSuperuser` if the user is the last active superuser.
        """
        async with in_transaction() as connection:
            await keep_a_superuser(connection, user.id)
            await User.filter(id=user.id).using_db(connection).delete()

    @staticmethod
    def _savepoint() -> AbstractAsyncContextManager[object]:
        # Inside a transaction a failed statement aborts it on PostgreSQL, and the
        # e-mail check after an IntegrityError would fail too: a savepoint keeps the
        # transaction usable. Outside one, no extra round trips.
        if in_a_transaction(User._meta.db):
            return in_transaction()
        return nullcontext()

    @staticmethod
    def _normalized(values: dict[str, Any]) -> dict[str, Any]:
        if "email" not in values:
            return dict(values)
        return {**values, "email": normalize_email(values["email"])}

    @staticmethod
    async def _raise_if_email_taken(values: dict[str, Any]) -> None:
        # The only unique column besides the random primary key is the e-mail;
        # checking after the fact keeps us clear of driver-specific error texts.
        if "email" in values and await User.exists(email=values["email"]):
            raise UserAlreadyExists()


async def keep_a_superuser(connection: BaseDBAsyncClient, user_id: uuid.UUID) -> None:
    """Raise `LastSuperuser` if `user_id` is the only active superuser.

    Call it in the transaction that then demotes, deactivates or deletes that user: it
    locks every active superuser's row (`SELECT ... FOR UPDATE`, in id order so two
    callers lock alike), so of two superusers demoting each other at once the second
    waits, then sees the first one's change and is refused. SQLite has no row locks: a
    write first takes its one write lock for the transaction, with the same effect.
    """
    query = User.filter(is_superuser=True, is_active=True).using_db(connection)
    if connection.capabilities.dialect == "sqlite":
        await User.filter(id=user_id).using_db(connection).update(is_active=F("is_active"))
    else:
        query = query.select_for_update()
    # Whole rows: Tortoise leaves FOR UPDATE out of a `values_list` query.
    superusers = [superuser.id for superuser in await query.order_by("id")]
    if superusers == [user_id]:
        raise LastSuperuser()
