"""Our Tortoise adapter for FastAPI Users (the upstream one stopped at fastapi-users 9.x)."""

import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi_users.db import BaseUserDatabase
from fastapi_users.exceptions import FastAPIUsersException, UserAlreadyExists, UserNotExists
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.queryset import QuerySetSingle
from tortoise.transactions import in_transaction

from app.models import EMAIL_MAX_LENGTH, User, UserDB, normalize_email


class LastSuperuser(FastAPIUsersException):
    """The change would leave no active superuser: deleting, deactivating or demoting the last."""


# The SELECT behind `TortoiseUserDatabase.get`, per SQL dialect (see there).
SELECT_BY_ID: dict[str, str] = {}


def is_storable_email(email: str) -> bool:
    """Whether `email` could be a stored address; anything else matches no one.

    Databases reject NUL bytes and unencodable text with an error, so such input
    must not reach a query.
    """
    if not email or len(email) > EMAIL_MAX_LENGTH or "\x00" in email:
        return False
    try:
        email.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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

        Every authenticated request reads its user here, so this read is lean: the
        SELECT Tortoise builds is kept per dialect and reused (building it is most of a
        Tortoise query's cost), and on SQLite it runs on `sqlite_reader` when there is one.
        """
        connection = User._meta.db
        dialect = connection.capabilities.dialect
        sql = SELECT_BY_ID.get(dialect)
        if sql is None:
            sql = SELECT_BY_ID[dialect] = User.filter(id=id).sql()
        params = [User._meta.pk.to_db_value(id, User)]
        if self.sqlite_reader is not None:
            try:
                row = self.sqlite_reader.fetch_one(sql, params)
            except sqlite3.OperationalError:
                pass  # locked: the usual path waits for it, off the event loop
            else:
                # pydantic reads SQLite's text and integer columns as they are.
                return None if row is None else UserDB.model_validate(row)
        rows = await connection.execute_query_dict(sql, params)
        return UserDB.model_validate(User._init_from_db(**rows[0])) if rows else None

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
            async with in_transaction():
                user = await User.create(**values)
        except IntegrityError:
            await self._raise_if_email_taken(values)
            raise
        return UserDB.model_validate(user)

    async def update(self, user: UserDB, update_dict: dict[str, Any]) -> UserDB:
        """Apply `update_dict` to the user and return it fresh from the database.

        Raises `UserAlreadyExists` if the new e-mail is taken, `UserNotExists` if the
        user was deleted meanwhile, and `LastSuperuser` if it would demote or deactivate
        the last active superuser.
        """
        values = self._normalized(update_dict)
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
        # not overwritten with stale values. A savepoint inside a caller's transaction:
        # on PostgreSQL a failed statement would otherwise abort the whole transaction.
        try:
            async with in_transaction():
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
