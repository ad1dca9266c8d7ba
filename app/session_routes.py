"""Session routes: login, logout and refresh under /auth/jwt; the session lists under /users.

They replace FastAPI Users' auth router at the same paths and names (`auth:jwt.login`,
`auth:jwt.logout`), and add `auth:jwt.refresh`. The logic is in app/sessions.py.
"""

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm
from fastapi_users import exceptions
from fastapi_users.openapi import OpenAPIResponseType
from fastapi_users.router.common import ErrorCode, ErrorModel

from app import audit, mfa_tokens
from app.mfa import Mfa
from app.models import (
    MfaMethod,
    MfaRequired,
    OAuthErrorModel,
    SessionRead,
    SessionUser,
    TokenResponse,
    UserDB,
)
from app.security import client_ip
from app.sessions import RefreshTokenInvalid, Sessions, SessionView, TokenPair
from app.settings import Settings
from app.users import UserManagerDep, current_active_user, current_superuser

LOGIN_BAD_CREDENTIALS = ErrorCode.LOGIN_BAD_CREDENTIALS.value
UNSUPPORTED_GRANT_TYPE = "UNSUPPORTED_GRANT_TYPE"
REFRESH_TOKEN_INVALID = "REFRESH_TOKEN_INVALID"  # noqa: S105 (an error code)
REAUTHENTICATION_REQUIRED = "REAUTHENTICATION_REQUIRED"
SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
LOGIN_MFA_REQUIRED = "LOGIN_MFA_REQUIRED"
FORM = "application/x-www-form-urlencoded"


async def get_sessions(request: Request) -> Sessions:
    """The app's `Sessions`."""
    sessions: Sessions = request.app.state.sessions
    return sessions


async def current_session_user(
    user: Annotated[UserDB, Depends(current_active_user)],
) -> SessionUser:
    """The authenticated user, with the session of their token."""
    assert isinstance(user, SessionUser)  # what `SessionStrategy.read_token` returns
    return user


SessionsDep = Annotated[Sessions, Depends(get_sessions)]
CurrentSessionUser = Annotated[SessionUser, Depends(current_session_user)]
SuperUser = Annotated[UserDB, Depends(current_superuser)]


def oauth_error(detail: str, error: str) -> JSONResponse:
    """A 400 of the token routes: FastAPI Users' `detail` and RFC 6749's `error`."""
    return JSONResponse({"detail": detail, "error": error}, status.HTTP_400_BAD_REQUEST)


def token_response(pair: TokenPair) -> JSONResponse:
    """The pair, never cached (RFC 6749 section 5.1)."""
    body = TokenResponse(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
        refresh_expires_in=pair.refresh_expires_in,
    )
    return JSONResponse(
        body.model_dump(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
    )


def oauth_errors(*examples: tuple[str, str, str]) -> OpenAPIResponseType:
    """The documented 400 of a token route: (summary, detail, error) examples."""
    return {
        status.HTTP_400_BAD_REQUEST: {
            "model": OAuthErrorModel,
            "content": {
                "application/json": {
                    "examples": {
                        detail + ":" + error: {
                            "summary": summary,
                            "value": {"detail": detail, "error": error},
                        }
                        for summary, detail, error in examples
                    }
                }
            },
        }
    }


auth_router = APIRouter()


@auth_router.post(
    "/login",
    name="auth:jwt.login",
    response_model=TokenResponse,
    responses={
        **oauth_errors(
            ("Bad credentials or the user is inactive.", LOGIN_BAD_CREDENTIALS, "invalid_grant"),
            ("grant_type is not `password`.", UNSUPPORTED_GRANT_TYPE, "unsupported_grant_type"),
        ),
        status.HTTP_401_UNAUTHORIZED: {
            "model": MfaRequired,
            "description": "The password is right and the user has a second factor: no "
            "tokens yet; send the `mfa_token` with a code to `POST /auth/mfa/verify`.",
        },
    },
)
async def login(
    request: Request,
    manager: UserManagerDep,
    sessions: SessionsDep,
    username: Annotated[str, Form()],
    password: Annotated[str, Form(json_schema_extra={"format": "password"})],
    grant_type: Annotated[str | None, Form()] = None,
    scope: Annotated[str, Form()] = "",
    client_id: Annotated[str | None, Form()] = None,
    client_secret: Annotated[str | None, Form(json_schema_extra={"format": "password"})] = None,
) -> Response:
    """Log in with e-mail and password (OAuth2 password grant): a new session's token pair.

    A user with a second factor gets `401 LOGIN_MFA_REQUIRED` and an `mfa_token` instead.
    """
    if grant_type is not None and grant_type != "password":
        return oauth_error(UNSUPPORTED_GRANT_TYPE, "unsupported_grant_type")
    credentials = OAuth2PasswordRequestForm(username=username, password=password, scope=scope)
    user = await manager.authenticate(credentials)
    if user is None or not user.is_active:
        return oauth_error(LOGIN_BAD_CREDENTIALS, "invalid_grant")
    return await sign_in(request, manager, sessions, user)


async def sign_in(
    request: Request,
    manager: UserManagerDep,
    sessions: Sessions,
    user: UserDB,
    second_factor: MfaMethod | None = None,
) -> Response:
    """Finish a sign-in of `user`, who just proved who they are: a new session's pair.

    Every way of signing in (password, provider) ends here, so what a sign-in needs
    beyond the first proof is decided in one place: a user with a confirmed second
    factor gets `401 LOGIN_MFA_REQUIRED` and an `mfa_token`, and no session, unless
    `second_factor` (the method `POST /auth/mfa/verify` checked) is given.
    """
    settings: Settings = request.app.state.settings
    if second_factor is None:
        mfa: Mfa = request.app.state.mfa
        if await mfa.has_factor(user.id):
            challenge = await mfa_tokens.issue(user.id, settings.mfa_token_lifetime_seconds)
            body = MfaRequired(
                detail=LOGIN_MFA_REQUIRED,
                mfa_token=challenge.token,
                expires_in=challenge.expires_in,
                methods=["totp", "recovery_code"],
            )
            return JSONResponse(
                body.model_dump(),
                status.HTTP_401_UNAUTHORIZED,
                headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
            )
    pair = await sessions.start(
        user,
        client_ip(request, settings.trusted_proxies),
        request.headers.get("user-agent"),
        aal=1 if second_factor is None else 2,
    )
    response = token_response(pair)
    await manager.on_after_login(user, request, response)
    return response


@auth_router.post(
    "/logout",
    name="auth:jwt.logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={status.HTTP_401_UNAUTHORIZED: {"description": "Missing token or inactive user."}},
)
async def logout(user: CurrentSessionUser, sessions: SessionsDep, request: Request) -> None:
    """End the current session: its access and refresh tokens stop working at once."""
    await sessions.revoke(user.session_id, user.id, "logout")
    await audit.record_logout(request, user.id)


REFRESH_TOKEN_PROPERTY = {"type": "string", "minLength": 1}
REFRESH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["refresh_token"],
                    "properties": {"refresh_token": REFRESH_TOKEN_PROPERTY},
                }
            },
            FORM: {
                "schema": {
                    "type": "object",
                    "required": ["grant_type", "refresh_token"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["refresh_token"]},
                        "refresh_token": REFRESH_TOKEN_PROPERTY,
                        "scope": {"type": "string"},
                    },
                }
            },
        },
    }
}


async def refresh_token_of(request: Request) -> str | JSONResponse:
    """The refresh token of a JSON or RFC 6749 form body, or the 400 to answer."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    token: object = None
    if content_type == FORM:
        form = await request.form()
        grant_type = form.get("grant_type")
        if grant_type is None:
            return oauth_error(REFRESH_TOKEN_INVALID, "invalid_request")
        if grant_type != "refresh_token":
            return oauth_error(REFRESH_TOKEN_INVALID, "unsupported_grant_type")
        token = form.get("refresh_token")
    elif content_type == "application/json":
        try:
            body = json.loads(await request.body())
        except ValueError:  # not JSON, or not UTF-8
            return oauth_error(REFRESH_TOKEN_INVALID, "invalid_request")
        token = body.get("refresh_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        return oauth_error(REFRESH_TOKEN_INVALID, "invalid_request")
    return token


@auth_router.post(
    "/refresh",
    name="auth:jwt.refresh",
    response_model=TokenResponse,
    openapi_extra=REFRESH_BODY,
    responses=oauth_errors(
        ("Bad, expired, idle, revoked or reused.", REFRESH_TOKEN_INVALID, "invalid_grant"),
        ("No refresh token in the body.", REFRESH_TOKEN_INVALID, "invalid_request"),
        ("grant_type is not `refresh_token`.", REFRESH_TOKEN_INVALID, "unsupported_grant_type"),
    ),
)
async def refresh(request: Request, sessions: SessionsDep) -> Response:
    """Exchange a refresh token for a new pair (rotation); JSON or the RFC 6749 form.

    The same token again within REFRESH_REUSE_GRACE_SECONDS gets the current pair; an
    older one, or the previous one later, ends the session (reuse) and mails its owner.
    """
    token = await refresh_token_of(request)
    if isinstance(token, JSONResponse):
        return token
    try:
        pair = await sessions.refresh(token, request)
    except RefreshTokenInvalid:
        return oauth_error(REFRESH_TOKEN_INVALID, "invalid_grant")
    return token_response(pair)


def session_read(view: SessionView, current: uuid.UUID | None) -> SessionRead:
    """The API's view of a session."""
    session = view.session
    return SessionRead(
        id=session.id,
        created_at=session.created_at,
        auth_time=session.auth_time,
        last_refreshed_at=session.last_refreshed_at,
        expires_at=session.expires_at,
        ip=session.ip,
        user_agent=session.user_agent,
        current=session.id == current,
        revoked_at=view.ended_at,
        revoked_reason=view.ended_reason,
        aal=session.aal,
    )


def require_fresh_login(user: SessionUser, sessions: Sessions) -> None:
    """403 REAUTHENTICATION_REQUIRED unless the user logged in within SESSION_FRESH_SECONDS."""
    if not sessions.is_fresh(user.auth_time):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=REAUTHENTICATION_REQUIRED)


def error_response(status_code: int, code: str, summary: str) -> OpenAPIResponseType:
    """A documented FastAPI Users error answer."""
    return {
        status_code: {
            "model": ErrorModel,
            "content": {
                "application/json": {
                    "examples": {code: {"summary": summary, "value": {"detail": code}}}
                }
            },
        }
    }


UNAUTHORIZED: OpenAPIResponseType = {
    status.HTTP_401_UNAUTHORIZED: {"description": "Missing token or inactive user."}
}
NOT_FRESH = error_response(
    status.HTTP_403_FORBIDDEN,
    REAUTHENTICATION_REQUIRED,
    "The last login is older than SESSION_FRESH_SECONDS: log in again first.",
)
SUPERUSER_ONLY: OpenAPIResponseType = {
    **UNAUTHORIZED,
    status.HTTP_403_FORBIDDEN: {"description": "Not a superuser."},
    status.HTTP_404_NOT_FOUND: {"description": "The user (or session) does not exist."},
}

sessions_router = APIRouter()


@sessions_router.get("/me/sessions", name="sessions:my_sessions", responses=UNAUTHORIZED)
async def my_sessions(user: CurrentSessionUser, sessions: SessionsDep) -> list[SessionRead]:
    """Your open sessions and those ended recently (with `revoked_at` and the reason)."""
    return [session_read(view, user.session_id) for view in await sessions.list(user.id)]


@sessions_router.delete(
    "/me/sessions",
    name="sessions:end_my_other_sessions",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**UNAUTHORIZED, **NOT_FRESH},
)
async def end_my_other_sessions(
    user: CurrentSessionUser, sessions: SessionsDep, request: Request
) -> None:
    """End every session of yours but the current one (needs a recent login)."""
    require_fresh_login(user, sessions)
    ended = await sessions.revoke_all(user.id, "logout_all", keep=user.session_id)
    await audit.record_sessions_revoked(request, user.id, "logout_all", ended)


@sessions_router.delete(
    "/me/sessions/{session_id}",
    name="sessions:end_my_session",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        **UNAUTHORIZED,
        **NOT_FRESH,
        **error_response(status.HTTP_404_NOT_FOUND, SESSION_NOT_FOUND, "You have no such session."),
    },
)
async def end_my_session(
    session_id: uuid.UUID, user: CurrentSessionUser, sessions: SessionsDep, request: Request
) -> None:
    """End one of your sessions; another than the current one needs a recent login."""
    if session_id != user.session_id:
        require_fresh_login(user, sessions)
    if not await sessions.revoke(session_id, user.id, "logout"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=SESSION_NOT_FOUND)
    if session_id == user.session_id:
        await audit.record_logout(request, user.id)
    else:
        await audit.record_sessions_revoked(request, user.id, "logout", 1)


async def existing_user(user_id: uuid.UUID, manager: UserManagerDep) -> UserDB:
    """The user `user_id`, or 404 as FastAPI Users' users router answers."""
    try:
        return await manager.get(user_id)
    except exceptions.UserNotExists:
        raise HTTPException(status.HTTP_404_NOT_FOUND) from None


ExistingUser = Annotated[UserDB, Depends(existing_user)]


@sessions_router.get("/{user_id}/sessions", name="sessions:user_sessions", responses=SUPERUSER_ONLY)
async def user_sessions(
    _: SuperUser, user: ExistingUser, sessions: SessionsDep
) -> list[SessionRead]:
    """A user's open and recently ended sessions (superusers)."""
    return [session_read(view, None) for view in await sessions.list(user.id)]


@sessions_router.delete(
    "/{user_id}/sessions",
    name="sessions:end_user_sessions",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=SUPERUSER_ONLY,
)
async def end_user_sessions(
    _: SuperUser, user: ExistingUser, sessions: SessionsDep, request: Request
) -> None:
    """End every session of a user (superusers)."""
    ended = await sessions.revoke_all(user.id, "admin")
    await audit.record_sessions_revoked(request, user.id, "admin", ended)


@sessions_router.delete(
    "/{user_id}/sessions/{session_id}",
    name="sessions:end_user_session",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=SUPERUSER_ONLY,
)
async def end_user_session(
    session_id: uuid.UUID, _: SuperUser, user: ExistingUser, sessions: SessionsDep, request: Request
) -> None:
    """End one session of a user (superusers)."""
    if not await sessions.revoke(session_id, user.id, "admin"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=SESSION_NOT_FOUND)
    await audit.record_sessions_revoked(request, user.id, "admin", 1)
