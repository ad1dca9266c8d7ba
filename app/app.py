"""The application factory, its routers and its one route of its own."""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Body, Depends, FastAPI, Query, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator, EmailStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from tortoise.contrib.fastapi import register_tortoise

from app import audit, health, metrics, pages
from app.audit import AuditAction
from app.db import DatabaseNotReady, check_database, open_sqlite_reader, tortoise_config
from app.health import Health, pending_migrations
from app.logs import RequestMiddleware, configure_logging
from app.mail import Mailer
from app.models import AuditEventPage, UserCreate, UserDB, UserRead, UserUpdate
from app.passwords import PasswordHasher
from app.ratelimit import RATE_LIMIT_RESPONSES, RATE_LIMITED, RateLimiter
from app.security import BODY_TOO_LARGE_RESPONSES, add_http_hygiene
from app.settings import Settings, load_settings, resolve_secret
from app.users import (
    InvalidCurrentPassword,
    UserManagerDep,
    auth_backend,
    current_active_user,
    current_superuser,
    fastapi_users,
)

logger = logging.getLogger(__name__)

CurrentUser = Annotated[UserDB, Depends(current_active_user)]
CurrentSuperuser = Annotated[UserDB, Depends(current_superuser)]
EmailBody = Annotated[EmailStr, Body(embed=True)]
STATIC_FILES = Path(__file__).parent / "static"
# How long shutdown waits for mails still being sent.
MAIL_SHUTDOWN_GRACE_SECONDS = 10.0
INVALID_CURRENT_PASSWORD = "UPDATE_USER_INVALID_CURRENT_PASSWORD"  # noqa: S105 (an error code)
# How often the database pool gauge is refreshed (seconds).
POOL_METRICS_INTERVAL = 5.0


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
    responses=RATE_LIMIT_RESPONSES,
)
async def forgot_password(
    email: EmailBody, manager: UserManagerDep, background: BackgroundTasks, request: Request
) -> None:
    """Mail a password reset link if an active account has this address; always 202."""
    background.add_task(manager.forgot_password_by_email, email, request)


@router.post(
    "/auth/request-verify-token",
    status_code=202,
    name="verify:request-token",
    tags=["auth"],
    dependencies=RATE_LIMITED,
    responses=RATE_LIMIT_RESPONSES,
)
async def request_verify_token(
    email: EmailBody, manager: UserManagerDep, background: BackgroundTasks, request: Request
) -> None:
    """Mail a verification link if an active, unverified account has this address; always 202."""
    background.add_task(manager.request_verify_by_email, email, request)


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


async def refresh_pool_metrics() -> None:
    """Keep the database pool gauge current while the app runs."""
    while True:
        metrics.update_database_pool()
        await asyncio.sleep(POOL_METRICS_INTERVAL)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Check the database before serving and own the rate limiter; at shutdown, let mails finish.

    Shutdown turns readiness to 503 first (`app/health.py`).
    """
    try:
        await check_schema()
    except DatabaseNotReady as exc:
        logger.error("%s", exc)
        raise
    app.state.sqlite_reader = open_sqlite_reader()
    app.state.rate_limiter = RateLimiter(app.state.settings)
    health_state: Health = app.state.health
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
        await app.state.mailer.wait_idle(MAIL_SHUTDOWN_GRACE_SECONDS)
        await app.state.rate_limiter.aclose()
        if app.state.sqlite_reader is not None:
            app.state.sqlite_reader.close()
        health_state.restore_signals()
        metrics.mark_worker_gone()


def with_logout_documented_as_204(router: APIRouter) -> APIRouter:
    """The auth router, its logout documented as the 204 it answers (upstream documents 200)."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.name.endswith(".logout"):
            route.status_code = status.HTTP_204_NO_CONTENT
    return router


async def undecodable_body(request: Request, exc: Exception) -> Response:
    """422 for a body that is not UTF-8 text, like any other malformed JSON body.

    FastAPI answers such a body with an undocumented 400; every other HTTP error keeps
    FastAPI's own handling.
    """
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == status.HTTP_400_BAD_REQUEST and isinstance(
        exc.__cause__, UnicodeDecodeError
    ):
        error = {"type": "json_invalid", "loc": ["body"], "msg": "Body is not UTF-8", "input": {}}
        return JSONResponse({"detail": [error]}, status.HTTP_422_UNPROCESSABLE_CONTENT)
    return await http_exception_handler(request, exc)


async def invalid_current_password(request: Request, exc: Exception) -> JSONResponse:
    """`400 UPDATE_USER_INVALID_CURRENT_PASSWORD`, in FastAPI Users' error shape."""
    return JSONResponse({"detail": INVALID_CURRENT_PASSWORD}, status.HTTP_400_BAD_REQUEST)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service for `settings` (read from the environment when not given)."""
    settings = settings or load_settings()
    configure_logging(settings)
    settings = resolve_secret(settings)

    app = FastAPI(title="FastAPI Users on Tortoise ORM", lifespan=lifespan)
    app.state.settings = settings
    app.state.password_hasher = PasswordHasher(settings)
    app.state.mailer = Mailer(settings)
    app.state.health = Health(settings.shutdown_drain_seconds)

    app.add_exception_handler(InvalidCurrentPassword, invalid_current_password)
    app.add_exception_handler(StarletteHTTPException, undecodable_body)
    add_http_hygiene(app, settings)
    # Outermost, so its duration and status include every other layer's work.
    app.add_middleware(
        RequestMiddleware, trusted_proxies=settings.trusted_proxies, access_log=settings.access_log
    )

    # The example's routers, prefixes and tags; the auth routes are rate-limited
    # (`app/ratelimit.py` says which route is limited how).
    auth_responses = {**RATE_LIMIT_RESPONSES, **BODY_TOO_LARGE_RESPONSES}
    app.include_router(
        with_logout_documented_as_204(fastapi_users.get_auth_router(auth_backend)),
        prefix="/auth/jwt",
        tags=["auth"],
        dependencies=RATE_LIMITED,
        responses=auth_responses,
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
    app.include_router(
        fastapi_users.get_users_router(UserRead, UserUpdate),
        prefix="/users",
        tags=["users"],
        responses=BODY_TOO_LARGE_RESPONSES,
    )
    app.include_router(router)
    app.include_router(health.router)
    app.add_api_route("/metrics", metrics.metrics_endpoint, include_in_schema=False)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_FILES), name="static")

    # Aerich owns the schema (`aerich upgrade`); Tortoise's exception handlers stay
    # off so no ORM error text reaches a client.
    register_tortoise(app, config=tortoise_config(settings), generate_schemas=False)
    return app


app = create_app()
