"""HTTP hygiene: the client IP behind proxies, security headers, the body-size limit and CORS."""

import re
from collections.abc import AsyncIterator
from ipaddress import ip_network
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from app.security import API_HEADERS, client_ip
from tests.conftest import PASSWORD, assert_error, with_settings

# The database does not matter here; the pure tests name `backend` only for this mark.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

PROXIES = [ip_network("10.0.0.0/8"), ip_network("2001:db8::/32")]


def request_from(peer: str | None, forwarded_for: list[str]) -> Request:
    """A request as the app sees it: the socket peer and its `X-Forwarded-For` headers."""
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded_for]
    client = None if peer is None else (peer, 50000)
    return Request({"type": "http", "headers": headers, "client": client})


@pytest.mark.usefixtures("backend")
@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        ("203.0.113.9", [], "203.0.113.9"),
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),
        ("10.0.0.5", [], "10.0.0.5"),
        ("10.0.0.5", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.5", ["1.2.3.4, 198.51.100.1"], "198.51.100.1"),
        ("10.0.0.5", ["1.2.3.4", "198.51.100.1"], "198.51.100.1"),
        ("10.0.0.5", ["198.51.100.1, 10.0.0.7"], "198.51.100.1"),
        ("10.0.0.5", ["10.0.0.9, 10.0.0.7"], "10.0.0.9"),
        ("10.0.0.5", ["1.2.3.4, garbage"], "10.0.0.5"),
        ("10.0.0.5", ["garbage, 198.51.100.1"], "198.51.100.1"),
        ("10.0.0.5", [" 2001:DB8::1 , 2001:db9::5 "], "2001:db9::5"),
        ("2001:db8::7", ["198.51.100.1"], "198.51.100.1"),
        ("testclient", ["198.51.100.1"], "testclient"),
        (None, ["198.51.100.1"], "unknown"),
    ],
    ids=[
        "direct", "untrusted-peer-spoofs", "proxy-without-header", "proxy", "client-prepends",
        "two-headers", "proxy-chain", "all-trusted", "broken-hop", "garbage-left-of-client",
        "ipv6", "ipv6-proxy", "not-an-ip", "no-peer",
    ],
)  # fmt: skip
def test_client_ip(peer: str | None, forwarded_for: list[str], expected: str) -> None:
    assert client_ip(request_from(peer, forwarded_for), PROXIES) == expected


@pytest.mark.usefixtures("backend")
def test_client_ip_without_trusted_proxies_is_the_peer() -> None:
    assert client_ip(request_from("10.0.0.5", ["198.51.100.1"]), []) == "10.0.0.5"


# --- security headers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/users/me"),
        ("POST", "/auth/jwt/login"),
        ("POST", "/auth/register"),
        ("GET", "/openapi.json"),
        ("GET", "/no-such-route"),
    ],
)
async def test_security_headers_on_every_response(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)

    for name, value in API_HEADERS.items():
        assert response.headers[name] == value, name


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
async def test_docs_pages_load_scripts_from_the_service_only(
    client: httpx.AsyncClient, path: str
) -> None:
    """No CDN and no inline script (tests/test_browser.py renders them offline)."""
    response = await client.get(path)

    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "http" not in policy
    assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert "<script>" not in response.text
    for asset in re.findall(r'(?:src|href)="(/[^"]+)"', response.text):
        assert (await client.get(asset)).status_code == 200, asset


@with_settings(docs_enabled=False)
@pytest.mark.parametrize(
    "path", ["/docs", "/redoc", "/openapi.json", "/docs/assets/swagger-ui.css"]
)
async def test_docs_can_be_switched_off(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 404


async def test_a_token_response_is_not_cached(client: httpx.AsyncClient, user: Any) -> None:
    response = await client.post(
        "/auth/jwt/login", data={"username": user.email, "password": PASSWORD}
    )

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"


# --- body-size limit -----------------------------------------------------------------------


def register_body(size: int) -> bytes:
    """A registration body of exactly `size` bytes (padded inside a strong password)."""
    head, tail = b'{"email": "big@example.com", "password": "' + PASSWORD.encode(), b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def chunks(body: bytes, chunk_size: int = 4096) -> AsyncIterator[bytes]:
    """`body` in pieces, sent chunked without a `Content-Length`."""
    for start in range(0, len(body), chunk_size):
        yield body[start : start + chunk_size]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_over_the_limit_is_413(client: httpx.AsyncClient, chunked: bool) -> None:
    body = register_body(65536 + 1)
    content: Any = chunks(body) if chunked else body

    response = await client.post(
        "/auth/register", content=content, headers={"content-type": "application/json"}
    )

    assert_error(response, "REQUEST_BODY_TOO_LARGE", 413)
    assert "content-length" in response.request.headers or chunked


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_at_the_limit_reaches_the_route(
    client: httpx.AsyncClient, chunked: bool
) -> None:
    body = register_body(65536)
    content: Any = chunks(body) if chunked else body

    response = await client.post(
        "/auth/register", content=content, headers={"content-type": "application/json"}
    )

    assert response.status_code == 201, response.text


@with_settings(max_body_bytes=100)
async def test_the_body_limit_is_a_setting(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/register", content=register_body(101))

    assert_error(response, "REQUEST_BODY_TOO_LARGE", 413)


async def test_a_lying_content_length_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/register",
        content=b"{}",
        headers={"content-type": "application/json", "content-length": "999999"},
    )

    assert_error(response, "REQUEST_BODY_TOO_LARGE", 413)


# --- CORS ----------------------------------------------------------------------------------


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_no_cors_by_default(client: httpx.AsyncClient) -> None:
    response = await client.options("/auth/jwt/login", headers=preflight("https://app.example"))
    simple = await client.get("/openapi.json", headers={"Origin": "https://app.example"})

    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-origin" not in simple.headers


@with_settings(cors_origins=["https://app.example"])
async def test_cors_for_the_configured_origins(client: httpx.AsyncClient) -> None:
    allowed = await client.options("/auth/jwt/login", headers=preflight("https://app.example"))
    other = await client.options("/auth/jwt/login", headers=preflight("https://evil.example"))
    simple = await client.get("/openapi.json", headers={"Origin": "https://app.example"})

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in allowed.headers
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers
    assert simple.headers["access-control-allow-origin"] == "https://app.example"
    assert simple.headers["x-content-type-options"] == "nosniff"


# --- malformed bodies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/auth/forgot-password", "/auth/request-verify-token", "/auth/register"]
)
@pytest.mark.parametrize("content", [b"\xff\xfe\xfd", b'{"email": "\xe9@example.com"}'])
async def test_a_body_that_is_not_utf8_is_422(
    client: httpx.AsyncClient, path: str, content: bytes
) -> None:
    response = await client.post(
        path, content=content, headers={"content-type": "application/json"}
    )

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["type"] == "json_invalid"


async def test_other_http_errors_keep_their_answer(client: httpx.AsyncClient) -> None:
    response = await client.get("/no-such-route")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


async def test_a_405_names_every_method_of_its_path(client: httpx.AsyncClient) -> None:
    """OPTIONS, or any method a path lacks, is 405 with `Allow` listing what the path serves."""
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert paths, "the OpenAPI has no paths"
    for path, operations in paths.items():
        url = path.replace("{id}", "00000000-0000-4000-8000-000000000000")
        documented = {method.upper() for method in operations}
        for method in ("OPTIONS", "PUT", "TRACE") if "PUT" not in documented else ("OPTIONS",):
            response = await client.request(method, url)

            assert response.status_code == 405, (method, path)
            allowed = {m.strip() for m in response.headers["allow"].split(",")}
            assert allowed == documented, (method, path, allowed)
            assert response.json() == {"detail": "Method Not Allowed"}


async def test_a_405_on_a_path_with_one_route_is_as_before(client: httpx.AsyncClient) -> None:
    response = await client.get("/auth/register")

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
