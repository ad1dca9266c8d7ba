"""DATABASE_URL's query parameters as the drivers take them: TLS and the connection pool.

Providers hand out libpq-style URLs (`?sslmode=require&sslrootcert=ca.pem`) and MySQL
client options (`?ssl-mode=REQUIRED&ssl-ca=ca.pem`); asyncpg and asyncmy take an `ssl`
argument instead and fail with a long `TypeError` on the others. This module turns the
ones we support into an `ssl.SSLContext` (or asyncpg's own mode name) and refuses the
rest with one line saying what to write instead. See docs/databases.md, "TLS".
"""

import ssl
from pathlib import Path
from typing import Any

POSTGRES_ENGINE = "tortoise.backends.asyncpg"
MYSQL_ENGINE = "tortoise.backends.mysql"

POSTGRES_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
MYSQL_SSL_MODES = ("DISABLED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY")
# libpq parameters asyncpg does not take, and what to write instead.
POSTGRES_REFUSED = {
    "sslcert": "client certificates are not supported; use a password",
    "sslkey": "client certificates are not supported; use a password",
    "sslpassword": "client certificates are not supported; use a password",
    "sslcrl": "certificate revocation lists are not supported; remove it",
    "sslcrldir": "certificate revocation lists are not supported; remove it",
    "channel_binding": "remove it (asyncpg negotiates SCRAM itself)",
    "gssencmode": "GSSAPI is not supported; remove it and use sslmode",
    "connect_timeout": "remove it (the service sets its own timeouts)",
    "options": "remove it; set server options on the database role instead",
}
MYSQL_REFUSED = {
    "ssl-cert": "client certificates are not supported; use a password",
    "ssl-key": "client certificates are not supported; use a password",
    "ssl_cert": "client certificates are not supported; use a password",
    "ssl_key": "client certificates are not supported; use a password",
}


def tls_context(verify_ca: bool, verify_host: bool, ca_file: str | None) -> ssl.SSLContext:
    """A client TLS context: encrypt only, or also check the CA, and also the host name."""
    if not verify_ca:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    # Without a CA file, the system's trusted CAs (what cloud providers' certificates chain to).
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except ssl.SSLError as exc:
        raise ValueError(f"{ca_file} holds no usable CA certificate (PEM): {exc}") from None
    context.check_hostname = verify_host
    return context


def ca_file_of(credentials: dict[str, Any], *names: str) -> str | None:
    """The CA file named by the first of `names` in the URL, which must exist."""
    for name in names:
        value = credentials.pop(name, None)
        if value is not None:
            if not Path(value).is_file():
                raise ValueError(f"{name}={value}: no such file")
            return str(value)
    return None


def refuse(credentials: dict[str, Any], refused: dict[str, str]) -> None:
    """Stop at the first parameter the driver would choke on, saying what to do instead."""
    for name, instead in refused.items():
        if name in credentials:
            raise ValueError(f"{name} is not supported: {instead}")


def postgres_tls(credentials: dict[str, Any]) -> None:
    """Replace libpq's `sslmode`/`sslrootcert` with asyncpg's `ssl`, in place."""
    refuse(credentials, POSTGRES_REFUSED)
    mode = credentials.pop("sslmode", None)
    ca_file = ca_file_of(credentials, "sslrootcert")
    if mode is None:
        if ca_file is not None:
            raise ValueError("sslrootcert needs sslmode=verify-full (or verify-ca, require)")
        return
    mode = str(mode).lower()
    if mode not in POSTGRES_SSLMODES:
        raise ValueError(f"sslmode={mode} is unknown; use one of {', '.join(POSTGRES_SSLMODES)}")
    if mode in ("disable", "allow", "prefer"):
        if ca_file is not None:
            raise ValueError(f"sslrootcert is not used with sslmode={mode}; use verify-full")
        # asyncpg knows these three by name (prefer: TLS if the server offers it).
        credentials["ssl"] = False if mode == "disable" else mode
        return
    # As libpq: `require` with a root certificate checks the CA (like verify-ca).
    verify_ca = mode != "require" or ca_file is not None
    credentials["ssl"] = tls_context(verify_ca, mode == "verify-full", ca_file)


def mysql_tls(credentials: dict[str, Any]) -> None:
    """Replace MySQL's `ssl-mode`/`ssl-ca` with asyncmy's `ssl`, in place."""
    refuse(credentials, MYSQL_REFUSED)
    mode = credentials.pop("ssl-mode", None) or credentials.pop("ssl_mode", None)
    ca_file = ca_file_of(credentials, "ssl-ca", "ssl_ca")
    if mode is None:
        if ca_file is not None:
            raise ValueError("ssl-ca needs ssl-mode=VERIFY_IDENTITY (or VERIFY_CA)")
        return
    mode = str(mode).upper()
    if mode == "PREFERRED":
        raise ValueError("ssl-mode=PREFERRED is not supported: use REQUIRED or VERIFY_IDENTITY")
    if mode not in MYSQL_SSL_MODES:
        raise ValueError(f"ssl-mode={mode} is unknown; use one of {', '.join(MYSQL_SSL_MODES)}")
    if mode == "DISABLED":
        return
    verify_ca = mode != "REQUIRED" or ca_file is not None
    credentials["ssl"] = tls_context(verify_ca, mode == "VERIFY_IDENTITY", ca_file)


def apply_driver_options(
    connection: dict[str, Any], pool_min: int | None, pool_max: int | None
) -> dict[str, Any]:
    """`connection` (from Tortoise's `expand_db_url`) with TLS and pool sizes as drivers take them.

    Raises ValueError with one line when a parameter cannot be used.
    """
    credentials: dict[str, Any] = connection["credentials"]
    try:
        if connection["engine"] == POSTGRES_ENGINE:
            postgres_tls(credentials)
            # asyncpg's own names would silently override Tortoise's: one spelling only.
            for ours, asyncpgs in (("minsize", "min_size"), ("maxsize", "max_size")):
                if asyncpgs in credentials:
                    credentials.setdefault(ours, credentials.pop(asyncpgs))
        elif connection["engine"] == MYSQL_ENGINE:
            mysql_tls(credentials)
        else:
            return connection  # SQLite: no server, no pool
    except ValueError as exc:
        raise ValueError(f"DATABASE_URL: {exc}") from None
    if pool_min is not None:
        credentials["minsize"] = pool_min
    if pool_max is not None:
        credentials["maxsize"] = pool_max
    # Tortoise's defaults (1 and 5) when neither the settings nor the URL say.
    minsize, maxsize = int(credentials.get("minsize", 1)), int(credentials.get("maxsize", 5))
    if minsize > maxsize:
        raise ValueError(
            f"the pool's minimum ({minsize}: DATABASE_POOL_MIN or minsize in DATABASE_URL) is "
            f"above its maximum ({maxsize}: DATABASE_POOL_MAX, maxsize in DATABASE_URL or 5)"
        )
    return connection
