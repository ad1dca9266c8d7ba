"""Two instances behind HAProxy on one PostgreSQL database and one Redis (issue 14).

`deploy/haproxy.cfg` runs as it is, its addresses set through the environment, in front
of two `uvicorn app.app:app` processes on loopback ports. Both reach PostgreSQL through
a TCP relay (so a test can cut the database away) and use a Redis server of this module
(so a test can stop it); the shared servers are never stopped. Each instance writes its
JSON access lines to a file, which tells which instance served what. Bounded: the whole
module runs in well under a minute on an idle machine.
"""

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.conftest import (
    PASSWORD,
    ROOT,
    SERVER_URLS,
    TEST_SECRET,
    Aerich,
    Backend,
    Inbox,
    TcpRelay,
    child_environment,
    free_port,
    link_in,
)

HAPROXY_CONFIG = ROOT / "deploy" / "haproxy.cfg"
STARTUP_SECONDS = 30
# The instances' SHUTDOWN_DRAIN_SECONDS: above the config's `inter 1s fall 2`.
DRAIN_SECONDS = 3
NEW_PASSWORD = "a different horse, battery and staple 42"
LOGIN_LIMIT_PER_ACCOUNT = 3
LIMITED_PER_IP = ("LOGIN", "REGISTER", "FORGOT_PASSWORD", "REQUEST_VERIFY_TOKEN", "VERIFY",
                  "RESET_PASSWORD", "REFRESH")  # fmt: skip


def program(name: str, *fallbacks: str) -> str:
    """The path of `name`, or skip (on CI: fail) when it is not installed."""
    found = shutil.which(name) or next(
        (path for path in fallbacks if os.access(path, os.X_OK)), None
    )
    if found is None:
        reason = f"{name} is not installed (Debian's package {name}; `make test` installs haproxy)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def wait_for(condition: Callable[[], bool], within: float, what: str) -> None:
    """Poll `condition` every 0.05 s until it holds; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within} s")
        time.sleep(0.05)


def answers(url: str, status: int = 200) -> bool:
    """Whether GET `url` answers `status` right now."""
    try:
        return httpx.get(url, timeout=2).status_code == status
    except httpx.TransportError:
        return False


def refuses_connections(port: int) -> bool:
    """Whether nothing listens on the loopback port any more."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@dataclass
class SlowInbox(Inbox):
    """The test SMTP server's handler, which can hold each mail until the test lets go."""

    # Set: mails go through; cleared: each waits (in aiosmtpd's thread) until it is set.
    released: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.released.set()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Wait until `released`, then keep the mail."""
        await asyncio.to_thread(self.released.wait, 30)
        return await super().handle_DATA(server, session, envelope)

    def mails_to(self, address: str, count: int = 1, within: float = 15) -> list[EmailMessage]:
        """The mails to `address`, once `count` have arrived."""

        def found() -> list[EmailMessage]:
            return [m for m in list(self.messages) if m["To"] == address]

        wait_for(lambda: len(found()) >= count, within, f"{count} mail(s) to {address}")
        return found()


class RelayThread:
    """conftest's `TcpRelay` on a loop of its own thread, so that sync tests can cut it."""

    def __init__(self, target_url: str) -> None:
        self.target_url = target_url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.url = self._run(self._start(0))

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    async def _start(self, port: int) -> str:
        self.relay = TcpRelay(self.target_url, default_port=5432)
        return await self.relay.start(port)

    def cut(self) -> None:
        """Drop every connection and refuse new ones, as a stopped server would."""
        self._run(self.relay.cut())

    def restore(self) -> None:
        """Listen again on the same port."""
        self._run(self._start(self.relay.port))

    def close(self) -> None:
        """Cut, then stop the thread's loop."""
        if self.relay.server.is_serving():
            self.cut()
        self._run(asyncio.sleep(0.1))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@dataclass
class RedisServer:
    """A redis-server of this module on a free port, without persistence, to stop at will."""

    executable: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        self.process = subprocess.Popen(  # noqa: S603 (Debian's redis-server, fixed arguments)
            [self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda: not refuses_connections(self.port), 10, "redis-server listening")

    def stop(self) -> None:
        """Stop it."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@dataclass
class Instance:
    """One `uvicorn app.app:app` process; its access lines go to `log`."""

    name: str
    env: dict[str, str]
    log_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        """Its own address, past the load balancer."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        """The log file of its current process."""
        return self.log_dir / f"{self.name}-{self.starts}.log"

    def start(self) -> None:
        """Start the process (without waiting for it)."""
        self.starts += 1
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 (this interpreter's uvicorn)
                [sys.executable, "-m", "uvicorn", "app.app:app", "--host", "127.0.0.1",
                 "--port", str(self.port), "--no-access-log", "--no-proxy-headers"],
                cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip

    def wait_ready(self) -> None:
        """Wait until its readiness answers 200."""

        def ready() -> bool:
            assert self.process is not None
            assert self.process.poll() is None, self.log.read_text()
            return answers(f"{self.url}/health/ready")

        wait_for(ready, STARTUP_SECONDS, f"{self.name} ready")

    def signal_stop(self) -> None:
        """SIGTERM (the instance drains, then stops)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM, and wait for the exit."""
        self.signal_stop()
        if self.process is not None:
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()  # a test that failed half-way can leave it waiting
                self.process.wait(5)
                raise
        self.process = None

    def access_lines(self, route: str | None = None) -> list[dict[str, Any]]:
        """The access lines (of `route`, or all) its current process wrote so far."""
        lines = []
        for text in self.log.read_text().splitlines():
            if text.startswith("{"):
                line = json.loads(text)
                if line.get("logger") == "app.access" and route in (None, line.get("route")):
                    lines.append(line)
        return lines


@dataclass
class Cluster:
    """HAProxy, two instances, their database (direct and relayed), Redis and SMTP."""

    lb: str
    a: Instance
    b: Instance
    database_url: str
    relay: RelayThread
    redis: RedisServer
    inbox: SlowInbox
    haproxy_log: Path

    def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """Run one statement on the test database directly (not through the relay)."""

        async def run() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(self.database_url, timeout=5)
            try:
                return await conn.fetch(query, *args)
            finally:
                await conn.close()

        return asyncio.run(run())

    def emails(self) -> set[str]:
        """Every account's address in the database."""
        return {row["email"] for row in self.sql('SELECT email FROM "user"')}

    def wait_healthy(self) -> None:
        """Both instances ready and each taking traffic from the load balancer.

        An instance a failed test left stopped is started again first.
        """
        for instance in (self.a, self.b):
            if instance.process is None or instance.process.poll() is not None:
                instance.start()
        for instance in (self.a, self.b):
            instance.wait_ready()

        def both_serve() -> bool:
            httpx.get(f"{self.lb}/authenticated-route", timeout=2)
            return all(i.access_lines("/authenticated-route") for i in (self.a, self.b))

        wait_for(both_serve, 15, "the load balancer sends to both instances")


@pytest.fixture(scope="module")
def cluster(
    aerich: Aerich, bytecode_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """The whole set-up, started once for the module on a database of its own."""
    haproxy = program("haproxy", "/usr/sbin/haproxy")
    redis_server = RedisServer(program("redis-server", "/usr/bin/redis-server"))
    backend = Backend("postgres", SERVER_URLS["postgres"])
    backend.check_reachable()
    database_url = backend.recreate("fastapi_users_scale")
    aerich.upgrade(database_url)
    folder = tmp_path_factory.mktemp("scale")
    inbox = SlowInbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    redis_server.start()
    relay = RelayThread(database_url)
    lb_port = free_port()
    lb = f"http://127.0.0.1:{lb_port}"
    env = {
        **child_environment(bytecode_cache),
        "ENVIRONMENT": "production",
        "DATABASE_URL": relay.url,
        "SECRET": TEST_SECRET,
        "PUBLIC_URL": lb,
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_COST": "8",
        "PASSWORD_HASH_PARALLELISM": "1",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "SMTP_TLS": "none",
        "MAIL_FROM": "Accounts <accounts@example.org>",
        "MAIL_RETRY_DELAY_SECONDS": "0.01",
        "REDIS_URL": redis_server.url,
        "TRUSTED_PROXIES": "127.0.0.1",
        "SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS),
        "REFRESH_REUSE_GRACE_SECONDS": "0",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "info",
        # Traffic comes from one address here; the per-account login limit is the one
        # the tests count across instances.
        **{f"RATE_LIMIT_{route}_PER_IP": "100000/minute" for route in LIMITED_PER_IP},
        "RATE_LIMIT_LOGIN_PER_ACCOUNT": f"{LOGIN_LIMIT_PER_ACCOUNT}/minute",
    }
    a, b = Instance("a", env, folder), Instance("b", env, folder)
    haproxy_log = folder / "haproxy.log"
    lb_process = None
    try:
        a.start()
        b.start()
        a.wait_ready()
        b.wait_ready()
        with haproxy_log.open("wb") as log:
            lb_process = subprocess.Popen(  # noqa: S603 (Debian's haproxy, our config)
                [haproxy, "-f", str(HAPROXY_CONFIG), "-db"],
                env={**os.environ, "LISTEN": f"127.0.0.1:{lb_port}",
                     "USERS_1": f"127.0.0.1:{a.port}", "USERS_2": f"127.0.0.1:{b.port}"},
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        found = Cluster(lb, a, b, database_url, relay, redis_server, inbox, haproxy_log)
        found.wait_healthy()
        yield found
    finally:
        if lb_process is not None:
            lb_process.terminate()
            lb_process.wait(10)
        for instance in (a, b):
            instance.signal_stop()
        for instance in (a, b):
            instance.stop()
        relay.close()
        redis_server.stop()
        smtp.stop()
        backend.drop(urlsplit(database_url).path.lstrip("/"))


@pytest.fixture
def healthy(cluster: Cluster) -> Cluster:
    """The cluster, both instances serving through the load balancer, mails arriving at once."""
    cluster.inbox.released.set()
    cluster.wait_healthy()
    return cluster


def register(http: httpx.Client, base: str, email: str) -> None:
    """Register `email` with PASSWORD at `base`."""
    response = http.post(f"{base}/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text


def log_in(http: httpx.Client, base: str, email: str) -> dict[str, str]:
    """Log in at `base`: the token pair."""
    response = http.post(f"{base}/auth/jwt/login", data={"username": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    tokens: dict[str, str] = response.json()
    return tokens


def bearer(tokens: dict[str, str]) -> dict[str, str]:
    """The Authorization header of a token pair."""
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def me(http: httpx.Client, base: str, tokens: dict[str, str]) -> int:
    """The status of GET /users/me at `base` with the pair's access token."""
    return http.get(f"{base}/users/me", headers=bearer(tokens)).status_code


def everywhere(http: httpx.Client, c: Cluster, tokens: dict[str, str]) -> set[int]:
    """The statuses of GET /users/me on A, on B and four times through the balancer."""
    return {me(http, base, tokens) for base in [c.a.url, c.b.url] + [c.lb] * 4}


# Part 3: what one instance does, the other sees at once.


def test_a_token_from_one_instance_works_on_the_other(healthy: Cluster) -> None:
    a, b, lb = healthy.a.url, healthy.b.url, healthy.lb
    with httpx.Client(timeout=10) as http:
        register(http, lb, "token@example.com")
        tokens = log_in(http, a, "token@example.com")

        assert me(http, b, tokens) == 200
        assert everywhere(http, healthy, tokens) == {200}
        # The balancer replaces a client's own X-Forwarded-For, so the instances (which
        # trust it) see the client's address, not the one it claims.
        spoofed = {**bearer(tokens), "X-Forwarded-For": "203.0.113.9"}
        assert http.get(f"{lb}/users/me", headers=spoofed).status_code == 200
        time.sleep(0.5)  # the access lines' flush
        lines = healthy.a.access_lines("/users/me") + healthy.b.access_lines("/users/me")
        assert {line["client_ip"] for line in lines} == {"127.0.0.1"}


def test_logout_and_revocation_on_one_are_refused_on_the_other(healthy: Cluster) -> None:
    a, b = healthy.a.url, healthy.b.url
    with httpx.Client(timeout=10) as http:
        register(http, a, "revoke@example.com")
        first = log_in(http, a, "revoke@example.com")
        second = log_in(http, a, "revoke@example.com")
        assert me(http, a, first) == me(http, a, second) == 200

        assert http.post(f"{b}/auth/jwt/logout", headers=bearer(first)).status_code == 204
        assert me(http, a, first) == 401
        assert everywhere(http, healthy, first) == {401}

        sessions = http.get(f"{a}/users/me/sessions", headers=bearer(second)).json()
        third = log_in(http, b, "revoke@example.com")
        [session_id] = [s["id"] for s in sessions if s["current"]]
        response = http.delete(f"{b}/users/me/sessions/{session_id}", headers=bearer(third))
        assert response.status_code == 204
        assert me(http, a, second) == 401
        assert everywhere(http, healthy, second) == {401}
        assert everywhere(http, healthy, third) == {200}


def test_a_refresh_rotated_on_one_and_replayed_on_the_other_is_reuse(healthy: Cluster) -> None:
    a, b = healthy.a.url, healthy.b.url
    with httpx.Client(timeout=10) as http:
        register(http, a, "replay@example.com")
        tokens = log_in(http, a, "replay@example.com")
        rotated = http.post(
            f"{a}/auth/jwt/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert rotated.status_code == 200

        replayed = http.post(
            f"{b}/auth/jwt/refresh", json={"refresh_token": tokens["refresh_token"]}
        )

        assert replayed.status_code == 400
        assert replayed.json() == {"detail": "REFRESH_TOKEN_INVALID", "error": "invalid_grant"}
        assert me(http, a, rotated.json()) == 401  # the whole session ended
        assert everywhere(http, healthy, rotated.json()) == {401}
        mail = healthy.inbox.mails_to("replay@example.com")[-1]
        assert "ended" in mail["Subject"]


def test_rate_limits_count_across_both_instances(healthy: Cluster) -> None:
    a, b, lb = healthy.a.url, healthy.b.url, healthy.lb
    form = {"username": "limited@example.com", "password": "wrong password"}
    with httpx.Client(timeout=10) as http:
        statuses = [
            http.post(f"{base}/auth/jwt/login", data=form).status_code
            for base in [a, b, a][:LOGIN_LIMIT_PER_ACCOUNT]
        ]
        assert statuses == [400] * LOGIN_LIMIT_PER_ACCOUNT

        for base in (b, a, lb):
            refused = http.post(f"{base}/auth/jwt/login", data=form)
            assert refused.status_code == 429, base
            assert int(refused.headers["Retry-After"]) > 0


def test_a_reset_link_from_one_works_once_on_the_other(healthy: Cluster) -> None:
    a, b, lb = healthy.a.url, healthy.b.url, healthy.lb
    with httpx.Client(timeout=10) as http:
        register(http, lb, "reset@example.com")
        old = log_in(http, b, "reset@example.com")
        assert (
            http.post(f"{a}/auth/forgot-password", json={"email": "reset@example.com"}).status_code
            == 202
        )
        link = link_in(healthy.inbox.mails_to("reset@example.com")[-1], lb)
        [token] = parse_qs(urlsplit(link).query)["token"]
        body = {"token": token, "password": NEW_PASSWORD}

        assert http.post(f"{b}/auth/reset-password", json=body).status_code == 200
        again = http.post(f"{a}/auth/reset-password", json=body)

        assert again.status_code == 400
        assert again.json() == {"detail": "RESET_PASSWORD_BAD_TOKEN"}
        assert everywhere(http, healthy, old) == {401}
        signed_in = http.post(
            f"{a}/auth/jwt/login", data={"username": "reset@example.com", "password": NEW_PASSWORD}
        )
        assert signed_in.status_code == 200


def test_deactivation_on_one_is_seen_on_the_other(healthy: Cluster) -> None:
    a, b = healthy.a.url, healthy.b.url
    with httpx.Client(timeout=10) as http:
        register(http, a, "boss@example.com")
        healthy.sql('UPDATE "user" SET is_superuser = true WHERE email = $1', "boss@example.com")
        register(http, a, "leaver@example.com")
        boss = log_in(http, a, "boss@example.com")
        leaver = log_in(http, b, "leaver@example.com")
        leaver_id = http.get(f"{b}/users/me", headers=bearer(leaver)).json()["id"]

        response = http.patch(
            f"{a}/users/{leaver_id}", json={"is_active": False}, headers=bearer(boss)
        )
        assert response.status_code == 200

        assert me(http, b, leaver) == 401
        assert everywhere(http, healthy, leaver) == {401}
        assert (
            http.post(
                f"{b}/auth/jwt/login", data={"username": "leaver@example.com", "password": PASSWORD}
            ).status_code
            == 400
        )


@dataclass
class Traffic:
    """Steady traffic through the load balancer from a few threads; every answer is kept.

    Two of three requests read `/users/me` with `tokens`, the third registers a new account.
    """

    lb: str
    tokens: dict[str, str]
    threads: int = 3
    answers: list[httpx.Response] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    running: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> "Traffic":
        self.running = [
            threading.Thread(target=self._send, args=(n,), daemon=True) for n in range(self.threads)
        ]
        for thread in self.running:
            thread.start()
        wait_for(lambda: len(self.answers) >= 10, 10, "traffic under way")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        for thread in self.running:
            thread.join(30)

    def _send(self, n: int) -> None:
        run = uuid.uuid4().hex[:8]
        with httpx.Client(timeout=30) as http:
            for i in range(1_000_000):
                if self.stopping.is_set():
                    return
                try:
                    if i % 3 == 2:
                        email = f"load-{run}-{n}-{i}@example.com"
                        body = {"email": email, "password": PASSWORD}
                        response = http.post(f"{self.lb}/auth/register", json=body)
                        if response.status_code == 201:
                            self.registered.append(email)
                    else:
                        response = http.get(f"{self.lb}/users/me", headers=bearer(self.tokens))
                except httpx.TransportError as exc:
                    self.errors.append(repr(exc))
                else:
                    self.answers.append(response)
                time.sleep(0.01)

    def statuses(self) -> set[int]:
        """The statuses answered so far."""
        return {response.status_code for response in self.answers}


def assert_unavailable(response: httpx.Response) -> None:
    """`503 SERVICE_UNAVAILABLE` in FastAPI Users' error shape, with `Retry-After`."""
    assert response.status_code == 503, response.text
    assert response.json() == {"detail": "SERVICE_UNAVAILABLE"}
    assert int(response.headers["Retry-After"]) > 0


def assert_no_500(c: Cluster) -> None:
    """Neither instance answered a 500 (or failed before answering) since it started."""
    for instance in (c.a, c.b):
        failed = [line for line in instance.access_lines() if line["status"] >= 500]
        assert all(line["status"] == 503 for line in failed), failed


def read_status(sock: socket.socket) -> int:
    """The status of the HTTP answer on `sock` (read until the end of its head)."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        if not chunk:
            break
        head += chunk
    return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0


# Part 4: a graceful restart under traffic.


def test_sigterm_under_traffic_loses_no_request_and_the_instance_comes_back(
    healthy: Cluster,
) -> None:
    c = healthy
    with httpx.Client(timeout=30) as http:
        register(http, c.lb, "steady@example.com")
        register(http, c.lb, "mail-in-flight@example.com")
        tokens = log_in(http, c.lb, "steady@example.com")
        with Traffic(c.lb, tokens) as traffic:
            # A mail under way when the instance is told to stop: the SMTP server holds
            # it until the instance has stopped listening.
            c.inbox.released.clear()
            asked = http.post(
                f"{c.a.url}/auth/forgot-password", json={"email": "mail-in-flight@example.com"}
            )
            assert asked.status_code == 202
            # A request under way: its head and part of its body sent to A.
            body = json.dumps({"email": "in-flight@example.com", "password": PASSWORD}).encode()
            in_flight = socket.create_connection(("127.0.0.1", c.a.port), timeout=30)
            in_flight.sendall(
                b"POST /auth/register HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:10]
            )
            time.sleep(0.3)
            assert c.a.process is not None
            c.a.process.send_signal(signal.SIGTERM)

            wait_for(lambda: answers(f"{c.a.url}/health/ready", 503), 1, "A not ready")
            draining = httpx.get(f"{c.a.url}/health/ready", timeout=2)
            assert draining.status_code == 503
            assert draining.json()["checks"]["shutdown"] == "shutting_down"
            wait_for(lambda: refuses_connections(c.a.port), DRAIN_SECONDS + 5, "A stops listening")
            assert not [m for m in c.inbox.messages if m["To"] == "mail-in-flight@example.com"]
            c.inbox.released.set()

            in_flight.sendall(body[10:])
            assert read_status(in_flight) == 201
            in_flight.close()
            # uvicorn raises the signal again once shut down, for its supervisor to see.
            assert c.a.process.wait(20) == -signal.SIGTERM
            assert "Application shutdown complete" in c.a.log.read_text()
            c.inbox.mails_to("mail-in-flight@example.com", within=1)

            c.a.start()
            c.a.wait_ready()
            wait_for(lambda: c.a.access_lines("/users/me"), 15, "A takes traffic again")

    assert traffic.errors == []
    assert traffic.statuses() <= {200, 201}, [
        r.text for r in traffic.answers if r.status_code >= 300
    ]
    assert {"in-flight@example.com", *traffic.registered} <= c.emails()


# Part 5: the database and Redis go away under load.


def test_a_database_outage_answers_503_and_heals_without_a_restart(healthy: Cluster) -> None:
    c = healthy
    processes = (c.a.process, c.b.process)
    with httpx.Client(timeout=30) as http:
        register(http, c.lb, "outage@example.com")
        tokens = log_in(http, c.lb, "outage@example.com")
        with Traffic(c.lb, tokens) as traffic:
            c.relay.cut()
            try:
                assert_unavailable(http.get(f"{c.a.url}/users/me", headers=bearer(tokens)))
                assert_unavailable(
                    http.post(
                        f"{c.b.url}/auth/register",
                        json={"email": "x@example.com", "password": PASSWORD},
                    )
                )
                ready = http.get(f"{c.a.url}/health/ready")
                assert ready.status_code == 503
                assert ready.json()["checks"]["database"] == "fail"
                # Both out of rotation: the balancer answers itself, in the same shape.
                wait_for(lambda: "no server available" in c.haproxy_log.read_text(), 10, "both out")
                assert_unavailable(http.get(f"{c.lb}/users/me", headers=bearer(tokens)))
            finally:
                c.relay.restore()
            wait_for(lambda: me(http, c.lb, tokens) == 200, 15, "served again")
            assert me(http, c.a.url, tokens) == me(http, c.b.url, tokens) == 200

    assert (c.a.process, c.b.process) == processes  # no restart
    assert traffic.errors == []
    for response in traffic.answers:
        if response.status_code not in (200, 201):
            assert_unavailable(response)
    assert 503 in traffic.statuses()
    assert set(traffic.registered) <= c.emails()
    assert_no_500(c)


def test_killed_database_connections_answer_503_at_worst(healthy: Cluster) -> None:
    c = healthy
    database = urlsplit(c.database_url).path.lstrip("/")
    with httpx.Client(timeout=30) as http:
        register(http, c.lb, "killed@example.com")
        tokens = log_in(http, c.lb, "killed@example.com")
        with Traffic(c.lb, tokens) as traffic:
            killed = 0
            for _ in range(5):
                rows = c.sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = $1 AND pid <> pg_backend_pid()",
                    database,
                )
                killed += len(rows)
                time.sleep(0.3)
            assert killed > 0
        assert me(http, c.a.url, tokens) == me(http, c.b.url, tokens) == 200

    assert traffic.errors == []
    for response in traffic.answers:
        if response.status_code not in (200, 201):
            assert_unavailable(response)
    assert set(traffic.registered) <= c.emails()
    assert_no_500(c)


def test_redis_stopped_readiness_says_degraded_and_limits_fall_back(healthy: Cluster) -> None:
    c = healthy
    form = {"username": "fallback@example.com", "password": "wrong password"}
    with httpx.Client(timeout=30) as http:
        register(http, c.lb, "fallback@example.com")
        register(http, c.lb, "signs-in@example.com")
        c.redis.stop()
        try:
            ready = http.get(f"{c.a.url}/health/ready")
            assert ready.status_code == 200
            assert ready.json()["status"] == "degraded"
            assert ready.json()["checks"]["redis"] == "fail"
            tokens = log_in(http, c.lb, "signs-in@example.com")
            # Counted in memory, per instance.
            for _ in range(LOGIN_LIMIT_PER_ACCOUNT):
                assert http.post(f"{c.a.url}/auth/jwt/login", data=form).status_code == 400
            assert http.post(f"{c.a.url}/auth/jwt/login", data=form).status_code == 429
            # Both instances stay in rotation past the balancer's two failed checks.
            time.sleep(2.5)
            served_before = [len(i.access_lines("/users/me")) for i in (c.a, c.b)]
            assert {me(http, c.lb, tokens) for _ in range(6)} == {200}
            time.sleep(0.5)  # the access lines' flush
            served_after = [len(i.access_lines("/users/me")) for i in (c.a, c.b)]
            assert all(
                after > before for before, after in zip(served_before, served_after, strict=True)
            )
        finally:
            c.redis.start()
        wait_for(
            lambda: http.get(f"{c.a.url}/health/ready").json()["checks"]["redis"] == "ok",
            10,
            "Redis seen again",
        )


# Part 8: header size at the load balancer.


def test_a_1mb_header_is_refused_at_once_while_others_keep_their_latency(
    healthy: Cluster,
) -> None:
    c = healthy
    port = urlsplit(c.lb).port
    assert port is not None
    latencies: list[float] = []
    stopping = threading.Event()

    def measure() -> None:
        with httpx.Client(timeout=30) as http:
            while not stopping.is_set():
                started = time.monotonic()
                assert http.get(f"{c.lb}/health/live").status_code == 200
                latencies.append(time.monotonic() - started)
                time.sleep(0.01)

    def request_with_header(size: int) -> tuple[int, float]:
        started = time.monotonic()
        status = 0
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            try:
                sock.sendall(
                    b"GET /users/me HTTP/1.1\r\nHost: lb\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
                )
                status = read_status(sock)
            except (BrokenPipeError, ConnectionResetError):
                status = -1  # closed on us before we were done sending
        return status, time.monotonic() - started

    seen_before = [len(i.access_lines("/users/me")) for i in (c.a, c.b)]
    other = threading.Thread(target=measure, daemon=True)
    other.start()
    wait_for(lambda: len(latencies) >= 20, 10, "a baseline")
    baseline = sorted(latencies)[len(latencies) // 2]
    during_from = len(latencies)
    # Past the config's 15 KiB, and past HAProxy's own ceiling (1 MiB for one header).
    refusals = [request_with_header(size) for size in [32 * 1024, 1024 * 1024] * 3]
    wait_for(lambda: len(latencies) >= during_from + 20, 10, "latency during")
    stopping.set()
    other.join(10)

    assert all(status in (400, -1) for status, _ in refusals), refusals
    assert max(seconds for _, seconds in refusals) < 2, refusals
    during = sorted(latencies[during_from:])
    assert during[len(during) // 2] < max(0.1, 5 * baseline), (baseline, during)
    assert during[-1] < 1, (baseline, during)
    time.sleep(0.5)  # the access lines' flush
    assert [len(i.access_lines("/users/me")) for i in (c.a, c.b)] == seen_before
    assert request_with_header(8 * 1024)[0] == 401  # a large cookie still gets through
