"""FastAPI Users wiring: the user manager, the bearer transport and the JWT backend."""

import logging
import uuid
from collections.abc import AsyncGenerator
from typing import Annotated

from fastapi import Depends, Request
from fastapi_users import (
    BaseUserManager,
    FastAPIUsers,
    InvalidPasswordException,
    UUIDIDMixin,
    schemas,
)
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, JWTStrategy
from fastapi_users.password import PasswordHelper
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from app.db import get_user_db
from app.models import UserDB
from app.settings import Settings
from app.user_db import TortoiseUserDatabase

logger = logging.getLogger(__name__)


def get_settings(request: Request) -> Settings:
    """The settings of the app serving this request."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]
UserDatabaseDep = Annotated[TortoiseUserDatabase, Depends(get_user_db)]


def password_helper(settings: Settings) -> PasswordHelper:
    """Argon2id with the configured cost for new hashes; bcrypt hashes still verify."""
    argon2 = Argon2Hasher(
        time_cost=settings.password_hash_time_cost,
        memory_cost=settings.password_hash_memory_cost,
        parallelism=settings.password_hash_parallelism,
    )
    return PasswordHelper(PasswordHash((argon2, BcryptHasher())))


class UserManager(UUIDIDMixin, BaseUserManager[UserDB, uuid.UUID]):
    """The FastAPI Users manager, with our password rules and logging hooks."""

    def __init__(self, user_db: TortoiseUserDatabase, settings: Settings) -> None:
        super().__init__(user_db, password_helper(settings))
        self.settings = settings
        self.reset_password_token_secret = settings.jwt_secret
        self.verification_token_secret = settings.jwt_secret

    async def validate_password(self, password: str, user: schemas.BaseUserCreate | UserDB) -> None:
        """Refuse passwords that are too short or cannot be encoded for hashing."""
        if len(password) < self.settings.password_min_length:
            raise InvalidPasswordException(
                reason=f"Password should be at least {self.settings.password_min_length} characters"
            )
        try:
            password.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidPasswordException(
                reason="Password contains characters that cannot be encoded"
            ) from None

    async def on_after_register(self, user: UserDB, request: Request | None = None) -> None:
        """Log the new account."""
        logger.info("User %s has registered.", user.id)

    async def on_after_forgot_password(
        self, user: UserDB, token: str, request: Request | None = None
    ) -> None:
        """Log the request; in development, with the token so the flow can be completed."""
        if self.settings.environment == "development":
            logger.info("User %s has forgot their password. Reset token: %s", user.id, token)
        else:
            logger.info("User %s has forgot their password.", user.id)

    async def on_after_request_verify(
        self, user: UserDB, token: str, request: Request | None = None
    ) -> None:
        """Log the request; in development, with the token so the flow can be completed."""
        if self.settings.environment == "development":
            logger.info(
                "Verification requested for user %s. Verification token: %s", user.id, token
            )
        else:
            logger.info("Verification requested for user %s.", user.id)


async def get_user_manager(
    user_db: UserDatabaseDep, settings: SettingsDep
) -> AsyncGenerator[UserManager, None]:
    """Provide the user manager to FastAPI Users."""
    yield UserManager(user_db, settings)


bearer_transport = BearerTransport(tokenUrl="auth/jwt/login")


def get_jwt_strategy(settings: SettingsDep) -> JWTStrategy[UserDB, uuid.UUID]:
    """JWTs signed with SECRET, valid for JWT_LIFETIME_SECONDS (3600 by default)."""
    return JWTStrategy(secret=settings.jwt_secret, lifetime_seconds=settings.jwt_lifetime_seconds)


auth_backend = AuthenticationBackend(
    name="jwt",
    transport=bearer_transport,
    get_strategy=get_jwt_strategy,
)

fastapi_users = FastAPIUsers[UserDB, uuid.UUID](get_user_manager, [auth_backend])

current_active_user = fastapi_users.current_user(active=True)
