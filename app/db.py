"""Tortoise configuration and the user-database dependency."""

from typing import Any

from fastapi import Request
from tortoise import connections
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.exceptions import DBConnectionError, OperationalError

from app.models import User
from app.settings import Settings, load_settings
from app.user_db import SQLiteReader, TortoiseUserDatabase

MODEL_MODULES = ["app.models", "aerich.models"]


def connection_config(settings: Settings) -> dict[str, Any]:
    """The connection for `settings.database_url`; SQLite gets WAL and a busy timeout.

    WAL lets readers run beside the one writer; the busy timeout makes a writer that
    finds the database locked by another process (a second worker, `aerich`, a
    backup) wait for it instead of failing with "database is locked".
    """
    connection = expand_db_url(settings.database_url)
    if connection["engine"] == "tortoise.backends.sqlite":
        connection["credentials"]["journal_mode"] = "WAL"
        connection["credentials"]["busy_timeout"] = settings.sqlite_busy_timeout_ms
    return connection


def tortoise_config(settings: Settings) -> dict[str, Any]:
    """The Tortoise config for `settings.database_url`, shared by the app and Aerich."""
    return {
        "connections": {"default": connection_config(settings)},
        "apps": {"models": {"models": MODEL_MODULES, "default_connection": "default"}},
        "use_tz": True,
        "timezone": "UTC",
    }


def __getattr__(name: str) -> Any:
    # Aerich reads `app.db.TORTOISE_ORM` ([tool.aerich] in pyproject.toml); it is built
    # on access so that importing this module reads no settings.
    if name == "TORTOISE_ORM":
        return tortoise_config(load_settings())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class DatabaseNotReady(RuntimeError):
    """The database cannot serve the app: unreachable, or its schema is missing."""


async def check_database() -> None:
    """Fail fast, in one clear sentence, when the user table cannot be read."""
    try:
        await User.exists()
    except (OSError, DBConnectionError) as exc:
        raise DatabaseNotReady(f"Cannot reach the database (DATABASE_URL): {exc}") from exc
    except OperationalError as exc:
        raise DatabaseNotReady(
            f"The database has no usable schema; run `aerich upgrade` first ({exc})"
        ) from exc


def open_sqlite_reader() -> SQLiteReader | None:
    """A reader for the SQLite file Tortoise is connected to; None for other databases."""
    connection = connections.get("default")
    if connection.capabilities.dialect != "sqlite" or connection.filename == ":memory:":
        return None
    return SQLiteReader(connection.filename)


async def get_user_db(request: Request) -> TortoiseUserDatabase:
    """Provide the user database to FastAPI Users."""
    return TortoiseUserDatabase(request.app.state.sqlite_reader)
