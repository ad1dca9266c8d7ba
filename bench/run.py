"""`make bench`: the service and the floor app under wrk, on loopback, in one run.

Starts the service (as `python main.py` runs it: uvicorn's h11 parser with the header
limit, production settings, a fresh database) and the floor app (bench/floor.py), drives
both with wrk, prints a table and writes it as JSON to bench-results/. Every step is
bounded by wrk's duration; waits are bounded by deadlines. BENCH_DURATION (seconds per
step, default 8) trades precision for time. BENCH_DATABASE picks the database: `sqlite`
(default, a temporary file), `postgres` or `mysql` (the servers the tests use,
TEST_POSTGRES_URL and TEST_MYSQL_URL, in databases of the bench's own, dropped at the
end). BENCH_WORKERS (default 1) runs the service and the floor with that many uvicorn
workers each.
"""

import asyncio
import json
import logging
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from tortoise import Tortoise, connections

from app.db import tortoise_config
from app.models import User
from app.passwords import PasswordHasher
from app.settings import Settings
from bench.link_timing import next_request_ms

# The servers and the admin statement `make migration` uses (TEST_POSTGRES_URL, TEST_MYSQL_URL).
from migrations.make import SERVER_URLS, run_admin

ROOT = Path(__file__).resolve().parent.parent
WRK_DIR = ROOT / "bench" / "wrk"
RESULTS_DIR = ROOT / "bench-results"
PASSWORD = "correct horse battery staple"  # noqa: S105 (the bench user's, on loopback)
EMAIL = "bench@example.com"
# The login steps log in thousands of times: as another user, so that eviction past
# MAX_SESSIONS_PER_USER (part of a login's cost) never ends the sessions of EMAIL.
LOGIN_EMAIL = "bench-login@example.com"
SEEDED_USERS = 100_000
LIST_USERS = 1000
VERIFY_SAMPLES = 20
STARTUP_SECONDS = 30
REFRESH_CONNECTIONS = 8
# What `python main.py` runs: h11, which bounds the request head (MAX_HEADER_BYTES).
MAX_HEADER_BYTES = Settings.model_fields["max_header_bytes"].default
H11_ARGS = ["--http", "h11", "--h11-max-incomplete-event-size", str(MAX_HEADER_BYTES)]

log = logging.getLogger("bench")


@dataclass
class Server:
    """A uvicorn process serving `target` on a free loopback port."""

    target: str
    env: dict[str, str]
    log: Path | None = None  # where its stderr goes (inherited when None)
    args: list[str] = field(default_factory=list)  # more uvicorn options
    workers: int = 1
    port: int = field(default_factory=lambda: free_port())
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where it listens."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and wait (bounded) until it answers."""
        stderr = self.log.open("ab") if self.log is not None else None
        self.process = subprocess.Popen(  # noqa: S603 (this venv's uvicorn, fixed arguments)
            [sys.executable, "-m", "uvicorn", self.target, "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(self.workers), "--no-access-log",
             "--log-level", "warning", *self.args],
            cwd=ROOT, env=self.env, stderr=stderr,
        )  # fmt: skip
        if stderr is not None:
            stderr.close()  # the child has its own descriptor
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.target} exited with {self.process.returncode}")
            try:
                # Any answer will do (the docs are off in production).
                httpx.get(f"{self.url}/openapi.json", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise SystemExit(f"{self.target} did not answer within {STARTUP_SECONDS} s")

    def pids(self) -> list[int]:
        """The process and, with several workers, its worker processes."""
        assert self.process is not None
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [pid, *(int(child) for child in children)]

    def cpu_seconds(self) -> float:
        """CPU time the process and its workers have used so far (user and system)."""
        total = 0
        for pid in self.pids():
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(stat[11]) + int(stat[12])
        return total / os.sysconf("SC_CLK_TCK")

    def peak_rss_mib(self) -> float:
        """The peak resident memory so far (VmHWM), summed over the process and its workers."""
        total = 0
        for pid in self.pids():
            status = Path(f"/proc/{pid}/status").read_text()
            line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
            total += int(line.split()[1])
        return total / 1024

    def stop(self) -> None:
        """Stop it (bounded wait, then kill)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serving(*servers: Server) -> Iterator[None]:
    """Run the servers for the duration of the block."""
    try:
        for server in servers:
            server.start()
        yield
    finally:
        for server in servers:
            server.stop()


# Scripts whose threads keep state of their own (a session each): one connection per thread.
THREAD_PER_CONNECTION = {"refresh.lua"}


def wrk_command(url: str, script: str, connections: int, seconds: float) -> list[str]:
    """wrk with `script` from bench/wrk, as many threads as cores (at most connections)."""
    threads = min(connections, os.cpu_count() or 1)
    if script in THREAD_PER_CONNECTION:
        threads = connections
    return [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{round(seconds)}s", "--timeout", "10s",
        "-s", str(WRK_DIR / script), url,
    ]  # fmt: skip


def parse_wrk(output: str) -> dict[str, Any]:
    """The JSON line report.lua printed, with req/s added."""
    line = next(line for line in output.splitlines() if line.startswith("BENCH_JSON "))
    result: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    result["rps"] = result["requests"] / result["duration_s"]
    return result


def wrk(
    url: str, script: str, connections: int, seconds: float, env: dict[str, str]
) -> dict[str, Any]:
    """Run one wrk step and return its figures."""
    completed = subprocess.run(  # noqa: S603 (wrk with fixed arguments)
        wrk_command(url, script, connections, seconds),
        env={**os.environ, **env, "BENCH_WRK_DIR": str(WRK_DIR)},
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    )  # fmt: skip
    return parse_wrk(completed.stdout)


def wrk_during(
    background: tuple[str, str, int, float],
    foreground: tuple[str, str, int, float],
    env: dict[str, str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the foreground step while the background step loads the server."""
    full_env = {**os.environ, **env, "BENCH_WRK_DIR": str(WRK_DIR)}
    storm = subprocess.Popen(  # noqa: S603 (wrk with fixed arguments)
        wrk_command(*background), env=full_env, stdout=subprocess.PIPE, text=True
    )
    try:
        time.sleep(1)  # let the storm build up first
        during = wrk(*foreground, env=env)
        storm_output, _ = storm.communicate(timeout=background[3] + 60)
    finally:
        if storm.poll() is None:
            storm.kill()
    return parse_wrk(storm_output), during


async def seed_users_async(database_url: str, count: int, start: int) -> None:
    """Insert `count` users (seed-<start> on) through Tortoise, with the bench user's hash."""
    settings = Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]
    await Tortoise.init(config=tortoise_config(settings))
    try:
        bench_user = await User.get(email=EMAIL)
        hashed = bench_user.hashed_password
        users = [
            User(id=uuid.uuid4(), email=f"seed-{n}@example.com", hashed_password=hashed)
            for n in range(start, start + count)
        ]
        await User.bulk_create(users, batch_size=1000)
        # Planner statistics as a database at rest would have them.
        dialect = connections.get("default").capabilities.dialect
        if dialect == "postgres":
            await connections.get("default").execute_script('ANALYZE "user"')
        elif dialect == "mysql":
            await connections.get("default").execute_query("ANALYZE TABLE `user`")
    finally:
        await Tortoise.close_connections()


def seed_users(database_url: str, count: int, start: int = 0) -> None:
    """Insert `count` users (seed-<start> on), all with the bench user's hash."""
    if not database_url.startswith("sqlite://"):
        asyncio.run(seed_users_async(database_url, count, start))
        return
    database = database_url.removeprefix("sqlite://")
    with closing(sqlite3.connect(database)) as connection, connection:
        hashed, created = connection.execute(
            "SELECT hashed_password, created_at FROM user WHERE email = ?", (EMAIL,)
        ).fetchone()
        rows = (
            (str(uuid.uuid4()), f"seed-{n}@example.com", hashed, 1, 0, 0, created, created)
            for n in range(start, start + count)
        )
        connection.executemany(
            "INSERT INTO user (id, email, hashed_password, is_active, is_superuser,"
            " is_verified, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    # Leave the database as it would be at rest: the seed's WAL written back and emptied,
    # not checkpointed later by whichever benchmarked request crosses the WAL limit.
    with closing(sqlite3.connect(database)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


async def make_superuser_async(database_url: str, email: str) -> None:
    """Make `email` a superuser (for the admin list steps)."""
    settings = Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]
    await Tortoise.init(config=tortoise_config(settings))
    try:
        await User.filter(email=email).update(is_superuser=True)
    finally:
        await Tortoise.close_connections()


@contextmanager
def bench_databases(kind: str, workdir: Path, *names: str) -> Iterator[list[str]]:
    """The DATABASE_URLs of fresh databases `names` on `kind`, dropped (or deleted) after."""
    if kind == "sqlite":
        yield [f"sqlite://{workdir / name}.sqlite3" for name in names]
        return
    if kind not in SERVER_URLS:
        raise SystemExit(f"BENCH_DATABASE={kind}: use sqlite, postgres or mysql")
    created = [f"{name}_{os.getpid()}" for name in names]
    charset = " CHARACTER SET utf8mb4" if kind == "mysql" else ""
    try:
        for name in created:
            asyncio.run(run_admin(kind, f"DROP DATABASE IF EXISTS {name}"))
            asyncio.run(run_admin(kind, f"CREATE DATABASE {name}{charset}"))
        yield [f"{SERVER_URLS[kind]}/{name}" for name in created]
    finally:
        for name in created:
            asyncio.run(run_admin(kind, f"DROP DATABASE IF EXISTS {name}"))


def verify_seconds(settings: Settings) -> float:
    """Mean time of one verify with the default hash parameters, on this machine now."""
    hasher = PasswordHasher(settings)
    hashed = hasher.password_hash.hash(PASSWORD)
    started = time.perf_counter()
    for _ in range(VERIFY_SAMPLES):
        hasher.password_hash.verify(PASSWORD, hashed)
    return (time.perf_counter() - started) / VERIFY_SAMPLES


def run(seconds: float, kind: str, workers: int) -> dict[str, Any]:
    """Every step of the benchmark on a fresh database of `kind`; returns the figures."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    with bench_databases(kind, workdir, "bench", "bench_no_audit") as (database, no_audit):
        return run_on(seconds, workers, workdir, database, no_audit)


def run_on(
    seconds: float, workers: int, workdir: Path, database: str, no_audit_database: str
) -> dict[str, Any]:
    """Every step of the benchmark, the service on `database`; returns the figures."""
    secret = secrets.token_urlsafe(48)
    service_env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "SECRET": secret,
        "DATABASE_URL": database,
        # Production logging: a JSON access line per request (to a file, as a log
        # shipper would collect it). ACCESS_LOG=false make bench measures without it.
        "LOG_LEVEL": "info",
        "LOG_FORMAT": "json",
        "ACCESS_LOG": os.environ.get("ACCESS_LOG", "true"),
        # The bench measures the routes themselves: one client on loopback would be
        # rate-limited within seconds. Only the forgot-password timing sends mail, to a
        # port nothing listens on: one attempt each, and no waiting at shutdown.
        "RATE_LIMITS_ENABLED": "false",
        "MAIL_SEND_ATTEMPTS": "1",
        "PUBLIC_URL": "http://127.0.0.1",
        "SMTP_HOST": "127.0.0.1",
        "MAIL_FROM": "bench@example.com",
    }
    # The same service without its audit trail, on a database of its own, to measure
    # what auditing costs login and registration.
    no_audit_env = {**service_env, "DATABASE_URL": no_audit_database}
    for env in (service_env, no_audit_env):
        subprocess.run(  # noqa: S603 (this venv's aerich)
            [str(Path(sys.executable).with_name("aerich")), "upgrade"],
            cwd=ROOT, env=env, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    service = Server("app.app:app", service_env, workdir / "service.log", H11_ARGS, workers)
    no_audit = Server("bench.no_audit:app", no_audit_env, workdir / "no-audit.log", H11_ARGS)
    # The same service on uvicorn's default parser (httptools, no header limit): what h11 costs.
    httptools = Server("app.app:app", service_env, workdir / "httptools.log", [], workers)
    floor = Server("bench.floor:app", {**os.environ, "SECRET": secret}, workers=workers)
    defaults = Settings(_env_file=None, secret=secret)  # type: ignore[call-arg]
    figures: dict[str, Any] = {"verify_s": verify_seconds(defaults), "workers": workers}

    with serving(service, no_audit, httptools, floor):
        for server in (service, no_audit):
            for email in (EMAIL, LOGIN_EMAIL):
                httpx.post(
                    f"{server.url}/auth/register", json={"email": email, "password": PASSWORD}
                )
        login = httpx.post(
            f"{service.url}/auth/jwt/login", data={"username": EMAIL, "password": PASSWORD}
        )
        login.raise_for_status()
        # One session per refresh connection, each rotated by its own wrk thread.
        refresh_tokens = [
            httpx.post(
                f"{service.url}/auth/jwt/login", data={"username": EMAIL, "password": PASSWORD}
            ).json()["refresh_token"]
            for _ in range(REFRESH_CONNECTIONS)
        ]
        env = {
            "BENCH_REFRESH_TOKENS": ",".join(refresh_tokens),
            "BENCH_TOKEN": login.json()["access_token"],
            "BENCH_EMAIL": LOGIN_EMAIL,
            "BENCH_PASSWORD": PASSWORD,
        }
        run_id = secrets.token_hex(4)
        steps = {
            "floor_get_c32": (f"{floor.url}/authenticated-route", "get.lua", 32),
            "authenticated_get_c32": (f"{service.url}/authenticated-route", "get.lua", 32),
            "authenticated_get_c32_httptools": (
                f"{httptools.url}/authenticated-route",
                "get.lua",
                32,
            ),
            "users_me_c32": (f"{service.url}/users/me", "get.lua", 32),
            "refresh_c8": (f"{service.url}/auth/jwt/refresh", "refresh.lua", REFRESH_CONNECTIONS),
            "login_c8_1_user": (f"{service.url}/auth/jwt/login", "login.lua", 8),
            "login_c8_no_audit": (f"{no_audit.url}/auth/jwt/login", "login.lua", 8),
            "register_c8_1_user": (f"{service.url}/auth/register", "register.lua", 8),
            "register_c8_no_audit": (f"{no_audit.url}/auth/register", "register.lua", 8),
            "register_c32": (f"{service.url}/auth/register", "register.lua", 32),
            "users_me_alone_c1": (f"{service.url}/users/me", "get.lua", 1),
        }
        for name, (url, script, connections) in steps.items():
            log.info("%s ...", name)
            server = next(
                (s for s in (no_audit, httptools, floor) if url.startswith(f"{s.url}/")), service
            )
            cpu_before = server.cpu_seconds()
            # Registration addresses are unique per run and step.
            figures[name] = wrk(
                url, script, connections, seconds, {**env, "BENCH_PREFIX": f"{run_id}-{name}"}
            )
            # CPU per request: what a step costs, much steadier than req/s on a busy machine.
            figures[name]["cpu_ms_per_request"] = (
                (server.cpu_seconds() - cpu_before) * 1000 / max(figures[name]["requests"], 1)
                if url.startswith(f"{server.url}/")
                else None
            )

        log.info("users_me_during_login_storm_c1 ...")
        figures["login_storm_c8"], figures["users_me_during_login_storm_c1"] = wrk_during(
            (f"{service.url}/auth/jwt/login", "login.lua", 8, seconds + 2),
            (f"{service.url}/users/me", "get.lua", 1, seconds),
            env,
        )

        # The admin user list (`GET /users`) at 1k users, then again at 100k.
        asyncio.run(make_superuser_async(database, EMAIL))
        log.info("seeding %d users ...", LIST_USERS)
        seed_users(database, LIST_USERS)
        list_steps = {
            "users_page_c8_{}": (f"{service.url}/users?limit=50", "get.lua", 8),
            "users_search_c8_{}": (f"{service.url}/users?q=seed-5&limit=50", "get.lua", 8),
        }
        for name, (url, script, connections) in list_steps.items():
            log.info("%s ...", name.format("1k"))
            figures[name.format("1k")] = wrk(url, script, connections, seconds, env)

        log.info("seeding %d users ...", SEEDED_USERS - LIST_USERS)
        seed_users(database, SEEDED_USERS - LIST_USERS, start=LIST_USERS)
        for name, (url, script, connections) in list_steps.items():
            log.info("%s ...", name.format("100k"))
            figures[name.format("100k")] = wrk(url, script, connections, seconds, env)
        for name, (url, script, connections) in {
            "login_c8_100k_users": (f"{service.url}/auth/jwt/login", "login.lua", 8),
            "register_c8_100k_users": (f"{service.url}/auth/register", "register.lua", 8),
        }.items():
            log.info("%s ...", name)
            # Registration addresses are unique per run and step.
            figures[name] = wrk(
                url, script, connections, seconds, {**env, "BENCH_PREFIX": f"{run_id}-{name}"}
            )
        log.info("forgot-password, next request after a known vs an unknown address ...")
        figures["next_after_known_forgot_ms"], figures["next_after_unknown_forgot_ms"] = (
            next_request_ms(service.url, EMAIL)
        )
        figures["service_peak_rss_mib"] = service.peak_rss_mib()
        figures["httptools_peak_rss_mib"] = httptools.peak_rss_mib()
        log_file = workdir / "service.log"
        figures["access_log_lines"] = sum(
            '"logger":"app.access"' in line for line in log_file.read_text().splitlines()
        )
        figures["floor_peak_rss_mib"] = floor.peak_rss_mib()
    return figures


def summarize(figures: dict[str, Any]) -> dict[str, Any]:
    """The ratios the targets are stated in, from one run's figures."""
    floor = figures["floor_get_c32"]
    cores = os.cpu_count() or 1
    hashing_limit = cores / figures["verify_s"]
    steps = {name: step for name, step in figures.items() if isinstance(step, dict)}
    return {
        "cores": cores,
        "hashing_limit_rps": hashing_limit,
        "authenticated_get_vs_floor": steps["authenticated_get_c32"]["rps"] / floor["rps"],
        # CPU per request is steadier than req/s on a busy machine: the same target, by CPU.
        "authenticated_get_cpu_vs_floor": floor["cpu_ms_per_request"]
        / steps["authenticated_get_c32"]["cpu_ms_per_request"],
        "h11_vs_httptools": steps["authenticated_get_c32"]["rps"]
        / steps["authenticated_get_c32_httptools"]["rps"],
        "h11_cpu_vs_httptools": steps["authenticated_get_c32"]["cpu_ms_per_request"]
        / steps["authenticated_get_c32_httptools"]["cpu_ms_per_request"],
        "users_me_vs_floor": steps["users_me_c32"]["rps"] / floor["rps"],
        "refresh_vs_floor": steps["refresh_c8"]["rps"] / floor["rps"],
        "refresh_p99_vs_floor": steps["refresh_c8"]["p99_ms"] / floor["p99_ms"],
        "login_vs_hashing_limit": steps["login_c8_1_user"]["rps"] / hashing_limit,
        "login_audit_vs_none": steps["login_c8_1_user"]["rps"] / steps["login_c8_no_audit"]["rps"],
        "register_audit_vs_none": steps["register_c8_1_user"]["rps"]
        / steps["register_c8_no_audit"]["rps"],
        "login_audit_cpu_vs_none": steps["login_c8_1_user"]["cpu_ms_per_request"]
        / steps["login_c8_no_audit"]["cpu_ms_per_request"],
        "register_audit_cpu_vs_none": steps["register_c8_1_user"]["cpu_ms_per_request"]
        / steps["register_c8_no_audit"]["cpu_ms_per_request"],
        "users_me_p99_storm_vs_alone": steps["users_me_during_login_storm_c1"]["p99_ms"]
        / steps["users_me_alone_c1"]["p99_ms"],
        "login_100k_vs_1": steps["login_c8_100k_users"]["rps"] / steps["login_c8_1_user"]["rps"],
        "register_100k_vs_1": steps["register_c8_100k_users"]["rps"]
        / steps["register_c8_1_user"]["rps"],
        "next_after_forgot_known_vs_unknown": figures["next_after_known_forgot_ms"]
        / figures["next_after_unknown_forgot_ms"],
        "users_page_100k_vs_1k": steps["users_page_c8_1k"]["rps"]
        / steps["users_page_c8_100k"]["rps"],
        "users_search_100k_vs_1k": steps["users_search_c8_1k"]["rps"]
        / steps["users_search_c8_100k"]["rps"],
        "non2xx": sum(step["non2xx"] for step in steps.values()),
        "n5xx": sum(step["n5xx"] for step in steps.values()),
        "socket_errors": sum(step["socket_errors"] for step in steps.values()),
    }


def table(figures: dict[str, Any], summary: dict[str, Any]) -> str:
    """A Markdown table of every step, each also as a ratio to the floor."""
    floor = figures["floor_get_c32"]
    lines = [
        "| step | req/s | x floor req/s | p50 ms | p99 ms | x floor p99 | non-2xx | 5xx |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, step in figures.items():
        if isinstance(step, dict):
            lines.append(
                f"| {name} | {step['rps']:.1f} | {step['rps'] / floor['rps']:.3f} "
                f"| {step['p50_ms']:.1f} | {step['p99_ms']:.1f} "
                f"| {step['p99_ms'] / floor['p99_ms']:.1f} | {step['non2xx']} | {step['n5xx']} |"
            )
    lines += [
        "",
        f"- one verify with the default parameters: {figures['verify_s'] * 1000:.1f} ms; "
        f"hashing limit ({summary['cores']} cores / verify): {summary['hashing_limit_rps']:.1f}/s",
        f"- database: {figures['database']}; uvicorn workers (service and floor): "
        f"{figures['workers']}",
        f"- authenticated GET: {summary['authenticated_get_vs_floor']:.2f} x floor; "
        f"/users/me: {summary['users_me_vs_floor']:.2f} x floor; by CPU per request "
        f"(floor's / authenticated GET's): {summary['authenticated_get_cpu_vs_floor']:.2f}",
        f"- h11 with the header limit vs httptools (authenticated GET): "
        f"{summary['h11_vs_httptools']:.2f}x req/s, "
        f"{summary['h11_cpu_vs_httptools']:.2f}x CPU per request",
        f"- refresh at {REFRESH_CONNECTIONS} connections: {summary['refresh_vs_floor']:.2f} x floor"
        f" req/s, p99 {summary['refresh_p99_vs_floor']:.1f} x floor p99",
        f"- login at 8 connections: {summary['login_vs_hashing_limit']:.2f} x hashing limit",
        f"- with the audit trail vs without: login {summary['login_audit_vs_none']:.2f}x, "
        f"register {summary['register_audit_vs_none']:.2f}x req/s; CPU per request "
        f"login {summary['login_audit_cpu_vs_none']:.3f}x, "
        f"register {summary['register_audit_cpu_vs_none']:.3f}x",
        f"- JSON access lines written by the service: {figures['access_log_lines']}",
        f"- /users/me p99 during the login storm: {summary['users_me_p99_storm_vs_alone']:.2f}"
        " x alone",
        f"- with {SEEDED_USERS} users vs 1: login {summary['login_100k_vs_1']:.2f}x, "
        f"register {summary['register_100k_vs_1']:.2f}x",
        f"- forgot-password, the next request after a known vs an unknown address: "
        f"{summary['next_after_forgot_known_vs_unknown']:.2f} x",
        f"- GET /users cost at {SEEDED_USERS} users vs {LIST_USERS} (1/req/s, goal <= 2): "
        f"page {summary['users_page_100k_vs_1k']:.2f}x, "
        f"prefix search {summary['users_search_100k_vs_1k']:.2f}x",
        f"- peak RSS (all workers): service {figures['service_peak_rss_mib']:.0f} MiB, "
        f"floor {figures['floor_peak_rss_mib']:.0f} MiB",
        f"- non-2xx: {summary['non2xx']}, 5xx: {summary['n5xx']}, "
        f"socket errors: {summary['socket_errors']}",
    ]
    return "\n".join(lines)


def main() -> None:
    """Run, print the table, write the JSON."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    seconds = float(os.environ.get("BENCH_DURATION", "8"))
    kind = os.environ.get("BENCH_DATABASE", "sqlite")
    workers = int(os.environ.get("BENCH_WORKERS", "1"))
    started = datetime.now(UTC)
    figures = {"database": kind, **run(seconds, kind, workers)}
    summary = summarize(figures)
    sys.stdout.write(table(figures, summary) + "\n")
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"bench-{started:%Y%m%dT%H%M%SZ}-{kind}-w{workers}.json"
    path.write_text(
        json.dumps(
            {"started": started.isoformat(), "figures": figures, "summary": summary}, indent=2
        )
    )
    log.info("written to %s", path.relative_to(ROOT))


if __name__ == "__main__":
    main()
