"""Database outages: a request the database cannot serve right now gets 503, never a 500.

While PostgreSQL (or MariaDB) restarts, fails over or has its connections killed, the
queries of a request fail with the driver's connection errors. The app answers those with
`503 {"detail": "SERVICE_UNAVAILABLE"}` and `Retry-After`, the shape of every other error,
and logs one warning line (at most every `LOG_INTERVAL_SECONDS`), no traceback. Nothing
else is needed to recover: the driver's pool opens new connections on the next request
once the database answers again. An error that is not an outage (a wrong query) stays a 500.
"""

import logging
import math
import socket
import time

import asyncmy
import asyncpg  # type: ignore[import-untyped]
from fastapi import Request, status
from fastapi.responses import JSONResponse
from tortoise.exceptions import DBConnectionError, OperationalError

logger = logging.getLogger(__name__)

SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
RETRY_AFTER_SECONDS = 5
LOG_INTERVAL_SECONDS = 10.0
# Driver errors that by themselves mean the database dropped or refused the connection.
DRIVER_OUTAGES: tuple[type[Exception], ...] = (
    DBConnectionError,
    asyncpg.PostgresConnectionError,  # the connection was closed mid-operation (08xxx)
    asyncpg.OperatorInterventionError,  # terminated, shutting down, starting up (57xxx)
    asyncpg.InsufficientResourcesError,  # too many connections (53xxx)
    # A pooled connection the server just terminated, used (or rolled back, or reset for
    # the pool) before the driver saw it close: "the underlying connection is closed",
    # "another operation is in progress". The request did not complete; a retry will.
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
# Refused, reset, timed out, or a host name that does not resolve. A plain `OSError`
# (unreachable network, every address of a host failing) counts too; its file-system
# subclasses (FileNotFoundError, ...) do not.
NETWORK_ERRORS = (ConnectionError, TimeoutError, socket.gaierror)
# What the handler is registered for; `is_outage` decides, and anything else is re-raised.
HANDLED_CLASSES: tuple[type[Exception], ...] = (
    OSError,
    OperationalError,  # Tortoise's, around MariaDB's driver errors
    asyncmy.errors.OperationalError,
    *DRIVER_OUTAGES,
)
# MariaDB's client errors for a server that cannot be reached or went away mid-query.
MYSQL_CONNECTION_ERRORS = frozenset({2002, 2003, 2006, 2013})

_logged_at = -math.inf


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) says the database is unreachable, not that SQL failed.

    Tortoise raises its `OperationalError` while handling the driver's (its context, not
    always its cause), and a rollback fails while handling the error that broke the
    connection: both are judged by the error they follow.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, asyncmy.errors.OperationalError):
            return bool(seen.args) and seen.args[0] in MYSQL_CONNECTION_ERRORS
        if isinstance(seen, OSError):
            return type(seen) is OSError or isinstance(seen, NETWORK_ERRORS)
        if isinstance(seen, DRIVER_OUTAGES):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """`503 SERVICE_UNAVAILABLE` with `Retry-After` for an outage; anything else is re-raised."""
    global _logged_at  # one throttle for the process
    if not is_outage(exc):
        raise exc
    now = time.monotonic()
    if now - _logged_at >= LOG_INTERVAL_SECONDS:
        _logged_at = now
        logger.warning("Database unavailable, answering 503: %s: %s", type(exc).__name__, exc)
    return JSONResponse(
        {"detail": SERVICE_UNAVAILABLE},
        status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
