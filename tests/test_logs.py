"""Logs: the access line (JSON and text), request ids from header to mail, no query strings."""

import io
import logging
import re
from datetime import datetime

import httpx
import pytest
from _pytest.logging import LogCaptureHandler

from app.logs import make_handler
from app.models import UserDB
from app.settings import Settings
from tests.conftest import LogLines, Mailbox, token_in, with_settings

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


def access_lines(log_lines: LogLines) -> list[dict[str, object]]:
    """The access lines written so far."""
    return [line for line in log_lines.json() if line["logger"] == "app.access"]


async def test_access_line_in_json_has_every_field(
    client: httpx.AsyncClient, user: UserDB, auth_headers: dict[str, str], log_lines: LogLines
) -> None:
    response = await client.get(
        "/authenticated-route",
        headers={**auth_headers, "X-Request-ID": "req-42.abc", "User-Agent": "probe/1"},
    )

    [line] = access_lines(log_lines)
    assert response.headers["x-request-id"] == "req-42.abc"
    assert line["level"] == "info"
    assert line["request_id"] == "req-42.abc"
    assert line["method"] == "GET"
    assert line["route"] == "/authenticated-route"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["client_ip"] == "127.0.0.1"
    assert line["user_id"] == str(user.id)
    assert datetime.fromisoformat(str(line["time"])).utcoffset() is not None


async def test_anonymous_request_has_no_user_and_templated_route(
    client: httpx.AsyncClient, user: UserDB, log_lines: LogLines
) -> None:
    await client.get(f"/users/{user.id}")

    [line] = access_lines(log_lines)
    assert line["route"] == "/users/{id}"
    assert line["status"] == 401
    assert "user_id" not in line


@pytest.mark.parametrize(
    "sent",
    ["has space", "x" * 129, "naïve", "a\tb", ""],
    ids=["space", "long", "utf8", "tab", "empty"],
)
async def test_malformed_request_id_is_replaced(
    client: httpx.AsyncClient, log_lines: LogLines, sent: str
) -> None:
    response = await client.get("/health/live", headers={"X-Request-ID": sent.encode("utf-8")})

    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])


async def test_request_id_is_generated_when_absent(client: httpx.AsyncClient) -> None:
    first = await client.get("/health/live")
    second = await client.get("/health/live")

    assert GENERATED_ID.fullmatch(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_request_id_follows_the_request_into_the_mail_log(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox, log_lines: LogLines
) -> None:
    """The reset mail is sent after the answer, in a task of its own: its line has the id."""
    response = await client.post(
        "/auth/forgot-password", json={"email": user.email}, headers={"X-Request-ID": "trace-7"}
    )
    await mailbox.only_message()

    assert response.status_code == 202
    lines = [line for line in log_lines.json() if line["request_id"] == "trace-7"]
    loggers = {str(line["logger"]) for line in lines}
    sent = [line for line in lines if str(line["message"]).startswith("Sent ")]
    assert {"app.access", "app.users", "app.mail"} <= loggers
    assert len(sent) == 1
    assert "***@example.com" in str(sent[0]["message"])
    assert user.email not in str(log_lines.json())


async def test_query_strings_are_never_logged(
    client: httpx.AsyncClient, user: UserDB, mailbox: Mailbox, log_lines: LogLines
) -> None:
    await client.post("/auth/forgot-password", json={"email": user.email})
    token = token_in(await mailbox.only_message())

    await client.get("/reset-password", params={"token": token})

    assert token not in "".join(str(line) for line in log_lines.json())
    assert "/reset-password" in [line["route"] for line in access_lines(log_lines)]


@with_settings(access_log=False)
async def test_access_log_can_be_turned_off(client: httpx.AsyncClient, log_lines: LogLines) -> None:
    response = await client.get("/openapi.json")

    assert access_lines(log_lines) == []
    assert response.headers["x-request-id"]


async def test_text_format_carries_the_request_id(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    stream = io.StringIO()
    handler = make_handler(settings.model_copy(update={"log_format": "text"}), stream)
    logging.getLogger("app").addHandler(handler)
    try:
        await client.get("/openapi.json", headers={"X-Request-ID": "text-1"})
    finally:
        logging.getLogger("app").removeHandler(handler)

    [line] = stream.getvalue().splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO app\.access \[text-1\] "
        r"GET /openapi\.json 200 [\d.]+ms client=127\.0\.0\.1 user=-",
        line,
    ), line


def test_log_format_defaults_by_environment() -> None:
    development = Settings(_env_file=None)  # type: ignore[call-arg]
    production = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="production",
        smtp_host="mail.example.com",
        public_url="https://users.example.com",
        mail_from="noreply@example.com",
    )

    assert development.log_format_or_default == "text"
    assert production.log_format_or_default == "json"
    assert Settings(_env_file=None, log_format="JSON").log_format == "json"  # type: ignore[call-arg]


def test_uvicorn_access_log_is_silenced_when_ours_is_on(client: httpx.AsyncClient) -> None:
    """uvicorn logs access only when its logger has handlers; ours leaves it none.

    (pytest itself attaches its capture handlers to loggers that do not propagate.)
    """
    uvicorn_access = logging.getLogger("uvicorn.access")
    handlers = [h for h in uvicorn_access.handlers if not isinstance(h, LogCaptureHandler)]

    assert handlers == []
    assert uvicorn_access.propagate is False
