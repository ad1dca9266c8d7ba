"""The application factory, its routers and its one route of its own."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI
from tortoise.contrib.fastapi import register_tortoise

from app.db import DatabaseNotReady, check_database, tortoise_config
from app.models import UserCreate, UserDB, UserRead, UserUpdate
from app.passwords import PasswordHasher
from app.settings import Settings, load_settings, resolve_secret
from app.users import auth_backend, current_active_user, fastapi_users

logger = logging.getLogger(__name__)

CurrentUser = Annotated[UserDB, Depends(current_active_user)]


def configure_logging(level: str) -> None:
    """Send the service's own log records (logger `app`) to stderr at `level`."""
    app_logger = logging.getLogger("app")
    app_logger.setLevel(level.upper())
    if not app_logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        app_logger.addHandler(handler)


router = APIRouter()


@router.get("/authenticated-route")
async def authenticated_route(user: CurrentUser) -> dict[str, str]:
    """Greet the authenticated, active user."""
    return {"message": f"Hello {user.email}!"}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Check the database before serving (Tortoise is connected by then)."""
    try:
        await check_database()
    except DatabaseNotReady as exc:
        logger.error("%s", exc)
        raise
    yield


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service for `settings` (read from the environment when not given)."""
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    settings = resolve_secret(settings)

    app = FastAPI(title="FastAPI Users on Tortoise ORM", lifespan=lifespan)
    app.state.settings = settings
    app.state.password_hasher = PasswordHasher(settings)

    app.include_router(
        fastapi_users.get_auth_router(auth_backend), prefix="/auth/jwt", tags=["auth"]
    )
    app.include_router(
        fastapi_users.get_register_router(UserRead, UserCreate), prefix="/auth", tags=["auth"]
    )
    app.include_router(fastapi_users.get_reset_password_router(), prefix="/auth", tags=["auth"])
    app.include_router(fastapi_users.get_verify_router(UserRead), prefix="/auth", tags=["auth"])
    app.include_router(
        fastapi_users.get_users_router(UserRead, UserUpdate), prefix="/users", tags=["users"]
    )
    app.include_router(router)

    # Aerich owns the schema (`aerich upgrade`); Tortoise's exception handlers stay
    # off so no ORM error text reaches a client.
    register_tortoise(app, config=tortoise_config(settings), generate_schemas=False)
    return app


app = create_app()
