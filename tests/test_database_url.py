"""DATABASE_URL's TLS and pool parameters as the drivers take them, or one line saying why not.

Unit tests of app/database_url.py through the settings, as the service reads them; the TLS
connections themselves are tested in tests/test_database_tls.py (PostgreSQL) and below
against a MariaDB without TLS.
"""

import asyncio
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncmy
import certifi
import pytest

from app.db import connection_config, require_reachable
from app.settings import ConfigError, Settings, load_settings
from tests.conftest import SERVER_URLS, TEST_SECRET, Backend

pytestmark = pytest.mark.usefixtures("clean_environment")

POSTGRES = "postgres://app@db.internal:5432/users"
MYSQL = "mysql://app@db.internal:3306/users"


def credentials(monkeypatch: pytest.MonkeyPatch, url: str, **env: str) -> dict[str, Any]:
    """The driver credentials the service would use for `url` and the settings in `env`."""
    monkeypatch.setenv("DATABASE_URL", url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    found: dict[str, Any] = connection_config(load_settings())["credentials"]
    return found


def refusal(monkeypatch: pytest.MonkeyPatch, url: str, **env: str) -> str:
    """The one-line message that stops the start for `url`."""
    monkeypatch.setenv("DATABASE_URL", url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert "\n" not in message
    return message


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    """A CA file (certifi's bundle, copied)."""
    path = tmp_path / "ca.pem"
    path.write_text(Path(certifi.where()).read_text())
    return path


def test_sslmode_require_encrypts_without_checking_the_certificate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = credentials(monkeypatch, f"{POSTGRES}?sslmode=require")

    context = found["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_NONE
    assert not context.check_hostname
    assert "sslmode" not in found


def test_sslmode_verify_full_checks_the_ca_and_the_host(
    monkeypatch: pytest.MonkeyPatch, ca_file: Path
) -> None:
    found = credentials(monkeypatch, f"{POSTGRES}?sslmode=verify-full&sslrootcert={ca_file}")

    context = found["ssl"]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert "sslrootcert" not in found


@pytest.mark.parametrize(
    ("mode", "expected"), [("disable", False), ("allow", "allow"), ("prefer", "prefer")]
)
def test_sslmodes_asyncpg_knows_by_name(
    monkeypatch: pytest.MonkeyPatch, mode: str, expected: object
) -> None:
    assert credentials(monkeypatch, f"{POSTGRES}?sslmode={mode}")["ssl"] == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sslmode=bogus", "DATABASE_URL: sslmode=bogus is unknown; use one of disable,"),
        ("sslmode=require&sslrootcert=/no/such.pem", "DATABASE_URL: sslrootcert=/no/such.pem:"),
        ("sslrootcert={ca}", "DATABASE_URL: sslrootcert needs sslmode=verify-full"),
        ("sslmode=verify-ca&sslrootcert={not_pem}", "DATABASE_URL: {not_pem} holds no usable CA"),
        ("sslmode=require&sslcert=client.pem", "DATABASE_URL: sslcert is not supported:"),
        ("channel_binding=require", "DATABASE_URL: channel_binding is not supported:"),
    ],
)
def test_postgres_parameters_the_service_cannot_use_stop_it_in_one_line(
    monkeypatch: pytest.MonkeyPatch, ca_file: Path, query: str, message: str
) -> None:
    not_pem = ca_file.with_name("not.pem")
    not_pem.write_text("not a certificate\n")
    found = refusal(monkeypatch, f"{POSTGRES}?{query.format(ca=ca_file, not_pem=not_pem)}")

    assert found.startswith(f"Configuration error: {message.format(not_pem=not_pem)}")


def test_mysql_ssl_modes(monkeypatch: pytest.MonkeyPatch, ca_file: Path) -> None:
    required = credentials(monkeypatch, f"{MYSQL}?ssl-mode=REQUIRED")["ssl"]
    identity = credentials(monkeypatch, f"{MYSQL}?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca_file}")["ssl"]

    assert required.verify_mode == ssl.CERT_NONE
    assert identity.verify_mode == ssl.CERT_REQUIRED
    assert identity.check_hostname
    assert "ssl" not in credentials(monkeypatch, f"{MYSQL}?ssl-mode=DISABLED")
    assert refusal(monkeypatch, f"{MYSQL}?ssl-mode=PREFERRED") == (
        "Configuration error: DATABASE_URL: ssl-mode=PREFERRED is not supported: "
        "use REQUIRED or VERIFY_IDENTITY"
    )


def test_pool_settings_override_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """DATABASE_POOL_MIN/MAX win over the URL's minsize/maxsize (or asyncpg's spelling)."""
    assert credentials(monkeypatch, POSTGRES).keys().isdisjoint({"minsize", "maxsize"})
    from_url = credentials(monkeypatch, f"{POSTGRES}?min_size=2&max_size=12")
    assert (from_url["minsize"], from_url["maxsize"]) == (2, 12)
    assert from_url.keys().isdisjoint({"min_size", "max_size"})

    found = credentials(
        monkeypatch, f"{MYSQL}?minsize=2&maxsize=12", DATABASE_POOL_MIN="0",
        DATABASE_POOL_MAX="20",
    )  # fmt: skip

    assert (found["minsize"], found["maxsize"]) == (0, 20)


def test_pool_minimum_above_the_maximum_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal(monkeypatch, POSTGRES, DATABASE_POOL_MIN="8")

    assert message == (
        "Configuration error: the pool's minimum (8: DATABASE_POOL_MIN or minsize in "
        "DATABASE_URL) is above its maximum (5: DATABASE_POOL_MAX, maxsize in DATABASE_URL or 5)"
    )


def test_sqlite_ignores_the_pool_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    found = credentials(monkeypatch, "sqlite://db.sqlite3", DATABASE_POOL_MAX="1")

    assert "maxsize" not in found


def test_mysql_ssl_mode_required_on_a_server_without_tls_fails_in_one_line() -> None:
    """The MariaDB the tests use serves no TLS: REQUIRED is refused, never used in the clear."""
    Backend("mysql", SERVER_URLS["mysql"]).check_reachable()
    server = urlsplit(SERVER_URLS["mysql"])
    if asyncio.run(mysql_has_tls(server.hostname, server.port, server.username, server.password)):
        pytest.skip("this MariaDB serves TLS")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"{SERVER_URLS['mysql']}/mysql?ssl-mode=REQUIRED",
        secret=TEST_SECRET,
    )

    with pytest.raises(ConfigError) as raised:
        require_reachable(settings)

    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("Cannot reach the database (DATABASE_URL): (2003, ")
    assert "SSL" in message


async def mysql_has_tls(
    host: str | None, port: int | None, user: str | None, password: str | None
) -> bool:
    """Whether the MariaDB server offers TLS (`have_ssl` is YES)."""
    connection = await asyncmy.connect(
        host=host, port=port or 3306, user=user, password=password or ""
    )
    try:
        async with connection.cursor() as cursor:
            await cursor.execute("SHOW VARIABLES LIKE 'have_ssl'")
            row = await cursor.fetchone()
    finally:
        connection.close()
    return bool(row and row[1] == "YES")
