"""The provider sign-in's browser flow in headless Chromium, against a real OpenID provider.

The service runs as a uvicorn process and panva's oidc-provider as a node process, both
on loopback. Chromium follows the link to `/auth/corp/page`, signs in and consents at
the provider, and lands on the front-end URL with the token pair in the fragment.
"""

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.async_api import Browser

from tests.conftest import TEST_SECRET, Aerich, Backend, child_environment, free_port, served_app
from tests.oidc_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    OIDCProvider,
    redirect_uris,
    start_provider,
)
from tests.test_browser import screenshot


@pytest.fixture(scope="module")
def service_port() -> int:
    """The port the service will listen on (the provider must know its redirect URIs)."""
    return free_port()


@pytest.fixture(scope="module")
def provider(service_port: int) -> Iterator[OIDCProvider]:
    """oidc-provider with the live service's redirect URIs."""
    with start_provider(redirect_uris(f"http://127.0.0.1:{service_port}", "corp")) as started:
        yield started


@pytest.fixture(scope="module")
def service(
    service_port: int,
    provider: OIDCProvider,
    aerich: Aerich,
    bytecode_cache: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """`uvicorn app.app:app` with the provider `corp`, on a migrated SQLite file."""
    database_url = Backend("sqlite", str(tmp_path_factory.mktemp("oauth"))).url("live")
    aerich.upgrade(database_url)
    url = f"http://127.0.0.1:{service_port}"
    providers = [{"name": "corp", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                  "discovery_url": provider.discovery_url}]  # fmt: skip
    env = {
        **child_environment(bytecode_cache),
        "ENVIRONMENT": "development", "DATABASE_URL": database_url, "SECRET": TEST_SECRET,
        "PUBLIC_URL": url, "LOG_LEVEL": "warning", "RATE_LIMITS_ENABLED": "false",
        "OAUTH_PROVIDERS": json.dumps(providers),
        # Any page of ours will do as the front end: the fragment is what matters.
        "OAUTH_FRONTEND_URL": f"{url}/health/live",
        "PASSWORD_HASH_TIME_COST": "1", "PASSWORD_HASH_MEMORY_COST": "8",
    }  # fmt: skip
    with served_app(env, service_port, "/health/live") as served:
        yield served


async def test_chromium_signs_in_with_the_provider(service: str, browser: Browser) -> None:
    """Link, provider login and consent forms, our hand-off page, the front end's fragment."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{service}/auth/corp/page")
    assert page.url.startswith(f"http://127.0.0.1:{urlsplit(page.url).port}/interaction/")
    await page.fill("input[name=login]", "alice")
    await page.fill("input[name=password]", "any")
    await screenshot(page, "oauth-provider-login")
    await page.click("button[type=submit]")
    await page.click("button[type=submit]")  # the consent form
    await page.wait_for_url(f"{service}/health/live#*")
    fields = {name: values[0] for name, values in parse_qs(urlsplit(page.url).fragment).items()}
    await context.close()
    assert fields["status"] == "200"
    assert fields["token_type"] == "bearer"
    async with httpx.AsyncClient(base_url=service) as api:
        me = await api.get(
            "/users/me", headers={"Authorization": f"Bearer {fields['access_token']}"}
        )
        assert me.json()["email"] == "alice@example.com"
        assert me.json()["is_verified"] is True
        refreshed = await api.post(
            "/auth/jwt/refresh", json={"refresh_token": fields["refresh_token"]}
        )
        assert refreshed.status_code == 200
