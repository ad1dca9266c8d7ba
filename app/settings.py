"""Every setting of the service, read once from the environment (and an optional `.env`)."""

import contextlib
import logging
import os
import secrets
import tempfile
from email.utils import parseaddr
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from limits import parse_many
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.exceptions import ConfigurationError

from app.database_url import apply_driver_options

logger = logging.getLogger(__name__)

MIN_SECRET_BYTES = 32
# Values copied from examples and templates: a secret anyone has read is no secret.
PLACEHOLDER_SECRETS = frozenset(
    {"secret", "changethis", "changeme", "change-me", "your-secret-key", "supersecret"}
)
DATABASE_SCHEMES = ("sqlite", "postgres", "postgresql", "asyncpg", "psycopg", "mysql", "asyncmy")


# Names a provider may not take: they are other routes under /auth/.
RESERVED_PROVIDER_NAMES = frozenset(
    {"jwt", "register", "forgot-password", "reset-password", "request-verify-token", "verify"}
)
GOOGLE_DISCOVERY_URL = "https://accounts.google.com/.well-known/openid-configuration"
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def check_provider_url(url: str) -> str:
    """`url` if it is https, or http on a loopback host (a test provider); else ValueError."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"{url!r} is not a URL")
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
        return url.rstrip("/")
    raise ValueError(f"{url!r} must be https:// (http:// only on a loopback host)")


class OAuthProvider(BaseModel):
    """One entry of OAUTH_PROVIDERS (docs/oauth.md): a sign-in provider and our client there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    preset: Literal["oidc", "google", "github"] = "oidc"
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    # OpenID Connect: the issuer's discovery document (Google's is built in).
    discovery_url: str | None = None
    scopes: list[str] | None = None
    # GitHub only: another GitHub (Enterprise Server): its web and API base URLs.
    github_url: str = "https://github.com"
    github_api_url: str = "https://api.github.com"

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_PROVIDER_NAMES:
            raise ValueError(f"{name!r} is taken by another /auth/ route")
        return name

    @field_validator("discovery_url", "github_url", "github_api_url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        return None if url is None else check_provider_url(url)

    @model_validator(mode="after")
    def _discovery_for_oidc(self) -> Self:
        if self.preset == "google" and self.discovery_url is None:
            object.__setattr__(self, "discovery_url", GOOGLE_DISCOVERY_URL)
        if self.preset != "github" and self.discovery_url is None:
            raise ValueError(f"provider {self.name!r}: discovery_url is required")
        return self

    @property
    def scope(self) -> str:
        """The scopes asked for: the configured ones, or what sign-in needs."""
        if self.scopes is not None:
            return " ".join(self.scopes)
        return "read:user user:email" if self.preset == "github" else "openid email"


class ConfigError(SystemExit):
    """A setting is unusable; the message is one line that names the variable."""


class Settings(BaseSettings):
    """The service's configuration; each field is the environment variable of the same name."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"
    database_url: str = "sqlite://db.sqlite3"
    secret: str | None = Field(default=None, repr=False)
    dev_secret_file: Path = Path(".dev-secret")
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    # PostgreSQL/MariaDB connections per worker (None: DATABASE_URL's minsize/maxsize, else 1/5).
    database_pool_min: int | None = Field(default=None, ge=0)
    database_pool_max: int | None = Field(default=None, ge=1)
    # `python main.py` (make run): worker processes, and the request-head limit of each.
    web_concurrency: int = Field(default=1, ge=1)
    max_header_bytes: int = Field(default=16384, ge=1024)
    http_parser: Literal["h11", "httptools"] = "h11"
    jwt_lifetime_seconds: int = Field(default=3600, gt=0)
    # Sessions (app/sessions.py, docs/sessions.md).
    session_idle_seconds: int = Field(default=7 * 86400, gt=0)
    session_max_seconds: int = Field(default=30 * 86400, gt=0)
    session_history_seconds: int = Field(default=7 * 86400, ge=0)
    refresh_reuse_grace_seconds: int = Field(default=10, ge=0)
    session_fresh_seconds: int = Field(default=600, ge=0)
    max_sessions_per_user: int = Field(default=100, ge=1)
    # The second factor (app/mfa.py, docs/mfa.md).
    mfa_encryption_key: SecretStr | None = Field(default=None, repr=False)
    mfa_totp_tolerance_steps: int = Field(default=0, ge=0, le=1)
    mfa_token_lifetime_seconds: int = Field(default=300, gt=0, le=3600)
    mfa_token_max_attempts: int = Field(default=5, ge=1, le=20)
    mfa_issuer: str = Field(default="FastAPI Users", min_length=1, max_length=100)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_format: Literal["json", "text"] | None = None  # text in development, JSON in production
    access_log: bool = True
    metrics_enabled: bool = False
    metrics_token: SecretStr | None = None
    audit_retention_days: int = Field(default=90, ge=1)
    shutdown_drain_seconds: float = Field(default=0, ge=0, le=300)
    password_min_length: int = Field(default=8, ge=1)
    # OWASP's argon2id baseline (m=19 MiB, t=2, p=1): see README, "Password hashing".
    password_hash_time_cost: int = Field(default=2, ge=1)
    password_hash_memory_cost: int = Field(default=19456, ge=8, description="KiB")
    password_hash_parallelism: int = Field(default=1, ge=1)
    password_hash_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    reset_password_token_lifetime_seconds: int = Field(default=1800, gt=0)
    verify_token_lifetime_seconds: int = Field(default=86400, gt=0)
    # In development, the address the service listens on (HOST:PORT); required in production.
    public_url: str = ""
    # None: on in development, off in production (see README, "Settings").
    docs_enabled: bool | None = None
    smtp_host: str | None = None
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: Literal["starttls", "tls", "none"] = "starttls"
    smtp_timeout_seconds: float = Field(default=10, gt=0)
    smtp_ca_file: Path | None = None
    mail_from: str = "FastAPI Users <noreply@localhost>"
    mail_send_attempts: int = Field(default=3, ge=1, le=10)
    mail_retry_delay_seconds: float = Field(default=2, ge=0)
    password_min_strength: int = Field(default=3, ge=0, le=4, description="zxcvbn score")

    # Rate limits, in the `limits` syntax ("5/minute", several joined by ";"); "" is no limit.
    rate_limits_enabled: bool = True
    rate_limit_login_per_ip: str = "10/minute;100/hour"
    rate_limit_login_per_account: str = "20/minute"
    rate_limit_register_per_ip: str = "10/minute;50/hour"
    rate_limit_register_per_account: str = "5/minute"
    rate_limit_forgot_password_per_ip: str = "5/minute;30/hour"
    rate_limit_forgot_password_per_account: str = "3/minute"
    rate_limit_request_verify_token_per_ip: str = "5/minute;30/hour"
    rate_limit_request_verify_token_per_account: str = "3/minute"
    rate_limit_verify_per_ip: str = "10/minute;100/hour"
    rate_limit_reset_password_per_ip: str = "10/minute;100/hour"
    rate_limit_refresh_per_ip: str = "60/minute;1000/hour"
    rate_limit_mfa_failures_per_ip: str = "5/5minutes"
    rate_limit_mfa_failures_per_account: str = "5/5minutes"
    redis_url: str | None = None
    redis_timeout_seconds: float = Field(default=0.5, gt=0)
    rate_limit_key_prefix: str = Field(default="fastapi-users-ratelimit", min_length=1)
    trusted_proxies: Annotated[list[IPv4Network | IPv6Network], NoDecode] = []

    # Sign-in with providers (app/oauth.py, docs/oauth.md); none configured, no routes.
    oauth_providers: list[OAuthProvider] = []
    oauth_allow_signup: bool = True
    oauth_frontend_url: str = ""
    oauth_flow_seconds: int = Field(default=600, ge=30, le=3600)
    oauth_http_timeout_seconds: float = Field(default=10, gt=0)

    cors_origins: Annotated[list[str], NoDecode] = []
    max_body_bytes: int = Field(default=65536, ge=1)

    @field_validator("log_level", mode="before")
    @classmethod
    def _lowercase_log_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_trusted_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part for part in value.replace(",", " ").split() if part]
        if isinstance(value, list):
            try:
                return [ip_network(str(part), strict=False) for part in value]
            except ValueError as exc:
                raise ValueError(f"not an IP address or network: {exc}") from None
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_cors_origins(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.rstrip("/") for part in value.replace(",", " ").split() if part]
        if isinstance(value, list) and {"*", "null"} & set(value):
            raise ValueError("list the origins themselves; '*' and 'null' are not allowed")
        return value

    @field_validator("rate_limit_login_per_ip", "rate_limit_login_per_account",
                     "rate_limit_register_per_ip", "rate_limit_register_per_account",
                     "rate_limit_forgot_password_per_ip", "rate_limit_forgot_password_per_account",
                     "rate_limit_request_verify_token_per_ip",
                     "rate_limit_request_verify_token_per_account",
                     "rate_limit_verify_per_ip", "rate_limit_reset_password_per_ip",
                     "rate_limit_refresh_per_ip", "rate_limit_mfa_failures_per_ip",
                     "rate_limit_mfa_failures_per_account")  # fmt: skip
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        if value.strip():
            try:
                parse_many(value)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a rate limit; write e.g. '5/minute' or '10/minute;100/hour'"
                ) from None
        return value.strip()

    @field_validator("mfa_encryption_key", mode="before")
    @classmethod
    def _check_mfa_encryption_key(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return None
            for key in value.replace(",", " ").split():
                try:
                    Fernet(key)
                except ValueError:
                    raise ValueError(
                        "each key must be a Fernet key (32 bytes, url-safe base64); make one "
                        "with python -c 'from cryptography.fernet import Fernet; "
                        "print(Fernet.generate_key().decode())'"
                    ) from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("use redis://HOST:PORT/DB, rediss://... or unix://PATH")
        return value.strip()

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in DATABASE_SCHEMES:
            raise ValueError(
                f"unsupported scheme {scheme!r}; use sqlite://, postgres:// or mysql://"
            )
        try:
            expand_db_url(value)
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("smtp_tls", mode="before")
    @classmethod
    def _lowercase_smtp_tls(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lowercase_log_format(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().lower() or None
        return value

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("smtp_host", "smtp_username", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        if not value.strip():
            return ""  # filled in by `_public_url_defaults_to_listening_address`
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL, e.g. https://users.example.com")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        return value.strip().rstrip("/")

    @field_validator("oauth_providers")
    @classmethod
    def _unique_provider_names(cls, providers: list[OAuthProvider]) -> list[OAuthProvider]:
        names = [provider.name for provider in providers]
        if len(set(names)) != len(names):
            raise ValueError("each provider needs a name of its own")
        return providers

    @field_validator("oauth_frontend_url")
    @classmethod
    def _check_frontend_url(cls, value: str) -> str:
        if not value.strip():
            return ""
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL, e.g. https://app.example.com/")
        if parts.fragment:
            raise ValueError("must not have a fragment: the sign-in's answer goes there")
        return value.strip()

    @field_validator("mail_from")
    @classmethod
    def _check_mail_from(cls, value: str) -> str:
        _, address = parseaddr(value)
        if "@" not in address or "\n" in value or "\r" in value:
            raise ValueError("must be an address, e.g. noreply@example.com or Name <a@b.c>")
        return value.strip()

    @model_validator(mode="after")
    def _database_options_usable(self) -> Self:
        # TLS parameters and pool sizes, checked here so a bad one stops the start in one line.
        apply_driver_options(
            expand_db_url(self.database_url), self.database_pool_min, self.database_pool_max
        )
        return self

    @model_validator(mode="after")
    def _public_url_defaults_to_listening_address(self) -> Self:
        if not self.public_url and self.environment == "development":
            # A wildcard address is no place to send a browser to; loopback is.
            host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
            host = f"[{host}]" if ":" in host else host
            self.public_url = f"http://{host}:{self.port}"
        return self

    @model_validator(mode="after")
    def _production_sends_real_mail(self) -> Self:
        # Reset and verification links must reach users, and must not land in a log.
        if self.environment == "production":
            missing = [
                name.upper()
                for name in ("smtp_host", "public_url", "mail_from")
                if name not in self.model_fields_set or not getattr(self, name)
            ]
            if missing:
                raise ValueError(f"{', '.join(missing)} must be set in production")
        return self

    @property
    def docs_on(self) -> bool:
        """Whether `/docs`, `/redoc` and `/openapi.json` are served: DOCS_ENABLED, else
        only in development."""
        if self.docs_enabled is not None:
            return self.docs_enabled
        return self.environment == "development"

    @property
    def smtp_port_or_default(self) -> int:
        """SMTP_PORT, or the usual port of the TLS mode: 587 STARTTLS, 465 TLS, 25 none."""
        if self.smtp_port is not None:
            return self.smtp_port
        return {"starttls": 587, "tls": 465, "none": 25}[self.smtp_tls]

    @property
    def log_format_or_default(self) -> Literal["json", "text"]:
        """LOG_FORMAT, or JSON in production and text in development."""
        if self.log_format is not None:
            return self.log_format
        return "json" if self.environment == "production" else "text"

    @property
    def jwt_secret(self) -> str:
        """The signing secret; set once `resolve_secret` has run."""
        if self.secret is None:
            raise RuntimeError("resolve_secret() has not run on these settings")
        return self.secret


def secret_problem(secret: str | None) -> str | None:
    """Say what makes `secret` unfit for production, or None when it is fine."""
    secret = (secret or "").strip()
    if not secret:
        return "is missing"
    if secret.lower() in PLACEHOLDER_SECRETS:
        return "is a known placeholder"
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return f"is shorter than {MIN_SECRET_BYTES} bytes"
    return None


def read_or_create_dev_secret(path: Path) -> str:
    """Return the secret kept in `path`, creating it atomically so concurrent workers agree."""
    if not path.exists():
        # A temporary file of this call alone (threads share a pid), private from birth;
        # linking it into place fails if another worker won the race, and then we use theirs.
        descriptor, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f"{path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_urlsafe(48))
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    secret = path.read_text().strip()
    if not secret:
        raise ConfigError(f"Configuration error: DEV_SECRET_FILE {path} is empty; delete it")
    return secret


def load_settings() -> Settings:
    """Read the settings, or stop with a one-line message naming the bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        names = [str(part).upper() for part in error["loc"]]
        message = error["msg"].removeprefix("Value error, ")
        prefix = f"{names[0]}: " if names else ""
        raise ConfigError(f"Configuration error: {prefix}{message}") from None


def resolve_secret(settings: Settings) -> Settings:
    """Settings with a usable SECRET, or stop with a one-line message.

    Production refuses a missing, short or placeholder secret. Development without
    one warns and uses a random secret kept in `DEV_SECRET_FILE`.
    """
    if settings.environment == "production":
        problem = secret_problem(settings.secret)
        if problem:
            raise ConfigError(f"Configuration error: SECRET {problem}")
        return settings
    if settings.secret:
        problem = secret_problem(settings.secret)
        if problem:
            # Tokens signed with a secret anyone can read (an example's) can be forged.
            logger.warning(
                "SECRET %s: production refuses it, and anyone who knows it can forge "
                "access, reset and verification tokens. Use it for local development only.",
                problem,
            )
        return settings
    logger.warning(
        "SECRET is not set: using a random development secret kept in %s. "
        "Set SECRET before running in production.",
        settings.dev_secret_file,
    )
    return settings.model_copy(
        update={"secret": read_or_create_dev_secret(settings.dev_secret_file)}
    )
