"""Routes of the provider sign-in (docs/oauth.md); present only when OAUTH_PROVIDERS is set.

`/auth/{provider}/authorize` + `/callback` is the API flow: the callback answers JSON,
what the password login answers. `/auth/{provider}/page` + `/page/callback` is the
browser flow: the callback ends on a small page that hands the same answer to
OAUTH_FRONTEND_URL in the fragment. `/associate/*` links a provider to the signed-in
user; `/users/me/oauth-accounts` lists and unlinks. The logic is in app/oauth.py and
app/oauth_accounts.py.
"""

import json
import logging
import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi_users.openapi import OpenAPIResponseType
from fastapi_users.router.common import ErrorModel
from pydantic import BaseModel

from app import audit
from app.audit import Event
from app.models import OAuthAccountRead
from app.oauth import (
    FLOW_COOKIE,
    OAUTH_INVALID_CODE,
    OAUTH_INVALID_ID_TOKEN,
    OAUTH_INVALID_STATE,
    OAUTH_PROVIDER_DENIED,
    OAUTH_PROVIDER_UNAVAILABLE,
    FlowCookie,
    Identity,
    OAuthFlowError,
    ProviderClient,
    Providers,
    Purpose,
)
from app.oauth_accounts import (
    OAUTH_ACCOUNT_ALREADY_LINKED,
    OAUTH_ACCOUNT_NOT_FOUND,
    OAUTH_LAST_SIGN_IN_METHOD,
    OAUTH_SIGN_IN_REFUSED,
    OAuthRefused,
    associate,
    unlink,
    user_db_of,
    user_for_sign_in,
)
from app.pages import render
from app.session_routes import (
    NOT_FRESH,
    UNAUTHORIZED,
    CurrentSessionUser,
    SessionsDep,
    require_fresh_login,
    sign_in,
)
from app.sessions import utcnow
from app.settings import Settings
from app.users import UserManagerDep

logger = logging.getLogger(__name__)

# Longer query values are no codes or states of any provider: refused before any work.
MAX_PARAMETER_LENGTH = 2048
CallbackParameter = Annotated[str, Query(max_length=MAX_PARAMETER_LENGTH)]


class AuthorizationURL(BaseModel):
    """Where to send the browser to sign in at the provider (FastAPI Users' shape)."""

    authorization_url: str


async def get_provider(provider: str, request: Request) -> ProviderClient:
    """The configured provider of the path, or 404."""
    providers: Providers = request.app.state.oauth_providers
    found = providers.get(provider)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="OAUTH_PROVIDER_NOT_FOUND")
    return found


ProviderDep = Annotated[ProviderClient, Depends(get_provider)]


def errors(*examples: tuple[int, str, str]) -> OpenAPIResponseType:
    """The documented error answers, (status, code, summary), and the unknown provider's 404."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status_code, code, summary in (
        *examples,
        (404, "OAUTH_PROVIDER_NOT_FOUND", "No provider of this name is configured."),
    ):
        entry = documented.setdefault(
            status_code, {"model": ErrorModel, "content": {"application/json": {"examples": {}}}}
        )
        entry["content"]["application/json"]["examples"][code] = {
            "summary": summary,
            "value": {"detail": code},
        }
    return documented


FLOW_ERRORS = (
    (400, OAUTH_INVALID_STATE, "No flow cookie, an expired one, or another browser's state."),
    (400, OAUTH_INVALID_CODE, "The provider refused the code: replayed, expired, wrong PKCE."),
    (400, OAUTH_INVALID_ID_TOKEN, "The ID token's signature, iss, aud, exp or nonce is wrong."),
    (400, OAUTH_PROVIDER_DENIED, "The provider answered the callback with an error."),
    (502, OAUTH_PROVIDER_UNAVAILABLE, "The provider did not answer, or answered nonsense."),
)
SIGN_IN_ERRORS = (
    *FLOW_ERRORS,
    (
        400,
        OAUTH_SIGN_IN_REFUSED,
        "Refused by the linking rules (docs/oauth.md); the same "
        "answer whether or not the address has an account.",
    ),
    (400, "LOGIN_BAD_CREDENTIALS", "The linked account is inactive."),
)


def set_flow_cookie(response: Response, request: Request, provider: str, flow: FlowCookie) -> None:
    """Bind the flow to this browser: an HttpOnly cookie for this provider's routes only."""
    # SameSite=Lax: the provider's redirect back is a cross-site navigation.
    settings: Settings = request.app.state.settings
    response.set_cookie(
        FLOW_COOKIE,
        flow.encode(settings.jwt_secret, settings.oauth_flow_seconds),
        max_age=settings.oauth_flow_seconds,
        path=f"/auth/{provider}/",
        httponly=True,
        secure=settings.public_url.startswith("https://"),
        samesite="lax",
    )


def clear_flow_cookie(response: Response, provider: str) -> None:
    """The flow is over: its cookie goes."""
    response.delete_cookie(FLOW_COOKIE, path=f"/auth/{provider}/", httponly=True, samesite="lax")


async def callback_identity(
    request: Request,
    provider: ProviderClient,
    purpose: Purpose,
    code: str,
    state: str,
    error: str | None,
) -> tuple[FlowCookie, Identity]:
    """The flow of this browser and who signed in; `OAuthFlowError` otherwise."""
    settings: Settings = request.app.state.settings
    flow = FlowCookie.decode(
        request.cookies.get(FLOW_COOKIE), settings.jwt_secret, provider.name, purpose
    )
    flow.check_state(state)
    if error is not None:
        raise OAuthFlowError(OAUTH_PROVIDER_DENIED, f"provider answered {error[:64]!r}")
    if not code:
        raise OAuthFlowError(OAUTH_INVALID_CODE, "no code")
    return flow, await provider.finish(flow, code)


async def provider_sign_in(
    request: Request,
    provider: ProviderClient,
    purpose: Purpose,
    code: str,
    state: str,
    error: str | None,
    manager: UserManagerDep,
    sessions: SessionsDep,
) -> Response:
    """Finish a sign-in flow: sign_in's answer as it is, or the refusal (audited)."""
    try:
        _, identity = await callback_identity(request, provider, purpose, code, state, error)
        user = await user_for_sign_in(manager, provider.name, identity, request)
    except (OAuthFlowError, OAuthRefused) as exc:
        logger.info("Sign-in with %s refused: %s", provider.name, exc.reason)
        event = Event(
            "oauth_login_failed",
            {"provider": provider.name, "reason": exc.reason},
            outcome=exc.code.lower(),
        )
        await audit.record(event, request)
        response: Response = JSONResponse({"detail": exc.code}, exc.status)
    else:
        response = await sign_in(request, manager, sessions, user)
    clear_flow_cookie(response, provider.name)
    return response


async def flow_error(request: Request, exc: Exception) -> JSONResponse:
    """`OAuthFlowError` and `OAuthRefused` outside a callback: FastAPI Users' error shape."""
    assert isinstance(exc, OAuthFlowError | OAuthRefused)
    return JSONResponse({"detail": exc.code}, exc.status)


router = APIRouter()
START_ERRORS = errors((502, OAUTH_PROVIDER_UNAVAILABLE, "The provider's discovery failed."))


@router.get(
    "/{provider}/authorize",
    name="oauth:authorize",
    response_model=AuthorizationURL,
    responses=START_ERRORS,
)
async def authorize(provider: ProviderDep, request: Request) -> Response:
    """Start a sign-in (API flow): the provider's URL; the callback will answer JSON."""
    url, flow = await provider.start("login")
    response = JSONResponse({"authorization_url": url})
    set_flow_cookie(response, request, provider.name, flow)
    return response


@router.get(
    "/{provider}/callback",
    name="oauth:callback",
    responses=errors(*SIGN_IN_ERRORS),
)
async def callback(
    provider: ProviderDep,
    request: Request,
    manager: UserManagerDep,
    sessions: SessionsDep,
    code: CallbackParameter = "",
    state: CallbackParameter = "",
    error: Annotated[str | None, Query(max_length=MAX_PARAMETER_LENGTH)] = None,
) -> Response:
    """Finish a sign-in (API flow): what the password login answers (a session's token pair)."""
    return await provider_sign_in(request, provider, "login", code, state, error, manager, sessions)


@router.get(
    "/{provider}/associate/authorize",
    name="oauth:associate_authorize",
    response_model=AuthorizationURL,
    responses={**UNAUTHORIZED, **NOT_FRESH, **START_ERRORS},
)
async def associate_authorize(
    provider: ProviderDep, request: Request, user: CurrentSessionUser, sessions: SessionsDep
) -> Response:
    """Start linking a provider to your account (needs a recent login): the provider's URL."""
    require_fresh_login(user, sessions)
    url, flow = await provider.start("associate", user.id, user.session_id)
    response = JSONResponse({"authorization_url": url})
    set_flow_cookie(response, request, provider.name, flow)
    return response


@router.get(
    "/{provider}/associate/callback",
    name="oauth:associate_callback",
    status_code=status.HTTP_201_CREATED,
    response_model=OAuthAccountRead,
    responses=errors(
        *FLOW_ERRORS,
        (400, OAUTH_ACCOUNT_ALREADY_LINKED, "This provider identity is linked to another account."),
    ),
)
async def associate_callback(
    provider: ProviderDep,
    request: Request,
    manager: UserManagerDep,
    code: CallbackParameter = "",
    state: CallbackParameter = "",
    error: Annotated[str | None, Query(max_length=MAX_PARAMETER_LENGTH)] = None,
) -> Response:
    """Finish linking: the linked account (of the flow's user, whose session must be open)."""
    try:
        flow, identity = await callback_identity(request, provider, "associate", code, state, error)
        user = None
        if flow.user_id is not None and flow.session_id is not None:
            user = await user_db_of(manager).get_by_session(flow.user_id, flow.session_id, utcnow())
        if user is None:
            raise OAuthFlowError(OAUTH_INVALID_STATE, "the session that started it ended")
        account = await associate(manager, user, provider.name, identity, request)
    except (OAuthFlowError, OAuthRefused) as exc:
        logger.info("Linking %s refused: %s", provider.name, exc.reason)
        response: Response = JSONResponse({"detail": exc.code}, exc.status)
    else:
        response = JSONResponse(account.model_dump(mode="json"), status.HTTP_201_CREATED)
    clear_flow_cookie(response, provider.name)
    return response


page_router = APIRouter()


@page_router.get(
    "/{provider}/page",
    name="oauth:page",
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
    responses=START_ERRORS,
)
async def page_start(provider: ProviderDep, request: Request) -> Response:
    """Start a sign-in (browser flow): a redirect to the provider; link to it from a page."""
    url, flow = await provider.start("page")
    response = RedirectResponse(url, status.HTTP_303_SEE_OTHER)
    set_flow_cookie(response, request, provider.name, flow)
    return response


@page_router.get(
    "/{provider}/page/callback",
    name="oauth:page_callback",
    response_class=HTMLResponse,
    responses=errors(),
)
async def page_callback(
    provider: ProviderDep,
    request: Request,
    manager: UserManagerDep,
    sessions: SessionsDep,
    code: CallbackParameter = "",
    state: CallbackParameter = "",
    error: Annotated[str | None, Query(max_length=MAX_PARAMETER_LENGTH)] = None,
) -> Response:
    """Finish a sign-in (browser flow): a page handing the answer to OAUTH_FRONTEND_URL."""
    # The answer (the token pair, the next step, or the error) rides in the fragment.
    answer = await provider_sign_in(
        request, provider, "page", code, state, error, manager, sessions
    )
    settings: Settings = request.app.state.settings
    target = f"{settings.oauth_frontend_url}#{handoff_fragment(answer)}"
    page = render(request, "oauth_handoff.html", title="Signing you in", target=target)
    for name, value in answer.headers.items():
        if name.lower() == "set-cookie":
            page.headers.append(name, value)
    return page


def handoff_fragment(answer: Response) -> str:
    """The answer as the fragment: `status=200&access_token=...&token_type=bearer&...`."""
    # `status`, then each field of the JSON body; a list or an object as JSON.
    body: Any = json.loads(bytes(answer.body))
    fields: dict[str, str] = {"status": str(answer.status_code)}
    if isinstance(body, dict):
        for name, value in body.items():
            fields[name] = value if isinstance(value, str) else json.dumps(value)
    return urlencode(fields)


users_router = APIRouter()


@users_router.get("/me/oauth-accounts", name="oauth:my_accounts", responses=UNAUTHORIZED)
async def my_oauth_accounts(
    user: CurrentSessionUser, manager: UserManagerDep
) -> list[OAuthAccountRead]:
    """The sign-in providers linked to your account."""
    return await user_db_of(manager).list_oauth_accounts(user.id)


@users_router.delete(
    "/me/oauth-accounts/{account_id}",
    name="oauth:unlink",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        **UNAUTHORIZED,
        **NOT_FRESH,
        **errors(
            (
                400,
                OAUTH_LAST_SIGN_IN_METHOD,
                "It is your last way to sign in: set a password first (reset).",
            ),
            (404, OAUTH_ACCOUNT_NOT_FOUND, "You have no such linked account."),
        ),
    },
)
async def unlink_oauth_account(
    account_id: uuid.UUID,
    user: CurrentSessionUser,
    manager: UserManagerDep,
    sessions: SessionsDep,
    request: Request,
) -> None:
    """Unlink a provider from your account (needs a recent login); never your last way in."""
    require_fresh_login(user, sessions)
    await unlink(manager, user, account_id, request)
