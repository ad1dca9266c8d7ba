"""Tortoise configuration and the user-database dependency."""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncmy
import asyncpg  # type: ignore[import-untyped]
from fastapi import Request
from tortoise import Tortoise, connections
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.exceptions import DBConnectionError, OperationalError

from app.database_url import apply_driver_options
from app.health import pending_migrations
from app.models import User
from app.settings import ConfigError, Settings, load_settings
from app.user_db import SQLiteReader, TortoiseUserDatabase

MODEL_MODULES = ["app.models", "aerich.models"]


def connection_config(settings: Settings) -> dict[str, Any]:
    """The connection for `settings.database_url`; SQLite gets WAL and a busy timeout.

    PostgreSQL and MariaDB get TLS and pool sizes as their drivers take them
    (app/database_url.py).

    WAL lets readers run beside the one writer; the busy timeout makes a writer that
    finds the database locked by another process (a second worker, `aerich`, a
    backup) wait for it instead of failing with "database is locked".
    """
    connection = expand_db_url(settings.database_url)
    try:
        apply_driver_options(connection, settings.database_pool_min, settings.database_pool_max)
    except ValueError as exc:
        raise ConfigError(f"Configuration error: {exc}") from None
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
    # on access so that importing this module reads no settings. The server is tried
    # first, so that a wrong address or a missing database stops Aerich in one line
    # instead of its traceback.
    if name == "TORTOISE_ORM":
        settings = load_settings()
        require_reachable(settings)
        return tortoise_config(settings)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


async def connect_once(settings: Settings) -> None:
    """Open and close one connection to a database server with its driver (no Tortoise state)."""
    config = connection_config(settings)
    credentials = config["credentials"]
    if config["engine"] == "tortoise.backends.asyncpg":
        conn = await asyncpg.connect(
            host=credentials.get("host"), port=credentials.get("port"),
            user=credentials.get("user"), password=credentials.get("password"),
            database=credentials.get("database"), ssl=credentials.get("ssl"), timeout=10,
        )  # fmt: skip
        await conn.close()
    else:
        mysql = await asyncmy.connect(
            host=credentials.get("host"), port=credentials.get("port") or 3306,
            user=credentials.get("user"), password=credentials.get("password") or "",
            database=credentials.get("database"), ssl=credentials.get("ssl"),
            connect_timeout=10,
        )  # fmt: skip
        mysql.close()


def require_reachable(settings: Settings) -> None:
    """Stop with one line (`ConfigError`) unless DATABASE_URL accepts a connection.

    Runs in a thread of its own, so it works under a running event loop (Aerich's).
    """
    config = connection_config(settings)
    if config["engine"] == "tortoise.backends.sqlite":
        path = config["credentials"]["file_path"]
        if path != ":memory:" and not Path(path).resolve().parent.is_dir():
            raise ConfigError(
                f"Cannot reach the database (DATABASE_URL): the folder of {path} does not exist"
            )
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            pool.submit(asyncio.run, connect_once(settings)).result()
        except (OSError, asyncpg.PostgresError, asyncmy.errors.Error) as exc:
            raise ConfigError(f"Cannot reach the database (DATABASE_URL): {exc}") from None


def database_problem(settings: Settings) -> str | None:
    """Why the service could not use DATABASE_URL (one line), or None (for `python main.py`).

    The same checks as the app's start-up: reachable, migrated, no migration pending.
    """

    # Imported here: app.mfa builds on modules that import this one.
    from app.mfa import MfaKeyMissing, require_mfa_key

    async def probe() -> None:
        await Tortoise.init(config=tortoise_config(settings))
        try:
            await check_schema()
            await require_mfa_key(settings)
        finally:
            await Tortoise.close_connections()

    try:
        # The driver's own error first (a refused TLS upgrade, a bad certificate), which
        # Tortoise would wrap in a less telling one.
        require_reachable(settings)
        asyncio.run(probe())
    except (ConfigError, DatabaseNotReady, MfaKeyMissing) as exc:
        return str(exc)
    return None


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


async def check_schema() -> None:
    """Refuse to serve a database that is unreachable, unmigrated or behind the models."""
    await check_database()
    pending = await pending_migrations()
    if pending:
        raise DatabaseNotReady(
            f"The database lacks migration {pending[0]}"
            + (f" and {len(pending) - 1} more" if len(pending) > 1 else "")
            + "; run `aerich upgrade` first"
        )


def open_sqlite_reader() -> SQLiteReader | None:
    """A reader for the SQLite file Tortoise is connected to; None for other databases."""
    connection = connections.get("default")
    if connection.capabilities.dialect != "sqlite" or connection.filename == ":memory:":
        return None
    return SQLiteReader(connection.filename)


async def get_user_db(request: Request) -> TortoiseUserDatabase:
    """Provide the user database to FastAPI Users."""
    return TortoiseUserDatabase(request.app.state.sqlite_reader)
