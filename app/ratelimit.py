"""Rate limits per client IP and per account on the auth routes, kept in Redis or in memory.

Each limited route has a per-IP limit and, where the request names an account, a per-account
limit (see `LIMITED_ROUTES` and the `RATE_LIMIT_*` settings). The per-IP limit is checked
first and a request it refuses is not counted against the account, so one source can never
use up an account's budget: locking the owner out takes many addresses, and then only for
the short per-account window. The README describes the policy.
"""

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from typing import Annotated, NoReturn

import redis.asyncio
from fastapi import Depends, HTTPException, Request, status
from fastapi_users.openapi import OpenAPIResponseType
from fastapi_users.router.common import ErrorModel
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from app import audit, metrics
from app.audit import Event
from app.models import normalize_email
from app.security import client_ip
from app.settings import Settings

logger = logging.getLogger(__name__)

TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS"
# While Redis is unreachable, say so in the log at most this often (seconds).
STORAGE_ERROR_LOG_INTERVAL = 60.0
# After Redis failed, count in memory this long before trying it again (seconds), so an
# outage does not cost every request a connection timeout.
STORAGE_RETRY_INTERVAL = 5.0
# A client kept hitting a limit gets one `rate_limited` audit event per route, scope and
# address this often (seconds), so a flood of refusals is not a flood of writes.
AUDIT_INTERVAL = 60.0
AUDIT_MEMORY = 10_000


@dataclass(frozen=True)
class LimitedRoute:
    """A rate-limited route: its settings' name and where its request names the account."""

    name: str
    account_field: str | None
    form: bool = False  # the body is a form (else JSON)


# Route names (`request.scope["route"].name`), FastAPI Users' and ours -> how each is limited.
LIMITED_ROUTES = {
    "auth:jwt.login": LimitedRoute("login", account_field="username", form=True),
    "auth:jwt.refresh": LimitedRoute("refresh", account_field=None),
    "register:register": LimitedRoute("register", account_field="email"),
    "reset:forgot_password": LimitedRoute("forgot_password", account_field="email"),
    "reset:reset_password": LimitedRoute("reset_password", account_field=None),
    "verify:request-token": LimitedRoute("request_verify_token", account_field="email"),
    "verify:verify": LimitedRoute("verify", account_field=None),
    # The pages the mailed links open share the limits of the API routes they stand for.
    "verify_page": LimitedRoute("verify", account_field=None),
    "verify_form": LimitedRoute("verify", account_field=None),
    "reset_password_form": LimitedRoute("reset_password", account_field=None),
    "new_verify_link_page": LimitedRoute("request_verify_token", "email", form=True),
    "new_reset_link_page": LimitedRoute("forgot_password", "email", form=True),
    # A provider sign-in is a sign-in: its callbacks share the login's limits per IP.
    "oauth:callback": LimitedRoute("login", account_field=None),
    "oauth:page_callback": LimitedRoute("login", account_field=None),
}


# Limits on failures rather than requests: a request is refused once the failures before
# it used the limit up, and only a failure counts (`check_failures`, `count_failure`).
# They hold whatever RATE_LIMITS_ENABLED says: a second factor open to unlimited guesses
# would be no factor. Name -> the settings `rate_limit_<name>_per_ip|_per_account`.
FAILURE_LIMITED = ("mfa_failures",)


class RateLimited(Exception):
    """A limit is used up; the client may retry after `retry_after` seconds."""

    def __init__(self, retry_after: int, route: str, scope: str) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after
        self.route = route
        self.scope = scope  # "ip" or "account"


def parse_limits(text: str) -> list[RateLimitItem]:
    """The limits of a `RATE_LIMIT_*` setting; an empty one is no limit."""
    return parse_many(text) if text.strip() else []


def account_key(email: str) -> str:
    """A fixed-size key for an account: no address (or oversized input) is stored as such."""
    return hashlib.sha256(normalize_email(email).encode("utf-8", "replace")).hexdigest()


class RateLimiter:
    """Counts requests per route, client IP and account, in a moving window.

    With `REDIS_URL` the counts live in Redis, shared by every worker and instance. When
    Redis cannot be reached, the limiter falls back to counting in this process's memory
    (and logs it): requests stay limited, per process, rather than failing or going free.
    """

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limits_enabled
        self.per_ip = {
            route.name: parse_limits(getattr(settings, f"rate_limit_{route.name}_per_ip"))
            for route in LIMITED_ROUTES.values()
        }
        self.per_account = {
            route.name: parse_limits(getattr(settings, f"rate_limit_{route.name}_per_account"))
            for route in LIMITED_ROUTES.values()
            if route.account_field is not None
        }
        self.failure_limits = {
            name: [
                ("ip", parse_limits(getattr(settings, f"rate_limit_{name}_per_ip"))),
                ("account", parse_limits(getattr(settings, f"rate_limit_{name}_per_account"))),
            ]
            for name in FAILURE_LIMITED
        }
        self.storage: Storage = MemoryStorage()
        self.redis_pool: redis.asyncio.ConnectionPool | None = None
        if settings.redis_url:
            # Our own pool (connecting lazily), so that `aclose` can close it.
            self.redis_pool = redis.asyncio.ConnectionPool.from_url(
                settings.redis_url,
                socket_timeout=settings.redis_timeout_seconds,
                socket_connect_timeout=settings.redis_timeout_seconds,
            )
            self.storage = RedisStorage(
                f"async+{settings.redis_url}",
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix=settings.rate_limit_key_prefix,
                connection_pool=self.redis_pool,  # type: ignore[arg-type]
            )
        self.strategy = MovingWindowRateLimiter(self.storage)
        self.fallback = MovingWindowRateLimiter(MemoryStorage())
        self.storage_error_logged_at = -math.inf
        self.storage_down_until = -math.inf
        self.audited_at: dict[tuple[str, str, str], float] = {}

    async def hit(self, route: str, ip: str, account: str | None) -> None:
        """Count one request; raise `RateLimited` when a limit of `route` is used up."""
        if not self.enabled:
            return
        checks = [(item, ("ip", ip)) for item in self.per_ip[route]]
        if account is not None:
            checks += [(item, ("account", account)) for item in self.per_account.get(route, [])]
        for item, (kind, who) in checks:
            if not await self._hit(item, route, kind, who):
                retry_after = await self._retry_after(item, route, kind, who)
                logger.warning(
                    "Rate limit %s per %s reached on %s (client %s).", item, kind, route, ip
                )
                metrics.RATE_LIMIT_REFUSALS.labels(route, kind).inc()
                raise RateLimited(retry_after, route, kind)

    def _failure_checks(
        self, name: str, ip: str, account: str
    ) -> list[tuple[RateLimitItem, str, str]]:
        who = {"ip": ip, "account": account}
        return [
            (item, kind, who[kind]) for kind, items in self.failure_limits[name] for item in items
        ]

    async def check_failures(self, name: str, ip: str, account: str) -> None:
        """Raise `RateLimited` when the failures of `ip` or `account` used a limit up."""
        for item, kind, who in self._failure_checks(name, ip, account):
            if not await self._test(item, name, kind, who):
                retry_after = await self._retry_after(item, name, kind, who)
                logger.warning("Failure limit %s per %s reached on %s (client %s).",
                               item, kind, name, ip)  # fmt: skip
                metrics.RATE_LIMIT_REFUSALS.labels(name, kind).inc()
                raise RateLimited(retry_after, name, kind)

    async def count_failure(self, name: str, ip: str, account: str) -> None:
        """Count one failure of `ip` and `account`."""
        for item, kind, who in self._failure_checks(name, ip, account):
            await self._hit(item, name, kind, who)

    def first_refusal_lately(self, route: str, scope: str, ip: str) -> bool:
        """Whether this refusal is the first for (route, scope, ip) in AUDIT_INTERVAL."""
        now = time.monotonic()
        key = (route, scope, ip)
        if now - self.audited_at.get(key, -math.inf) < AUDIT_INTERVAL:
            return False
        if len(self.audited_at) >= AUDIT_MEMORY:
            self.audited_at.clear()
        self.audited_at[key] = now
        return True

    async def _hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        if time.monotonic() < self.storage_down_until:
            return await self.fallback.hit(item, *identifiers)
        try:
            return await self.strategy.hit(item, *identifiers)
        except StorageError as exc:
            self._storage_failed(exc)
            return await self.fallback.hit(item, *identifiers)

    async def _test(self, item: RateLimitItem, *identifiers: str) -> bool:
        if time.monotonic() < self.storage_down_until:
            return await self.fallback.test(item, *identifiers)
        try:
            return await self.strategy.test(item, *identifiers)
        except StorageError as exc:
            self._storage_failed(exc)
            return await self.fallback.test(item, *identifiers)

    async def _retry_after(self, item: RateLimitItem, *identifiers: str) -> int:
        stats = None
        if time.monotonic() >= self.storage_down_until:
            try:
                stats = await self.strategy.get_window_stats(item, *identifiers)
            except StorageError as exc:
                self._storage_failed(exc)
        if stats is None:
            stats = await self.fallback.get_window_stats(item, *identifiers)
        return max(1, math.ceil(stats.reset_time - time.time()))

    def _storage_failed(self, exc: StorageError) -> None:
        now = time.monotonic()
        self.storage_down_until = now + STORAGE_RETRY_INTERVAL
        if now - self.storage_error_logged_at > STORAGE_ERROR_LOG_INTERVAL:
            self.storage_error_logged_at = now
            logger.error("Rate-limit storage unreachable, counting in memory: %s", exc)

    async def aclose(self) -> None:
        """Close the Redis connections, if any."""
        if self.redis_pool is not None:
            await self.redis_pool.aclose()


async def requested_account(request: Request, route: LimitedRoute) -> str | None:
    """The account a request names in its form or JSON body, or None.

    FastAPI has read (and cached) the body before dependencies run; a body it cannot
    parse is left to its own 422 answer, so this never fails.
    """
    value: object = None
    try:
        if route.form:
            value = (await request.form()).get(route.account_field or "")
        else:
            body = json.loads(await request.body())
            value = body.get(route.account_field) if isinstance(body, dict) else None
    except Exception:  # any unreadable body simply names no account
        return None
    return account_key(value) if isinstance(value, str) and value.strip() else None


async def get_rate_limiter(request: Request) -> RateLimiter:
    """The limiter of the app serving this request."""
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


async def enforce_rate_limits(
    request: Request, limiter: Annotated[RateLimiter, Depends(get_rate_limiter)]
) -> None:
    """Refuse the request with 429 and `Retry-After` when its route's limits are used up."""
    route = LIMITED_ROUTES.get(getattr(request.scope.get("route"), "name", ""))
    if route is None:
        return
    settings: Settings = request.app.state.settings
    account = None
    if route.account_field is not None:
        account = await requested_account(request, route)
    ip = client_ip(request, settings.trusted_proxies)
    try:
        await limiter.hit(route.name, ip, account)
    except RateLimited as exc:
        if route.name == "login":
            await audit.record_login(request, "rate_limited")
        await refuse(request, limiter, exc, ip)


async def refuse(request: Request, limiter: RateLimiter, exc: RateLimited, ip: str) -> NoReturn:
    """Answer 429 with `Retry-After`; the first refusal of a while is audited."""
    if limiter.first_refusal_lately(exc.route, exc.scope, ip):
        details = {"route": exc.route, "scope": exc.scope}
        await audit.record(Event("rate_limited", details, outcome="refused"), request)
    raise HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        detail=TOO_MANY_REQUESTS,
        headers={"Retry-After": str(exc.retry_after)},
    ) from None


# `dependencies=RATE_LIMITED` on a route or router applies `LIMITED_ROUTES` to it.
RATE_LIMITED = [Depends(enforce_rate_limits)]

RATE_LIMIT_RESPONSES: OpenAPIResponseType = {
    status.HTTP_429_TOO_MANY_REQUESTS: {
        "model": ErrorModel,
        "description": "Too many requests from this client or for this account; "
        "retry after `Retry-After` seconds.",
        "content": {"application/json": {"example": {"detail": TOO_MANY_REQUESTS}}},
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
}
