"""The mailed links opened in a real browser: Debian's headless Chromium, driven by Playwright.

The service runs as a real uvicorn process on a loopback port (SQLite, cheap hashing) and
sends its mails to the in-process SMTP server. JavaScript is off in the browser: the
pages must work without it. Screenshots go to test-artifacts/ (git-ignored).
"""

import base64
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import PIL.Image
import pytest
import zxingcpp
from playwright.async_api import Browser, Page, Route

from tests.conftest import (
    PASSWORD,
    ROOT,
    TEST_SECRET,
    Aerich,
    Backend,
    SMTPServer,
    child_environment,
    free_port,
    link_in,
    served_app,
)

SCREENSHOTS = ROOT / "test-artifacts"
NEW_PASSWORD = "a completely different passphrase"


@dataclass
class LiveServer:
    """The service as a uvicorn process, and the inbox its mails reach."""

    url: str
    smtp: SMTPServer

    async def mailed_link(self, count: int = 1) -> str:
        """The link in the `count`th mail, which leads to this server (its PUBLIC_URL)."""
        mails = await self.smtp.inbox.wait_for(count)
        return link_in(mails[count - 1], self.url)


@pytest.fixture(scope="module")
def live_server(
    smtp_server: SMTPServer,
    aerich: Aerich,
    bytecode_cache: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    """`uvicorn app.app:app` on a free loopback port, on a fresh migrated SQLite database."""
    database_url = Backend("sqlite", str(tmp_path_factory.mktemp("live"))).url("live")
    aerich.upgrade(database_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **child_environment(bytecode_cache),
        "ENVIRONMENT": "development",
        "DATABASE_URL": database_url,
        "SECRET": TEST_SECRET,
        "PUBLIC_URL": url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_server.port),
        "SMTP_TLS": "none",
        "MAIL_FROM": "accounts@example.org",
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_COST": "8",
        "PASSWORD_HASH_PARALLELISM": "1",
        "LOG_LEVEL": "warning",
    }
    with served_app(env, port, "/openapi.json") as served:
        yield LiveServer(served, smtp_server)


@pytest.fixture
async def api(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the live server, its inbox emptied."""
    live_server.smtp.inbox.messages.clear()
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        yield client


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A tab with JavaScript off, recording what the console reports (CSP violations)."""
    context = await browser.new_context(java_script_enabled=False)
    tab = await context.new_page()
    console: list[str] = []
    tab.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    yield tab
    await context.close()
    assert not [line for line in console if "Content Security Policy" in line], console


async def screenshot(page: Page, name: str) -> None:
    """Keep what the page looks like in test-artifacts/<name>.png."""
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


async def register(api: httpx.AsyncClient, email: str) -> None:
    response = await api.post("/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text


async def login_status(api: httpx.AsyncClient, email: str, password: str) -> int:
    response = await api.post("/auth/jwt/login", data={"username": email, "password": password})
    return response.status_code


async def is_verified(api: httpx.AsyncClient, email: str) -> bool:
    token = await api.post("/auth/jwt/login", data={"username": email, "password": PASSWORD})
    me = await api.get(
        "/users/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
    )
    verified: bool = me.json()["is_verified"]
    return verified


async def test_the_verification_link_verifies_in_the_browser(
    api: httpx.AsyncClient, live_server: LiveServer, page: Page
) -> None:
    await register(api, "ada@example.com")
    assert (
        await api.post("/auth/request-verify-token", json={"email": "ada@example.com"})
    ).status_code == 202
    link = await live_server.mailed_link()

    response = await page.goto(link)

    # Opening the link, as a mail scanner would, changes nothing: a button does.
    assert response is not None
    assert response.status == 200
    assert await page.locator("h1").inner_text() == "Verify your e-mail address"
    assert "ada@example.com" in await page.locator("main").inner_text()
    # The local stylesheet loaded under the CSP: the card is white on a grey page.
    card = await page.locator("main").evaluate("e => getComputedStyle(e).backgroundColor")
    assert card == "rgb(255, 255, 255)"
    await screenshot(page, "verify-confirm")
    assert await is_verified(api, "ada@example.com") is False

    await page.click("button[type=submit]")

    assert await page.locator("h1").inner_text() == "E-mail address verified"
    assert await page.title() == "E-mail address verified"
    await screenshot(page, "verify-success")
    assert await is_verified(api, "ada@example.com") is True

    again = await page.goto(link)

    assert again is not None
    assert again.status == 200
    assert await page.locator("h1").inner_text() == "Already verified"


async def test_a_broken_verification_link_offers_a_new_one_in_the_browser(
    api: httpx.AsyncClient, live_server: LiveServer, page: Page
) -> None:
    await register(api, "bob@example.com")

    response = await page.goto(f"{live_server.url}/verify?token=broken")

    assert response is not None
    assert response.status == 400
    assert "does not work" in await page.locator("h1").inner_text()
    await screenshot(page, "verify-error")
    await page.fill("#email", "bob@example.com")
    await page.click("button[type=submit]")
    assert await page.locator("h1").inner_text() == "Check your inbox"
    [mail] = await live_server.smtp.inbox.wait_for(1)
    assert mail["To"] == "bob@example.com"
    assert mail["Subject"] == "Verify your e-mail address"


async def test_password_reset_through_the_form_in_the_browser(
    api: httpx.AsyncClient, live_server: LiveServer, page: Page
) -> None:
    await register(api, "cy@example.com")
    assert (
        await api.post("/auth/forgot-password", json={"email": "cy@example.com"})
    ).status_code == 202
    link = await live_server.mailed_link()

    await page.goto(link)
    assert await page.locator("h1").inner_text() == "Choose a new password"
    await screenshot(page, "reset-form")
    await page.fill("#password", NEW_PASSWORD)
    await page.fill("#password_confirm", "not the same passphrase")
    await page.click("button[type=submit]")

    assert await page.locator(".error").inner_text() == "The two passwords differ."
    await screenshot(page, "reset-mismatch")

    await page.fill("#password", NEW_PASSWORD)
    await page.fill("#password_confirm", NEW_PASSWORD)
    await page.click("button[type=submit]")

    assert await page.locator("h1").inner_text() == "Password changed"
    await screenshot(page, "reset-success")
    assert await login_status(api, "cy@example.com", PASSWORD) == 400
    assert await login_status(api, "cy@example.com", NEW_PASSWORD) == 200
    mails = await live_server.smtp.inbox.wait_for(2)
    assert mails[1]["Subject"] == "Your password was changed"

    again = await page.goto(link)

    assert again is not None
    assert again.status == 400
    assert await page.locator("h1").inner_text() == "This password reset link does not work"
    assert await page.locator("#password").count() == 0
    await screenshot(page, "reset-used-link")
    assert await login_status(api, "cy@example.com", NEW_PASSWORD) == 200


# --- the API documentation, offline -------------------------------------------------------


@pytest.fixture
async def offline_page(browser: Browser, live_server: LiveServer) -> AsyncIterator[Page]:
    """A tab with JavaScript on and every request off the live server blocked.

    Yields after the test with the console clean of CSP violations and no request made
    (or attempted) to anywhere but the service.
    """
    context = await browser.new_context()
    outside: list[str] = []

    async def only_the_service(route: Route) -> None:
        if route.request.url.startswith(f"{live_server.url}/") or route.request.url.startswith(
            ("data:", "blob:")
        ):
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort("internetdisconnected")

    await context.route("**/*", only_the_service)
    tab = await context.new_page()
    console: list[str] = []
    tab.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    tab.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    yield tab
    await context.close()
    assert outside == []
    # ReDoc's footer always asks Redocly's CDN for its logo, and hides it when it fails:
    # the docs' policy blocks it (before any request), which is what is wanted here.
    violations = [
        line
        for line in console
        if "Content Security Policy" in line and "cdn.redoc.ly/redoc/logo-mini.svg" not in line
    ]
    assert not violations, console
    assert not [line for line in console if line.startswith("pageerror")], console


async def test_swagger_ui_renders_offline(live_server: LiveServer, offline_page: Page) -> None:
    response = await offline_page.goto(f"{live_server.url}/docs")

    assert response is not None
    assert response.status == 200
    await offline_page.wait_for_selector('[data-path="/auth/jwt/login"]', timeout=20_000)
    operations = await offline_page.locator(".opblock").count()
    assert operations >= 10
    await offline_page.locator('[data-path="/users/me"]').first.click()
    await offline_page.wait_for_selector("text=Try it out", timeout=10_000)
    await screenshot(offline_page, "docs-swagger-ui")


async def test_redoc_renders_offline(live_server: LiveServer, offline_page: Page) -> None:
    response = await offline_page.goto(f"{live_server.url}/redoc")

    assert response is not None
    assert response.status == 200
    await offline_page.locator("h2", has_text="Auth:Jwt.Login").wait_for(timeout=20_000)
    await screenshot(offline_page, "docs-redoc")


# --- the QR code of a TOTP enrolment -----------------------------------------------------------


async def test_the_enrolment_qr_code_renders_and_decodes_to_the_uri(
    api: httpx.AsyncClient, page: Page
) -> None:
    """The SVG from `POST /users/me/mfa/totp` displays in Chromium and reads back as its URI."""
    await register(api, "qr@example.com")
    tokens = await api.post(
        "/auth/jwt/login", data={"username": "qr@example.com", "password": PASSWORD}
    )
    enrolment = await api.post(
        "/users/me/mfa/totp",
        json={"current_password": PASSWORD},
        headers={"Authorization": f"Bearer {tokens.json()['access_token']}"},
    )
    assert enrolment.status_code == 200, enrolment.text
    svg, uri = enrolment.json()["qr_svg"], enrolment.json()["otpauth_uri"]

    # As a client shows it: the SVG document as an image, on a white page.
    source = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
    await page.set_content(
        f'<body style="margin:0;background:#fff"><img id="qr" src="{source}" width="360"></body>'
    )
    image = page.locator("#qr")
    assert await image.evaluate("img => img.complete && img.naturalWidth > 0")
    shot = await image.screenshot()
    (SCREENSHOTS / "mfa-qr.png").parent.mkdir(exist_ok=True)
    (SCREENSHOTS / "mfa-qr.png").write_bytes(shot)

    [found] = zxingcpp.read_barcodes(PIL.Image.open(io.BytesIO(shot)))
    assert found.format == zxingcpp.BarcodeFormat.QRCode
    assert found.text == uri
