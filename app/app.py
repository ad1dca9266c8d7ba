"""The application factory, its routers and its one route of its own."""

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi_users.openapi import OpenAPIResponseType
from fastapi_users.router.common import ErrorModel
from pydantic import AfterValidator, EmailStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from tortoise.contrib.fastapi import register_tortoise

from app import admin, audit, health, metrics, mfa_routes, oauth_routes, outages, pages
from app.audit import AuditAction
from app.db import DatabaseNotReady, check_schema, open_sqlite_reader, tortoise_config
from app.docs import DOCS_PATHS, add_docs
from app.health import Health
from app.link_requests import LinkRequests, LinkRequestsDep
from app.logs import RequestMiddleware, configure_logging, flush_logs
from app.mail import Mailer
from app.mfa import Mfa, MfaError, MfaKeyMissing, require_mfa_key
from app.models import EMAIL_DESCRIPTION, AuditEventPage, UserCreate, UserDB, UserRead, UserUpdate
from app.oauth import OAuthFlowError, Providers
from app.oauth_accounts import OAuthRefused
from app.passwords import PasswordHasher
from app.ratelimit import RATE_LIMIT_RESPONSES, RATE_LIMITED, RateLimiter
from app.security import BODY_TOO_LARGE_RESPONSES, add_http_hygiene
from app.session_routes import auth_router, sessions_router
from app.sessions import Sessions
from app.settings import Settings, load_settings, resolve_secret
from app.user_db import LastSuperuser, TortoiseUserDatabase
from app.users import (
    InvalidCurrentPassword,
    SessionStrategy,
    UserManager,
    current_active_user,
    current_superuser,
    fastapi_users,
)

logger = logging.getLogger(__name__)

CurrentUser = Annotated[UserDB, Depends(current_active_user)]
CurrentSuperuser = Annotated[UserDB, Depends(current_superuser)]
EmailBody = Annotated[EmailStr, Body(embed=True, description=EMAIL_DESCRIPTION)]
STATIC_FILES = Path(__file__).parent / "static"
# How long shutdown waits for mails still being sent.
MAIL_SHUTDOWN_GRACE_SECONDS = 10.0
INVALID_CURRENT_PASSWORD = "UPDATE_USER_INVALID_CURRENT_PASSWORD"  # noqa: S105 (an error code)
LAST_SUPERUSER = "LAST_SUPERUSER"
LAST_SUPERUSER_RESPONSES: OpenAPIResponseType = {
    status.HTTP_409_CONFLICT: {
        "model": ErrorModel,
        "description": "The change would delete, deactivate or demote the last active superuser.",
        "content": {"application/json": {"example": {"detail": LAST_SUPERUSER}}},
    },
}
UNPARSABLE_BODY_RESPONSES: OpenAPIResponseType = {
    status.HTTP_400_BAD_REQUEST: {
        "model": ErrorModel,
        "description": "The body could not be parsed (FastAPI's `There was an error parsing "
        "the body`).",
    },
}

# How often the database pool gauge is refreshed (seconds).
POOL_METRICS_INTERVAL = 5.0


def mask_query_in_access_log() -> None:
    """Mask every query value in uvicorn's access and ASGI-trace logs (`?token=***`).

    The mailed links carry their token in the query, and whoever reads the log must not
    be able to verify an address or reset a password with it. A filter on the loggers
    (not on a handler) holds for `python main.py`, `uvicorn app.app:app` and any
    `--log-config`; installing it again changes nothing.
    """

    def masked(query: str) -> str:
        pairs = parse_qsl(query, keep_blank_values=True)
        return urlencode([(name, "***") for name, _ in pairs], safe="*")

    def masked_arg(arg: object) -> object:
        if isinstance(arg, str) and "?" in arg:  # the access log's path with its query
            path, _, query = arg.partition("?")
            return f"{path}?{masked(query)}"
        if isinstance(arg, dict) and isinstance(arg.get("query_string"), bytes):  # a scope
            return {**arg, "query_string": masked(arg["query_string"].decode("latin-1")).encode()}
        return arg

    def mask(record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(masked_arg(arg) for arg in record.args)
        return True

    for name in ("uvicorn.access", "uvicorn.asgi"):
        uvicorn_logger = logging.getLogger(name)
        installed = [getattr(f, "__qualname__", "") for f in uvicorn_logger.filters]
        if mask.__qualname__ not in installed:
            uvicorn_logger.addFilter(mask)


router = APIRouter()


@router.get(
    "/authenticated-route",
    responses={status.HTTP_401_UNAUTHORIZED: {"description": "Missing token or inactive user."}},
)
async def authenticated_route(user: CurrentUser) -> dict[str, str]:
    """Greet the authenticated, active user."""
    return {"message": f"Hello {user.email}!"}


# FastAPI Users' versions of these two routes look the address up before answering,
# and answer at once when it is unknown; ours answer first, then look up (see users.py).
@router.post(
    "/auth/forgot-password",
    status_code=202,
    name="reset:forgot_password",
    tags=["auth"],
    dependencies=RATE_LIMITED,
    responses={**RATE_LIMIT_RESPONSES, **BODY_TOO_LARGE_RESPONSES, **UNPARSABLE_BODY_RESPONSES},
)
async def forgot_password(
    email: EmailBody, link_requests: LinkRequestsDep, request: Request
) -> None:
    """Mail a password reset link if an active account has this address; always 202."""
    link_requests.ask("reset_password", email, request)


@router.post(
    "/auth/request-verify-token",
    status_code=202,
    name="verify:request-token",
    tags=["auth"],
    dependencies=RATE_LIMITED,
    responses={**RATE_LIMIT_RESPONSES, **BODY_TOO_LARGE_RESPONSES, **UNPARSABLE_BODY_RESPONSES},
)
async def request_verify_token(
    email: EmailBody, link_requests: LinkRequestsDep, request: Request
) -> None:
    """Mail a verification link if an active, unverified account has this address; always 202."""
    link_requests.ask("verify", email, request)


EventCursor = Annotated[
    str | None,
    Query(
        pattern=rf"^[0-9]{{1,{audit.MAX_CURSOR_DIGITS}}}$",
        description="`next_cursor` of the previous page.",
    ),
]
EventTime = Annotated[
    datetime | None,
    AfterValidator(lambda moment: None if moment is None else audit.bounded_time(moment)),
    Query(description="ISO 8601; without a time zone, UTC."),
]
PageSize = Annotated[int, Query(ge=1, le=audit.MAX_PAGE_SIZE)]
SUPERUSER_RESPONSES: dict[int | str, dict[str, str]] = {
    status.HTTP_401_UNAUTHORIZED: {"description": "Missing token or inactive user."},
    status.HTTP_403_FORBIDDEN: {"description": "Not a superuser."},
}


@router.get("/audit-events", tags=["audit"], responses=SUPERUSER_RESPONSES)
async def audit_events(
    _: CurrentSuperuser,
    subject_id: uuid.UUID | None = None,
    action: AuditAction | None = None,
    since: EventTime = None,
    until: EventTime = None,
    cursor: EventCursor = None,
    limit: PageSize = 50,
) -> AuditEventPage:
    """The audit trail, newest first, filtered by subject, action and time (superusers)."""
    return await audit.list_events(
        subject_id=subject_id, action=action, since=since, until=until,
        cursor=int(cursor) if cursor else None, limit=limit,
    )  # fmt: skip


@router.get(
    "/users/me/security-events",
    tags=["users"],
    responses={status.HTTP_401_UNAUTHORIZED: {"description": "Missing token or inactive user."}},
)
async def my_security_events(
    user: CurrentUser,
    action: AuditAction | None = None,
    since: EventTime = None,
    until: EventTime = None,
    cursor: EventCursor = None,
    limit: PageSize = 50,
) -> AuditEventPage:
    """Your own security log: sign-ins, failed sign-ins and changes to your account."""
    return await audit.list_events(
        subject_id=user.id, action=action, since=since, until=until,
        cursor=int(cursor) if cursor else None, limit=limit,
    )  # fmt: skip


def without_route(router: APIRouter, path: str) -> APIRouter:
    """`router` without its route at `path` (replaced by one of ours)."""
    router.routes = [route for route in router.routes if getattr(route, "path", None) != path]
    return router


async def refresh_pool_metrics() -> None:
    """Keep the database pool gauge current while the app runs."""
    while True:
        metrics.update_database_pool()
        await asyncio.sleep(POOL_METRICS_INTERVAL)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Check the database, own the rate limiter and the link-request task; let mails finish.

    Shutdown turns readiness to 503 first (`app/health.py`).
    """
    try:
        await check_schema()
        await require_mfa_key(app.state.settings)
    except (DatabaseNotReady, MfaKeyMissing) as exc:
        logger.error("%s", exc)
        raise
    app.state.sqlite_reader = open_sqlite_reader()
    app.state.sessions.user_db = TortoiseUserDatabase(app.state.sqlite_reader)
    app.state.rate_limiter = RateLimiter(app.state.settings)
    state = app.state
    manager = UserManager(
        TortoiseUserDatabase(state.sqlite_reader), state.settings, state.password_hasher,
        state.mailer, state.sessions,
    )  # fmt: skip
    state.link_requests.start(manager.send_link)
    health_state: Health = state.health
    health_state.shutting_down = False
    health_state.watch_signals()
    pool_metrics = asyncio.get_running_loop().create_task(refresh_pool_metrics())
    try:
        yield
    finally:
        health_state.shutting_down = True
        pool_metrics.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pool_metrics
        # Queued link requests become mails first; both share the one grace period.
        grace_left = await state.link_requests.stop(MAIL_SHUTDOWN_GRACE_SECONDS)
        await state.mailer.wait_idle(grace_left)
        await app.state.rate_limiter.aclose()
        if app.state.sqlite_reader is not None:
            app.state.sqlite_reader.close()
        health_state.restore_signals()
        metrics.mark_worker_gone()
        flush_logs()


def with_last_superuser_documented(router: APIRouter) -> APIRouter:
    """The users router, its PATCH and DELETE by id documented with `409 LAST_SUPERUSER`."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.name in ("users:patch_user", "users:delete_user"):
            route.responses = {**route.responses, **LAST_SUPERUSER_RESPONSES}
    return router


def documented_methods(app: FastAPI, path: str) -> list[str] | None:
    """The methods the OpenAPI documents for `path`, or None when it documents no such path.

    A path like `/users/me` also fits `/users/{id}`; the template with the fewest
    parameters is its own.
    """
    fitting = [
        (template.count("{"), template, operations)
        for template, operations in app.openapi()["paths"].items()
        if re.fullmatch("[^/]+".join(map(re.escape, re.split(r"\{[^/]+?\}", template))), path)
    ]
    if not fitting:
        return None
    _, _, operations = min(fitting, key=lambda found: found[:2])
    return [method.upper() for method in operations]


async def http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's handling of HTTP errors, but for two answers that would be wrong.

    A body that is not UTF-8 text gets 422 like any other malformed JSON body (FastAPI
    answers an undocumented 400), and a 405 names in `Allow` every documented method of the path.
    """
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == status.HTTP_400_BAD_REQUEST and isinstance(
        exc.__cause__, UnicodeDecodeError
    ):
        error = {"type": "json_invalid", "loc": ["body"], "msg": "Body is not UTF-8", "input": {}}
        return JSONResponse({"detail": [error]}, status.HTTP_422_UNPROCESSABLE_CONTENT)
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        headers = dict(exc.headers or {})
        methods = documented_methods(request.app, request.url.path)
        if methods is not None:
            headers["Allow"] = ", ".join(methods)
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=headers)
    return await http_exception_handler(request, exc)


async def last_superuser(request: Request, exc: Exception) -> JSONResponse:
    """`409 LAST_SUPERUSER`, in FastAPI Users' error shape."""
    return JSONResponse({"detail": LAST_SUPERUSER}, status.HTTP_409_CONFLICT)


async def invalid_current_password(request: Request, exc: Exception) -> JSONResponse:
    """`400 UPDATE_USER_INVALID_CURRENT_PASSWORD`, in FastAPI Users' error shape."""
    return JSONResponse({"detail": INVALID_CURRENT_PASSWORD}, status.HTTP_400_BAD_REQUEST)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service for `settings` (read from the environment when not given)."""
    settings = settings or load_settings()
    configure_logging(settings)
    mask_query_in_access_log()
    settings = resolve_secret(settings)

    # FastAPI's own documentation pages load their assets from a CDN; `app/docs.py`
    # serves ours when DOCS_ENABLED (by default in development only).
    app = FastAPI(
        title="FastAPI Users on Tortoise ORM",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        openapi_url="/openapi.json" if settings.docs_on else None,
    )
    app.state.settings = settings
    app.state.password_hasher = PasswordHasher(settings)
    app.state.mailer = Mailer(settings)
    app.state.sessions = Sessions(settings, app.state.mailer)
    app.state.mfa = Mfa(settings, app.state.password_hasher, app.state.mailer)
    app.state.session_strategy = SessionStrategy(app.state.sessions)
    app.state.link_requests = LinkRequests()
    app.state.health = Health(settings.shutdown_drain_seconds)
    app.state.oauth_providers = Providers(settings)

    app.add_exception_handler(InvalidCurrentPassword, invalid_current_password)
    app.add_exception_handler(LastSuperuser, last_superuser)
    app.add_exception_handler(OAuthFlowError, oauth_routes.flow_error)
    app.add_exception_handler(OAuthRefused, oauth_routes.flow_error)
    app.add_exception_handler(MfaError, mfa_routes.mfa_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    for outage in outages.HANDLED_CLASSES:
        app.add_exception_handler(outage, outages.database_unavailable)
    add_http_hygiene(app, settings, DOCS_PATHS if settings.docs_on else ())
    # Outermost, so its duration and status include every other layer's work.
    app.add_middleware(
        RequestMiddleware, trusted_proxies=settings.trusted_proxies, access_log=settings.access_log
    )

    # The example's routers, prefixes and tags; the auth routes are rate-limited
    # (`app/ratelimit.py` says which route is limited how). Our session routes replace
    # FastAPI Users' auth router at the same paths and names (app/session_routes.py).
    auth_responses = {**RATE_LIMIT_RESPONSES, **BODY_TOO_LARGE_RESPONSES}
    app.include_router(
        auth_router,
        prefix="/auth/jwt",
        tags=["auth"],
        dependencies=RATE_LIMITED,
        responses=auth_responses,
    )
    # The login's second step (app/mfa_routes.py); its guesses are limited on failures.
    app.include_router(
        mfa_routes.auth_router, prefix="/auth/mfa", tags=["auth"], responses=auth_responses
    )
    app.include_router(
        fastapi_users.get_register_router(UserRead, UserCreate),
        prefix="/auth",
        tags=["auth"],
        dependencies=RATE_LIMITED,
        responses=auth_responses,
    )
    app.include_router(
        without_route(fastapi_users.get_reset_password_router(), "/forgot-password"),
        prefix="/auth",
        tags=["auth"],
        dependencies=RATE_LIMITED,
        responses=auth_responses,
    )
    app.include_router(
        without_route(fastapi_users.get_verify_router(UserRead), "/request-verify-token"),
        prefix="/auth",
        tags=["auth"],
        dependencies=RATE_LIMITED,
        responses=auth_responses,
    )
    app.include_router(admin.router, responses=BODY_TOO_LARGE_RESPONSES)
    app.include_router(
        sessions_router, prefix="/users", tags=["users"], responses=BODY_TOO_LARGE_RESPONSES
    )
    app.include_router(
        mfa_routes.users_router, prefix="/users", tags=["users"], responses=BODY_TOO_LARGE_RESPONSES
    )
    app.include_router(
        with_last_superuser_documented(fastapi_users.get_users_router(UserRead, UserUpdate)),
        prefix="/users",
        tags=["users"],
        responses=BODY_TOO_LARGE_RESPONSES,
    )
    if settings.oauth_providers:  # docs/oauth.md; none configured, none of these routes
        oauth_responses = {**BODY_TOO_LARGE_RESPONSES, **RATE_LIMIT_RESPONSES}
        app.include_router(
            oauth_routes.router, prefix="/auth", tags=["auth"], dependencies=RATE_LIMITED,
            responses=oauth_responses,
        )  # fmt: skip
        if settings.oauth_frontend_url:
            app.include_router(
                oauth_routes.page_router, prefix="/auth", tags=["pages"],
                dependencies=RATE_LIMITED, responses=oauth_responses,
            )  # fmt: skip
        app.include_router(
            oauth_routes.users_router, prefix="/users", tags=["users"],
            responses=BODY_TOO_LARGE_RESPONSES,
        )  # fmt: skip
    app.include_router(router)
    app.include_router(health.router)
    app.add_api_route("/metrics", metrics.metrics_endpoint, include_in_schema=False)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_FILES), name="static")
    if settings.docs_on:
        add_docs(app)

    # Aerich owns the schema (`aerich upgrade`); Tortoise's exception handlers stay
    # off so no ORM error text reaches a client.
    register_tortoise(app, config=tortoise_config(settings), generate_schemas=False)
    return app


app = create_app()
