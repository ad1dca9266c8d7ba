"""Health: the pending-migration check at start-up, `/health/live` and `/health/ready`.

Both endpoints answer `{"status": ..., "checks": {name: result}}` with 200 or 503 and name
no host, URL or error text; Redis down is `degraded` with 200, since the rate limiter
falls back to memory. Readiness turns 503 as soon as shutdown begins: when uvicorn
is told to stop (SIGTERM, SIGINT), the app first marks itself as shutting down and waits
SHUTDOWN_DRAIN_SECONDS before uvicorn stops taking connections, so a load balancer
polling readiness sees the instance leave before it refuses connections.
"""

import asyncio
import logging
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import redis.asyncio
from aerich.models import Aerich
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from tortoise import connections

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations" / "models"
# Aerich's app label for our models (`apps` in `app.db.tortoise_config`).
AERICH_APP = "models"
# A readiness check slower than this counts as failed.
CHECK_TIMEOUT_SECONDS = 2.0
SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)

router = APIRouter(prefix="/health", tags=["health"])


def migration_files() -> list[str]:
    """The migration files of this release, in Aerich's order (by their number)."""
    files = [
        path.name
        for path in MIGRATIONS_DIR.glob("*.py")
        if "_" in path.stem and path.stem.split("_")[0].isdigit()
    ]
    return sorted(files, key=lambda name: int(name.split("_")[0]))


async def pending_migrations() -> list[str]:
    """The migration files Aerich has not applied to the database yet."""
    rows = await Aerich.filter(app=AERICH_APP).values_list("version", flat=True)
    applied = {str(version) for version in rows}
    return [name for name in migration_files() if name not in applied]


@dataclass
class Health:
    """The app's shutdown state and the signal handlers it wraps (kept on `app.state`)."""

    drain_seconds: float
    shutting_down: bool = False
    wrapped: dict[int, Any] = field(default_factory=dict)

    def watch_signals(self) -> None:
        """Mark shutdown first when the server's stop signal arrives, then pass it on.

        Only a server's own handlers are wrapped (uvicorn installs them before the
        lifespan starts); without one (tests, other servers) nothing changes.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in SHUTDOWN_SIGNALS:
            handler = signal.getsignal(sig)
            if callable(handler) and handler is not signal.default_int_handler:
                self.wrapped[sig] = handler
                signal.signal(sig, self._on_signal)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        handler = self.wrapped[sig]
        already = self.shutting_down
        self.shutting_down = True
        if self.drain_seconds > 0 and not already:  # a second signal does not wait again
            logger.info("Shutting down: not ready, stopping in %.1f s.", self.drain_seconds)
            loop = asyncio.get_running_loop()
            loop.call_later(self.drain_seconds, handler, sig, frame)
        else:
            handler(sig, frame)

    def restore_signals(self) -> None:
        """Put the server's handlers back."""
        for sig, handler in self.wrapped.items():
            signal.signal(sig, handler)
        self.wrapped.clear()


async def check_database() -> str:
    """`ok` when the database answers a query, else `fail`."""
    await connections.get("default").execute_query("SELECT 1")
    return "ok"


async def check_migrations() -> str:
    """`ok` when every migration is applied, else `pending`."""
    return "pending" if await pending_migrations() else "ok"


async def check_redis(pool: redis.asyncio.ConnectionPool | None) -> str:
    """`ok` when the configured Redis answers PING; `not_configured` without REDIS_URL."""
    if pool is None:
        return "not_configured"
    await redis.asyncio.Redis(connection_pool=pool).ping()
    return "ok"


async def run_check(name: str, check: Any) -> str:
    """The result of one check; an error or a timeout is `fail` (logged, not shown)."""
    try:
        result: str = await asyncio.wait_for(check, CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure of a dependency means "not ready"
        logger.warning("Readiness check %s failed: %s", name, type(exc).__name__)
        return "fail"
    return result


def answer(
    checks: dict[str, str], ok: set[str], optional: frozenset[str] = frozenset()
) -> JSONResponse:
    """200 when every check is in `ok`, else 503; the same shape either way.

    A failed `optional` check (one the service has a fallback for) leaves the answer 200,
    with the status `degraded`, so a load balancer keeps the instance in rotation.
    """
    failed = {name for name, result in checks.items() if result not in ok}
    if failed - optional:
        return JSONResponse({"status": "unavailable", "checks": checks}, status_code=503)
    return JSONResponse({"status": "degraded" if failed else "ok", "checks": checks})


@router.get("/live", responses={200: {"description": "The process answers."}})
async def live() -> JSONResponse:
    """Liveness: the process answers (no I/O)."""
    return answer({"process": "ok"}, {"ok"})


@router.get(
    "/ready",
    responses={
        200: {"description": "Ready to serve."},
        503: {"description": "A required check failed, or the instance is shutting down."},
    },
)
async def ready(request: Request) -> JSONResponse:
    """Readiness: database reachable, migrations applied, not stopping; Redis down is degraded."""
    health: Health = request.app.state.health
    redis_pool = request.app.state.rate_limiter.redis_pool
    database, migrations, redis_result = await asyncio.gather(
        run_check("database", check_database()),
        run_check("migrations", check_migrations()),
        run_check("redis", check_redis(redis_pool)),
    )
    checks = {
        "database": database,
        "migrations": migrations,
        "redis": redis_result,
        "shutdown": "shutting_down" if health.shutting_down else "ok",
    }
    # Without Redis the rate limiter counts in memory (app/ratelimit.py): the instance
    # still serves, so a Redis outage must not take every instance out of rotation.
    return answer(checks, {"ok", "not_configured"}, optional=frozenset({"redis"}))
