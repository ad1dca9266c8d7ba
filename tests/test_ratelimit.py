"""Rate limits on the auth routes, per client IP and per account, in memory and in Redis.

Every test runs once with in-memory counters and once with the real Redis server
(`TEST_REDIS_URL`, by default redis://127.0.0.1:6379/0) under a key prefix of its own,
whose keys are deleted afterwards. On CI (`CI=true`) an unreachable Redis fails the run;
elsewhere the Redis variants are skipped with the reason. The database does not matter
here, so only SQLite is used.
"""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from ipaddress import ip_network
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI

from app import ratelimit
from app.models import UserDB
from app.ratelimit import RateLimited, RateLimiter
from app.settings import Settings
from tests.conftest import PASSWORD, TcpRelay, assert_error, free_port

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
GENEROUS = "1000/minute"
LIMIT_SETTINGS = [name for name in Settings.model_fields if name.startswith("rate_limit_")]
LIMIT_SETTINGS.remove("rate_limit_key_prefix")


@dataclass
class Storage:
    """Where a test's counters live: memory, or Redis under `prefix`."""

    redis_url: str | None
    prefix: str

    def keys(self) -> list[bytes]:
        """The Redis keys of this test."""
        assert self.redis_url is not None
        with redis.Redis.from_url(self.redis_url) as server:
            return list(server.scan_iter(match=f"{self.prefix}:*"))


def redis_reachable_or_skip(url: str) -> None:
    """Skip (or on CI, fail) when Redis does not answer."""
    try:
        with redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) as server:
            server.ping()
    except redis.RedisError as exc:
        reason = f"redis at {url} is unreachable: {exc!r}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> Iterator[Storage]:
    """Each storage in turn; a Redis test's keys are deleted afterwards."""
    prefix = f"test-ratelimit-{os.getpid()}-{uuid.uuid4().hex}"
    if request.param == "memory":
        yield Storage(None, prefix)
        return
    redis_reachable_or_skip(TEST_REDIS_URL)
    found = Storage(TEST_REDIS_URL, prefix)
    yield found
    with redis.Redis.from_url(TEST_REDIS_URL) as server:
        for key in server.scan_iter(match=f"{prefix}:*"):
            server.delete(key)


@pytest.fixture
def limits(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings a test asks for with `with_limits(...)`; every other limit is generous."""
    overrides: dict[str, Any] = getattr(request, "param", {})
    return overrides


def with_limits(**overrides: Any) -> pytest.MarkDecorator:
    """Run the test with these rate-limit settings."""
    return pytest.mark.parametrize("limits", [overrides], indirect=True, ids=["limits"])


@pytest.fixture
def settings(settings: Settings, storage: Storage, limits: dict[str, Any]) -> Settings:
    """The test settings with rate limits on, in `storage`."""
    values: dict[str, Any] = dict.fromkeys(LIMIT_SETTINGS, GENEROUS)
    values |= {
        "rate_limits_enabled": True,
        "redis_url": storage.redis_url,
        "rate_limit_key_prefix": storage.prefix,
    }
    return settings.model_copy(update=values | limits)


ClientAt = Callable[[str], httpx.AsyncClient]


@pytest.fixture
async def client_at(app: FastAPI, client: httpx.AsyncClient) -> AsyncIterator[ClientAt]:
    """`client_at(ip)`: a client whose socket peer is `ip` (the app is already started)."""
    async with AsyncExitStack() as stack:

        def make(ip: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(ip, 50000))
            http = httpx.AsyncClient(transport=transport, base_url="http://test")
            stack.push_async_callback(http.aclose)
            return http

        yield make


Send = Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]]


def post_json(path: str, body: Callable[[str], dict[str, str]]) -> Send:
    """A request to `path` with the JSON `body(email)`."""

    async def send(http: httpx.AsyncClient, email: str) -> httpx.Response:
        return await http.post(path, json=body(email))

    return send


async def login(http: httpx.AsyncClient, email: str) -> httpx.Response:
    return await http.post("/auth/jwt/login", data={"username": email, "password": "wrong guess"})


ROUTES: dict[str, Send] = {
    "login": login,
    "register": post_json("/auth/register", lambda e: {"email": e, "password": PASSWORD}),
    "forgot_password": post_json("/auth/forgot-password", lambda e: {"email": e}),
    "request_verify_token": post_json("/auth/request-verify-token", lambda e: {"email": e}),
    "verify": post_json("/auth/verify", lambda e: {"token": f"not-a-token-{e}"}),
    "reset_password": post_json(
        "/auth/reset-password", lambda e: {"token": f"not-a-token-{e}", "password": PASSWORD}
    ),
    "refresh": post_json("/auth/jwt/refresh", lambda e: {"refresh_token": f"not-a-token-{e}"}),
}
ACCOUNT_ROUTES = ["login", "register", "forgot_password", "request_verify_token"]


def post_form(path: str, form: Callable[[str], dict[str, str]]) -> Send:
    """A request to `path` with the form `form(email)`."""

    async def send(http: httpx.AsyncClient, email: str) -> httpx.Response:
        return await http.post(path, data=form(email))

    return send


async def verify_page(http: httpx.AsyncClient, email: str) -> httpx.Response:
    return await http.get("/verify", params={"token": f"not-a-token-{email}"})


# The pages the mailed links open, and the limit each shares with its API route.
PAGES: dict[str, tuple[str, Send]] = {
    "verify page": ("verify", verify_page),
    "reset-password page": (
        "reset_password",
        post_form(
            "/reset-password",
            lambda e: {"token": f"x-{e}", "password": PASSWORD, "password_confirm": PASSWORD},
        ),
    ),
    "new verify link page": (
        "request_verify_token",
        post_form("/verify/new-link", lambda e: {"email": e}),
    ),
    "new reset link page": (
        "forgot_password",
        post_form("/reset-password/new-link", lambda e: {"email": e}),
    ),
}


def assert_limited(response: httpx.Response, window_seconds: int = 60) -> None:
    """`response` is a 429 with a code and a sensible `Retry-After`."""
    assert_error(response, "TOO_MANY_REQUESTS", 429)
    assert 1 <= int(response.headers["retry-after"]) <= window_seconds


def assert_not_limited(response: httpx.Response) -> None:
    """`response` went through to the route (whatever the route answered)."""
    assert response.status_code not in (429, 500), response.text


# --- per IP --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "limits"),
    [(route, {f"rate_limit_{route}_per_ip": "3/minute"}) for route in ROUTES],
    indirect=["limits"],
    ids=list(ROUTES),
)
async def test_per_ip_limit_answers_429_after_n(
    client_at: ClientAt, storage: Storage, route: str
) -> None:
    send = ROUTES[route]
    first, other = client_at("192.0.2.1"), client_at("192.0.2.2")

    for i in range(3):
        assert_not_limited(await send(first, f"person{i}@example.com"))
    limited = await send(first, "person9@example.com")
    elsewhere = await send(other, "person9@example.com")

    assert_limited(limited)
    assert_not_limited(elsewhere)
    if storage.redis_url is not None:
        assert storage.keys(), "the counts live in Redis"


@pytest.mark.parametrize(
    ("page", "limits"),
    [(page, {f"rate_limit_{route}_per_ip": "3/minute"}) for page, (route, _) in PAGES.items()],
    indirect=["limits"],
    ids=list(PAGES),
)
async def test_pages_share_the_limit_of_their_api_route(client_at: ClientAt, page: str) -> None:
    route, send_page = PAGES[page]
    first = client_at("192.0.2.1")

    for i in range(2):
        assert_not_limited(await ROUTES[route](first, f"person{i}@example.com"))
    assert_not_limited(await send_page(first, "person2@example.com"))
    limited = await send_page(first, "person9@example.com")

    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60


@with_limits(rate_limit_login_per_ip="3/minute")
async def test_per_ip_limit_leaves_other_routes_alone(client_at: ClientAt) -> None:
    first = client_at("192.0.2.1")
    for i in range(3):
        await login(first, f"person{i}@example.com")
    assert_limited(await login(first, "person9@example.com"))

    response = await first.post("/auth/forgot-password", json={"email": "person9@example.com"})

    assert response.status_code == 202


# --- per account ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "limits"),
    [(route, {f"rate_limit_{route}_per_account": "3/minute"}) for route in ACCOUNT_ROUTES],
    indirect=["limits"],
    ids=ACCOUNT_ROUTES,
)
async def test_per_account_limit_holds_across_ips_and_letter_cases(
    client_at: ClientAt, route: str
) -> None:
    send = ROUTES[route]
    spellings = ["victim@example.com", "Victim@Example.com", "VICTIM@EXAMPLE.COM"]

    for i, spelling in enumerate(spellings):
        assert_not_limited(await send(client_at(f"198.51.100.{i}"), spelling))
    limited = await send(client_at("198.51.100.99"), "victim@example.com")
    other_account = await send(client_at("198.51.100.99"), "someone.else@example.com")

    assert_limited(limited)
    assert_not_limited(other_account)


@pytest.mark.parametrize(
    ("route", "limits"),
    [(route, {f"rate_limit_{route}_per_account": "3/minute"}) for route in ACCOUNT_ROUTES],
    indirect=["limits"],
    ids=ACCOUNT_ROUTES,
)
async def test_per_account_limit_holds_across_unicode_spellings(
    client_at: ClientAt, route: str
) -> None:
    """Fullwidth letters, punycode, NFD and upper case all count against one account."""
    send = ROUTES[route]
    spellings = [
        "victim@xn--bcher-kva.example",
        "VICTIM@BÜCHER.EXAMPLE",
        "\uff56\uff49\uff43\uff54\uff49\uff4d@\uff42\u00fc\uff43\uff48\uff45\uff52.example",
    ]

    for i, spelling in enumerate(spellings):
        assert_not_limited(await send(client_at(f"198.51.100.{i}"), spelling))
    limited = await send(client_at("198.51.100.99"), "victim@bu\u0308cher.example")
    look_alike = await send(client_at("198.51.100.99"), "vict\u0456m@b\u00fccher.example")

    assert_limited(limited)
    assert_not_limited(look_alike)  # a Cyrillic i (U+0456) is another account


@with_limits(rate_limit_login_per_ip="2/minute", rate_limit_login_per_account="3/minute")
async def test_requests_refused_per_ip_do_not_use_up_the_account(client_at: ClientAt) -> None:
    attacker, owner = client_at("203.0.113.66"), client_at("198.51.100.7")
    for _ in range(2):
        assert_not_limited(await login(attacker, "owner@example.com"))
    for _ in range(5):
        assert_limited(await login(attacker, "owner@example.com"))

    # Two of the account's three attempts are used: the owner still gets one.
    assert_not_limited(await login(owner, "owner@example.com"))
    assert_limited(await login(owner, "owner@example.com"))


@with_limits(rate_limit_login_per_ip="3/minute")
async def test_the_owner_logs_in_when_an_attacker_is_blocked(
    client_at: ClientAt, user: UserDB
) -> None:
    attacker, owner = client_at("203.0.113.66"), client_at("198.51.100.7")
    for _ in range(6):
        await login(attacker, user.email)

    response = await owner.post(
        "/auth/jwt/login", data={"username": user.email, "password": PASSWORD}
    )

    assert response.status_code == 200, response.text


# --- windows, settings, bodies -------------------------------------------------------------


@with_limits(rate_limit_login_per_ip="2/second")
async def test_limit_resets_after_the_window(client_at: ClientAt) -> None:
    first = client_at("192.0.2.1")
    for _ in range(2):
        assert_not_limited(await login(first, "a@example.com"))
    assert_limited(await login(first, "a@example.com"), window_seconds=1)

    await asyncio.sleep(1.1)

    assert_not_limited(await login(first, "a@example.com"))


@with_limits(rate_limits_enabled=False, rate_limit_login_per_ip="1/minute")
async def test_limits_can_be_switched_off(client_at: ClientAt) -> None:
    first = client_at("192.0.2.1")

    responses = [await login(first, "a@example.com") for _ in range(5)]

    assert [r.status_code for r in responses] == [400] * 5


@with_limits(rate_limit_login_per_ip="", rate_limit_login_per_account="")
async def test_an_empty_limit_is_no_limit(client_at: ClientAt) -> None:
    first = client_at("192.0.2.1")

    responses = [await login(first, "a@example.com") for _ in range(5)]

    assert [r.status_code for r in responses] == [400] * 5


@with_limits(rate_limit_register_per_ip="5/minute", rate_limit_register_per_account="1/minute")
@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b'{"email": 12, "password": "x"}', "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"email=a%40example.com", "application/x-www-form-urlencoded"),
        (b"--x\r\nbroken", "multipart/form-data; boundary=x"),
    ],
    ids=["broken-json", "json-list", "email-not-a-string", "not-utf8", "form", "broken-multipart"],
)
async def test_malformed_bodies_still_get_422(
    client_at: ClientAt, content: bytes, content_type: str
) -> None:
    first = client_at("192.0.2.1")

    for _ in range(2):
        response = await first.post(
            "/auth/register", content=content, headers={"content-type": content_type}
        )
        assert response.status_code in (400, 422), response.text


# --- client IP behind proxies --------------------------------------------------------------


@with_limits(rate_limit_login_per_ip="3/minute")
async def test_spoofed_forwarded_for_is_ignored(client_at: ClientAt) -> None:
    untrusted = client_at("203.0.113.9")
    for i in range(3):
        response = await untrusted.post(
            "/auth/jwt/login",
            data={"username": f"a{i}@example.com", "password": "guess"},
            headers={"X-Forwarded-For": f"10.9.8.{i}"},
        )
        assert_not_limited(response)

    rotated = await untrusted.post(
        "/auth/jwt/login",
        data={"username": "b@example.com", "password": "guess"},
        headers={"X-Forwarded-For": "10.9.8.77"},
    )

    assert_limited(rotated)


@with_limits(rate_limit_login_per_ip="3/minute", trusted_proxies=[ip_network("10.0.0.0/24")])
async def test_trusted_proxy_forwarded_for_is_honoured(client_at: ClientAt) -> None:
    proxy = client_at("10.0.0.5")

    async def via_proxy(forwarded_for: str) -> httpx.Response:
        return await proxy.post(
            "/auth/jwt/login",
            data={"username": "a@example.com", "password": "guess"},
            headers={"X-Forwarded-For": forwarded_for},
        )

    for i in range(3):
        # What the client wrote left of the proxy's own entry changes nothing.
        assert_not_limited(await via_proxy(f"172.16.0.{i}, 198.51.100.1"))
    assert_limited(await via_proxy("198.51.100.1"))
    assert_not_limited(await via_proxy("198.51.100.2"))


# --- Redis ---------------------------------------------------------------------------------


def limiter_settings(storage: Storage, **limits: Any) -> Settings:
    """Settings for a `RateLimiter` of its own."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=storage.redis_url,
        rate_limit_key_prefix=storage.prefix,
        **limits,
    )


@pytest.mark.usefixtures("backend")  # (this module runs on SQLite only)
@pytest.mark.parametrize("storage", ["redis"], indirect=True)
async def test_instances_share_counts_through_redis(storage: Storage) -> None:
    settings = limiter_settings(storage, rate_limit_login_per_ip="2/minute")
    first, second = RateLimiter(settings), RateLimiter(settings)
    try:
        await first.hit("login", "192.0.2.1", None)
        await second.hit("login", "192.0.2.1", None)
        with pytest.raises(RateLimited):
            await first.hit("login", "192.0.2.1", None)
        assert storage.keys(), "the counts live in Redis"
    finally:
        await first.aclose()
        await second.aclose()


@pytest.mark.usefixtures("backend")  # (this module runs on SQLite only)
@pytest.mark.parametrize("storage", ["redis"], indirect=True)
async def test_redis_going_away_mid_run_keeps_requests_limited(
    storage: Storage, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counts move to memory when Redis disappears (no error, still a limit), and back."""
    monkeypatch.setattr(ratelimit, "STORAGE_RETRY_INTERVAL", 0.2)
    assert storage.redis_url is not None
    relay = TcpRelay(storage.redis_url)
    settings = limiter_settings(storage, rate_limit_login_per_ip="3/minute")
    settings.redis_url = await relay.start()
    limiter = RateLimiter(settings)
    try:
        for _ in range(2):
            await limiter.hit("login", "192.0.2.1", None)
        assert storage.keys(), "the first hits were counted in Redis"

        await relay.cut()

        # Memory starts counting afresh: three more, then the limit holds again.
        for _ in range(3):
            await limiter.hit("login", "192.0.2.1", None)
        with pytest.raises(RateLimited):
            await limiter.hit("login", "192.0.2.1", None)

        await relay.start(relay.port)
        await asyncio.sleep(0.3)

        # Redis again: its count (2 of 3) allows one more, where memory would refuse.
        await limiter.hit("login", "192.0.2.1", None)
        with pytest.raises(RateLimited):
            await limiter.hit("login", "192.0.2.1", None)
    finally:
        await limiter.aclose()
        await relay.cut()
    assert "Rate-limit storage unreachable, counting in memory" in caplog.text


@pytest.mark.parametrize("storage", ["memory"], indirect=True)
@with_limits(redis_url=f"redis://127.0.0.1:{free_port()}/0", rate_limit_login_per_ip="3/minute")
async def test_unreachable_redis_falls_back_to_memory_limits(
    client_at: ClientAt, caplog: pytest.LogCaptureFixture
) -> None:
    """With Redis gone, requests are still served, and still limited (per process)."""
    http = client_at("192.0.2.1")

    served = [await login(http, "a@example.com") for _ in range(3)]
    limited = await login(http, "a@example.com")

    assert [r.status_code for r in served] == [400] * 3
    assert_limited(limited)
    assert "Rate-limit storage unreachable, counting in memory" in caplog.text


async def test_openapi_documents_429_on_the_limited_routes(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    for path in [
        "/auth/jwt/login", "/auth/jwt/refresh", "/auth/register", "/auth/forgot-password",
        "/auth/verify",
    ]:  # fmt: skip
        assert "429" in paths[path]["post"]["responses"], path
    assert "429" not in paths["/users/me"]["get"]["responses"]
