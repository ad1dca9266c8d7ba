"""Fixtures: settings -> app from the factory -> client through its lifespan, on each database.

Every database-backed test runs on SQLite, PostgreSQL and MariaDB. The schema is built
once per database by `aerich upgrade` (the migrations, not `generate_schemas`), and
rows are cleared before each test. On CI (`CI=true`) an unreachable server fails the
run; elsewhere its tests are skipped with the reason.
"""

import asyncio
import contextlib
import io
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import asyncmy
import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from playwright.async_api import Browser, async_playwright
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.contrib.fastapi import RegisterTortoise

from app.app import create_app
from app.db import tortoise_config
from app.link_requests import LinkRequests
from app.logs import JsonFormatter, make_handler
from app.mail import Mailer
from app.models import AuditEvent, User, UserCreate, UserDB
from app.settings import Settings
from app.user_db import TortoiseUserDatabase
from app.users import UserManager

ROOT = Path(__file__).resolve().parent.parent
AERICH = str(Path(sys.executable).with_name("aerich"))
SERVER_URLS = {
    "postgres": os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432"),
    "mysql": os.environ.get("TEST_MYSQL_URL", "mysql://root:@127.0.0.1:3306"),
}
PASSWORD = "correct horse battery staple"
TEST_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
# The httpx client's base URL, so the links in mails can be followed by the client.
TEST_PUBLIC_URL = "http://test"


@dataclass
class Backend:
    """One database server (or SQLite in a folder) that tests can make databases on."""

    kind: str
    server_url: str
    created: list[str] = field(default_factory=list)

    def url(self, name: str) -> str:
        """The DATABASE_URL of database `name` on this backend."""
        if self.kind == "sqlite":
            return f"sqlite://{self.server_url}/{name}.sqlite3"
        return f"{self.server_url}/{name}"

    def recreate(self, name: str) -> str:
        """Drop database `name` if it exists, create it empty and return its URL.

        Names get this process's id, so concurrent test runs on one server never meet.
        """
        name = f"{name}_{os.getpid()}"
        self.drop(name)
        if self.kind != "sqlite":
            asyncio.run(self._run_admin([self._create(name)]))
        self.created.append(name)
        return self.url(name)

    def drop(self, name: str) -> None:
        """Drop database `name` (as `recreate` named it) if it exists."""
        if self.kind == "sqlite":
            Path(self.server_url, f"{name}.sqlite3").unlink(missing_ok=True)
        else:
            asyncio.run(self._run_admin([f"DROP DATABASE IF EXISTS {name}"]))

    def _create(self, name: str) -> str:
        if self.kind == "mysql":
            return f"CREATE DATABASE {name} CHARACTER SET utf8mb4"
        return f"CREATE DATABASE {name}"

    async def _run_admin(self, statements: list[str]) -> None:
        parts = urlsplit(self.server_url)
        if self.kind == "postgres":
            conn = await asyncpg.connect(
                host=parts.hostname, port=parts.port, user=parts.username,
                password=parts.password, database="postgres", timeout=5,
            )  # fmt: skip
            try:
                for statement in statements:
                    await conn.execute(statement)
            finally:
                await conn.close()
        else:
            mysql = await asyncmy.connect(
                host=parts.hostname, port=parts.port or 3306, user=parts.username,
                password=parts.password or "", connect_timeout=5,
            )  # fmt: skip
            try:
                async with mysql.cursor() as cursor:
                    for statement in statements:
                        await cursor.execute(statement)
            finally:
                mysql.close()

    def check_reachable(self) -> None:
        """Skip (or on CI, fail) when the server does not answer."""
        if self.kind == "sqlite":
            return
        try:
            asyncio.run(self._run_admin(["SELECT 1"]))
        except (OSError, asyncpg.PostgresError, asyncmy.errors.Error) as exc:
            reason = f"{self.kind} at {self.server_url} is unreachable: {exc!r}"
            if os.environ.get("CI") == "true":
                pytest.fail(reason)
            pytest.skip(reason)


def child_environment(bytecode_cache: Path) -> dict[str, str]:
    """The current environment for a child Python, sharing one bytecode cache.

    A child that may not write .pyc files (PYTHONDONTWRITEBYTECODE) compiles every module
    it imports, doubling each run; the cache lives in pytest's temporary folder.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(bytecode_cache)
    return env


@pytest.fixture(scope="session")
def bytecode_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bytecode cache for child Pythons, apart from the repository and the venv."""
    return tmp_path_factory.getbasetemp() / "pycache"


@dataclass
class Aerich:
    """The `aerich` command line, run on a given DATABASE_URL as an operator would run it."""

    bytecode_cache: Path

    def __call__(
        self, database_url: str, *args: str, cwd: Path = ROOT
    ) -> subprocess.CompletedProcess[str]:
        """Run `aerich *args`; it never waits for an answer."""
        env = {**child_environment(self.bytecode_cache), "DATABASE_URL": database_url}
        return subprocess.run(  # noqa: S603 (our own venv's aerich, fixed arguments)
            [AERICH, *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    def upgrade(self, database_url: str, *options: str) -> subprocess.CompletedProcess[str]:
        """`aerich [options] upgrade`, which must succeed."""
        result = self(database_url, *options, "upgrade")
        assert result.returncode == 0, result.stdout + result.stderr
        return result


@pytest.fixture(scope="session")
def aerich(bytecode_cache: Path) -> Aerich:
    """Runs the `aerich` command line."""
    return Aerich(bytecode_cache)


@pytest.fixture(scope="session", params=["sqlite", "postgres", "mysql"])
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """Each database kind in turn; the databases tests made on it are dropped afterwards."""
    kind: str = request.param
    server = str(tmp_path_factory.mktemp("sqlite")) if kind == "sqlite" else SERVER_URLS[kind]
    found = Backend(kind, server)
    found.check_reachable()
    yield found
    for name in set(found.created):
        found.drop(name)


@pytest.fixture(scope="session")
def database_url(backend: Backend, aerich: Aerich) -> str:
    """A database whose schema was built by `aerich upgrade`, shared by a session."""
    url = backend.recreate("fastapi_users_test")
    aerich.upgrade(url)
    return url


@contextlib.contextmanager
def served_app(env: dict[str, str], port: int, ready_path: str) -> Iterator[str]:
    """`uvicorn app.app:app` on loopback `port` with `env`, once `ready_path` answers 200."""
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(  # noqa: S603 (this interpreter's uvicorn, fixed arguments)
        [sys.executable, "-m", "uvicorn", "app.app:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}{ready_path}", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, "uvicorn exited during start-up"
            time.sleep(0.05)
        else:
            raise AssertionError("uvicorn did not answer within 10 s")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=15)


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def chromium_path() -> str:
    """Debian's chromium (installed by `make test`); skipped without it, failed on CI."""
    found = shutil.which("chromium")
    if found is None:
        reason = "chromium is not installed (apt-get install chromium, or run `make test`)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, launched by Playwright (never a downloaded browser)."""
    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_FLAGS, headless=True
        )
        yield launched
        await launched.close()


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Inbox:
    """What the in-process SMTP server received (an aiosmtpd handler)."""

    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Keep the mail; aiosmtpd calls this from its own thread and loop."""
        # Lines arrive with the wire's CRLF; the message is kept with Python's newlines.
        content = cast(bytes, envelope.original_content or envelope.content).replace(b"\r\n", b"\n")
        self.messages.append(cast(EmailMessage, message_from_bytes(content, policy=policy.default)))
        return "250 Message accepted for delivery"

    async def wait_for(self, count: int, within: float = 15) -> list[EmailMessage]:
        """The mails once `count` have arrived (for senders on another loop or process)."""
        for _ in range(int(within / 0.05)):
            if len(self.messages) >= count:
                return list(self.messages)
            await asyncio.sleep(0.05)
        raise AssertionError(f"{count} mails expected within {within}s, got {self.messages}")


@dataclass
class SMTPServer:
    """An aiosmtpd server on a loopback port, running in its own thread."""

    inbox: Inbox
    port: int


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SMTPServer]:
    """A real SMTP server in this process, shared by the session."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield SMTPServer(inbox, controller.port)
    controller.stop()


@pytest.fixture
def overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings a test asks for with `@with_settings(...)`; none by default."""
    values: dict[str, Any] = getattr(request, "param", {})
    return values


def with_settings(**values: Any) -> pytest.MarkDecorator:
    """Run the test with these settings on top of the test settings."""
    return pytest.mark.parametrize("overrides", [values], indirect=True, ids=["settings"])


@pytest.fixture
def settings(
    database_url: str, tmp_path: Path, smtp_server: SMTPServer, overrides: dict[str, Any]
) -> Settings:
    """Test settings: the migrated database, cheap password hashing, mail over real SMTP."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="development",
        database_url=database_url,
        secret=TEST_SECRET,
        dev_secret_file=tmp_path / "dev-secret",
        log_level="info",
        password_hash_time_cost=1,
        password_hash_memory_cost=8,
        password_hash_parallelism=1,
        public_url=TEST_PUBLIC_URL,
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        smtp_tls="none",
        mail_from="Accounts <accounts@example.org>",
        mail_retry_delay_seconds=0.01,
        # The functional tests make many requests from one client; tests/test_ratelimit.py
        # turns the limits on.
        rate_limits_enabled=False,
    ).model_copy(update=overrides)


def forget_cached_sql() -> None:
    """Drop Tortoise's process-wide SQL cache, keyed by connection name, not dialect.

    A service talks to one database for its whole life; the tests switch dialects
    under the same connection name, so each test starts without the last one's SQL.
    """
    EXECUTOR_CACHE.clear()


async def clear_rows() -> None:
    """Delete every user and audit event, leaving the migrated schema in place."""
    await User.all().delete()
    await AuditEvent.all().delete()


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[None]:
    """Tortoise connected to the test database, without the app, rows cleared."""
    forget_cached_sql()
    async with RegisterTortoise(config=tortoise_config(settings)):
        await clear_rows()
        yield


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """The service, built by the same factory production uses."""
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app through its lifespan, on a clean database."""
    forget_cached_sql()
    async with LifespanManager(app) as manager:
        await clear_rows()
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


@dataclass
class Mailbox:
    """The mails the app under test delivered to the in-process SMTP server."""

    inbox: Inbox
    mailer: Mailer
    link_requests: LinkRequests

    async def messages(self) -> list[EmailMessage]:
        """Every mail delivered so far, once no link request is queued and no mail under way."""
        await self.link_requests.join()
        await self.mailer.wait_idle()
        return list(self.inbox.messages)

    async def only_message(self) -> EmailMessage:
        """The one mail delivered so far."""
        messages = await self.messages()
        assert len(messages) == 1, [(m["To"], m["Subject"]) for m in messages]
        return messages[0]

    def clear(self) -> None:
        """Forget the mails received so far."""
        self.inbox.messages.clear()


@pytest.fixture
def mailbox(app: FastAPI, smtp_server: SMTPServer) -> Mailbox:
    """The app's mails as the SMTP server received them, starting empty."""
    smtp_server.inbox.messages.clear()
    return Mailbox(smtp_server.inbox, app.state.mailer, app.state.link_requests)


def text_of(message: EmailMessage) -> str:
    """The plain-text part of a mail."""
    part = message.get_body(("plain",))
    assert part is not None
    return cast(str, part.get_content())


def html_of(message: EmailMessage) -> str:
    """The HTML part of a mail."""
    part = message.get_body(("html",))
    assert part is not None
    return cast(str, part.get_content())


def link_in(message: EmailMessage, public_url: str = TEST_PUBLIC_URL) -> str:
    """The one link to the service at `public_url` in the mail's text part."""
    links = [word for word in text_of(message).split() if word.startswith(f"{public_url}/")]
    assert len(links) == 1, text_of(message)
    return links[0]


def token_in(message: EmailMessage) -> str:
    """The token of the one link in the mail."""
    [token] = parse_qs(urlsplit(link_in(message)).query)["token"]
    return token


CreateUser = Callable[..., Awaitable[UserDB]]


@pytest.fixture
def create_user(client: httpx.AsyncClient, app: FastAPI, settings: Settings) -> CreateUser:
    """Make a user through the user manager: `await create_user(email, **fields)`."""

    async def create(email: str = "user@example.com", **fields: Any) -> UserDB:
        manager = UserManager(
            TortoiseUserDatabase(), settings, app.state.password_hasher, app.state.mailer
        )
        return await manager.create(UserCreate(email=email, password=PASSWORD, **fields))

    return create


@pytest.fixture
async def user(create_user: CreateUser) -> UserDB:
    """An active, unverified regular user whose password is PASSWORD."""
    return await create_user("user@example.com")


@pytest.fixture
async def superuser(create_user: CreateUser) -> UserDB:
    """An active, verified superuser whose password is PASSWORD."""
    return await create_user("admin@example.com", is_superuser=True, is_verified=True)


Login = Callable[[str], Awaitable[dict[str, str]]]


@pytest.fixture
def login(client: httpx.AsyncClient) -> Login:
    """Log in through the API: `await login(email)` returns the bearer headers."""

    async def log_in(email: str, password: str = PASSWORD) -> dict[str, str]:
        response = await client.post(
            "/auth/jwt/login", data={"username": email, "password": password}
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    return log_in


@pytest.fixture
async def auth_headers(user: UserDB, login: Login) -> dict[str, str]:
    """Bearer headers of `user`."""
    return await login(user.email)


@pytest.fixture
async def superuser_headers(superuser: UserDB, login: Login) -> dict[str, str]:
    """Bearer headers of `superuser`."""
    return await login(superuser.email)


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No setting from the real environment or a `.env` leaks into a test about settings.

    The working directory is an empty temporary folder.
    """
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def assert_error(
    response: httpx.Response, code: str, status: int = 400, error: str | None = None
) -> None:
    """`response` is FastAPI Users' error `code` (`{"detail": code}`) with `status`.

    The token routes add RFC 6749's `error` (`invalid_grant`, ...): pass it as `error`.
    """
    assert response.status_code == status, response.text
    expected = {"detail": code} if error is None else {"detail": code, "error": error}
    assert response.json() == expected


class TcpRelay:
    """A TCP relay to a server that can be cut, as if the server went away mid-run."""

    def __init__(self, target_url: str, default_port: int = 6379) -> None:
        parts = urlsplit(target_url)
        self.scheme = parts.scheme
        self.userinfo = parts.netloc.rpartition("@")[0]
        self.target = (parts.hostname or "127.0.0.1", parts.port or default_port)
        self.path = parts.path
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self, port: int = 0) -> str:
        """Listen on `port` (any free one by default); returns the target URL via the relay."""
        self.server = await asyncio.start_server(self.relay, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]
        userinfo = f"{self.userinfo}@" if self.userinfo else ""
        return f"{self.scheme}://{userinfo}127.0.0.1:{self.port}{self.path}"

    async def relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, upstream_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    async def cut(self) -> None:
        """Stop listening and drop every connection."""
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()


# What must never appear in a log line: the test password and secret, a JWT, a bearer
# header, a link token, a whole e-mail address (the mailer logs `***@domain`).
SECRET_PATTERNS = [
    re.compile(re.escape(PASSWORD)),
    re.compile(re.escape(TEST_SECRET)),
    re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"),
    re.compile(r"Bearer [A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"token=[A-Za-z0-9._-]{8,}"),
    re.compile(r"[0-9a-f-]{36}\.[0-9]+\.[A-Za-z0-9_-]{43}"),  # a refresh token
    re.compile(r"mfa_[A-Za-z0-9_-]{43}"),  # the mfa_token of a login's second step
    re.compile(r"(?<![*A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+"),
]
# The mail addresses the settings themselves name (the sender), which may be logged.
LOGGABLE_ADDRESSES = {"accounts@example.org", "noreply@localhost"}


def leaks_in(line: str) -> list[str]:
    """The secrets found in one formatted log line."""
    found = []
    for pattern in SECRET_PATTERNS:
        for match in pattern.finditer(line):
            if match.group(0) not in LOGGABLE_ADDRESSES:
                found.append(match.group(0))
    return found


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test: no log record, formatted as the service writes it, holds a secret.

    The development mailer's whole-mail record (`whole_mail`, only without SMTP_HOST, which
    production requires) is the one place a link is logged, by design.
    """
    yield
    formatter = JsonFormatter()
    leaks = []
    for record in caplog.get_records("setup") + caplog.get_records("call"):
        if getattr(record, "whole_mail", False):
            continue
        line = formatter.format(record)
        leaks += [(record.name, leak) for leak in leaks_in(line)]
    assert not leaks, f"secrets in the log: {leaks}"


@dataclass
class LogLines:
    """The service's own log output (handler from `app.logs.make_handler`), line by line."""

    stream: io.StringIO

    def json(self) -> list[dict[str, Any]]:
        """Every line written so far, parsed as JSON."""
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]


@pytest.fixture
def log_lines(settings: Settings) -> Iterator[LogLines]:
    """The JSON lines the service writes while the test runs (LOG_FORMAT=json)."""
    stream = io.StringIO()
    handler = make_handler(settings.model_copy(update={"log_format": "json"}), stream)
    app_logger = logging.getLogger("app")
    app_logger.addHandler(handler)
    try:
        yield LogLines(stream)
    finally:
        app_logger.removeHandler(handler)
