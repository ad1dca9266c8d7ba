"""Logs: request ids, one access line per request, text or JSON lines on stderr.

Every HTTP request gets a request id (`X-Request-ID` when the client sent a well-formed one,
else a new one), returned in the response header and attached to each log line written while
the request is served. Work that leaves the request (a mail sent after the answer) is handed
the id explicitly and passes it as `extra={"request_id": ...}`.
"""

import logging
import os
import random
import re
import sys
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics
from app.security import Network, client_ip_from_scope
from app.settings import Settings

REQUEST_ID_HEADER = b"x-request-id"
# What a client may send as its request id; anything else is replaced by a new one.
WELL_FORMED_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:+=@/-]{1,128}")
# The scope key holding the request's `RequestContext` (read by `request_id_of`).
SCOPE_KEY = "app.request_context"
# These answer load balancers and scrapers every few seconds: logged at debug only.
QUIET_PATHS = frozenset({"/health/live", "/health/ready", "/metrics"})
# The fields an access line carries besides the message, in this order.
ACCESS_FIELDS = ("method", "route", "status", "duration_ms", "client_ip", "user_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
# How long a line may wait in the write buffer (seconds); warnings and worse go at once.
FLUSH_INTERVAL = 0.2
WRITE_BUFFER_BYTES = 1 << 16

access_logger = logging.getLogger("app.access")


@dataclass(slots=True)
class RequestContext:
    """What the log lines of one request share: its id and, once authenticated, its user."""

    request_id: str
    user_id: str | None = None


current_request: ContextVar[RequestContext | None] = ContextVar("current_request", default=None)


def new_request_id() -> str:
    """A fresh request id: 32 random hex digits.

    An id must be unique, not secret: `random` gives 128 bits without a system call.
    """
    return f"{random.getrandbits(128):032x}"


def request_id_of(request: Request | None) -> str | None:
    """The id of `request` (for work that outlives it, such as sending a mail)."""
    context = current_request.get() if request is None else request.scope.get(SCOPE_KEY)
    return context.request_id if context is not None else None


def note_user(user_id: object) -> None:
    """Remember the authenticated user of the request being served, for its access line."""
    context = current_request.get()
    if context is not None:
        context.user_id = str(user_id)


def current_user_id() -> str | None:
    """The authenticated user of the request being served, if any."""
    context = current_request.get()
    return context.user_id if context is not None else None


class RequestIdFilter(logging.Filter):
    """Gives every record a `request_id`: its own, the current request's, or "-"."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the request id; never drops a record."""
        if not hasattr(record, "request_id"):
            context = current_request.get()
            record.request_id = context.request_id if context is not None else "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, access fields."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def timestamp(self, created: float) -> str:
        """ISO 8601 in UTC with milliseconds; the part up to the second is reused."""
        second = int(created)
        if second != self._second:
            self._second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        return f"{self._second_text}.{int((created - second) * 1000):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (orjson: several times faster than `json`)."""
        entry: dict[str, Any] = {
            "time": self.timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for name in ACCESS_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


class TextFormatter(logging.Formatter):
    """`TEXT_FORMAT` with UTC timestamps; an access line shows its fields after the message."""

    converter = time.gmtime  # type: ignore[assignment]  # UTC, like the JSON lines

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        """The record as a line of text."""
        if not hasattr(record, "request_id"):
            record.request_id = "-"
        return super().format(record)


def formatter_for(settings: Settings) -> logging.Formatter:
    """The formatter LOG_FORMAT asks for."""
    return JsonFormatter() if settings.log_format_or_default == "json" else TextFormatter()


class BufferedStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes lines to stderr through a buffer flushed every FLUSH_INTERVAL by a thread.

    A write and a flush per line would cost the event loop a system call per request;
    here lines are batched. Warnings and worse are flushed at once, and closing the
    handler (at exit, `logging.shutdown`) flushes the rest.
    """

    def __init__(self) -> None:
        stream = open(  # noqa: SIM115 (kept open for the handler's life; closed in close())
            os.dup(sys.stderr.fileno()), "w", buffering=WRITE_BUFFER_BYTES, encoding="utf-8"
        )
        super().__init__(stream)
        self._stopped = threading.Event()
        self._flusher = threading.Thread(target=self._flush_often, name="log-flush", daemon=True)
        self._flusher.start()

    def _flush_often(self) -> None:
        while not self._stopped.wait(FLUSH_INTERVAL):
            self.flush()

    def emit(self, record: logging.LogRecord) -> None:
        """Buffer the formatted line; flush at once from WARNING up."""
        try:
            self.stream.write(self.format(record) + "\n")
            if record.levelno >= logging.WARNING:
                self.stream.flush()
        except Exception:  # logging must never break the request (as StreamHandler)
            self.handleError(record)

    def close(self) -> None:
        """Stop the flusher, write what is buffered, close the stream."""
        self._stopped.set()
        if self._flusher is not threading.current_thread():
            self._flusher.join(timeout=5)
        self.acquire()
        try:
            self.flush()
            self.stream.close()
        finally:
            self.release()
        super().close()


def make_handler(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """A handler writing `stream` (buffered stderr) in LOG_FORMAT, each line with its request id."""
    handler: logging.Handler
    if stream is not None:
        handler = logging.StreamHandler(stream)
    else:
        try:
            handler = BufferedStderrHandler()
        except (AttributeError, OSError, ValueError):  # stderr without a descriptor
            handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_for(settings))
    handler.addFilter(RequestIdFilter())
    handler.set_name("app")
    return handler


def flush_logs() -> None:
    """Write out what the service's handlers hold (at shutdown).

    uvicorn ends a SIGTERM'd process by raising the signal again once the app has shut
    down, so no exit hook runs: lines still buffered then would be lost.
    """
    for handler in logging.getLogger("app").handlers:
        handler.flush()


def configure_logging(settings: Settings) -> None:
    """Send the service's log records (logger `app`) to stderr at LOG_LEVEL in LOG_FORMAT.

    With ACCESS_LOG on, uvicorn's own access log is silenced: ours replaces it, and a
    logger without handlers costs uvicorn nothing per request.
    """
    app_logger = logging.getLogger("app")
    app_logger.setLevel(settings.log_level.upper())
    for handler in [h for h in app_logger.handlers if h.get_name() == "app"]:
        app_logger.removeHandler(handler)
        handler.close()
    app_logger.addHandler(make_handler(settings))
    if settings.access_log:
        uvicorn_access = logging.getLogger("uvicorn.access")
        uvicorn_access.handlers.clear()
        uvicorn_access.propagate = False
    if settings.log_format_or_default == "json":
        # uvicorn's own lines (start-up, errors) in the same format.
        for name in ("uvicorn", "uvicorn.error"):
            for handler in logging.getLogger(name).handlers:
                handler.setFormatter(JsonFormatter())
                if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
                    handler.addFilter(RequestIdFilter())


def route_template(scope: Scope) -> str:
    """The route that served the request (`/users/{id}`), never the raw path.

    FastAPI keeps the full template of a route in an included router (prefix and all) in
    its scope entry; `scope["route"].path` lacks the prefix. Mounts are `<prefix>/{path}`,
    FastAPI's own pages (OpenAPI, docs) their fixed path, anything else `unmatched`.
    """
    context = scope.get("fastapi", {}).get("effective_route_context")
    path = getattr(context, "path_format", None) or getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    if "app_root_path" in scope:
        return f"{scope.get('root_path', '')}/{{path}}"
    if "endpoint" in scope and not scope.get("path_params"):
        return str(scope["path"])
    return "unmatched"


class RequestMiddleware:
    """Request id, request metrics and the access line, for every HTTP request.

    Plain ASGI and lean: it runs on every request, so the access record is built directly
    (no caller lookup) and only when its level is enabled. The query string is never
    logged: links carry tokens there.
    """

    def __init__(self, app: ASGIApp, trusted_proxies: list[Network], access_log: bool) -> None:
        self.app = app
        self.trusted_proxies = trusted_proxies
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                if WELL_FORMED_REQUEST_ID.fullmatch(value):
                    request_id = value.decode("ascii")
                break
        if request_id is None:
            request_id = new_request_id()
        context = RequestContext(request_id)
        scope[SCOPE_KEY] = context
        reset_token = current_request.set(context)
        header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        status = 500

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            duration = time.perf_counter() - started
            route = route_template(scope)
            method = scope["method"]
            metrics.observe_request(method, route, status, duration)
            if self.access_log:
                self.log_access(scope, context, method, route, status, duration)
            current_request.reset(reset_token)

    def log_access(
        self,
        scope: Scope,
        context: RequestContext,
        method: str,
        route: str,
        status: int,
        duration: float,
    ) -> None:
        """Write the access line (at debug for health checks and scrapes)."""
        level = logging.DEBUG if scope["path"] in QUIET_PATHS else logging.INFO
        if not access_logger.isEnabledFor(level):
            return
        duration_ms = round(duration * 1000, 2)
        ip = client_ip_from_scope(scope, self.trusted_proxies)
        record = logging.LogRecord(
            access_logger.name, level, "", 0,
            "%s %s %d %.2fms client=%s user=%s",
            (method, route, status, duration_ms, ip, context.user_id or "-"), None,
        )  # fmt: skip
        record.__dict__.update(
            method=method,
            route=route,
            status=status,
            duration_ms=duration_ms,
            client_ip=ip,
            user_id=context.user_id,
            request_id=context.request_id,
        )
        access_logger.handle(record)
