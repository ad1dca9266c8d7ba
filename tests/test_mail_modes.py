"""The service when mail cannot go out over SMTP: no SMTP_HOST (development), or a dead server."""

import logging

import httpx
import pytest

from app.models import UserDB
from app.settings import Settings
from tests.conftest import TEST_PUBLIC_URL, Mailbox, free_port


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The usual test settings with the changes the test names (indirect parametrization)."""
    return settings.model_copy(update=request.param)


@pytest.mark.parametrize("settings", [{"smtp_host": None}], indirect=True)
async def test_without_smtp_host_the_mail_is_logged_whole_and_its_link_works(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.mail")

    response = await client.post("/auth/forgot-password", json={"email": user.email})

    assert response.status_code == 202
    assert await mailbox.messages() == []
    [logged] = [r.getMessage() for r in caplog.records if "SMTP_HOST is not set" in r.getMessage()]
    assert "Subject: Reset your password" in logged
    assert f"To: {user.email}" in logged
    [link] = [
        word for word in logged.split() if word.startswith(f"{TEST_PUBLIC_URL}/reset-password")
    ]
    assert (await client.get(link)).status_code == 200


@pytest.mark.parametrize(
    "settings", [{"smtp_port": free_port(), "mail_send_attempts": 2}], indirect=True
)
@pytest.mark.parametrize("path", ["/auth/forgot-password", "/auth/request-verify-token"])
async def test_a_dead_smtp_server_costs_the_client_nothing_and_is_logged_redacted(
    client: httpx.AsyncClient,
    user: UserDB,
    mailbox: Mailbox,
    caplog: pytest.LogCaptureFixture,
    path: str,
) -> None:
    caplog.set_level(logging.INFO, logger="app.mail")

    response = await client.post(path, json={"email": user.email})
    await mailbox.messages()  # waits for the mailer to give up

    assert response.status_code == 202
    assert response.json() is None
    failures = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelno for r in failures] == [logging.WARNING, logging.WARNING, logging.ERROR]
    assert "attempt 1 of 2" in failures[0].getMessage()
    assert "attempt 2 of 2" in failures[1].getMessage()
    assert all("***@example.com" in r.getMessage() for r in failures)
    assert not any(user.email in r.getMessage() for r in caplog.records)
