"""The application factory, its routers and its one route of its own."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Body, Depends, FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import EmailStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from tortoise.contrib.fastapi import register_tortoise

from app import admin, pages
from app.db import DatabaseNotReady, check_database, open_sqlite_reader, tortoise_config
from app.docs import DOCS_PATHS, add_docs
from app.mail import Mailer
from app.models import UserCreate, UserDB, UserRead, UserUpdate
from app.passwords import PasswordHasher
from app.ratelimit import RATE_LIMIT_RESPONSES, RATE_LIMITED, RateLimiter
from app.security import BODY_TOO_LARGE_RESPONSES, add_http_hygiene
from app.settings import Settings, load_settings, resolve_secret
from app.users import (
    InvalidCurrentPassword,
    UserManagerDep,
    auth_backend,
    current_active_user,
    fastapi_users,
)

logger = logging.getLogger(__name__)

CurrentUser = Annotated[UserDB, Depends(current_active_user)]
EmailBody = Annotated[EmailStr, Body(embed=True)]
STATIC_FILES = Path(__file__).parent / "static"
# How long shutdown waits for mails still being sent.
MAIL_SHUTDOWN_GRACE_SECONDS = 10.0
INVALID_CURRENT_PASSWORD = "UPDATE_USER_INVALID_CURRENT_PASSWORD"  # noqa: S105 (an error code)


def configure_logging(level: str) -> None:
    """Send the service's own log records (logger `app`) to stderr at `level`."""
    app_logger = logging.getLogger("app")
    app_logger.setLevel(level.upper())
    if not app_logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        app_logger.addHandler(handler)


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


def without_route(router: APIRouter, path: str) -> APIRouter:
    """`router` without its route at `path` (replaced by one of ours)."""
    router.routes = [route for route in router.routes if getattr(route, "path", None) != path]
    return router


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Check the database before serving and own the rate limiter; at shutdown, let mails finish."""
    try:
        await check_database()
    except DatabaseNotReady as exc:
        logger.error("%s", exc)
        raise
    app.state.sqlite_reader = open_sqlite_reader()
    app.state.rate_limiter = RateLimiter(app.state.settings)
    try:
        yield
    finally:
        await app.state.mailer.wait_idle(MAIL_SHUTDOWN_GRACE_SECONDS)
        await app.state.rate_limiter.aclose()
        if app.state.sqlite_reader is not None:
            app.state.sqlite_reader.close()


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
    configure_logging(settings.log_level)
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

    app.add_exception_handler(InvalidCurrentPassword, invalid_current_password)
    app.add_exception_handler(StarletteHTTPException, undecodable_body)
    add_http_hygiene(app, settings, DOCS_PATHS if settings.docs_on else ())

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
    app.include_router(admin.router, responses=BODY_TOO_LARGE_RESPONSES)
    app.include_router(
        fastapi_users.get_users_router(UserRead, UserUpdate),
        prefix="/users",
        tags=["users"],
        responses=BODY_TOO_LARGE_RESPONSES,
    )
    app.include_router(router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_FILES), name="static")
    if settings.docs_on:
        add_docs(app)

    # Aerich owns the schema (`aerich upgrade`); Tortoise's exception handlers stay
    # off so no ORM error text reaches a client.
    register_tortoise(app, config=tortoise_config(settings), generate_schemas=False)
    return app


app = create_app()
