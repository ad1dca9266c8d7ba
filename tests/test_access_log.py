"""No mailed token reaches the server's log: a full mail flow against real uvicorn, log scanned.

The links in mails carry their token in the query (`/verify?token=...`); uvicorn's access
log and its ASGI trace mask every query value (`mask_query_in_access_log` in app/app.py).
The service runs as `uvicorn app.app:app` at uvicorn's most verbose level and as
`python main.py` at LOG_LEVEL=debug, with mail over real SMTP; the whole log is read.
"""

import html
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

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
)

HIDDEN_TOKEN = re.compile(r'<input type="hidden" name="token" value="([^"]*)">')


def start(command: list[str], env: dict[str, str], log: Path, url: str) -> subprocess.Popen[bytes]:
    """Start the server with stdout and stderr in `log`; return once it answers."""
    with log.open("wb") as out:
        server = subprocess.Popen(  # noqa: S603 (this interpreter, fixed arguments)
            command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    for _ in range(200):
        try:
            if httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        assert server.poll() is None, log.read_text()
        time.sleep(0.05)
    server.terminate()
    raise AssertionError("the server did not answer within 10 s")


@pytest.fixture(params=["uvicorn-trace", "main-debug"])
def served_log(
    request: pytest.FixtureRequest,
    smtp_server: SMTPServer,
    aerich: Aerich,
    bytecode_cache: Path,
    tmp_path: Path,
) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """A running server (its URL), the file its whole log goes to, and its process."""
    database_url = Backend("sqlite", str(tmp_path)).url("logged")
    aerich.upgrade(database_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **child_environment(bytecode_cache),
        "ENVIRONMENT": "development", "DATABASE_URL": database_url, "SECRET": TEST_SECRET,
        "PUBLIC_URL": url, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_server.port),
        "SMTP_TLS": "none", "MAIL_FROM": "accounts@example.org", "LOG_LEVEL": "debug",
        "PASSWORD_HASH_TIME_COST": "1", "PASSWORD_HASH_MEMORY_COST": "8",
        "HOST": "127.0.0.1", "PORT": str(port), "RATE_LIMITS_ENABLED": "false",
    }  # fmt: skip
    if request.param == "uvicorn-trace":
        command = [sys.executable, "-m", "uvicorn", "app.app:app", "--host", "127.0.0.1",
                   "--port", str(port), "--log-level", "trace"]  # fmt: skip
    else:
        command = [sys.executable, "main.py"]
    log = tmp_path / "server.log"
    server = start(command, env, log, url)
    try:
        yield url, log, server
    finally:
        server.terminate()
        server.wait(timeout=15)


def token_of(link: str) -> str:
    [token] = parse_qs(urlsplit(link).query)["token"]
    return token


async def test_no_mailed_token_reaches_the_log(
    served_log: tuple[str, Path, subprocess.Popen[bytes]], smtp_server: SMTPServer
) -> None:
    url, log, server = served_log
    inbox = smtp_server.inbox
    inbox.messages.clear()
    email = "logged@example.com"
    async with httpx.AsyncClient(base_url=url) as http:
        registered = await http.post("/auth/register", json={"email": email, "password": PASSWORD})
        assert registered.status_code == 201
        # Verification: the link opened, then its page's button.
        assert (await http.post("/auth/request-verify-token", json={"email": email})).is_success
        verify_link = link_in((await inbox.wait_for(1))[0], url)
        page = await http.get(verify_link)
        assert page.status_code == 200
        [hidden] = HIDDEN_TOKEN.findall(page.text)
        assert (await http.post("/verify", data={"token": html.unescape(hidden)})).is_success
        # Reset: the link opened, then the form.
        assert (await http.post("/auth/forgot-password", json={"email": email})).is_success
        reset_link = link_in((await inbox.wait_for(2))[1], url)
        form = await http.get(reset_link)
        assert form.status_code == 200
        new_password = "another entirely new passphrase"
        fields = {"token": token_of(reset_link), "password": new_password,
                  "password_confirm": new_password}  # fmt: skip
        assert (await http.post("/reset-password", data=fields)).is_success
        # The same links again, now spent or verified, and through the JSON API.
        assert (await http.get(reset_link)).status_code == 400
        await http.post("/auth/verify", json={"token": token_of(verify_link)})
    await inbox.wait_for(3)  # "Your password was changed"
    server.terminate()
    server.wait(timeout=15)

    text = log.read_text()
    tokens = [token_of(verify_link), token_of(reset_link)]
    for token in tokens:
        signature = token.rsplit(".", 1)[-1]
        assert token not in text
        assert signature not in text
    # The log did record these requests, with the query masked.
    assert "GET /verify?token=*** HTTP/1.1" in text
    assert "GET /reset-password?token=*** HTTP/1.1" in text
