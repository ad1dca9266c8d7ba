"""Prometheus metrics: what they count, and `GET /metrics` for the scraper.

With several worker processes (`uvicorn --workers N`), set PROMETHEUS_MULTIPROC_DIR to an
empty directory before the start: prometheus-client then keeps each worker's values in
files there, and any worker's `/metrics` answers for all of them. The endpoint is off
unless METRICS_ENABLED; then it answers a bearer METRICS_TOKEN when one is set, and
otherwise only clients on loopback or in TRUSTED_PROXIES (everyone else gets 404).
"""

import hmac
import os
from ipaddress import ip_address
from typing import Any

from fastapi import Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from tortoise import connections

from app.security import client_ip, is_trusted
from app.settings import Settings

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# Request methods outside this set are counted as "other", so clients cannot mint series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
HASH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

REQUESTS = Counter("http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from request to the end of the answer.",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
LOGINS = Counter(
    "auth_logins_total",
    "Log-in attempts by outcome: success, bad_credentials, inactive, rate_limited, mfa_failed.",
    ["outcome"],
)
PASSWORD_HASH_DURATION = Histogram(
    "password_hash_duration_seconds", "Time to hash a new password.", buckets=HASH_BUCKETS
)
PASSWORD_VERIFY_DURATION = Histogram(
    "password_verify_duration_seconds", "Time to verify a password.", buckets=HASH_BUCKETS
)
RATE_LIMIT_REFUSALS = Counter(
    "rate_limit_refusals_total",
    "Requests refused with 429, by limited route and scope (ip or account).",
    ["route", "scope"],
)
MAILS = Counter("mails_total", "Mails handed to SMTP, by outcome: sent or failed.", ["outcome"])
# Sessions (refresh tokens) count here once they exist: see docs/operations.md.
SESSION_REFRESHES = Counter("session_refreshes_total", "Sessions refreshed.")
SESSION_REUSE_DETECTIONS = Counter(
    "session_refresh_reuse_total", "Refresh tokens presented again after use (theft signs)."
)
SESSION_REVOCATIONS = Counter(
    "session_revocations_total", "Sessions revoked, by reason.", ["reason"]
)
DATABASE_POOL = Gauge(
    "database_pool_connections",
    "Database pool connections by state (in_use, idle), where the driver tells.",
    ["state"],
    multiprocess_mode="livesum",
)

# (method, route, status) -> the counter and histogram children: `labels()` takes a lock
# and builds a key on every call; the request path looks its pair up here instead.
_request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request and its duration."""
    if method not in KNOWN_METHODS:
        method = "other"
    key = (method, route, status)
    children = _request_children.get(key)
    if children is None:
        children = _request_children[key] = (
            REQUESTS.labels(method, route, str(status)),
            REQUEST_DURATION.labels(route),
        )
    children[0].inc()
    children[1].observe(seconds)


def update_database_pool() -> None:
    """Read the pool sizes of the database connection (asyncpg, asyncmy); SQLite has none."""
    try:
        pool = getattr(connections.get("default"), "_pool", None)
    except Exception:  # Tortoise not (or no longer) initialised: nothing to tell
        return
    if pool is None:
        return
    if hasattr(pool, "get_size"):  # asyncpg
        size, idle = pool.get_size(), pool.get_idle_size()
    elif hasattr(pool, "freesize"):  # asyncmy
        size, idle = pool.size, pool.freesize
    else:
        return
    DATABASE_POOL.labels("in_use").set(size - idle)
    DATABASE_POOL.labels("idle").set(idle)


def is_multiprocess() -> bool:
    """Whether values live in PROMETHEUS_MULTIPROC_DIR (several workers)."""
    return bool(os.environ.get(MULTIPROCESS_DIR_VARIABLE))


def exposition() -> bytes:
    """Every metric in Prometheus' text format, for all workers in multiprocess mode."""
    if is_multiprocess():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def mark_worker_gone() -> None:
    """At a worker's exit: its live gauges stop counting (multiprocess mode)."""
    if is_multiprocess():
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def scrape_refusal(request: Request, settings: Settings) -> Response | None:
    """Why this client may not read the metrics (404 or 401), or None when it may."""
    not_found = PlainTextResponse("Not Found", status_code=404)
    if not settings.metrics_enabled:
        return not_found
    if settings.metrics_token is not None:
        expected = f"Bearer {settings.metrics_token.get_secret_value()}"
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return PlainTextResponse(
                "Unauthorized", status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        return None
    try:
        client = ip_address(client_ip(request, settings.trusted_proxies))
    except ValueError:
        return not_found
    if client.is_loopback or is_trusted(client, settings.trusted_proxies):
        return None
    return not_found


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus metrics (METRICS_ENABLED; METRICS_TOKEN or loopback/TRUSTED_PROXIES)."""
    refusal = scrape_refusal(request, request.app.state.settings)
    if refusal is not None:
        return refusal
    update_database_pool()
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
