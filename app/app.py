"""The application factory, its routers and its one route of its own."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from tortoise.contrib.fastapi import register_tortoise

from app.db import DatabaseNotReady, check_database, tortoise_config
from app.models import UserCreate, UserDB, UserRead, UserUpdate
from app.passwords import PasswordHasher
from app.ratelimit import RATE_LIMIT_RESPONSES, RateLimiter, enforce_rate_limits
from app.security import BODY_TOO_LARGE_RESPONSES, add_http_hygiene
from app.settings import Settings, load_settings, resolve_secret
from app.users import InvalidCurrentPassword, auth_backend, current_active_user, fastapi_users

logger = logging.getLogger(__name__)

CurrentUser = Annotated[UserDB, Depends(current_active_user)]
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


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Check the database before serving (Tortoise is connected by then); own the rate limiter."""
    try:
        await check_database()
    except DatabaseNotReady as exc:
        logger.error("%s", exc)
        raise
    app.state.rate_limiter = RateLimiter(app.state.settings)
    try:
        yield
    finally:
        await app.state.rate_limiter.aclose()


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

    app = FastAPI(title="FastAPI Users on Tortoise ORM", lifespan=lifespan)
    app.state.settings = settings
    app.state.password_hasher = PasswordHasher(settings)

    app.add_exception_handler(InvalidCurrentPassword, invalid_current_password)
    app.add_exception_handler(StarletteHTTPException, undecodable_body)
    add_http_hygiene(app, settings)

    # The example's routers, prefixes and tags; the auth routes are rate-limited
    # (`app/ratelimit.py` says which route is limited how).
    rate_limited = [Depends(enforce_rate_limits)]
    auth_responses = {**RATE_LIMIT_RESPONSES, **BODY_TOO_LARGE_RESPONSES}
    app.include_router(
        with_logout_documented_as_204(fastapi_users.get_auth_router(auth_backend)),
        prefix="/auth/jwt",
        tags=["auth"],
        dependencies=rate_limited,
        responses=auth_responses,
    )
    app.include_router(
        fastapi_users.get_register_router(UserRead, UserCreate),
        prefix="/auth",
        tags=["auth"],
        dependencies=rate_limited,
        responses=auth_responses,
    )
    app.include_router(
        fastapi_users.get_reset_password_router(),
        prefix="/auth",
        tags=["auth"],
        dependencies=rate_limited,
        responses=auth_responses,
    )
    app.include_router(
        fastapi_users.get_verify_router(UserRead),
        prefix="/auth",
        tags=["auth"],
        dependencies=rate_limited,
        responses=auth_responses,
    )
    app.include_router(
        fastapi_users.get_users_router(UserRead, UserUpdate),
        prefix="/users",
        tags=["users"],
        responses=BODY_TOO_LARGE_RESPONSES,
    )
    app.include_router(router)

    # Aerich owns the schema (`aerich upgrade`); Tortoise's exception handlers stay
    # off so no ORM error text reaches a client.
    register_tortoise(app, config=tortoise_config(settings), generate_schemas=False)
    return app


app = create_app()
