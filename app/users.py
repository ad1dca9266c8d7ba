"""FastAPI Users wiring: the user manager, the bearer transport, the session strategy, backend."""

import hmac
import logging
import uuid
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from fastapi_users import (
    BaseUserManager,
    FastAPIUsers,
    InvalidPasswordException,
    UUIDIDMixin,
    exceptions,
    schemas,
)
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, Strategy
from fastapi_users.jwt import decode_jwt, generate_jwt
from tortoise.transactions import in_transaction

from app import audit
from app.audit import Event
from app.db import get_user_db
from app.link_requests import LinkKind
from app.logs import note_user, request_id_of
from app.mail import Mailer, describe_lifetime, redact
from app.models import MfaTotp, RevokedReason, SessionUser, UserDB, normalize_email
from app.password_policy import password_problem
from app.passwords import NoInlineHashing, PasswordHasher
from app.sessions import Sessions, utcnow
from app.settings import Settings
from app.user_db import TortoiseUserDatabase

logger = logging.getLogger(__name__)


UserDatabaseDep = Annotated[TortoiseUserDatabase, Depends(get_user_db)]


class InvalidCurrentPassword(exceptions.FastAPIUsersException):
    """A change to one's own e-mail or password came without the right current password."""


class UserManager(UUIDIDMixin, BaseUserManager[UserDB, uuid.UUID]):
    """The FastAPI Users manager, with our password rules and the mails its hooks send.

    Every method that hashes or verifies a password is overridden to await
    `PasswordHasher`, which works in threads; upstream hashes on the event loop.
    Every change of an account commits together with its audit event (`app/audit.py`).
    """

    def __init__(
        self,
        user_db: TortoiseUserDatabase,
        settings: Settings,
        hasher: PasswordHasher,
        mailer: Mailer,
        sessions: Sessions | None = None,
        request: Request | None = None,
    ) -> None:
        super().__init__(user_db, NoInlineHashing())
        self.settings = settings
        self.hasher = hasher
        self.mailer = mailer
        self.sessions = sessions or Sessions(settings, mailer)
        self.request = request  # the request this manager serves, for the audit trail
        self._next_update_events: tuple[Event, ...] = ()
        self.reset_password_token_secret = settings.jwt_secret
        self.reset_password_token_lifetime_seconds = settings.reset_password_token_lifetime_seconds
        self.verification_token_secret = settings.jwt_secret
        self.verification_token_lifetime_seconds = settings.verify_token_lifetime_seconds

    async def authenticate(self, credentials: OAuth2PasswordRequestForm) -> UserDB | None:
        """The user these credentials belong to, or None; outdated hashes are upgraded."""
        try:
            user = await self.get_by_email(credentials.username)
        except exceptions.UserNotExists:
            # Spend the time of a verify anyway, so timing does not tell who has an account.
            await self.hasher.hash(credentials.password)
            await audit.record_login(self.request, "bad_credentials")
            return None
        verified, new_hash = await self.hasher.verify_and_update(
            credentials.password, user.hashed_password
        )
        if not verified:
            await audit.record_login(self.request, "bad_credentials", user.id)
            return None
        if new_hash is not None:
            await self.user_db.update(user, {"hashed_password": new_hash})
        if not user.is_active:
            # FastAPI Users' login route refuses it next, with LOGIN_BAD_CREDENTIALS.
            await audit.record_login(self.request, "inactive", user.id)
        return user

    async def create(
        self, user_create: schemas.UC, safe: bool = False, request: Request | None = None
    ) -> UserDB:
        """Register a user; the unique index, not this check, settles concurrent sign-ups."""
        await self.validate_password(user_create.password, user_create)
        if await self.user_db.get_by_email(user_create.email) is not None:
            raise exceptions.UserAlreadyExists()
        # FastAPI Users leaves these two unannotated.
        if safe:
            user_dict = user_create.create_update_dict()  # type: ignore[no-untyped-call]
        else:
            user_dict = user_create.create_update_dict_superuser()  # type: ignore[no-untyped-call]
        user_dict["hashed_password"] = await self.hasher.hash(user_dict.pop("password"))
        async with in_transaction():
            created_user = await self.user_db.create(user_dict)
            await audit.record(Event("register"), request, subject_id=created_user.id)
        await self.on_after_register(created_user, request)
        return created_user

    async def forgot_password(self, user: UserDB, request: Request | None = None) -> None:
        """Issue a reset token bound to the current password hash (see `reset_password`)."""
        if not user.is_active:
            raise exceptions.UserInactive()
        token_data = {
            "sub": str(user.id),
            "password_fgpt": self.hasher.fingerprint(user.hashed_password),
            "aud": self.reset_password_token_audience,
        }
        token = generate_jwt(
            token_data,
            self.reset_password_token_secret,
            self.reset_password_token_lifetime_seconds,
        )
        await self.on_after_forgot_password(user, token, request)

    async def reset_password(
        self, token: str, password: str, request: Request | None = None
    ) -> UserDB:
        """Set a new password with a reset token; the token dies with the old password."""
        user = await self.reset_token_user(token)
        updated_user = await self._update(
            user, {"password": password}, [Event("password_reset")], "password_reset"
        )
        await self.on_after_reset_password(user, request)
        return updated_user

    async def reset_token_user(self, token: str) -> UserDB:
        """The active user a live reset token is for (the reset page checks it before its form).

        Raises `InvalidResetPasswordToken` (bad, expired or spent: the password changed
        since), `UserNotExists` or `UserInactive`.
        """
        try:
            data = decode_jwt(
                token, self.reset_password_token_secret, [self.reset_password_token_audience]
            )
            user_id, fingerprint = data["sub"], data["password_fgpt"]
            user = await self.get(self.parse_id(user_id))
        except (jwt.PyJWTError, KeyError, exceptions.InvalidID):
            raise exceptions.InvalidResetPasswordToken() from None
        if not isinstance(fingerprint, str) or not hmac.compare_digest(
            fingerprint, self.hasher.fingerprint(user.hashed_password)
        ):
            raise exceptions.InvalidResetPasswordToken()
        if not user.is_active:
            raise exceptions.UserInactive()
        return user

    async def verify(self, token: str, request: Request | None = None) -> UserDB:
        """Upstream's verification; its update commits with a `verify` event."""
        self._next_update_events = (Event("verify"),)
        try:
            return await super().verify(token, request)
        finally:
            self._next_update_events = ()

    async def delete(self, user: UserDB, request: Request | None = None) -> None:
        """Delete the user; the deletion commits with a `user_deleted` event."""
        await self.on_before_delete(user, request)
        async with in_transaction():
            await self.user_db.delete(user)
            await audit.record(Event("user_deleted"), request, subject_id=user.id)
        await self.on_after_delete(user, request)

    async def _update(
        self,
        user: UserDB,
        update_dict: dict[str, Any],
        events: list[Event] | None = None,
        ends_sessions_as: RevokedReason = "password_change",
    ) -> UserDB:
        """As upstream, but the new password is hashed off the event loop, and the change
        commits together with its audit events and the sessions it ends.

        A new password ends every other session (`ends_sessions_as`; through
        `PATCH /users/me` the caller's own session stays), deactivation ends them all.
        """
        events = list(events if events is not None else self._next_update_events)
        values: dict[str, Any] = {}
        for field, value in update_dict.items():
            if field == "email" and value != user.email:
                if await self.user_db.get_by_email(value) is not None:
                    raise exceptions.UserAlreadyExists()
                values["email"] = value
                values["is_verified"] = False
            elif field == "password" and value is not None:
                await self.validate_password(value, user)
                values["hashed_password"] = await self.hasher.hash(value)
            else:
                values[field] = value
        ending: tuple[RevokedReason, uuid.UUID | None] | None = None
        if values.get("is_active") is False:
            ending = ("deactivated", None)
        elif "hashed_password" in values:
            keep = user.session_id if isinstance(user, SessionUser) else None
            ending = (ends_sessions_as, None if ends_sessions_as == "password_reset" else keep)
        async with in_transaction():
            updated = await self.user_db.update(user, values)
            for event in events:
                await audit.record(event, self.request, subject_id=user.id)
            if ending is not None:
                ended = await self.sessions.revoke_all(user.id, ending[0], keep=ending[1])
                await audit.record_sessions_revoked(self.request, user.id, ending[0], ended)
        return updated

    async def validate_password(self, password: str, user: schemas.BaseUserCreate | UserDB) -> None:
        """Apply the password policy (`app/password_policy.py`) on register, reset and update."""
        problem = password_problem(password, user.email, self.settings)
        if problem is not None:
            raise InvalidPasswordException(reason=problem)

    async def check_current_password(
        self, user_update: schemas.BaseUserUpdate, user: UserDB
    ) -> None:
        """Raise `InvalidCurrentPassword` unless a sensitive change carries the right password."""
        changes = user_update.create_update_dict()  # type: ignore[no-untyped-call]
        new_email = changes.get("email")
        sensitive = "password" in changes or (
            new_email is not None and normalize_email(new_email) != user.email
        )
        if not sensitive:
            return
        current = getattr(user_update, "current_password", None)
        if not isinstance(current, str) or not current:
            raise InvalidCurrentPassword()
        try:
            current.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidCurrentPassword() from None
        verified, _ = await self.hasher.verify_and_update(current, user.hashed_password)
        if not verified:
            raise InvalidCurrentPassword()

    async def on_after_register(self, user: UserDB, request: Request | None = None) -> None:
        """Log the new account."""
        logger.info("User %s has registered.", user.id)

    async def on_after_login(
        self, user: UserDB, request: Request | None = None, response: Any = None
    ) -> None:
        """Count and audit the sign-in."""
        note_user(user.id)
        await audit.record_login(request, "success", user.id)

    async def on_after_forgot_password(
        self, user: UserDB, token: str, request: Request | None = None
    ) -> None:
        """Audit the request and mail the reset link."""
        logger.info("User %s has forgot their password.", user.id)
        await audit.record(Event("password_reset_requested"), request, subject_id=user.id)
        lifetime = describe_lifetime(self.reset_password_token_lifetime_seconds)
        link = self.mailer.link("/reset-password", token)
        self.mailer.send_soon(
            self.mailer.build("reset_password", user.email, link=link, lifetime=lifetime),
            request_id=request_id_of(request),
        )

    async def on_after_request_verify(
        self, user: UserDB, token: str, request: Request | None = None
    ) -> None:
        """Mail the verification link."""
        logger.info("Verification requested for user %s.", user.id)
        lifetime = describe_lifetime(self.verification_token_lifetime_seconds)
        link = self.mailer.link("/verify", token)
        self.mailer.send_soon(
            self.mailer.build("verify", user.email, link=link, lifetime=lifetime),
            request_id=request_id_of(request),
        )

    async def on_after_reset_password(self, user: UserDB, request: Request | None = None) -> None:
        """Tell the owner that the password was changed."""
        self.mailer.send_soon(
            self.mailer.build("password_changed", user.email), request_id=request_id_of(request)
        )

    async def update(
        self,
        user_update: schemas.BaseUserUpdate,
        user: UserDB,
        safe: bool = False,
        request: Request | None = None,
    ) -> UserDB:
        """Update a user and mail the owner about a new e-mail (to the old one) or password.

        On their own account (`safe`) a new e-mail or password needs the current password,
        so a stolen token alone cannot take the account over.
        """
        if safe:
            await self.check_current_password(user_update, user)
            changes = user_update.create_update_dict()  # type: ignore[no-untyped-call]
        else:
            changes = user_update.create_update_dict_superuser()  # type: ignore[no-untyped-call]
        updated = await self._update(user, changes, self.update_events(user, changes, safe))
        await self.on_after_update(updated, changes, request)
        request_id = request_id_of(request)
        if updated.email != user.email:
            self.mailer.send_soon(
                self.mailer.build("email_changed", user.email, new_email=redact(updated.email)),
                request_id=request_id,
            )
        if user_update.password is not None:
            self.mailer.send_soon(
                self.mailer.build("password_changed", updated.email), request_id=request_id
            )
        return updated

    @staticmethod
    def update_events(user: UserDB, changes: dict[str, Any], safe: bool) -> list[Event]:
        """The audit events of an update: one's own password or e-mail, or an admin's edit.

        Details name the changed fields and redacted addresses, never a value that matters.
        """
        new_email = changes.get("email")
        email_changed = new_email is not None and normalize_email(new_email) != user.email
        if not safe:
            fields = sorted(
                name for name, value in changes.items() if name != "password" or value is not None
            )
            return [Event("user_updated_by_admin", {"fields": fields})] if fields else []
        events = []
        if changes.get("password") is not None:
            events.append(Event("password_change"))
        if email_changed:
            old, new = redact(user.email), redact(str(new_email))
            events.append(Event("email_change", {"old": old, "new": new}))
        return events

    async def forgot_password_by_email(self, email: str, request: Request | None = None) -> None:
        """Mail a reset link if an active account has `email`; otherwise do nothing.

        Runs in the app's link-request task (`app/link_requests.py`), not the request's.
        """
        try:
            await self.forgot_password(await self.get_by_email(email), request)
        except (exceptions.UserNotExists, exceptions.UserInactive):
            logger.info("Password reset asked for %s: no active account.", redact(email))

    async def request_verify_by_email(self, email: str, request: Request | None = None) -> None:
        """Mail a verification link if an active, unverified account has `email`.

        Runs in the app's link-request task (`app/link_requests.py`), not the request's.
        """
        try:
            await self.request_verify(await self.get_by_email(email), request)
        except (
            exceptions.UserNotExists,
            exceptions.UserInactive,
            exceptions.UserAlreadyVerified,
        ):
            logger.info("Verification asked for %s: nothing to verify.", redact(email))

    async def send_link(self, kind: LinkKind, email: str, request: Request | None = None) -> None:
        """Mail the `kind` link to the account with `email`, if it should have one."""
        if kind == "reset_password":
            await self.forgot_password_by_email(email, request)
        else:
            await self.request_verify_by_email(email, request)

    async def verify_token_user(self, token: str) -> UserDB:
        """The user a live verification token is for, changing nothing (the verify page).

        Raises `InvalidVerifyToken` (bad, expired, or the address changed since) or
        `UserAlreadyVerified`, as `verify` would.
        """
        try:
            data = decode_jwt(
                token, self.verification_token_secret, [self.verification_token_audience]
            )
            user = await self.get_by_email(data["email"])
            user_id = self.parse_id(data["sub"])
        except (
            jwt.PyJWTError,
            KeyError,
            TypeError,
            exceptions.UserNotExists,
            exceptions.InvalidID,
        ):
            raise exceptions.InvalidVerifyToken() from None
        if user_id != user.id:
            raise exceptions.InvalidVerifyToken()
        if user.is_verified:
            raise exceptions.UserAlreadyVerified()
        return user


# The dependencies below run on every authenticated request, so they are few and
# `async def`: FastAPI resolves each one separately and sends a plain `def` one to its
# thread pool. The settings, hasher and mailer are the app's own, read off `app.state`.


async def get_user_manager(request: Request, user_db: UserDatabaseDep) -> UserManager:
    """Provide the user manager to FastAPI Users."""
    state = request.app.state
    return UserManager(
        user_db, state.settings, state.password_hasher, state.mailer, state.sessions, request
    )


UserManagerDep = Annotated[UserManager, Depends(get_user_manager)]


bearer_transport = BearerTransport(tokenUrl="auth/jwt/login")


class SessionStrategy(Strategy[UserDB, uuid.UUID]):
    """Access tokens bound to a session (app/sessions.py); built once per app.

    `read_token` refuses a token without `exp`, `iat`, `sub`, `sid` or FastAPI Users'
    audience (so refresh, reset and verify tokens too), then reads the user joined with
    the session in one query: a revoked or expired session, or an inactive or deleted
    user, is refused on the very next request.
    """

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    async def read_token(
        self, token: str | None, user_manager: BaseUserManager[UserDB, uuid.UUID]
    ) -> SessionUser | None:
        """The user of a valid access token of a live session, or None (401)."""
        if token is None:
            return None
        claims = self.sessions.tokens.read_access_token(token)
        if claims is None:
            return None
        user_db = user_manager.user_db
        assert isinstance(user_db, TortoiseUserDatabase)
        user = await user_db.get_by_session(claims.user_id, claims.session_id, utcnow())
        if user is not None:
            note_user(user.id)  # for the access line and the audit trail
        return user

    async def write_token(self, user: UserDB) -> str:
        """Start a session for `user` (no client details) and return its access token.

        Our login route starts sessions itself (with a refresh token); this serves
        FastAPI Users' own `backend.login`. A user with a second factor must sign in
        through `app.session_routes.sign_in`, which asks for it: refused here.
        """
        if await MfaTotp.exists(user_id=user.id, confirmed_at__isnull=False):
            raise PermissionError("a user with a second factor signs in through sign_in")
        return (await self.sessions.start(user, None, None)).access_token

    async def destroy_token(self, token: str, user: UserDB) -> None:
        """Logout: revoke the session the token belongs to."""
        if isinstance(user, SessionUser):
            await self.sessions.revoke(user.session_id, user.id, "logout")


async def get_jwt_strategy(request: Request) -> SessionStrategy:
    """The app's session-bound JWT strategy (JWT_LIFETIME_SECONDS, 3600 by default)."""
    strategy: SessionStrategy = request.app.state.session_strategy
    return strategy


auth_backend = AuthenticationBackend(
    name="jwt",
    transport=bearer_transport,
    get_strategy=get_jwt_strategy,
)

fastapi_users = FastAPIUsers[UserDB, uuid.UUID](get_user_manager, [auth_backend])

current_active_user = fastapi_users.current_user(active=True)
current_superuser = fastapi_users.current_user(active=True, superuser=True)
