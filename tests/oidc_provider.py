"""A real OpenID provider for the OAuth tests: panva's oidc-provider (tests/oidc/) on loopback.

`start_provider` runs `node tests/oidc/provider.mjs` on a free port and waits for its
discovery document. `drive_login` signs in at it as a browser would, by plain HTTP:
it follows the redirects and submits oidc-provider's login and consent forms.
"""

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urljoin

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import ROOT, free_port

PROVIDER_DIR = ROOT / "tests" / "oidc"
# One signing key for every provider a run starts: an ID token of one issuer then has
# a signature the other's JWKS accepts, and only the `iss` check can tell them apart.
SIGNING_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ACCOUNTS = {
    "alice": {"email": "alice@example.com", "email_verified": True},
    "bob": {"email": "bob@example.com", "email_verified": True},
    "mallory": {"email": "victim@example.com", "email_verified": False},
    "victim": {"email": "victim@example.com", "email_verified": True},
    "carol": {"email": "carol@example.com", "email_verified": True},
}
CLIENT_ID = "fastapi-users-test"
CLIENT_SECRET = "a-client-secret-for-the-tests-only"


def node_or_skip() -> str:
    """Node with oidc-provider installed (`npm ci` in tests/oidc); skipped without, failed on CI."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        reason = "node and npm are needed for the OpenID provider of the OAuth tests"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        subprocess.run(  # noqa: S603 (npm, fixed arguments, the committed lock)
            [npm, "ci", "--no-audit", "--no-fund"], cwd=PROVIDER_DIR, check=True,
            stdin=subprocess.DEVNULL, capture_output=True, timeout=300,
        )  # fmt: skip
    return node


@dataclass
class OIDCProvider:
    """A running oidc-provider."""

    issuer: str

    @property
    def discovery_url(self) -> str:
        """Its discovery document."""
        return f"{self.issuer}/.well-known/openid-configuration"


def redirect_uris(public_url: str, provider_name: str) -> list[str]:
    """The three callbacks of one provider of the service at `public_url`."""
    base = f"{public_url}/auth/{provider_name}"
    return [f"{base}/callback", f"{base}/page/callback", f"{base}/associate/callback"]


@contextmanager
def start_provider(uris: list[str]) -> Iterator[OIDCProvider]:
    """oidc-provider on a free loopback port, with our client and `ACCOUNTS`."""
    node = node_or_skip()
    port = free_port()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(SIGNING_KEY))
    config = {
        "port": port,
        "jwk": {**jwk, "kid": "test-key", "alg": "RS256", "use": "sig"},
        "cookie_key": "cookie-key-for-the-tests-only",
        "clients": [
            {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": uris}
        ],
        "accounts": ACCOUNTS,
    }
    env = {**os.environ, "OIDC_TEST_CONFIG": json.dumps(config), "NODE_ENV": "development"}
    process = subprocess.Popen(  # noqa: S603 (node, our script)
        [node, "provider.mjs"], cwd=PROVIDER_DIR, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    provider = OIDCProvider(f"http://127.0.0.1:{port}")
    try:
        for _ in range(300):
            try:
                if httpx.get(provider.discovery_url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                assert process.stderr is not None
                raise AssertionError(f"oidc-provider exited: {process.stderr.read().decode()}")
            time.sleep(0.05)
        else:
            raise AssertionError("oidc-provider did not answer within 15 s")
        yield provider
    finally:
        process.terminate()
        process.wait(timeout=15)
        if process.stderr is not None:
            process.stderr.close()


FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*method="post"[^>]*>(.*?)</form>', re.S)
INPUT = re.compile(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', re.S)


def form_of(page: httpx.Response) -> tuple[str, dict[str, str]]:
    """The first POST form of a page: its absolute action and its hidden fields."""
    match = FORM.search(page.text)
    assert match, page.text
    action, body = match.groups()
    fields = {name: unescape(value) for name, value in INPUT.findall(body)}
    return urljoin(str(page.url), unescape(action)), fields


async def drive_login(
    browser: httpx.AsyncClient, authorization_url: str, login: str, stop_at: str
) -> str:
    """Sign in at the provider as `login` and give its consent; the URL it sends back to.

    `browser` keeps the provider's cookies; the first redirect to a URL starting with
    `stop_at` (the service) is returned, not followed.
    """
    response = await browser.get(authorization_url)
    for _ in range(30):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if location.startswith(stop_at):
                return location
            response = await browser.get(location)
            continue
        assert response.status_code == 200, response.text
        action, fields = form_of(response)
        if fields.get("prompt") == "login":
            fields |= {"login": login, "password": "any"}
        response = await browser.post(action, data=fields)
    raise AssertionError("the provider never sent the browser back")


class JSONServer:
    """A loopback HTTP server answering GET paths with fixed JSON (a stand-in document)."""

    def __init__(self, routes: dict[str, Any]) -> None:
        self.routes = routes
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps(served.routes.get(self.path)).encode()
                self.send_response(200 if self.path in served.routes else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
