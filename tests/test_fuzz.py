"""Fuzzing: schemathesis calls every operation of the app's own OpenAPI with generated
requests, without a token, with a user's token and with a superuser's, and checks that
no answer is a 500 and every answer matches the schema.

It runs in-process against the ASGI app on SQLite (schemathesis runs the app's lifespan
in its own event-loop thread), bounded by `MAX_EXAMPLES` per operation so the whole
module takes a minute or two. Rate limits are off so that the routes themselves are
exercised rather than the 429 (which `test_ratelimit.py` covers).
"""

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from email_validator import EmailNotValidError, validate_email
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    missing_required_header,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from schemathesis.specs.openapi.formats import unregister_string_format
from schemathesis.specs.openapi.schemas import OpenApiSchema
from tortoise.contrib.fastapi import RegisterTortoise

from app.app import create_app
from app.db import tortoise_config
from app.mail import Mailer
from app.models import UserCreate
from app.passwords import PasswordHasher
from app.settings import OAuthProvider, Settings
from app.user_db import TortoiseUserDatabase
from app.users import UserManager
from tests.conftest import PASSWORD, TEST_SECRET, clear_rows, forget_cached_sql, with_settings
from tests.oidc_provider import JSONServer

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

MAX_EXAMPLES = 100
# Every response-conformance check schemathesis has, and the two that hold the schema to
# what the service accepts: invalid data is refused, valid data is not refused for its shape.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    missing_required_header,
    unsupported_method,
    allow_header_conformance,
]
# Schema-valid requests may still be refused by the service's rules with FastAPI Users'
# 400 codes (a weak password, a taken address, a bad token), 413 beyond MAX_BODY_BYTES and
# 409 LAST_SUPERUSER; never with 422, which would mean the schema offers what is refused.
# 303 is the browser flow's start (`/auth/{provider}/page`): a redirect to the provider.
FUZZ_CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", 303, 400, 401, 403, 404, 409, 413, 429]
            }
        }
    }
)
USER = "fuzz-user@example.com"
SUPERUSER = "fuzz-admin@example.com"


async def make_users(settings: Settings) -> None:
    """An empty database but for one user and one superuser, both with PASSWORD."""
    forget_cached_sql()
    async with RegisterTortoise(config=tortoise_config(settings)):
        await clear_rows()
        hasher, mailer = PasswordHasher(settings), Mailer(settings)
        manager = UserManager(TortoiseUserDatabase(), settings, hasher, mailer)
        await manager.create(UserCreate(email=USER, password=PASSWORD))
        await manager.create(
            UserCreate(email=SUPERUSER, password=PASSWORD, is_superuser=True, is_verified=True)
        )


@pytest.fixture
def fuzzed_app(settings: Settings) -> Iterator[FastAPI]:
    """The app, over a database holding the two users; its lifespan ends with the test."""
    asyncio.run(make_users(settings))
    forget_cached_sql()
    yield create_app(settings)
    asgi.shutdown_lifespans()


def accepted_by_email_validator(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


@pytest.fixture
def fuzz_schema(fuzzed_app: FastAPI) -> Iterator[OpenApiSchema]:
    """The app's own OpenAPI, read from `/openapi.json` through the ASGI app.

    `format: email` is generated as the schema's description says: addresses
    email-validator accepts (schemathesis' own include special-use `.test` domains).
    """
    schemathesis.openapi.format("email", st.emails().filter(accepted_by_email_validator))
    yield schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app, config=FUZZ_CONFIG)
    unregister_string_format("email")


@pytest.fixture
def token_headers(fuzzed_app: FastAPI, fuzz_schema: OpenApiSchema) -> list[dict[str, str]]:
    """No token, a user's bearer token and a superuser's."""
    headers: list[dict[str, str]] = [{}]
    with asgi.get_client(fuzzed_app) as http:
        for email in (USER, SUPERUSER):
            response = http.post("/auth/jwt/login", data={"username": email, "password": PASSWORD})
            assert response.status_code == 200, response.text
            headers.append({"Authorization": f"Bearer {response.json()['access_token']}"})
    return headers


def operations() -> list[Any]:
    """Every operation of the OpenAPI with each generation mode that applies to it.

    Read from an app that is built but not started. Negative (invalid) data is made for
    operations with a body; the others have nothing that can be made invalid.
    """
    settings = Settings(_env_file=None, secret=TEST_SECRET)  # type: ignore[call-arg]
    spec = create_app(settings).openapi()
    found = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            modes = [GenerationMode.POSITIVE]
            if "requestBody" in operation:
                modes.append(GenerationMode.NEGATIVE)
            for mode in modes:
                found.append(
                    pytest.param(
                        method.upper(), path, mode, id=f"{mode.value}-{method.upper()}-{path}"
                    )
                )
    return found


@pytest.mark.parametrize(("method", "path", "mode"), operations())
def test_api_never_fails_and_matches_its_schema(
    fuzz_schema: OpenApiSchema,
    token_headers: list[dict[str, str]],
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    operation = fuzz_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call_with_each_token(case: Case) -> None:
        for headers in token_headers:
            case.call_and_validate(headers=headers, checks=CHECKS)

    call_with_each_token()


# Reuse mails the owner, and writing a mail out draws MIME boundaries from the global
# `random`, in the app's thread while hypothesis draws the next case: mails are logged here.
@with_settings(smtp_host=None)
def test_refresh_with_live_tokens_never_fails_and_matches_its_schema(
    fuzzed_app: FastAPI, fuzz_schema: OpenApiSchema
) -> None:
    """The refresh route's success, grace and reuse paths, which random tokens never reach.

    Each generated body carries a real refresh token: a fresh one, the one just used
    (within the grace), or one two rotations old (reuse, which revokes the session).
    """
    operation = fuzz_schema["/auth/jwt/refresh"]["POST"]
    used: list[str] = []
    statuses: set[int] = set()

    with asgi.get_client(fuzzed_app) as http:

        def live_token() -> str:
            response = http.post("/auth/jwt/login", data={"username": USER, "password": PASSWORD})
            assert response.status_code == 200, response.text
            token: str = response.json()["refresh_token"]
            return token

        def reused_token() -> str:
            """A token two rotations old: presenting it again is reuse."""
            first = live_token()
            second = http.post("/auth/jwt/refresh", json={"refresh_token": first})
            http.post("/auth/jwt/refresh", json={"refresh_token": second.json()["refresh_token"]})
            return first

        @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
        @hypothesis_settings(
            max_examples=MAX_EXAMPLES // 2,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call_with_real_tokens(case: Case) -> None:
            if isinstance(case.body, dict) and "refresh_token" in case.body:
                pick = len(used) % 3
                token = (
                    [live_token, lambda: used[-1], reused_token][pick]() if used else live_token()
                )
                used.append(token)
                case.body["refresh_token"] = token
            statuses.add(case.call_and_validate(checks=CHECKS).status_code)

        call_with_real_tokens()

    assert {200, 400} <= statuses


# --- the provider sign-in's routes (docs/oauth.md), which exist only when one is configured ----


@pytest.fixture
def provider_discovery() -> Iterator[str]:
    """A discovery document on loopback: the routes start flows; no callback gets further
    than its state check, as a fuzzer holds no flow cookie."""
    server = JSONServer({})
    server.routes["/.well-known/openid-configuration"] = {
        "issuer": server.url, "authorization_endpoint": f"{server.url}/authorize",
        "token_endpoint": f"{server.url}/token", "jwks_uri": f"{server.url}/jwks",
    }  # fmt: skip
    yield f"{server.url}/.well-known/openid-configuration"
    server.close()


def with_provider(settings: Settings, discovery_url: str) -> Settings:
    """`settings` with the provider `corp` and a front-end URL (so every OAuth route exists)."""
    provider = OAuthProvider.model_validate(
        {"name": "corp", "client_id": "c", "client_secret": "s", "discovery_url": discovery_url}
    )
    return settings.model_copy(
        update={"oauth_providers": [provider], "oauth_frontend_url": "https://front.example/"}
    )


def oauth_operations() -> list[Any]:
    """The operations only a configured provider adds, each with its generation modes."""
    settings = Settings(_env_file=None, secret=TEST_SECRET)  # type: ignore[call-arg]
    plain = set(create_app(settings).openapi()["paths"])
    spec = create_app(with_provider(settings, "https://idp.example/")).openapi()
    return [
        pytest.param(method.upper(), path, id=f"{method.upper()}-{path}")
        for path, item in spec["paths"].items() if path not in plain
        for method in item
    ]  # fmt: skip


@pytest.mark.parametrize(("method", "path"), oauth_operations())
def test_oauth_routes_never_fail_and_match_their_schema(
    settings: Settings, provider_discovery: str, method: str, path: str
) -> None:
    """The provider `corp` in the path (random names only meet the 404), random queries."""
    asyncio.run(make_users(settings))
    forget_cached_sql()
    app = create_app(with_provider(settings, provider_discovery))
    schemathesis.openapi.format("email", st.emails().filter(accepted_by_email_validator))
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=FUZZ_CONFIG)
        headers: list[dict[str, str]] = [{}]
        with asgi.get_client(app) as http:
            login = {"username": USER, "password": PASSWORD}
            token = http.post("/auth/jwt/login", data=login).json()["access_token"]
            headers.append({"Authorization": f"Bearer {token}"})

        @given(case=schema[path][method].as_strategy(generation_mode=GenerationMode.POSITIVE))
        @hypothesis_settings(
            max_examples=MAX_EXAMPLES // 2,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call_with_each_token(case: Case) -> None:
            for provider in ("corp", case.path_parameters.get("provider")):
                if provider is not None:
                    case.path_parameters["provider"] = provider
                for header in headers:
                    case.call_and_validate(headers=header, checks=CHECKS)

        call_with_each_token()
    finally:
        unregister_string_format("email")
        asgi.shutdown_lifespans()
