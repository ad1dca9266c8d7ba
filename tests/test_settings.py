"""Settings: defaults, the environment and `.env`, the SECRET rules and one-line config errors.

No database is needed. Every test runs in an empty working directory with no setting
inherited from the real environment (the `clean_environment` fixture).
"""

import logging
import secrets
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.settings import (
    MIN_SECRET_BYTES,
    ConfigError,
    Settings,
    load_settings,
    read_or_create_dev_secret,
    resolve_secret,
)
from tests.conftest import ROOT, child_environment, free_port

GOOD_SECRET = secrets.token_urlsafe(48)
# Production needs these besides SECRET (mail must really be sent, with working links).
PRODUCTION_MAIL = {
    "SMTP_HOST": "smtp.example.com",
    "PUBLIC_URL": "https://users.example.com",
    "MAIL_FROM": "noreply@example.com",
}


def set_production(monkeypatch: pytest.MonkeyPatch) -> None:
    """ENVIRONMENT=production with the mail settings it requires."""
    monkeypatch.setenv("ENVIRONMENT", "production")
    for name, value in PRODUCTION_MAIL.items():
        monkeypatch.setenv(name, value)


pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.fixture
def child_env(clean_environment: pytest.MonkeyPatch, bytecode_cache: Path) -> dict[str, str]:
    """The cleaned environment for a child Python."""
    return child_environment(bytecode_cache)


def assert_one_line_naming(error: BaseException, variable: str) -> None:
    """`error` is a one-line message that names `variable`."""
    message = str(error)
    assert message.strip()
    assert "\n" not in message.strip()
    assert variable in message


def test_defaults() -> None:
    """Without environment or `.env`, the service uses its documented defaults."""
    settings = load_settings()

    assert settings.database_url == "sqlite://db.sqlite3"  # db.sqlite3 in the working directory
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.jwt_lifetime_seconds == 3600
    assert settings.environment == "development"
    assert settings.secret is None


def test_environment_variables_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each setting is read from the environment variable of the same name."""
    monkeypatch.setenv("DATABASE_URL", "postgres://app@db.internal:5432/users")
    monkeypatch.setenv("HOST", "0.0.0.0")  # noqa: S104 (a value under test, not a bind)
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("JWT_LIFETIME_SECONDS", "600")
    set_production(monkeypatch)
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")

    settings = load_settings()

    assert settings.database_url == "postgres://app@db.internal:5432/users"
    assert settings.host == "0.0.0.0"  # noqa: S104
    assert settings.port == 9000
    assert settings.jwt_lifetime_seconds == 600
    assert settings.environment == "production"
    assert settings.log_level == "debug"


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    """A `.env` in the working directory supplies settings."""
    (tmp_path / ".env").write_text("PORT=9001\nDATABASE_URL=mysql://root@127.0.0.1/users\n")

    settings = load_settings()

    assert settings.port == 9001
    assert settings.database_url == "mysql://root@127.0.0.1/users"


def test_environment_variable_wins_over_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An environment variable overrides the same setting in `.env`."""
    (tmp_path / ".env").write_text("PORT=9001\n")
    monkeypatch.setenv("PORT", "9002")

    assert load_settings().port == 9002


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("x" * (MIN_SECRET_BYTES - 1), id="one-byte-short"),
        pytest.param("changeme", id="placeholder"),
        pytest.param(" Your-Secret-Key ", id="placeholder-case-and-spaces"),
        pytest.param(" " * (MIN_SECRET_BYTES + 8), id="only-spaces"),
        pytest.param(" " * 20 + "x" * 20, id="short-once-stripped-of-padding"),
    ],
)
def test_production_refuses_unfit_secret(
    secret: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production stops with a one-line error naming SECRET, without echoing the value."""
    set_production(monkeypatch)
    if secret is not None:
        monkeypatch.setenv("SECRET", secret)
    settings = load_settings()

    with pytest.raises(ConfigError) as caught:
        resolve_secret(settings)

    assert isinstance(caught.value, SystemExit)
    assert_one_line_naming(caught.value, "SECRET")
    if secret and secret.strip():
        assert secret.strip() not in str(caught.value)


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param(GOOD_SECRET, id="random"),
        pytest.param("x" * MIN_SECRET_BYTES, id="exactly-minimum"),
        pytest.param("é" * (MIN_SECRET_BYTES // 2), id="minimum-in-bytes-not-characters"),
    ],
)
def test_production_accepts_good_secret(
    secret: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A long enough, non-placeholder SECRET is used as is; no dev secret file appears."""
    set_production(monkeypatch)
    monkeypatch.setenv("SECRET", secret)

    resolved = resolve_secret(load_settings())

    assert resolved.jwt_secret == secret
    assert not (tmp_path / ".dev-secret").exists()


def test_development_with_secret_uses_it_silently(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Development with SECRET set neither warns nor writes a dev secret file."""
    monkeypatch.setenv("SECRET", GOOD_SECRET)
    caplog.set_level(logging.WARNING, logger="app.settings")

    assert resolve_secret(load_settings()).jwt_secret == GOOD_SECRET
    assert not caplog.records
    assert not (tmp_path / ".dev-secret").exists()


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("SECRET", id="the-example-placeholder"),
        pytest.param("changethis", id="placeholder"),
        pytest.param("x" * (MIN_SECRET_BYTES - 1), id="one-byte-short"),
    ],
)
def test_development_warns_loudly_about_a_secret_production_would_refuse(
    secret: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Development still starts with a weak SECRET, but says what production would say."""
    monkeypatch.setenv("SECRET", secret)
    caplog.set_level(logging.WARNING, logger="app.settings")

    assert resolve_secret(load_settings()).jwt_secret == secret

    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("SECRET ")
    assert "production refuses it" in record.getMessage()
    assert "forge" in record.getMessage()
    assert secret not in record.getMessage().removeprefix("SECRET ")


def test_development_without_secret_warns_and_keeps_a_private_secret_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Development without SECRET warns and stores a random secret readable by its owner only."""
    caplog.set_level(logging.WARNING, logger="app.settings")

    resolved = resolve_secret(load_settings())

    secret_file = tmp_path / ".dev-secret"
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert "SECRET" in caplog.records[0].getMessage()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert resolved.jwt_secret == secret_file.read_text().strip()
    assert len(resolved.jwt_secret.encode()) >= MIN_SECRET_BYTES
    assert sorted(path.name for path in tmp_path.iterdir()) == [".dev-secret"]  # no temp left


def test_development_secret_survives_a_restart() -> None:
    """A second start without SECRET reuses the stored secret, so issued tokens stay valid."""
    first = resolve_secret(load_settings()).jwt_secret
    second = resolve_secret(load_settings()).jwt_secret

    assert second == first


def test_dev_secret_file_setting_is_honoured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """DEV_SECRET_FILE chooses where the development secret is kept."""
    monkeypatch.setenv("DEV_SECRET_FILE", str(tmp_path / "elsewhere" / "secret"))
    (tmp_path / "elsewhere").mkdir()

    resolved = resolve_secret(load_settings())

    assert resolved.jwt_secret == (tmp_path / "elsewhere" / "secret").read_text().strip()
    assert not (tmp_path / ".dev-secret").exists()


def race_threads_for_dev_secret(
    path: Path, threads_count: int
) -> tuple[list[str], list[BaseException]]:
    """Call `read_or_create_dev_secret(path)` from threads released together: results, errors."""
    barrier = threading.Barrier(threads_count)
    results: list[str] = []
    errors: list[BaseException] = []

    def create() -> None:
        barrier.wait()
        try:
            results.append(read_or_create_dev_secret(path))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


def test_concurrent_threads_agree_on_one_dev_secret(tmp_path: Path) -> None:
    """Threads racing to create the dev secret all get the one that was stored."""
    for attempt in range(10):  # the race depends on timing: give it several chances
        path = tmp_path / f"secret-{attempt}"

        results, errors = race_threads_for_dev_secret(path, threads_count=8)

        assert errors == [], f"attempt {attempt}"
        assert set(results) == {path.read_text().strip()}, f"attempt {attempt}"
        assert results[0]


CREATE_SECRET_WHEN_TOLD = """
import sys
from pathlib import Path
from app.settings import read_or_create_dev_secret
print("ready", flush=True)
sys.stdin.readline()
print(read_or_create_dev_secret(Path(sys.argv[1])), flush=True)
"""


def test_concurrent_processes_agree_on_one_dev_secret(
    tmp_path: Path, child_env: dict[str, str]
) -> None:
    """Worker processes started together all end up with the same dev secret."""
    path = tmp_path / ".dev-secret"
    workers = [
        subprocess.Popen(  # noqa: S603 (this interpreter, fixed script)
            [sys.executable, "-c", CREATE_SECRET_WHEN_TOLD, str(path)],
            cwd=ROOT,
            env=child_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for worker in workers:  # all imported and waiting: release them at once
            assert worker.stdout is not None
            assert worker.stdout.readline() == "ready\n"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        outputs = [worker.communicate(timeout=30)[0].strip() for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()

    assert [worker.returncode for worker in workers] == [0] * len(workers)
    assert set(outputs) == {path.read_text().strip()}
    assert outputs[0]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "nosuch://user:hunter2@host/db"),
        ("DATABASE_URL", "db.sqlite3"),
        ("DATABASE_URL", "postgres://user:hunter2@host:port/db"),
        ("DATABASE_URL", "sqlite://"),
        ("PORT", "http"),
        ("PORT", "0"),
        ("PORT", "65536"),
    ],
)
def test_bad_setting_is_a_one_line_error_naming_it(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad DATABASE_URL or PORT stops `load_settings` with one line naming the variable."""
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert_one_line_naming(caught.value, variable)
    assert "hunter2" not in str(caught.value)  # a password in the URL is never echoed


def test_bad_setting_in_dotenv_is_a_one_line_error(tmp_path: Path) -> None:
    """A bad value in `.env` is reported like one in the environment."""
    (tmp_path / ".env").write_text("PORT=eighty\n")

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert_one_line_naming(caught.value, "PORT")


def test_jwt_secret_before_resolution_is_an_error() -> None:
    """Settings whose secret was never resolved cannot sign tokens."""
    settings = Settings(_env_file=None)

    with pytest.raises(RuntimeError, match="resolve_secret"):
        _ = settings.jwt_secret


def test_production_start_without_secret_exits_with_one_line(child_env: dict[str, str]) -> None:
    """`python main.py` in production without SECRET exits non-zero: one line, no traceback."""
    env = {**child_env, **PRODUCTION_MAIL, "ENVIRONMENT": "production", "PORT": str(free_port())}

    result = subprocess.run(  # noqa: S603 (this interpreter, our own main.py)
        [sys.executable, str(ROOT / "main.py")],
        cwd=Path.cwd(),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "SECRET" in lines[0]


def test_empty_dev_secret_file_is_refused(tmp_path: Path) -> None:
    """An emptied dev secret file is an error, never an empty signing key."""
    path = tmp_path / ".dev-secret"
    path.write_text("\n")

    with pytest.raises(ConfigError) as caught:
        read_or_create_dev_secret(path)

    assert_one_line_naming(caught.value, "DEV_SECRET_FILE")


def test_security_defaults() -> None:
    """Rate limits on, memory counters, no trusted proxy, no CORS, 64 KiB bodies, score 3."""
    settings = load_settings()

    assert settings.rate_limits_enabled is True
    assert settings.rate_limit_login_per_ip == "10/minute;100/hour"
    assert settings.redis_url is None
    assert settings.trusted_proxies == []
    assert settings.cors_origins == []
    assert settings.max_body_bytes == 65536
    assert settings.password_min_strength == 3


def test_list_settings_read_comma_separated_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7 2001:db8::/32")
    monkeypatch.setenv("CORS_ORIGINS", "https://app.example, https://admin.example/")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/2")
    monkeypatch.setenv("RATE_LIMIT_LOGIN_PER_IP", "")

    settings = load_settings()

    assert [str(network) for network in settings.trusted_proxies] == [
        "10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32",
    ]  # fmt: skip
    assert settings.cors_origins == ["https://app.example", "https://admin.example"]
    assert settings.redis_url == "redis://127.0.0.1:6379/2"
    assert settings.rate_limit_login_per_ip == ""


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RATE_LIMIT_LOGIN_PER_IP", "lots"),
        ("TRUSTED_PROXIES", "10.0.0.0/8, proxy.example"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("MAX_BODY_BYTES", "0"),
        ("PASSWORD_MIN_STRENGTH", "5"),
        ("CORS_ORIGINS", "*"),
        ("CORS_ORIGINS", "https://app.example, null"),
    ],
)
def test_bad_security_setting_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert_one_line_naming(caught.value, variable)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"PORT": "9123"}, "http://127.0.0.1:9123"),
        ({"HOST": "0.0.0.0", "PORT": "9000"}, "http://127.0.0.1:9000"),  # noqa: S104
        ({"HOST": "::1", "PORT": "9000"}, "http://[::1]:9000"),
        ({"PORT": "9000", "PUBLIC_URL": "https://users.example.com/"}, "https://users.example.com"),
    ],
)
def test_public_url_defaults_to_where_development_listens(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    assert load_settings().public_url == expected


def test_production_still_requires_public_url(monkeypatch: pytest.MonkeyPatch) -> None:
    set_production(monkeypatch)
    monkeypatch.delenv("PUBLIC_URL")

    with pytest.raises(ConfigError) as raised:
        load_settings()

    assert_one_line_naming(raised.value, "PUBLIC_URL")


def test_docs_are_on_in_development_and_off_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().docs_on is True
    set_production(monkeypatch)
    assert load_settings().docs_on is False
    monkeypatch.setenv("DOCS_ENABLED", "true")
    assert load_settings().docs_on is True
