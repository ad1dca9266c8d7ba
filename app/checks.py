"""`python -m app check`: is this deployment ready to serve? One result per dependency."""

import asyncio
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiosmtplib
import redis.asyncio
from tortoise import Tortoise, connections
from tortoise.exceptions import BaseORMException

from app.db import DatabaseNotReady, check_database, require_reachable, tortoise_config
from app.mail import smtp_tls_options
from app.settings import ConfigError, Settings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations" / "models"


@dataclass
class CheckResult:
    """One check: its name, whether it passed, and a line on what was found."""

    name: str
    ok: bool
    detail: str


def migration_files() -> list[str]:
    """The migrations shipped with the service, in the order Aerich applies them."""
    names = [path.name for path in MIGRATIONS.glob("*.py") if path.name[0].isdigit()]
    return sorted(names, key=lambda name: int(name.split("_", 1)[0]))


def without_password(url: str) -> str:
    """`url` with any password replaced by ***, fit to print."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


async def check_database_ready(settings: Settings) -> CheckResult:
    """The database answers, and every shipped migration is applied (no more, no less)."""
    url = without_password(settings.database_url)
    try:
        await asyncio.to_thread(require_reachable, settings)
    except ConfigError as exc:
        return CheckResult("database", False, f"{url}: {exc}")
    try:
        await Tortoise.init(config=tortoise_config(settings))
        await check_database()
        rows = await connections.get("default").execute_query_dict(
            "SELECT version FROM aerich WHERE app = 'models'"
        )
    except DatabaseNotReady as exc:
        return CheckResult("database", False, f"{url}: {exc}")
    except (BaseORMException, OSError) as exc:
        return CheckResult("database", False, f"{url}: {exc}")
    finally:
        await Tortoise.close_connections()
    applied = {row["version"] for row in rows}
    shipped = migration_files()
    missing = [name for name in shipped if name not in applied]
    if missing:
        return CheckResult(
            "database", False, f"{url}: not migrated, run `aerich upgrade` ({', '.join(missing)})"
        )
    unknown = sorted(applied - set(shipped))
    if unknown:
        return CheckResult(
            "database", False, f"{url}: has migrations this version lacks ({', '.join(unknown)})"
        )
    return CheckResult("database", True, f"{url}: reachable, {len(shipped)} migrations applied")


async def check_redis(settings: Settings) -> CheckResult:
    """Redis answers PING (only with REDIS_URL)."""
    if settings.redis_url is None:
        return CheckResult("redis", True, "not configured (rate limits counted in memory)")
    url = without_password(settings.redis_url)
    client = redis.asyncio.Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
    )
    try:
        await client.ping()
    except (redis.RedisError, OSError) as exc:
        return CheckResult("redis", False, f"{url}: {exc}")
    finally:
        await client.aclose()
    return CheckResult("redis", True, f"{url}: answers")


async def check_smtp(settings: Settings) -> CheckResult:
    """The SMTP server greets, takes TLS as configured, and the login works (with SMTP_HOST)."""
    if settings.smtp_host is None:
        return CheckResult("smtp", True, "not configured (mails are logged, not sent)")
    where = f"{settings.smtp_host}:{settings.smtp_port_or_default}"
    use_tls, start_tls = smtp_tls_options(settings.smtp_tls)
    client = aiosmtplib.SMTP(
        hostname=settings.smtp_host,
        port=settings.smtp_port_or_default,
        timeout=settings.smtp_timeout_seconds,
        use_tls=use_tls,
        start_tls=start_tls,
        cert_bundle=str(settings.smtp_ca_file) if settings.smtp_ca_file else None,
    )
    try:
        await client.connect()
        if settings.smtp_username and settings.smtp_password:
            await client.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        await client.quit()
    except (aiosmtplib.SMTPException, OSError) as exc:
        return CheckResult("smtp", False, f"{where}: {exc}")
    return CheckResult("smtp", True, f"{where}: answers")


async def run_checks(settings: Settings) -> list[CheckResult]:
    """Every check, in order (settings first: they were read to get here)."""
    return [
        CheckResult("settings", True, f"{settings.environment}"),
        await check_database_ready(settings),
        await check_redis(settings),
        await check_smtp(settings),
    ]
