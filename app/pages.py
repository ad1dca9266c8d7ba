"""The pages the mailed links open: e-mail verification and password reset (no JavaScript)."""

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from fastapi_users import exceptions
from fastapi_users.openapi import OpenAPIResponseType
from fastapi_users.router.common import ErrorModel
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import EmailStr, TypeAdapter, ValidationError

from app.link_requests import LinkKind, LinkRequests, LinkRequestsDep
from app.mail import describe_lifetime
from app.ratelimit import RATE_LIMIT_RESPONSES, RATE_LIMITED
from app.security import BODY_TOO_LARGE_RESPONSES
from app.users import UserManager, UserManagerDep

templates = Jinja2Templates(
    env=Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates" / "pages"),
        autoescape=True,
        undefined=StrictUndefined,
    )
)

# The token travels in the page's URL: no referrer may carry it away, no frame may show
# the form, and nothing but our own stylesheet and forms may load or post.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

FormText = Annotated[str, Form()]
RESET_TOKEN_TROUBLE = (
    exceptions.InvalidResetPasswordToken,
    exceptions.UserNotExists,
    exceptions.UserInactive,
)
email_address = TypeAdapter(EmailStr)

PAGE_RESPONSES: OpenAPIResponseType = {
    status.HTTP_400_BAD_REQUEST: {
        "description": "A page saying what is wrong with the link or the form; a form body "
        "that cannot be parsed gets FastAPI's JSON error instead.",
        "content": {
            "text/html": {},
            "application/json": {"schema": ErrorModel.model_json_schema()},
        },
    },
    **RATE_LIMIT_RESPONSES,
    **BODY_TOO_LARGE_RESPONSES,
}

router = APIRouter(
    tags=["pages"],
    default_response_class=HTMLResponse,
    dependencies=RATE_LIMITED,
    responses=PAGE_RESPONSES,
)


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The page `template` with `context`, sent with the security headers."""
    return templates.TemplateResponse(
        request, template, context, status_code=status_code, headers=SECURITY_HEADERS
    )


def link_trouble(
    request: Request, title: str, text: str, new_link_action: str, status_code: int = 400
) -> HTMLResponse:
    """A page saying what is wrong with a link, with a form to ask for a new one."""
    return render(
        request, "message.html", status_code, title=title, text=text,
        new_link_action=new_link_action,
    )  # fmt: skip


# Opening the link changes nothing: mail scanners fetch links to check them, and must not
# verify an address its owner never saw. The owner confirms with the page's button.
@router.get("/verify")
async def verify_page(request: Request, manager: UserManagerDep, token: str = "") -> HTMLResponse:
    """A page with a button that verifies the link's address; opening it changes nothing."""
    try:
        user = await manager.verify_token_user(token)
    except exceptions.InvalidVerifyToken:
        return verify_link_trouble(request)
    except exceptions.UserAlreadyVerified:
        return already_verified(request)
    return render(request, "verify_form.html", title="Verify your e-mail address",
                  token=token, email=user.email)  # fmt: skip


@router.post("/verify")
async def verify_form(
    request: Request, manager: UserManagerDep, token: FormText = ""
) -> HTMLResponse:
    """Verify the e-mail address of the form's token and say how it went."""
    try:
        await manager.verify(token, request)
    except (exceptions.InvalidVerifyToken, exceptions.UserNotExists):
        return verify_link_trouble(request)
    except exceptions.UserAlreadyVerified:
        return already_verified(request)
    return render(
        request, "message.html", title="E-mail address verified",
        text="Thank you: your e-mail address is verified.",
    )  # fmt: skip


def verify_link_trouble(request: Request) -> HTMLResponse:
    """The page for a verification link that is bad, expired or outdated."""
    return link_trouble(
        request,
        "This verification link does not work",
        "It has expired, is incomplete, or the account's address changed since it was sent.",
        request.url_for("new_verify_link_page").path,
    )


def already_verified(request: Request) -> HTMLResponse:
    """The page for a verification link whose address is verified already."""
    return render(
        request, "message.html", title="Already verified",
        text="This e-mail address was verified before. There is nothing more to do.",
    )  # fmt: skip


@router.post("/verify/new-link", name="new_verify_link_page")
async def new_verify_link_page(
    request: Request, link_requests: LinkRequestsDep, email: FormText = ""
) -> HTMLResponse:
    """Mail a new verification link if an unverified account has this address."""
    return ask_for_link(request, link_requests, "verify", email, "new_verify_link_page")


@router.get("/reset-password")
async def reset_password_page(
    request: Request, manager: UserManagerDep, token: str = ""
) -> HTMLResponse:
    """The form to choose a new password (new password twice), if the link still works."""
    try:
        await manager.reset_token_user(token)
    except RESET_TOKEN_TROUBLE:
        return reset_link_trouble(request)
    return reset_form(request, manager, token)


@router.post("/reset-password")
async def reset_password_form(
    request: Request,
    manager: UserManagerDep,
    token: FormText = "",
    password: FormText = "",
    password_confirm: FormText = "",
) -> HTMLResponse:
    """Set the new password from the form, or show the form again with what is wrong."""
    if password != password_confirm:
        # A dead link is the first thing to say; `reset_password` checks it otherwise.
        try:
            await manager.reset_token_user(token)
        except RESET_TOKEN_TROUBLE:
            return reset_link_trouble(request)
        return reset_form(request, manager, token, "The two passwords differ.", 400)
    try:
        await manager.reset_password(token, password, request)
    except RESET_TOKEN_TROUBLE:
        return reset_link_trouble(request)
    except exceptions.InvalidPasswordException as exc:
        return reset_form(request, manager, token, f"{exc.reason}.", 400)
    return render(
        request, "message.html", title="Password changed",
        text="Your new password is set. Use it the next time you sign in.",
    )  # fmt: skip


@router.post("/reset-password/new-link", name="new_reset_link_page")
async def new_reset_link_page(
    request: Request, link_requests: LinkRequestsDep, email: FormText = ""
) -> HTMLResponse:
    """Mail a new password reset link if an active account has this address."""
    return ask_for_link(request, link_requests, "reset_password", email, "new_reset_link_page")


def reset_form(
    request: Request, manager: UserManager, token: str, error: str = "", status_code: int = 200
) -> HTMLResponse:
    """The new-password form; the token rides only in its hidden field."""
    return render(
        request, "reset_form.html", status_code, title="Choose a new password",
        token=token, error=error,
        min_length=manager.settings.password_min_length,
        lifetime=describe_lifetime(manager.reset_password_token_lifetime_seconds),
    )  # fmt: skip


def reset_link_trouble(request: Request) -> HTMLResponse:
    """The page for a reset link that is bad, expired or used."""
    return link_trouble(
        request,
        "This password reset link does not work",
        "It has expired, is incomplete, or was used already: each link works once.",
        request.url_for("new_reset_link_page").path,
    )


def ask_for_link(
    request: Request, link_requests: LinkRequests, kind: LinkKind, email: str, page: str
) -> HTMLResponse:
    """Queue the `kind` link for `email`; the answer is the same for every address."""
    action = request.url_for(page)
    try:
        address = email_address.validate_python(email.strip())
    except ValidationError:
        return link_trouble(
            request, "Ask for a new link", "That does not look like an e-mail address.",
            action.path,
        )  # fmt: skip
    link_requests.ask(kind, address)
    return render(
        request, "message.html", title="Check your inbox",
        text=f"If {address} belongs to an account that needs it, a new link is on its way.",
    )  # fmt: skip
