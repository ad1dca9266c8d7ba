"""Sign-in with a provider, end to end against a real OpenID provider on loopback.

panva's oidc-provider (tests/oidc/) runs as a node process; the login is driven by plain
HTTP through its login and consent forms. The service is the usual in-process app on
each database. GitHub, which no test can reach, is stood in for by a loopback HTTP
server serving GitHub's documented JSON shapes (`FakeGitHub`).
"""

import base64
import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pyotp
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr, ValidationError

from app import mfa, oauth
from app.app import create_app
from app.models import AuditEvent, OAuthAccount, Session, User, UserDB
from app.oauth import (
    FLOW_COOKIE,
    Endpoints,
    FlowCookie,
    OAuthFlowError,
    ProviderClient,
    pkce_challenge,
)
from app.settings import OAuthProvider, Settings
from tests.conftest import (
    PASSWORD,
    TEST_PUBLIC_URL,
    TEST_SECRET,
    CreateUser,
    Login,
    Mailbox,
    assert_error,
    clear_rows,
    forget_cached_sql,
    free_port,
    text_of,
    with_settings,
)
from tests.oidc_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    SIGNING_KEY,
    JSONServer,
    OIDCProvider,
    drive_login,
    redirect_uris,
    start_provider,
)

FRONTEND = "http://front.example/app"


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OIDCProvider]:
    """The OpenID provider of these tests (`corp`), for the service at TEST_PUBLIC_URL."""
    uris = redirect_uris(TEST_PUBLIC_URL, "corp") + redirect_uris(TEST_PUBLIC_URL, "mixup")
    with start_provider(uris) as provider:
        yield provider


@pytest.fixture(scope="session")
def other_provider() -> Iterator[OIDCProvider]:
    """A second oidc-provider: another issuer, with the same signing key as the first."""
    with start_provider(redirect_uris(TEST_PUBLIC_URL, "mixup")) as provider:
        yield provider


def provider_settings(name: str, discovery_url: str, **extra: Any) -> OAuthProvider:
    """One entry of OAUTH_PROVIDERS with the test client."""
    return OAuthProvider(
        name=name, client_id=CLIENT_ID, client_secret=SecretStr(CLIENT_SECRET),
        discovery_url=discovery_url, **extra,
    )  # fmt: skip


@pytest.fixture
def overrides(request: pytest.FixtureRequest, oidc_provider: OIDCProvider) -> dict[str, Any]:
    """The provider `corp` and a front-end URL, then what `@with_settings` asks for."""
    values: dict[str, Any] = getattr(request, "param", {})
    return {
        "oauth_providers": [provider_settings("corp", oidc_provider.discovery_url)],
        "oauth_frontend_url": FRONTEND,
        **values,
    }


async def provider_redirect(
    client: httpx.AsyncClient, login: str, start: str = "/auth/corp/authorize", **kw: Any
) -> str:
    """Start a flow at `start`, sign in at the provider as `login`: the callback's path."""
    response = await client.get(start, **kw)
    if response.status_code == 303:
        url = response.headers["location"]
    else:
        assert response.status_code == 200, response.text
        url = response.json()["authorization_url"]
    async with httpx.AsyncClient() as browser:
        back = await drive_login(browser, url, login, TEST_PUBLIC_URL)
    return back.removeprefix(TEST_PUBLIC_URL)


async def provider_sign_in(client: httpx.AsyncClient, login: str) -> httpx.Response:
    """The API flow of `corp` for `login`, to the callback's answer."""
    return await client.get(await provider_redirect(client, login))


def bearer(response: httpx.Response) -> dict[str, str]:
    """The bearer headers of a token pair answer."""
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def actions_of(user_id: Any = None) -> list[str]:
    """The audit actions written, oldest first (of `user_id` if given)."""
    events = AuditEvent.all() if user_id is None else AuditEvent.filter(subject_id=user_id)
    return [event.action for event in await events.order_by("id")]


# --- sign-in and the linking rules --------------------------------------------------------


async def test_first_sign_in_creates_a_verified_user_and_the_second_reuses_it(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """A new identity with a verified address: a new verified account, then the same one."""
    first = await provider_sign_in(client, "alice")
    assert set(first.json()) >= {"access_token", "refresh_token", "expires_in"}
    me = (await client.get("/users/me", headers=bearer(first))).json()
    assert me["email"] == "alice@example.com"
    assert me["is_verified"] is True
    second = await provider_sign_in(client, "alice")
    assert (await client.get("/users/me", headers=bearer(second))).json()["id"] == me["id"]
    assert await User.all().count() == 1
    [account] = (await client.get("/users/me/oauth-accounts", headers=bearer(second))).json()
    assert account["oauth_name"] == "corp"
    assert account["account_id"] == "alice"
    assert account["last_used_at"] is not None
    assert await actions_of(me["id"]) == ["register", "oauth_link", "login", "login"]
    # The new account has no password: a password login fails.
    login = await client.post(
        "/auth/jwt/login", data={"username": "alice@example.com", "password": PASSWORD}
    )
    assert_error(login, "LOGIN_BAD_CREDENTIALS", error="invalid_grant")
    assert await mailbox.messages() == []  # a new account made by the identity: no link mail


async def test_a_verified_address_links_a_verified_account_and_mails_its_owner(
    client: httpx.AsyncClient, create_user: CreateUser, mailbox: Mailbox
) -> None:
    """The provider and the account both say the address is verified: linked, then signed in."""
    bob = await create_user("bob@example.com", is_verified=True)
    response = await provider_sign_in(client, "bob")
    me = (await client.get("/users/me", headers=bearer(response))).json()
    assert me["id"] == str(bob.id)
    assert await actions_of(bob.id) == ["register", "oauth_link", "login"]
    message = await mailbox.only_message()
    assert message["To"] == "bob@example.com"
    assert message["Subject"] == "A sign-in provider was linked to your account"
    assert '"corp"' in text_of(message)


async def test_an_unverified_provider_address_never_reaches_an_account(
    client: httpx.AsyncClient, create_user: CreateUser
) -> None:
    """`email_verified: false` for someone's address: refused, and the same without the account."""
    victim = await create_user("victim@example.com", is_verified=True)
    refused = await provider_sign_in(client, "mallory")
    assert_error(refused, "OAUTH_SIGN_IN_REFUSED")
    assert await OAuthAccount.all().count() == 0
    [event] = await AuditEvent.filter(action="oauth_login_failed")
    assert event.details["provider"] == "corp"
    assert event.outcome == "oauth_sign_in_refused"
    await User.filter(id=victim.id).delete()
    assert_error(await provider_sign_in(client, "mallory"), "OAUTH_SIGN_IN_REFUSED")
    assert await User.all().count() == 0


async def test_an_unverified_account_is_not_linked_even_to_a_verified_address(
    client: httpx.AsyncClient, create_user: CreateUser
) -> None:
    """The provider verified the address but the account did not: refused, the same answer."""
    await create_user("bob@example.com", is_verified=False)
    assert_error(await provider_sign_in(client, "bob"), "OAUTH_SIGN_IN_REFUSED")
    assert await OAuthAccount.all().count() == 0


@with_settings(oauth_allow_signup=False)
async def test_without_signup_a_new_identity_is_refused(client: httpx.AsyncClient) -> None:
    """OAUTH_ALLOW_SIGNUP=false: no account is made, with the one refusal code."""
    assert_error(await provider_sign_in(client, "alice"), "OAUTH_SIGN_IN_REFUSED")
    assert await User.all().count() == 0


async def test_an_inactive_linked_account_cannot_sign_in(client: httpx.AsyncClient) -> None:
    """A deactivated account: refused as the password login refuses it."""
    await provider_sign_in(client, "alice")
    await User.filter(email="alice@example.com").update(is_active=False)
    assert_error(await provider_sign_in(client, "alice"), "LOGIN_BAD_CREDENTIALS")


# --- the flow's checks -------------------------------------------------------------------


async def test_a_callback_in_another_browser_is_refused(
    client: httpx.AsyncClient, app: Any
) -> None:
    """Login CSRF: a callback with another browser's state, or without the flow cookie."""
    callback = await provider_redirect(client, "alice")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=TEST_PUBLIC_URL) as other:
        assert_error(await other.get(callback), "OAUTH_INVALID_STATE")
        await other.get("/auth/corp/authorize")  # a flow of its own, another state
        assert_error(await other.get(callback), "OAUTH_INVALID_STATE")
    assert await User.all().count() == 0
    assert (await client.get(callback)).status_code == 200  # the right browser still can


async def test_a_wrong_pkce_verifier_is_refused(client: httpx.AsyncClient) -> None:
    """The provider refuses the code for another verifier: 400, not 500."""
    callback = await provider_redirect(client, "alice")
    flow = FlowCookie.decode(client.cookies[FLOW_COOKIE], TEST_SECRET, "corp", "login")
    forged = FlowCookie(**{**flow.__dict__, "verifier": secrets.token_urlsafe(64)})
    client.cookies.set(FLOW_COOKIE, forged.encode(TEST_SECRET, 600), path="/auth/corp/")
    assert_error(await client.get(callback), "OAUTH_INVALID_CODE")


async def test_a_replayed_code_is_refused(client: httpx.AsyncClient) -> None:
    """The same callback again, cookie and all: the provider refuses the used code (400)."""
    callback = await provider_redirect(client, "alice")
    cookie = client.cookies[FLOW_COOKIE]
    assert (await client.get(callback)).status_code == 200
    client.cookies.set(FLOW_COOKIE, cookie, path="/auth/corp/")
    assert_error(await client.get(callback), "OAUTH_INVALID_CODE")


async def test_a_forged_code_and_an_expired_flow_are_refused(client: httpx.AsyncClient) -> None:
    """A code the provider never issued, a flow cookie past its time: 400 each."""
    callback = await provider_redirect(client, "alice")
    state = parse_qs(urlsplit(callback).query)["state"][0]
    forged = await client.get("/auth/corp/callback", params={"code": "x" * 40, "state": state})
    assert_error(forged, "OAUTH_INVALID_CODE")
    flow = FlowCookie(provider="corp", purpose="login", state=state, verifier="v" * 50,
                      nonce="n")  # fmt: skip
    client.cookies.set(FLOW_COOKIE, flow.encode(TEST_SECRET, -10), path="/auth/corp/")
    assert_error(await client.get(callback), "OAUTH_INVALID_STATE")


async def test_the_provider_saying_no_is_a_clear_refusal(client: httpx.AsyncClient) -> None:
    """The callback with `error=access_denied` and this browser's state."""
    response = await client.get("/auth/corp/authorize")
    state = parse_qs(urlsplit(response.json()["authorization_url"]).query)["state"][0]
    denied = await client.get(
        "/auth/corp/callback", params={"error": "access_denied", "state": state}
    )
    assert_error(denied, "OAUTH_PROVIDER_DENIED")


def test_the_pkce_challenge_is_rfc_7636s() -> None:
    """RFC 7636, appendix B: the S256 challenge of its example verifier."""
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


async def test_authorize_sends_pkce_state_and_nonce(client: httpx.AsyncClient) -> None:
    """The authorization URL: code flow, S256 challenge of the cookie's verifier, its nonce."""
    response = await client.get("/auth/corp/authorize")
    query = parse_qs(urlsplit(response.json()["authorization_url"]).query)
    flow = FlowCookie.decode(client.cookies[FLOW_COOKIE], TEST_SECRET, "corp", "login")
    assert query["code_challenge_method"] == ["S256"]
    assert query["code_challenge"] == [pkce_challenge(flow.verifier)]
    assert query["state"] == [flow.state]
    assert query["nonce"] == [flow.nonce]
    assert query["redirect_uri"] == [f"{TEST_PUBLIC_URL}/auth/corp/callback"]
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "path=/auth/corp/" in cookie


# --- an ID token from another issuer -----------------------------------------------------


@asynccontextmanager
async def client_with_providers(
    settings: Settings, *providers: OAuthProvider
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the service with only these providers, on a clean database."""
    forget_cached_sql()
    app = create_app(settings.model_copy(update={"oauth_providers": list(providers)}))
    async with LifespanManager(app) as manager:
        await clear_rows()
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=TEST_PUBLIC_URL) as client:
            yield client


@pytest.fixture
def mixup_discovery(other_provider: OIDCProvider) -> Iterator[str]:
    """A discovery document naming itself the issuer, but every endpoint the other issuer's.

    The flow then runs at the other issuer for real, and its ID token, signed with a key
    the JWKS accepts, carries the other `iss`.
    """
    document = httpx.get(other_provider.discovery_url).json()
    server = JSONServer({})
    server.routes["/.well-known/openid-configuration"] = {**document, "issuer": server.url}
    yield f"{server.url}/.well-known/openid-configuration"
    server.close()


async def test_an_id_token_from_another_issuer_is_refused(
    settings: Settings, mixup_discovery: str
) -> None:
    """Every other check passes (signature, aud, exp, nonce): `iss` alone refuses it."""
    mixup = provider_settings("mixup", mixup_discovery)
    async with client_with_providers(settings, mixup) as client:
        callback = await provider_redirect(client, "alice", "/auth/mixup/authorize")
        assert_error(await client.get(callback), "OAUTH_INVALID_ID_TOKEN")
        [event] = await AuditEvent.filter(action="oauth_login_failed")
        assert event.details["reason"] == "InvalidIssuerError"
        assert await User.all().count() == 0


# --- linking a provider to a signed-in account, and unlinking ---------------------------


async def test_associate_links_a_provider_and_unlink_removes_it(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str], mailbox: Mailbox
) -> None:
    """A signed-in user links `carol` (another address), signs in with it, then unlinks it."""
    callback = await provider_redirect(
        client, "carol", "/auth/corp/associate/authorize", headers=auth_headers
    )
    linked = await client.get(callback)
    assert linked.status_code == 201, linked.text
    assert linked.json()["account_email"] == "carol@example.com"
    signed_in = await provider_sign_in(client, "carol")
    assert (await client.get("/users/me", headers=bearer(signed_in))).json()["id"] == str(user.id)
    account_id = linked.json()["id"]
    gone = await client.delete(f"/users/me/oauth-accounts/{account_id}", headers=auth_headers)
    assert gone.status_code == 204, gone.text
    assert (await client.get("/users/me/oauth-accounts", headers=auth_headers)).json() == []
    again = await client.delete(f"/users/me/oauth-accounts/{account_id}", headers=auth_headers)
    assert_error(again, "OAUTH_ACCOUNT_NOT_FOUND", 404)
    subjects = [m["Subject"] for m in await mailbox.messages()]
    assert subjects == [
        "A sign-in provider was linked to your account",
        "A sign-in provider was unlinked from your account",
    ]
    assert (await actions_of(user.id))[-1] == "oauth_unlink"


async def test_associate_refuses_an_identity_linked_to_someone_else(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    """`alice` signed up with the provider first: linking her identity elsewhere is refused."""
    await provider_sign_in(client, "alice")
    callback = await provider_redirect(
        client, "alice", "/auth/corp/associate/authorize", headers=auth_headers
    )
    assert_error(await client.get(callback), "OAUTH_ACCOUNT_ALREADY_LINKED")


async def test_associate_needs_a_signed_in_fresh_session(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    """No token: 401; the session that started it ended before the callback: refused."""
    assert (await client.get("/auth/corp/associate/authorize")).status_code == 401
    callback = await provider_redirect(
        client, "carol", "/auth/corp/associate/authorize", headers=auth_headers
    )
    await client.post("/auth/jwt/logout", headers=auth_headers)
    assert_error(await client.get(callback), "OAUTH_INVALID_STATE")
    assert await OAuthAccount.all().count() == 0


@with_settings(session_fresh_seconds=0)
async def test_associate_and_unlink_need_a_recent_login(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    """A login older than SESSION_FRESH_SECONDS: 403 REAUTHENTICATION_REQUIRED."""
    started = await client.get("/auth/corp/associate/authorize", headers=auth_headers)
    assert_error(started, "REAUTHENTICATION_REQUIRED", 403)
    unlink = await client.delete(
        f"/users/me/oauth-accounts/{'0' * 8}-0000-0000-0000-{'0' * 12}", headers=auth_headers
    )
    assert_error(unlink, "REAUTHENTICATION_REQUIRED", 403)


async def test_the_last_way_to_sign_in_cannot_be_unlinked(client: httpx.AsyncClient) -> None:
    """An account made by the provider has no password: its only link stays."""
    headers = bearer(await provider_sign_in(client, "alice"))
    [account] = (await client.get("/users/me/oauth-accounts", headers=headers)).json()
    refused = await client.delete(f"/users/me/oauth-accounts/{account['id']}", headers=headers)
    assert_error(refused, "OAUTH_LAST_SIGN_IN_METHOD")
    assert await OAuthAccount.all().count() == 1


# --- the browser flow's page ---------------------------------------------------------------

HANDOFF = re.compile(r'<a id="continue" href="([^"]+)"')


def handed_over(page: httpx.Response) -> dict[str, str]:
    """The fields the page hands to the front end in the fragment."""
    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store"
    target = unescape(HANDOFF.search(page.text).group(1))  # type: ignore[union-attr]
    assert f'content="0; url={target}"'.replace("&", "&amp;") in page.text
    url, _, fragment = target.partition("#")
    assert url == FRONTEND
    return {name: values[0] for name, values in parse_qs(fragment).items()}


async def test_the_page_flow_hands_the_token_pair_to_the_front_end(
    client: httpx.AsyncClient,
) -> None:
    """`/auth/corp/page` redirects to the provider; its callback page hands the pair over."""
    callback = await provider_redirect(client, "alice", "/auth/corp/page")
    assert callback.startswith("/auth/corp/page/callback?")
    fields = handed_over(await client.get(callback))
    assert fields["status"] == "200"
    assert fields["token_type"] == "bearer"
    me = await client.get(
        "/users/me", headers={"Authorization": f"Bearer {fields['access_token']}"}
    )
    assert me.json()["email"] == "alice@example.com"


async def test_the_page_flow_hands_an_error_to_the_front_end(client: httpx.AsyncClient) -> None:
    """A callback without this browser's flow: the page hands the error code over."""
    fields = handed_over(await client.get("/auth/corp/page/callback?code=x&state=y"))
    assert fields == {"status": "400", "detail": "OAUTH_INVALID_STATE"}


async def test_a_provider_sign_in_asks_for_the_second_factor(
    client: httpx.AsyncClient,
    create_user: CreateUser,
    login: Login,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A linked user with TOTP on: the callback (and the page) give the MFA step, no token."""
    now = 1_800_000_000.0
    monkeypatch.setattr(mfa, "clock", lambda: now)
    bob = await create_user("bob@example.com", is_verified=True)
    assert (await provider_sign_in(client, "bob")).status_code == 200  # linked
    headers = await login(bob.email)
    enrolment = await client.post(
        "/users/me/mfa/totp", json={"current_password": PASSWORD}, headers=headers
    )
    secret = enrolment.json()["secret"]
    confirmed = await client.post(
        "/users/me/mfa/totp/confirm", json={"code": pyotp.TOTP(secret).at(now)}, headers=headers
    )
    assert confirmed.status_code == 200, confirmed.text
    sessions_before = await Session.filter(user_id=bob.id).count()

    step = await provider_sign_in(client, "bob")
    assert step.status_code == 401, step.text
    body = step.json()
    assert body["detail"] == "LOGIN_MFA_REQUIRED"
    assert "access_token" not in body
    page = handed_over(await client.get(await provider_redirect(client, "bob", "/auth/corp/page")))
    assert page["status"] == "401"
    assert page["detail"] == "LOGIN_MFA_REQUIRED"
    assert "access_token" not in page
    assert await Session.filter(user_id=bob.id).count() == sessions_before

    now += mfa.TOTP_PERIOD
    verified = await client.post(
        "/auth/mfa/verify",
        json={"mfa_token": body["mfa_token"], "code": pyotp.TOTP(secret).at(now)},
    )
    me = await client.get("/users/me", headers=bearer(verified))
    assert me.json()["id"] == str(bob.id)
    listed = (await client.get("/users/me/sessions", headers=bearer(verified))).json()
    assert [s["aal"] for s in listed if s["current"]] == [2]


# --- configuration ---------------------------------------------------------------------------


@with_settings(oauth_providers=[], oauth_frontend_url="")
async def test_without_providers_there_are_no_routes(client: httpx.AsyncClient) -> None:
    """Nothing configured: the OAuth paths do not exist."""
    assert (await client.get("/auth/corp/authorize")).status_code == 404
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if "{provider}" in path or "oauth" in path]


async def test_an_unknown_provider_is_404(client: httpx.AsyncClient) -> None:
    """A provider name that is not configured."""
    assert_error(await client.get("/auth/nobody/authorize"), "OAUTH_PROVIDER_NOT_FOUND", 404)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "x", "discovery_url": "http://idp.example.com/"}, "must be https"),
        ({"name": "jwt", "discovery_url": "https://idp.example.com/"}, "taken"),
        ({"name": "x"}, "discovery_url is required"),
        ({"name": "Bad Name", "discovery_url": "https://idp.example.com/"}, "pattern"),
    ],
)
def test_provider_settings_are_checked(entry: dict[str, str], message: str) -> None:
    """https only (http on loopback), no reserved names, OpenID Connect needs discovery."""
    with pytest.raises(ValidationError, match=message):
        OAuthProvider.model_validate({"client_id": "c", "client_secret": "s", **entry})


def test_presets_fill_in_their_endpoints() -> None:
    """Google by its discovery document, loopback http allowed, names unique."""
    google = OAuthProvider(name="google", preset="google", client_id="c", client_secret="s")
    assert google.discovery_url == "https://accounts.google.com/.well-known/openid-configuration"
    assert google.scope == "openid email"
    github = OAuthProvider(name="github", preset="github", client_id="c", client_secret="s")
    assert github.scope == "read:user user:email"
    local = OAuthProvider(
        name="l",
        client_id="c",
        client_secret="s",
        discovery_url="http://127.0.0.1:9/.well-known/openid-configuration",
    )
    assert local.discovery_url is not None
    with pytest.raises(ValidationError, match="name of its own"):
        Settings(_env_file=None, oauth_providers=[google, google])  # type: ignore[call-arg]


def test_providers_are_read_from_json_in_the_environment(
    clean_environment: pytest.MonkeyPatch,
) -> None:
    """OAUTH_PROVIDERS is a JSON list."""
    clean_environment.setenv("OAUTH_PROVIDERS", json.dumps(
        [{"name": "google", "preset": "google", "client_id": "c", "client_secret": "s"}]
    ))  # fmt: skip
    [google] = Settings().oauth_providers
    assert google.client_secret.get_secret_value() == "s"


# --- GitHub, against a loopback stand-in ---------------------------------------------------


class FakeGitHub:
    """GitHub's OAuth app endpoints and the two API calls, with their documented JSON shapes.

    Not GitHub: a loopback server that checks what GitHub checks (client, code once,
    PKCE S256) and answers `/user` and `/user/emails` as GitHub documents them.
    """

    def __init__(self, emails: list[dict[str, Any]]) -> None:
        self.emails = emails
        self.codes: dict[str, dict[str, str]] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def reply(self, status: int, body: Any = None, location: str | None = None) -> None:
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(body).encode())

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path == "/login/oauth/authorize":
                    code = secrets.token_hex(10)
                    fake.codes[code] = query
                    answer = urlencode({"code": code, "state": query["state"]})
                    back = f"{query['redirect_uri']}?{answer}"
                    return self.reply(302, location=back)
                if self.headers.get("Authorization") != "Bearer gho_token":
                    return self.reply(401, {"message": "Bad credentials"})
                if parts.path == "/api/user":
                    return self.reply(200, {"login": "octocat", "id": 583231, "email": None})
                if parts.path == "/api/user/emails":
                    return self.reply(200, fake.emails)
                return self.reply(404, {"message": "Not Found"})

            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                issued = fake.codes.pop(form.get("code", ""), None)
                challenge = (
                    base64.urlsafe_b64encode(
                        hashlib.sha256(form.get("code_verifier", "").encode()).digest()
                    )
                    .rstrip(b"=")
                    .decode()
                )
                if (
                    issued is None
                    or form.get("client_id") != CLIENT_ID
                    or form.get("client_secret") != CLIENT_SECRET
                    or issued["code_challenge"] != challenge
                ):
                    return self.reply(200, {"error": "bad_verification_code"})
                return self.reply(200, {"access_token": "gho_token", "token_type": "bearer",
                                        "scope": "read:user,user:email"})  # fmt: skip

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def github_emails() -> list[dict[str, Any]]:
    """What the stand-in's `/user/emails` answers (tests change it)."""
    return [
        {"email": "octo@example.com", "primary": True, "verified": True, "visibility": "public"},
        {"email": "other@example.com", "primary": False, "verified": True, "visibility": None},
    ]


@pytest.fixture
async def github_client(
    settings: Settings, github_emails: list[dict[str, Any]]
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the service with only the GitHub preset, pointed at `FakeGitHub`."""
    fake = FakeGitHub(github_emails)
    github = OAuthProvider(
        name="github", preset="github", client_id=CLIENT_ID,
        client_secret=SecretStr(CLIENT_SECRET), github_url=fake.url,
        github_api_url=f"{fake.url}/api",
    )  # fmt: skip
    async with client_with_providers(settings, github) as client:
        yield client
    fake.server.shutdown()
    fake.server.server_close()


async def github_sign_in(client: httpx.AsyncClient) -> httpx.Response:
    """The GitHub flow, through the stand-in (which signs in at once)."""
    url = (await client.get("/auth/github/authorize")).json()["authorization_url"]
    assert "nonce" not in parse_qs(urlsplit(url).query)
    async with httpx.AsyncClient() as browser:
        back = (await browser.get(url)).headers["location"]
    return await client.get(back.removeprefix(TEST_PUBLIC_URL))


async def test_github_signs_in_with_its_verified_primary_address(
    github_client: httpx.AsyncClient,
) -> None:
    """The primary, verified address of `/user/emails` makes the account; `id` is the key."""
    response = await github_sign_in(github_client)
    me = (await github_client.get("/users/me", headers=bearer(response))).json()
    assert me["email"] == "octo@example.com"
    [account] = await OAuthAccount.all()
    assert account.account_id == "583231"


async def test_github_refuses_an_unverified_primary_address(
    github_client: httpx.AsyncClient, github_emails: list[dict[str, Any]]
) -> None:
    """GitHub says the primary address is not verified: refused like any provider."""
    github_emails[0]["verified"] = False
    assert_error(await github_sign_in(github_client), "OAUTH_SIGN_IN_REFUSED")


async def test_github_refuses_a_replayed_code(github_client: httpx.AsyncClient) -> None:
    """GitHub answers a used code with 200 and `bad_verification_code`: our 400."""
    url = (await github_client.get("/auth/github/authorize")).json()["authorization_url"]
    cookie = github_client.cookies[FLOW_COOKIE]
    async with httpx.AsyncClient() as browser:
        back = (await browser.get(url)).headers["location"].removeprefix(TEST_PUBLIC_URL)
    assert (await github_client.get(back)).status_code == 200
    github_client.cookies.set(FLOW_COOKIE, cookie, path="/auth/github/")
    assert_error(await github_client.get(back), "OAUTH_INVALID_CODE")


async def test_login_and_provider_users_share_the_manager(
    client: httpx.AsyncClient, login: Login, create_user: CreateUser
) -> None:
    """A linked password user can still log in with the password after linking."""
    await create_user("bob@example.com", is_verified=True)
    bearer(await provider_sign_in(client, "bob"))
    assert await login("bob@example.com")


# --- the ID token checks, one by one --------------------------------------------------------

ISSUER = "https://issuer.example"


def signed_id_token(kid: str = "k1", **claims: Any) -> str:
    """An ID token signed with the tests' RSA key."""
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": "c", "exp": now + 60, "iat": now, "sub": "s",
               "nonce": "n", **claims}  # fmt: skip
    return jwt.encode(payload, SIGNING_KEY, "RS256", headers={"kid": kid})


def public_jwk(kid: str) -> dict[str, Any]:
    """The tests' public key as a JWK with `kid`."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(SIGNING_KEY.public_key()))
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


@pytest.fixture
def jwks_server() -> Iterator[JSONServer]:
    """A JWKS on loopback holding the key `k1`."""
    server = JSONServer({"/jwks": {"keys": [public_jwk("k1")]}})
    yield server
    server.close()


def id_token_checker(jwks_server: JSONServer) -> tuple[ProviderClient, Endpoints]:
    """A provider client for ISSUER and client `c`, and its endpoints with the JWKS."""
    config = OAuthProvider(name="t", client_id="c", client_secret="s",
                           discovery_url=f"{ISSUER}/.well-known/openid-configuration")  # fmt: skip
    settings = Settings(_env_file=None, secret=TEST_SECRET)  # type: ignore[call-arg]
    endpoints = Endpoints(authorization="-", token="-", issuer=ISSUER,
                          jwks_uri=f"{jwks_server.url}/jwks")  # fmt: skip
    return ProviderClient(config, settings), endpoints


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: signed_id_token(), None),
        (lambda: signed_id_token(iss="https://other.example"), "InvalidIssuerError"),
        (lambda: signed_id_token(aud="someone-else"), "InvalidAudienceError"),
        (lambda: signed_id_token(exp=int(time.time()) - 120), "ExpiredSignatureError"),
        (lambda: signed_id_token(nonce="other"), "nonce differs"),
        (lambda: signed_id_token(aud=["c", "d"]), "azp is not us"),
        (lambda: signed_id_token(kid="k9"), "no such signing key"),
        (
            lambda: jwt.encode({"iss": ISSUER, "aud": "c", "sub": "s"}, "k" * 32, "HS256"),
            "algorithm 'HS256' refused",
        ),
        (
            lambda: jwt.encode({"iss": ISSUER, "aud": "c", "sub": "s"}, None, "none"),
            "algorithm 'none' refused",
        ),
        (lambda: signed_id_token()[:-8] + "AAAAAAAA", "InvalidSignatureError"),
    ],
    ids=["valid", "iss", "aud", "exp", "nonce", "azp", "kid", "hmac", "none", "signature"],
)
async def test_each_id_token_check(jwks_server: JSONServer, token: Any, reason: str | None) -> None:
    """Signature by the JWKS, asymmetric algorithm, iss, aud (and azp), exp, nonce."""
    client, endpoints = id_token_checker(jwks_server)
    async with httpx.AsyncClient() as http:
        if reason is None:
            assert (await client.verify_id_token(http, endpoints, token(), "n"))["sub"] == "s"
            return
        with pytest.raises(OAuthFlowError) as refused:
            await client.verify_id_token(http, endpoints, token(), "n")
    assert refused.value.code == "OAUTH_INVALID_ID_TOKEN"
    assert refused.value.reason == reason


async def test_an_unknown_kid_refetches_the_jwks(
    jwks_server: JSONServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Key rotation: a new `kid` refetches the JWKS, at most once per JWKS_REFRESH_SECONDS."""
    client, endpoints = id_token_checker(jwks_server)
    async with httpx.AsyncClient() as http:
        await client.verify_id_token(http, endpoints, signed_id_token(), "n")  # cached now
        jwks_server.routes["/jwks"] = {"keys": [public_jwk("k2")]}
        with pytest.raises(OAuthFlowError, match="no such signing key"):  # just fetched
            await client.verify_id_token(http, endpoints, signed_id_token("k2"), "n")
        monkeypatch.setattr(oauth, "JWKS_REFRESH_SECONDS", 0.0)
        claims = await client.verify_id_token(http, endpoints, signed_id_token("k2"), "n")
    assert claims["sub"] == "s"
