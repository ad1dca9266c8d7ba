"""The flows a person with an inbox drives: mails over real SMTP, and the pages their links open.

The links are followed with the HTTP client (the pages need no JavaScript); the same flows
in a real browser are in test_browser.py.
"""

import html
import re
import time

import httpx
import jwt
import pytest
from fastapi import FastAPI

from app.models import UserDB
from app.pages import SECURITY_HEADERS
from app.settings import Settings
from app.user_db import TortoiseUserDatabase
from app.users import UserManager
from tests.conftest import (
    PASSWORD,
    TEST_PUBLIC_URL,
    TEST_SECRET,
    CreateUser,
    Login,
    Mailbox,
    assert_error,
    html_of,
    link_in,
    text_of,
    token_in,
)

NEW_PASSWORD = "a completely different passphrase"
HIDDEN_TOKEN = re.compile(r'<input type="hidden" name="token" value="([^"]*)">')


def signed(claims: dict[str, str], expires_in: int) -> str:
    """A token signed with the test SECRET, expiring `expires_in` seconds from now."""
    return jwt.encode({**claims, "exp": int(time.time()) + expires_in}, TEST_SECRET, "HS256")


async def login_status(client: httpx.AsyncClient, email: str, password: str) -> int:
    response = await client.post("/auth/jwt/login", data={"username": email, "password": password})
    return response.status_code


def hidden_token(page: httpx.Response) -> str:
    """The token in the reset form's hidden field, which must be its only place in the page."""
    [token] = HIDDEN_TOKEN.findall(page.text)
    token = html.unescape(token)
    assert page.text.count(token) == 1
    return token


async def post_reset_form(
    client: httpx.AsyncClient, token: str, password: str, confirm: str | None = None
) -> httpx.Response:
    """Submit the reset page's form as a browser would."""
    fields = {"token": token, "password": password, "password_confirm": confirm or password}
    return await client.post("/reset-password", data=fields)


# --- verification ----------------------------------------------------------------------------


async def test_register_then_the_mailed_verification_link_verifies_the_account(
    client: httpx.AsyncClient, mailbox: Mailbox, login: Login
) -> None:
    registered = await client.post(
        "/auth/register", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert registered.status_code == 201, registered.text
    assert await mailbox.messages() == []

    requested = await client.post("/auth/request-verify-token", json={"email": "ada@example.com"})

    assert requested.status_code == 202
    mail = await mailbox.only_message()
    assert mail["To"] == "ada@example.com"
    assert mail["Subject"] == "Verify your e-mail address"
    assert mail["From"] == "Accounts <accounts@example.org>"
    link = link_in(mail)
    assert link.startswith(f"{TEST_PUBLIC_URL}/verify?token=")
    assert "24 hours" in text_of(mail)
    assert f'href="{link}"' in html_of(mail)

    page = await client.get(link)

    # Opening the link (as a mail scanner would) only shows the confirmation button.
    assert page.status_code == 200, page.text
    assert "Verify your e-mail address" in page.text
    assert "ada@example.com" in page.text
    assert '<form method="post" action="/verify">' in page.text
    assert hidden_token(page) == token_in(mail)
    headers = await login("ada@example.com")
    me = await client.get("/users/me", headers=headers)
    assert me.json()["is_verified"] is False

    confirmed = await client.post("/verify", data={"token": hidden_token(page)})

    assert confirmed.status_code == 200, confirmed.text
    assert "E-mail address verified" in confirmed.text
    assert token_in(mail) not in confirmed.text
    me = await client.get("/users/me", headers=headers)
    assert me.json()["is_verified"] is True

    for again in (
        await client.get(link),
        await client.post("/verify", data={"token": token_in(mail)}),
    ):
        assert again.status_code == 200
        assert "Already verified" in again.text


async def test_opening_the_verification_link_many_times_changes_nothing(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox, login: Login
) -> None:
    await client.post("/auth/request-verify-token", json={"email": user.email})
    link = link_in(await mailbox.only_message())

    for _ in range(3):
        assert (await client.get(link)).status_code == 200
        assert (await client.head(link)).status_code in (200, 405)

    me = await client.get("/users/me", headers=await login(user.email))
    assert me.json()["is_verified"] is False


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="missing"),
        pytest.param("garbage", id="garbage"),
        pytest.param(
            signed({"sub": "x", "email": "user@example.com", "aud": "fastapi-users:verify"}, -60),
            id="expired",
        ),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_bad_verification_link_shows_an_error_and_a_form_for_a_new_link(
    client: httpx.AsyncClient, user: UserDB, token: str, method: str
) -> None:
    if method == "GET":
        page = await client.get("/verify", params={"token": token})
    else:
        page = await client.post("/verify", data={"token": token})

    assert page.status_code == 400
    assert "This verification link does not work" in page.text
    assert 'action="/verify/new-link"' in page.text
    assert 'name="email"' in page.text


async def test_the_verification_link_fails_once_the_email_changed(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str], mailbox: Mailbox
) -> None:
    await client.post("/auth/request-verify-token", json={"email": user.email})
    mail = await mailbox.only_message()
    link = link_in(mail)
    changed = await client.patch(
        "/users/me",
        json={"email": "new@example.com", "current_password": PASSWORD},
        headers=auth_headers,
    )
    assert changed.status_code == 200

    page = await client.get(link)
    confirmed = await client.post("/verify", data={"token": token_in(mail)})

    assert page.status_code == confirmed.status_code == 400
    assert "does not work" in page.text
    assert "does not work" in confirmed.text
    me = await client.get("/users/me", headers=auth_headers)
    assert me.json()["is_verified"] is False


async def test_asking_for_a_new_verification_link_from_the_page(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox
) -> None:
    page = await client.post("/verify/new-link", data={"email": "User@Example.com"})

    assert page.status_code == 200
    assert "Check your inbox" in page.text
    mail = await mailbox.only_message()
    assert mail["To"] == user.email
    assert (await client.post("/verify", data={"token": token_in(mail)})).status_code == 200


# --- password reset --------------------------------------------------------------------------


async def test_forgot_password_then_reset_through_the_page_form(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox
) -> None:
    requested = await client.post("/auth/forgot-password", json={"email": user.email})
    assert requested.status_code == 202
    mail = await mailbox.only_message()
    assert mail["To"] == user.email
    assert mail["Subject"] == "Reset your password"
    assert "30 minutes" in text_of(mail)
    link = link_in(mail)
    assert link.startswith(f"{TEST_PUBLIC_URL}/reset-password?token=")
    mailbox.clear()

    form = await client.get(link)

    assert form.status_code == 200, form.text
    token = hidden_token(form)
    assert token == token_in(mail)
    assert 'action="/reset-password"' in form.text
    assert 'name="password_confirm"' in form.text

    done = await post_reset_form(client, token, NEW_PASSWORD)

    assert done.status_code == 200, done.text
    assert "Password changed" in done.text
    assert token not in done.text
    changed_mail = await mailbox.only_message()
    assert changed_mail["Subject"] == "Your password was changed"
    assert changed_mail["To"] == user.email
    assert "token" not in text_of(changed_mail)
    assert await login_status(client, user.email, PASSWORD) == 400
    assert await login_status(client, user.email, NEW_PASSWORD) == 200

    second_visit = await client.get(link)
    second_post = await post_reset_form(client, token, "yet another passphrase")

    for second in (second_visit, second_post):
        assert second.status_code == 400
        assert "This password reset link does not work" in second.text
        assert 'action="/reset-password/new-link"' in second.text
        assert token not in second.text
    assert await login_status(client, user.email, NEW_PASSWORD) == 200


async def test_reset_form_refuses_two_different_passwords_and_keeps_the_token(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox
) -> None:
    await client.post("/auth/forgot-password", json={"email": user.email})
    token = token_in(await mailbox.only_message())

    page = await post_reset_form(client, token, NEW_PASSWORD, "something else entirely")

    assert page.status_code == 400
    assert "The two passwords differ." in page.text
    assert hidden_token(page) == token
    assert await login_status(client, user.email, PASSWORD) == 200
    assert (await post_reset_form(client, token, NEW_PASSWORD)).status_code == 200


async def test_reset_form_refuses_a_weak_password_and_says_why(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox
) -> None:
    await client.post("/auth/forgot-password", json={"email": user.email})
    token = token_in(await mailbox.only_message())

    page = await post_reset_form(client, token, "short")

    assert page.status_code == 400
    assert "Password should be at least 8 characters." in page.text
    assert hidden_token(page) == token
    assert await login_status(client, user.email, PASSWORD) == 200


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="missing"),
        pytest.param("garbage", id="garbage"),
        pytest.param(
            signed({"sub": "x", "password_fgpt": "x", "aud": "fastapi-users:reset"}, -60),
            id="expired",
        ),
        pytest.param(
            signed({"sub": "x", "email": "user@example.com", "aud": "fastapi-users:verify"}, 600),
            id="verification-token",
        ),
    ],
)
async def test_a_bad_reset_link_shows_an_error_and_a_form_for_a_new_link(
    client: httpx.AsyncClient, user: UserDB, token: str
) -> None:
    page = await client.get("/reset-password", params={"token": token})
    posted = await post_reset_form(client, token, NEW_PASSWORD)

    for response in (page, posted):
        assert response.status_code == 400
        assert "This password reset link does not work" in response.text
        assert 'action="/reset-password/new-link"' in response.text
        assert "hidden" not in response.text
    assert await login_status(client, user.email, PASSWORD) == 200


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"password": NEW_PASSWORD}, id="password-changed"),
        pytest.param({"is_active": False}, id="user-deactivated"),
    ],
)
async def test_the_reset_page_refuses_a_link_that_died_since_it_was_mailed(
    client: httpx.AsyncClient,
    user: UserDB,
    superuser_headers: dict[str, str],
    mailbox: Mailbox,
    body: dict[str, object],
) -> None:
    await client.post("/auth/forgot-password", json={"email": user.email})
    mail = await mailbox.only_message()
    changed = await client.patch(f"/users/{user.id}", json=body, headers=superuser_headers)
    assert changed.status_code == 200, changed.text

    page = await client.get(link_in(mail))
    posted = await post_reset_form(client, token_in(mail), NEW_PASSWORD)

    for response in (page, posted):
        assert response.status_code == 400
        assert "This password reset link does not work" in response.text


async def test_asking_for_a_new_reset_link_from_the_page(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox
) -> None:
    page = await client.post("/reset-password/new-link", data={"email": user.email})

    assert page.status_code == 200
    assert "Check your inbox" in page.text
    mail = await mailbox.only_message()
    assert mail["Subject"] == "Reset your password"
    assert (await client.get(link_in(mail))).status_code == 200


@pytest.mark.parametrize("path", ["/verify/new-link", "/reset-password/new-link"])
@pytest.mark.parametrize("email", ["", "not an address"])
async def test_new_link_forms_refuse_what_is_not_an_address(
    client: httpx.AsyncClient, mailbox: Mailbox, path: str, email: str
) -> None:
    page = await client.post(path, data={"email": email})

    assert page.status_code == 400
    assert "does not look like an e-mail address" in page.text
    assert f'action="{path}"' in page.text
    assert await mailbox.messages() == []


# --- the same answer whatever the address ----------------------------------------------------


@pytest.mark.parametrize(
    ("api_path", "page_path", "subject", "fields"),
    [
        pytest.param(
            "/auth/forgot-password", "/reset-password/new-link", "Reset your password",
            {"is_active": False}, id="reset-inactive",
        ),
        pytest.param(
            "/auth/request-verify-token", "/verify/new-link", "Verify your e-mail address",
            {"is_active": False}, id="verify-inactive",
        ),
        pytest.param(
            "/auth/request-verify-token", "/verify/new-link", "Verify your e-mail address",
            {"is_verified": True}, id="verify-already-verified",
        ),
    ],
)  # fmt: skip
async def test_answers_are_the_same_whether_or_not_a_mail_goes_out(
    client: httpx.AsyncClient,
    create_user: CreateUser,
    mailbox: Mailbox,
    api_path: str,
    page_path: str,
    subject: str,
    fields: dict[str, bool],
) -> None:
    await create_user("mailed@example.com")
    await create_user("skipped@example.com", **fields)
    answers: dict[str, tuple[int, bytes, bytes]] = {}

    for email in ("mailed@example.com", "skipped@example.com", "nobody@example.com"):
        api = await client.post(api_path, json={"email": email})
        page = await client.post(page_path, data={"email": email})
        answers[email] = (api.status_code, api.content, page.content.replace(email.encode(), b"@"))
        assert api.status_code == 202
        assert page.status_code == 200

    assert len(set(answers.values())) == 1, answers
    mails = await mailbox.messages()
    assert [(m["To"], m["Subject"]) for m in mails] == [("mailed@example.com", subject)] * 2


# --- notices ---------------------------------------------------------------------------------


async def test_an_email_change_is_mailed_to_the_old_address(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str], mailbox: Mailbox
) -> None:
    changed = await client.patch(
        "/users/me",
        json={"email": "new@example.org", "current_password": PASSWORD},
        headers=auth_headers,
    )
    assert changed.status_code == 200

    mail = await mailbox.only_message()
    assert mail["To"] == "user@example.com"
    assert mail["Subject"] == "Your e-mail address was changed"
    assert "***@example.org" in text_of(mail)
    assert "new@example.org" not in text_of(mail) + html_of(mail)


async def test_a_password_change_is_mailed_to_the_owner(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str], mailbox: Mailbox
) -> None:
    changed = await client.patch(
        "/users/me",
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
        headers=auth_headers,
    )
    assert changed.status_code == 200

    mail = await mailbox.only_message()
    assert mail["To"] == user.email
    assert mail["Subject"] == "Your password was changed"
    assert NEW_PASSWORD not in mail.as_string()


async def test_an_update_changing_nothing_mails_nothing(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str], mailbox: Mailbox
) -> None:
    same = await client.patch(
        "/users/me", json={"email": user.email, "current_password": PASSWORD}, headers=auth_headers
    )
    assert same.status_code == 200

    assert await mailbox.messages() == []


# --- tokens ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "audience", "lifetime"),
    [
        ("/auth/forgot-password", "fastapi-users:reset", 1800),
        ("/auth/request-verify-token", "fastapi-users:verify", 86400),
    ],
)
async def test_mailed_tokens_live_as_long_as_configured(
    client: httpx.AsyncClient,
    user: UserDB,
    mailbox: Mailbox,
    path: str,
    audience: str,
    lifetime: int,
) -> None:
    before = time.time()
    await client.post(path, json={"email": user.email})
    claims = jwt.decode(
        token_in(await mailbox.only_message()), TEST_SECRET, ["HS256"], audience=audience
    )

    assert before + lifetime - 5 <= claims["exp"] <= time.time() + lifetime + 1


def test_token_lifetimes_come_from_the_settings(app: FastAPI, settings: Settings) -> None:
    configured = settings.model_copy(
        update={"reset_password_token_lifetime_seconds": 600, "verify_token_lifetime_seconds": 7200}
    )

    manager = UserManager(
        TortoiseUserDatabase(), configured, app.state.password_hasher, app.state.mailer
    )

    assert manager.reset_password_token_lifetime_seconds == 600
    assert manager.verification_token_lifetime_seconds == 7200


async def test_the_reset_token_dies_when_the_password_changes_otherwise(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str], mailbox: Mailbox
) -> None:
    await client.post("/auth/forgot-password", json={"email": user.email})
    token = token_in(await mailbox.only_message())
    changed = await client.patch(
        "/users/me",
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
        headers=auth_headers,
    )
    assert changed.status_code == 200

    response = await client.post(
        "/auth/reset-password", json={"token": token, "password": "yet another passphrase"}
    )

    assert_error(response, "RESET_PASSWORD_BAD_TOKEN")


# --- page headers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("GET", "/verify?token=x", None),
        ("POST", "/verify", {"token": "x"}),
        ("GET", "/reset-password?token=x", None),
        ("POST", "/reset-password", {"token": "x", "password": "a", "password_confirm": "a"}),
        ("POST", "/verify/new-link", {"email": "a@example.com"}),
        ("POST", "/reset-password/new-link", {"email": "x"}),
    ],
)
async def test_pages_send_the_security_headers(
    client: httpx.AsyncClient, method: str, path: str, data: dict[str, str] | None
) -> None:
    response = await client.request(method, path, data=data)

    assert response.headers["content-type"] == "text/html; charset=utf-8"
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    assert "script-src" not in response.headers["content-security-policy"]
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    assert "<script" not in response.text
    assert "style=" not in response.text


async def test_pages_use_only_the_local_stylesheet(client: httpx.AsyncClient) -> None:
    page = await client.get("/verify?token=x")
    [stylesheet] = re.findall(r'<link rel="stylesheet" href="([^"]+)">', page.text)

    css = await client.get(stylesheet)

    assert stylesheet == "/static/style.css"
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "://" not in page.text.replace(TEST_PUBLIC_URL, "")
