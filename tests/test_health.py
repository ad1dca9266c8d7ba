"""Start-up refuses pending migrations; `/health/live` and `/health/ready` answer as documented."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis
from aerich.models import Aerich
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from tortoise import connections
from tortoise.contrib.fastapi import RegisterTortoise

from app.app import create_app
from app.db import DatabaseNotReady, tortoise_config
from app.health import migration_files
from app.settings import Settings
from tests.conftest import (
    ROOT,
    Backend,
    LogLines,
    TcpRelay,
    child_environment,
    forget_cached_sql,
    free_port,
    leaks_in,
    with_settings,
)

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
READY = {"database": "ok", "migrations": "ok", "redis": "not_configured", "shutdown": "ok"}


async def test_live_answers_without_io(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"process": "ok"}}


async def test_ready_names_each_check(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": READY}


@with_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout_seconds=0.2)
async def test_ready_reports_redis_down_as_degraded(client: httpx.AsyncClient) -> None:
    """Rate limits fall back to memory: the instance stays in rotation and says why."""
    response = await client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "checks": {**READY, "redis": "fail"},
    }
    assert "127.0.0.1" not in response.text
    assert "redis://" not in response.text


@with_settings(redis_url=TEST_REDIS_URL)
async def test_ready_checks_redis_when_configured(client: httpx.AsyncClient) -> None:
    try:
        redis.Redis.from_url(TEST_REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"redis is unreachable: {exc!r}")
        pytest.skip(f"redis is unreachable: {exc!r}")

    response = await client.get("/health/ready")

    assert response.status_code == 200
    assert response.json()["checks"]["redis"] == "ok"


async def test_ready_is_503_when_the_database_is_gone(
    backend: Backend, settings: Settings, tmp_path: Path
) -> None:
    """SQLite: its folder removed; servers: the connection cut (through a relay)."""
    relay = None
    if backend.kind == "sqlite":
        folder = tmp_path / "gone"
        folder.mkdir()
        source = Path(settings.database_url.removeprefix("sqlite://"))
        shutil.copy(source, folder / "db.sqlite3")
        url = f"sqlite://{folder}/db.sqlite3"
    else:
        default_port = 5432 if backend.kind == "postgres" else 3306
        relay = TcpRelay(settings.database_url, default_port)
        url = await relay.start()
    app = create_app(settings.model_copy(update={"database_url": url}))
    forget_cached_sql()
    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                assert (await http.get("/health/ready")).status_code == 200

                if relay is not None:
                    await relay.cut()
                else:
                    await connections.get("default").close()
                    shutil.rmtree(folder)
                response = await http.get("/health/ready")
                live = await http.get("/health/live")
    finally:
        if relay is not None and relay.server.is_serving():
            await relay.cut()

    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "fail"
    assert response.json()["status"] == "unavailable"
    assert live.status_code == 200


async def test_ready_is_503_once_shutdown_begins(client: httpx.AsyncClient, app: FastAPI) -> None:
    app.state.health.shutting_down = True

    response = await client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["checks"]["shutdown"] == "shutting_down"


async def test_health_is_not_rate_limited_nor_logged_at_info(
    client: httpx.AsyncClient, log_lines: LogLines
) -> None:
    for _ in range(30):
        assert (await client.get("/health/ready")).status_code == 200
        assert (await client.get("/health/live")).status_code == 200
    await client.get("/openapi.json")

    routes = [line.get("route") for line in log_lines.json() if line["logger"] == "app.access"]
    assert routes == ["/openapi.json"]


async def test_startup_refuses_pending_migrations(settings: Settings) -> None:
    """A database without the latest migration: the start stops, naming it and the fix."""
    latest = migration_files()[-1]
    forget_cached_sql()
    async with RegisterTortoise(config=tortoise_config(settings)):
        applied = await Aerich.get(version=latest, app="models")
        content = applied.content
        await applied.delete()
    try:
        with pytest.raises(DatabaseNotReady, match=rf"lacks migration {latest}.*aerich upgrade"):
            async with LifespanManager(create_app(settings)):
                pass
    finally:
        forget_cached_sql()
        async with RegisterTortoise(config=tortoise_config(settings)):
            await Aerich.create(version=latest, app="models", content=content)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sigterm_turns_readiness_off_before_the_server_stops(
    backend: Backend, settings: Settings, tmp_path: Path, bytecode_cache: Path
) -> None:
    """A real uvicorn: after SIGTERM, /health/ready is 503 for SHUTDOWN_DRAIN_SECONDS."""
    port = free_port()
    env = {
        **child_environment(bytecode_cache),
        "DATABASE_URL": settings.database_url,
        "SECRET": settings.jwt_secret,
        "DEV_SECRET_FILE": str(tmp_path / "dev-secret"),
        "SHUTDOWN_DRAIN_SECONDS": "3",
        "LOG_LEVEL": "warning",
    }
    output = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(  # noqa: S603 (this venv's uvicorn, fixed arguments)
        [sys.executable, "-m", "uvicorn", "app.app:app", "--port", str(port)],
        cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/health/ready"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(url, timeout=2).status_code == 200
                break
            except httpx.TransportError:
                assert server.poll() is None, "the server exited"
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)

        server.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        draining = httpx.get(url, timeout=2)

        assert draining.status_code == 503
        assert draining.json()["checks"]["shutdown"] == "shutting_down"
        # uvicorn re-raises the signal once it has shut down gracefully.
        assert server.wait(timeout=20) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        output.close()
    assert not leaks_in((tmp_path / "server.log").read_text())
