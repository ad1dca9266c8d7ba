"""The link-request queue: forgot-password and request-verify-token answer before any lookup.

The lookup, the token and the mail happen in the app's own task (app/link_requests.py),
which the lifespan starts and, at shutdown, drains within the mail grace period.
"""

import asyncio
import logging

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app import link_requests
from app.link_requests import LinkKind, LinkRequests
from app.models import UserCreate
from app.user_db import TortoiseUserDatabase
from app.users import UserManager
from tests.conftest import PASSWORD, SMTPServer, clear_rows, forget_cached_sql


async def test_the_answer_comes_before_the_lookup(
    client: httpx.AsyncClient, app: FastAPI, smtp_server: SMTPServer
) -> None:
    """The route only queues: the request is still queued when the 202 arrives."""
    queue: LinkRequests = app.state.link_requests
    smtp_server.inbox.messages.clear()
    worker = queue.worker
    assert worker is not None
    worker.cancel()  # hold the queue still, to look at it
    await asyncio.gather(worker, return_exceptions=True)

    response = await client.post("/auth/forgot-password", json={"email": "a@example.com"})

    assert response.status_code == 202
    kind, email, request, _ = queue.queue.get_nowait()
    assert (kind, email) == ("reset_password", "a@example.com")
    assert request is not None
    assert request.url.path == "/auth/forgot-password"
    queue.queue.task_done()


@pytest.mark.parametrize(
    ("path", "subject"),
    [
        ("/auth/forgot-password", "Reset your password"),
        ("/auth/request-verify-token", "Verify your e-mail address"),
    ],
)
async def test_shutdown_sends_what_is_still_queued(
    app: FastAPI, smtp_server: SMTPServer, path: str, subject: str
) -> None:
    smtp_server.inbox.messages.clear()
    forget_cached_sql()
    async with LifespanManager(app) as manager:
        await clear_rows()
        state = app.state
        await UserManager(
            TortoiseUserDatabase(), state.settings, state.password_hasher, state.mailer
        ).create(UserCreate(email="queued@example.com", password=PASSWORD))
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            assert (await http.post(path, json={"email": "queued@example.com"})).status_code == 202

    [mail] = smtp_server.inbox.messages
    assert mail["Subject"] == subject
    assert state.link_requests.worker is None


async def test_a_failing_request_does_not_stop_the_ones_after_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handled: list[str] = []

    async def send_link(kind: LinkKind, email: str, request: object) -> None:
        if email == "broken@example.com":
            raise RuntimeError("the database went away")
        handled.append(email)

    queue = LinkRequests()
    queue.start(send_link)
    for email in ("first@example.com", "broken@example.com", "last@example.com"):
        queue.ask("verify", email)
    await queue.join()
    assert await queue.stop(1.0) > 0

    assert handled == ["first@example.com", "last@example.com"]
    assert "***@example.com" in caplog.text
    assert "broken@" not in caplog.text


async def test_a_full_queue_drops_and_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(link_requests, "QUEUE_SIZE", 2)
    queue = LinkRequests()  # not started: nothing drains it

    for i in range(3):
        queue.ask("reset_password", f"user{i}@example.com")

    assert queue.queue.qsize() == 2
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "queue full" in record.getMessage()
    assert "user2@" not in record.getMessage()


async def test_stop_gives_up_after_the_grace_period(caplog: pytest.LogCaptureFixture) -> None:
    async def slow(kind: LinkKind, email: str, request: object) -> None:
        await asyncio.sleep(60)

    queue = LinkRequests()
    queue.start(slow)
    queue.ask("verify", "a@example.com")
    queue.ask("verify", "b@example.com")

    assert await queue.stop(0.1) == 0.0

    assert "still queued at shutdown" in caplog.text
    assert queue.worker is None
