"""Second-factor routes: enrolment and removal under /users, the login's second step under /auth.

Thin: the logic is in app/mfa.py; the login's first step is `app.session_routes.sign_in`.
"""

from collections.abc import Awaitable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Body, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from fastapi_users import exceptions
from fastapi_users.openapi import OpenAPIResponseType

from app import mfa_tokens
from app.mfa import (
    Mfa,
    MfaAlreadyEnabled,
    MfaError,
    MfaInvalidCode,
    MfaInvalidCurrentPassword,
    MfaNotConfigured,
    MfaNotEnabled,
    MfaTokenInvalid,
)
from app.models import (
    CurrentPassword,
    MfaProof,
    MfaStatus,
    MfaVerify,
    RecoveryCodes,
    TokenResponse,
    TotpCode,
    TotpEnrolment,
)
from app.ratelimit import (
    RATE_LIMIT_RESPONSES,
    RateLimited,
    RateLimiter,
    get_rate_limiter,
    refuse,
)
from app.security import client_ip
from app.session_routes import (
    UNAUTHORIZED,
    CurrentSessionUser,
    ExistingUser,
    SessionsDep,
    SuperUser,
    error_response,
    sign_in,
)
from app.settings import Settings
from app.users import UserManagerDep

T = TypeVar("T")

# Every error of these routes and its status; the rest are 400.
ERROR_STATUS: dict[type[MfaError], int] = {
    MfaAlreadyEnabled: status.HTTP_409_CONFLICT,
    MfaNotConfigured: status.HTTP_503_SERVICE_UNAVAILABLE,
}


async def mfa_error(request: Request, exc: Exception) -> JSONResponse:
    """A second-factor error in FastAPI Users' shape, `{"detail": CODE}`."""
    assert isinstance(exc, MfaError)
    return JSONResponse({"detail": exc.code}, ERROR_STATUS.get(type(exc), 400))


async def get_mfa(request: Request) -> Mfa:
    """The app's `Mfa`."""
    mfa: Mfa = request.app.state.mfa
    return mfa


MfaDep = Annotated[Mfa, Depends(get_mfa)]
LimiterDep = Annotated[RateLimiter, Depends(get_rate_limiter)]


def errors(status_code: int, *found: tuple[type[MfaError], str]) -> OpenAPIResponseType:
    """The documented answer `status_code` with one example per (error, summary)."""
    documented = error_response(status_code, found[0][0].code, found[0][1])
    examples = documented[status_code]["content"]["application/json"]["examples"]
    for error, summary in found[1:]:
        examples[error.code] = {"summary": summary, "value": {"detail": error.code}}
    return documented


WRONG_PASSWORD = (MfaInvalidCurrentPassword, "`current_password` is wrong.")
WRONG_CODE = (MfaInvalidCode, "Wrong, used, or of an earlier time step than one accepted.")
NOT_ENABLED = (MfaNotEnabled, "No confirmed second factor.")
CONFLICT = errors(status.HTTP_409_CONFLICT, (MfaAlreadyEnabled, "A factor is already on."))
NOT_CONFIGURED = errors(
    status.HTTP_503_SERVICE_UNAVAILABLE,
    (MfaNotConfigured, "Production without MFA_ENCRYPTION_KEY (or a key that was lost)."),
)


async def within_limits(request: Request, checking: Awaitable[T]) -> T:
    """`checking`'s result; a used-up failure limit is a 429 with `Retry-After`, audited."""
    try:
        return await checking
    except RateLimited as exc:
        settings: Settings = request.app.state.settings
        ip = client_ip(request, settings.trusted_proxies)
        await refuse(request, request.app.state.rate_limiter, exc, ip)


users_router = APIRouter()


@users_router.get("/me/mfa", name="mfa:status", responses=UNAUTHORIZED)
async def mfa_status(user: CurrentSessionUser, mfa: MfaDep) -> MfaStatus:
    """Your second factor: none, pending or enabled, and the recovery codes left."""
    return await mfa.status(user.id)


@users_router.post(
    "/me/mfa/totp",
    name="mfa:enrol_totp",
    responses={
        **UNAUTHORIZED,
        **errors(status.HTTP_400_BAD_REQUEST, WRONG_PASSWORD),
        **CONFLICT,
        **NOT_CONFIGURED,
    },
)
async def enrol_totp(
    body: CurrentPassword, user: CurrentSessionUser, mfa: MfaDep, response: Response
) -> TotpEnrolment:
    """Start a TOTP factor: its secret, `otpauth://` URI and QR code; confirm it next."""
    response.headers["Cache-Control"] = "no-store"
    return await mfa.enrol(user, body.current_password)


@users_router.post(
    "/me/mfa/totp/confirm",
    name="mfa:confirm_totp",
    responses={
        **UNAUTHORIZED,
        **errors(status.HTTP_400_BAD_REQUEST, WRONG_CODE, (MfaNotEnabled, "Nothing to confirm.")),
        **CONFLICT,
        **NOT_CONFIGURED,
    },
)
async def confirm_totp(
    body: TotpCode, user: CurrentSessionUser, mfa: MfaDep, request: Request, response: Response
) -> RecoveryCodes:
    """Turn the pending factor on with a code: 10 recovery codes, shown this once.

    Your other sessions end, and the owner is mailed.
    """
    response.headers["Cache-Control"] = "no-store"
    codes = await mfa.confirm(user, body.code, user.session_id, request)
    return RecoveryCodes(recovery_codes=codes)


async def proven(
    body: MfaProof, user: CurrentSessionUser, mfa: Mfa, limiter: RateLimiter, request: Request
) -> None:
    """The password and a code (or a recovery code) of `user`, checked; else an error."""
    await mfa.check_password(user, body.current_password)
    if not await mfa.has_factor(user.id):
        raise MfaNotEnabled()
    settings: Settings = request.app.state.settings
    ip = client_ip(request, settings.trusted_proxies)
    await within_limits(
        request, mfa.prove(user, body.code, body.recovery_code, limiter, ip, request)
    )


PROOF_ERRORS: OpenAPIResponseType = {
    **UNAUTHORIZED,
    **errors(status.HTTP_400_BAD_REQUEST, WRONG_PASSWORD, WRONG_CODE, NOT_ENABLED),
    **RATE_LIMIT_RESPONSES,
    **NOT_CONFIGURED,
}


@users_router.delete(
    "/me/mfa/totp",
    name="mfa:disable_totp",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=PROOF_ERRORS,
)
async def disable_totp(
    body: Annotated[MfaProof, Body()],
    user: CurrentSessionUser,
    mfa: MfaDep,
    limiter: LimiterDep,
    request: Request,
) -> None:
    """Turn the second factor off: needs your password and a code or a recovery code."""
    await proven(body, user, mfa, limiter, request)
    await mfa.disable(user, request)


@users_router.post(
    "/me/mfa/recovery-codes",
    name="mfa:regenerate_recovery_codes",
    responses=PROOF_ERRORS,
)
async def regenerate_recovery_codes(
    body: MfaProof,
    user: CurrentSessionUser,
    mfa: MfaDep,
    limiter: LimiterDep,
    request: Request,
    response: Response,
) -> RecoveryCodes:
    """10 new recovery codes in place of the old: needs your password and a code."""
    response.headers["Cache-Control"] = "no-store"
    await proven(body, user, mfa, limiter, request)
    return RecoveryCodes(recovery_codes=await mfa.regenerate_recovery_codes(user, request))


@users_router.delete(
    "/{user_id}/mfa",
    name="mfa:remove_user_factor",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        **UNAUTHORIZED,
        status.HTTP_403_FORBIDDEN: {"description": "Not a superuser."},
        status.HTTP_404_NOT_FOUND: {"description": "No such user, or no second factor."},
    },
)
async def remove_user_factor(
    _: SuperUser, user: ExistingUser, mfa: MfaDep, request: Request
) -> None:
    """Remove a user's second factor and recovery codes (superusers); audited and mailed."""
    if not await mfa.remove_by_admin(user, request):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=MfaNotEnabled.code)


auth_router = APIRouter()


@auth_router.post(
    "/verify",
    name="auth:mfa.verify",
    response_model=TokenResponse,
    responses={
        **errors(
            status.HTTP_400_BAD_REQUEST,
            (MfaTokenInvalid, "Unknown, expired, used, or out of attempts: log in again."),
            WRONG_CODE,
        ),
        **NOT_CONFIGURED,
    },
)
async def verify(
    body: MfaVerify,
    request: Request,
    manager: UserManagerDep,
    sessions: SessionsDep,
    mfa: MfaDep,
    limiter: LimiterDep,
) -> Response:
    """The login's second step: the `mfa_token` and a `code` (or a `recovery_code`).

    Answers the token pair of a new session, as `POST /auth/jwt/login` does.
    """
    settings: Settings = request.app.state.settings
    user_id = await mfa_tokens.user_of(body.mfa_token, settings.mfa_token_max_attempts)
    if user_id is None:
        raise MfaTokenInvalid()
    try:
        user = await manager.get(user_id)
    except exceptions.UserNotExists:
        raise MfaTokenInvalid() from None
    if not user.is_active:
        raise MfaTokenInvalid()
    if bool(body.code) == bool(body.recovery_code):
        raise MfaInvalidCode()  # one of the two, not both
    ip = client_ip(request, settings.trusted_proxies)
    method = await within_limits(
        request,
        mfa.prove(user, body.code, body.recovery_code, limiter, ip, request, body.mfa_token),
    )
    if not await mfa_tokens.spend(body.mfa_token):
        raise MfaTokenInvalid()  # a parallel request with the same token won
    return await sign_in(request, manager, sessions, user, second_factor=method)
