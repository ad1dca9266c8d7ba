"""TLS to PostgreSQL: libpq's `sslmode` and `sslrootcert` in DATABASE_URL work for real.

The shared test server is left alone: a PostgreSQL of the test's own runs in a temporary
folder, on a free port, with `ssl=on` and a self-signed certificate made here, and is
stopped afterwards. Needs root (the server runs as `postgres`) and Debian's server
binaries; without them the tests skip, except on CI.
"""

import asyncio
import datetime
import ipaddress
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from asgi_lifespan import LifespanManager
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tortoise import connections

from app.app import create_app
from app.db import database_problem, require_reachable
from app.settings import ConfigError, Settings
from tests.conftest import TEST_SECRET, Aerich, forget_cached_sql, free_port


@dataclass
class TlsServer:
    """A private PostgreSQL serving TLS with `certificate`, signed by itself."""

    port: int
    data: Path
    certificate: Path
    bin_dir: Path

    def url(self, query: str, database: str = "app") -> str:
        """DATABASE_URL of `database` on this server, with `query`."""
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}?{query}"

    def set_ssl(self, on: bool) -> None:
        """Turn TLS on or off (a reload: the server keeps running)."""
        asyncio.run(self.admin(f"ALTER SYSTEM SET ssl = {'on' if on else 'off'}"))
        asyncio.run(self.admin("SELECT pg_reload_conf()"))

    async def admin(self, statement: str) -> None:
        """Run `statement` over the server's local socket (no TLS needed)."""
        conn = await asyncpg.connect(
            host=str(self.data.parent), port=self.port, user="postgres", database="postgres"
        )
        try:
            await conn.execute(statement)
        finally:
            await conn.close()


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost that is its own CA, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / f"{name}.crt", folder / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


def postgres_bin_dir() -> Path | None:
    """Debian's PostgreSQL server binaries (the newest installed), or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def as_postgres(*command: str | Path) -> None:
    """Run a server command as the `postgres` user (PostgreSQL refuses to run as root)."""
    subprocess.run(  # noqa: S603 (Debian's PostgreSQL binaries, fixed arguments)
        ["runuser", "-u", "postgres", "--", *map(str, command)],  # noqa: S607
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tls_server() -> Iterator[TlsServer]:
    """A PostgreSQL of our own with ssl=on, stopped and deleted afterwards."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None or os.geteuid() != 0 or shutil.which("runuser") is None:
        reason = "needs root and Debian's PostgreSQL server binaries (/usr/lib/postgresql)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="pg-tls-"))
    shutil.chown(folder, "postgres")
    data = folder / "data"
    certificate, key = self_signed(folder, "server")
    for path in (certificate, key):
        shutil.chown(path, "postgres")
    port = free_port()
    as_postgres(bin_dir / "initdb", "-D", data, "--auth=trust", "-U", "postgres", "--no-sync")
    # In the configuration file, not on the command line, so that ALTER SYSTEM can turn TLS off.
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"port = {port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{folder}'\nssl = on\n"
            f"ssl_cert_file = '{certificate}'\nssl_key_file = '{key}'\n"
            "fsync = off\nmax_connections = 20\n"
        )
    as_postgres(bin_dir / "pg_ctl", "-D", data, "-l", folder / "log", "-w", "start")
    server = TlsServer(port, data, certificate, bin_dir)
    try:
        asyncio.run(server.admin("CREATE DATABASE app"))
        yield server
    finally:
        as_postgres(bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def settings_for(url: str) -> Settings:
    """Settings on `url` (validated, as the service reads them)."""
    return Settings(_env_file=None, database_url=url, secret=TEST_SECRET)  # type: ignore[call-arg]


async def connection_is_encrypted(settings: Settings) -> bool:
    """Start the app on `settings` and ask the server whether its connection uses TLS."""
    forget_cached_sql()
    async with LifespanManager(create_app(settings)):
        rows = await connections.get("default").execute_query_dict(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        )
    return bool(rows[0]["ssl"])


def test_sslmode_require_and_verify_full_connect_over_tls(
    tls_server: TlsServer, aerich: Aerich
) -> None:
    """`?sslmode=require`, then `verify-full` with the CA file: migrations and the app, on TLS."""
    require = tls_server.url("sslmode=require")
    verify_full = tls_server.url(f"sslmode=verify-full&sslrootcert={tls_server.certificate}")

    aerich.upgrade(require)

    assert asyncio.run(connection_is_encrypted(settings_for(require)))
    assert asyncio.run(connection_is_encrypted(settings_for(verify_full)))
    assert database_problem(settings_for(verify_full)) is None


def test_verify_full_refuses_a_certificate_from_another_ca(
    tls_server: TlsServer, tmp_path: Path
) -> None:
    """The CA file is really checked: a certificate it did not sign stops the start in one line."""
    other_ca, _ = self_signed(tmp_path, "other-ca")
    settings = settings_for(tls_server.url(f"sslmode=verify-full&sslrootcert={other_ca}"))

    problem = database_problem(settings)

    assert problem is not None
    assert "\n" not in problem
    assert problem.startswith("Cannot reach the database (DATABASE_URL):")
    assert "certificate verify failed" in problem


def test_sslmode_require_on_a_server_without_tls_fails_in_one_line(tls_server: TlsServer) -> None:
    """A server that does not offer TLS is refused, never used in the clear."""
    tls_server.set_ssl(False)
    try:
        with pytest.raises(ConfigError) as raised:
            require_reachable(settings_for(tls_server.url("sslmode=require")))
        # sslmode=prefer falls back to the clear, as libpq's does.
        require_reachable(settings_for(tls_server.url("sslmode=prefer")))
    finally:
        tls_server.set_ssl(True)

    message = str(raised.value)
    assert "\n" not in message
    assert message == (
        "Cannot reach the database (DATABASE_URL): "
        f'PostgreSQL server at "127.0.0.1:{tls_server.port}" rejected SSL upgrade'
    )
