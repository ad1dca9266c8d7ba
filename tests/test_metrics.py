"""`GET /metrics`: who may read it, and the values moving as requests happen (1 and 2 workers)."""

import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from ipaddress import ip_network
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from app.models import UserDB
from app.settings import Settings
from tests.conftest import (
    PASSWORD,
    ROOT,
    Backend,
    Mailbox,
    child_environment,
    free_port,
    leaks_in,
    with_settings,
)

METRICS_TOKEN = "scrape-token-0123456789"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    """One sample's value, 0 when it is absent."""
    return samples(text).get((name, frozenset(labels.items())), 0.0)


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


async def test_metrics_are_off_by_default(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 404


@with_settings(metrics_enabled=True)
async def test_without_token_only_loopback_reads_metrics(client_at: ClientAt) -> None:
    local = await client_at("127.0.0.1").get("/metrics")
    remote = await client_at("203.0.113.9").get("/metrics")

    assert local.status_code == 200
    assert local.headers["content-type"].startswith("text/plain")
    assert "http_requests_total" in local.text
    assert remote.status_code == 404


@with_settings(metrics_enabled=True, trusted_proxies=[ip_network("10.0.0.0/8")])
async def test_trusted_network_reads_metrics_but_not_clients_forwarded_by_it(
    client_at: ClientAt,
) -> None:
    scraper = await client_at("10.1.2.3").get("/metrics")
    through_proxy = await client_at("10.1.2.3").get(
        "/metrics", headers={"X-Forwarded-For": "198.51.100.7"}
    )

    assert scraper.status_code == 200
    assert through_proxy.status_code == 404


@with_settings(metrics_enabled=True, metrics_token=SecretStr(METRICS_TOKEN))
async def test_with_token_a_bearer_is_required_from_anywhere(client_at: ClientAt) -> None:
    remote, local = client_at("203.0.113.9"), client_at("127.0.0.1")

    missing = await local.get("/metrics")
    wrong = await remote.get("/metrics", headers={"Authorization": "Bearer nope"})
    right = await remote.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})

    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert right.status_code == 200


@with_settings(metrics_enabled=True)
async def test_metrics_move_with_requests(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str], mailbox: Mailbox
) -> None:
    before = (await client.get("/metrics")).text

    for _ in range(3):
        assert (await client.get("/users/me", headers=auth_headers)).status_code == 200
    await client.get(f"/users/{user.id}", headers=auth_headers)  # 403: not a superuser
    await client.post("/auth/jwt/login", data={"username": user.email, "password": "wrong"})
    await client.post("/auth/jwt/login", data={"username": user.email, "password": PASSWORD})
    await client.post("/auth/forgot-password", json={"email": user.email})
    await mailbox.only_message()
    after = (await client.get("/metrics")).text

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("http_requests_total", method="GET", route="/users/me", status="200") == 3
    assert moved("http_requests_total", method="GET", route="/users/{id}", status="403") == 1
    assert moved("http_request_duration_seconds_count", route="/users/me") == 3
    assert moved("http_request_duration_seconds_sum", route="/users/me") > 0
    assert moved("auth_logins_total", outcome="success") == 1
    assert moved("auth_logins_total", outcome="bad_credentials") == 1
    assert moved("password_verify_duration_seconds_count") == 2
    assert moved("mails_total", outcome="sent") == 1


@with_settings(metrics_enabled=True, refresh_reuse_grace_seconds=0)
async def test_session_refreshes_reuse_and_revocations_are_counted(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox
) -> None:
    before = (await client.get("/metrics")).text
    form = {"username": user.email, "password": PASSWORD}
    first = (await client.post("/auth/jwt/login", data=form)).json()
    second = (await client.post("/auth/jwt/login", data=form)).json()

    rotated = await client.post("/auth/jwt/refresh", json={"refresh_token": first["refresh_token"]})
    reused = await client.post("/auth/jwt/refresh", json={"refresh_token": first["refresh_token"]})
    logout = await client.post(
        "/auth/jwt/logout", headers={"Authorization": f"Bearer {second['access_token']}"}
    )
    after = (await client.get("/metrics")).text

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert [rotated.status_code, reused.status_code, logout.status_code] == [200, 400, 204]
    assert moved("session_refreshes_total") == 1
    assert moved("session_refresh_reuse_total") == 1
    assert moved("session_revocations_total", reason="refresh_reuse") == 1
    assert moved("session_revocations_total", reason="logout") == 1


@with_settings(metrics_enabled=True, rate_limits_enabled=True, rate_limit_login_per_ip="1/minute")
async def test_rate_limit_refusals_and_inactive_logins_are_counted(
    client_at: ClientAt, create_user: Callable[..., object]
) -> None:
    inactive = await create_user("off@example.com", is_active=False)  # type: ignore[misc]
    local = client_at("127.0.0.1")
    before = (await local.get("/metrics")).text
    form = {"username": inactive.email, "password": PASSWORD}

    first = await client_at("192.0.2.1").post("/auth/jwt/login", data=form)
    second = await client_at("192.0.2.1").post("/auth/jwt/login", data=form)
    after = (await local.get("/metrics")).text

    assert first.status_code == 400
    assert second.status_code == 429
    assert (
        value(after, "auth_logins_total", outcome="inactive")
        - value(before, "auth_logins_total", outcome="inactive")
        == 1
    )
    assert (
        value(after, "auth_logins_total", outcome="rate_limited")
        - value(before, "auth_logins_total", outcome="rate_limited")
        == 1
    )
    assert (
        value(after, "rate_limit_refusals_total", route="login", scope="ip")
        - value(before, "rate_limit_refusals_total", route="login", scope="ip")
        == 1
    )


@with_settings(metrics_enabled=True)
async def test_unknown_methods_and_paths_mint_no_series(client: httpx.AsyncClient) -> None:
    for n in range(5):
        await client.request("BREW", f"/no-such-page-{n}")
    text = (await client.get("/metrics")).text

    assert "no-such-page" not in text
    assert "BREW" not in text
    assert value(text, "http_requests_total", method="other", route="unmatched", status="404") >= 5


def served_by_worker(multiproc_dir: Path) -> list[float]:
    """How many `/openapi.json` requests each worker counted, from its own values file."""
    return [
        sum(
            count
            for key, count, *_ in MmapedDict.read_all_values_from_file(str(path))
            if '"/openapi.json"' in key and '"http_requests_total"' in key
        )
        for path in multiproc_dir.glob("counter_*.db")
    ]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_two_workers_share_their_metrics(
    backend: Backend, settings: Settings, tmp_path: Path, bytecode_cache: Path
) -> None:
    """`uvicorn --workers 2` with PROMETHEUS_MULTIPROC_DIR: every scrape counts both."""
    database = tmp_path / "db.sqlite3"
    shutil.copy(settings.database_url.removeprefix("sqlite://"), database)
    multiproc_dir = tmp_path / "prometheus"
    multiproc_dir.mkdir()
    port = free_port()
    env = {
        **child_environment(bytecode_cache),
        "DATABASE_URL": f"sqlite://{database}",
        "SECRET": settings.jwt_secret,
        "DEV_SECRET_FILE": str(tmp_path / "dev-secret"),
        "METRICS_ENABLED": "true",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir),
        "LOG_FORMAT": "json",
    }
    log_path = tmp_path / "server.log"
    with log_path.open("w") as output:
        server = subprocess.Popen(  # noqa: S603 (this venv's uvicorn, fixed arguments)
            [sys.executable, "-m", "uvicorn", "app.app:app", "--port", str(port),
             "--workers", "2"],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(f"{base}/health/live", timeout=2, headers={"Connection": "close"})
                    break
                except httpx.TransportError:
                    assert server.poll() is None, log_path.read_text()
                    assert time.monotonic() < deadline, "the workers did not start"
                    time.sleep(0.2)
            # Each request on a new connection, so both workers take some (in batches
            # until each has, as the kernel shares the connections out).
            made = 0
            while made < 600:
                for _ in range(30):
                    response = httpx.get(f"{base}/openapi.json", headers={"Connection": "close"})
                    assert response.status_code == 200
                made += 30
                if sorted(served_by_worker(multiproc_dir))[-2] > 0:
                    break
            scrapes = [
                httpx.get(f"{base}/metrics", headers={"Connection": "close"}).text for _ in range(8)
            ]
        finally:
            server.terminate()
            server.wait(timeout=30)

    counts = {
        value(text, "http_requests_total", method="GET", route="/openapi.json", status="200")
        for text in scrapes
    }
    log = log_path.read_text()
    assert counts == {float(made)}
    assert sorted(served_by_worker(multiproc_dir))[-2] > 0, "one worker served all"
    assert '"route":"/openapi.json"' in log
    assert not leaks_in(log)
