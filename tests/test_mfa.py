"""The second factor through HTTP on the three databases: enrolment, the two-step login,
replay and guessing, recovery codes, removal (app/mfa.py, app/mfa_routes.py).

The TOTP clock (`app.mfa.clock`) is moved by the tests, so every code is of a known time
step and no test waits for the next one.
"""

import asyncio
from datetime import timedelta
from ipaddress import ip_network
from typing import Any

import httpx
import pyotp
import pytest
from asgi_lifespan import LifespanManager
from cryptography.fernet import Fernet
from fastapi import FastAPI
from pydantic import SecretStr
from tortoise.contrib.fastapi import RegisterTortoise

from app import mfa
from app.app import create_app
from app.db import database_problem, tortoise_config
from app.mfa import MfaKeyMissing, make_cipher, normalize_recovery_code
from app.models import AuditEvent, MfaChallenge, MfaRecoveryCode, MfaTotp, Session, User, UserDB
from app.sessions import utcnow
from app.settings import Settings
from tests.conftest import (
    PASSWORD,
    Login,
    Mailbox,
    assert_error,
    clear_rows,
    forget_cached_sql,
    text_of,
    token_in,
    with_settings,
)

KEY = Fernet.generate_key().decode()
START = 1_800_000_000.0  # a fixed moment, at the start of a TOTP step


class Clock:
    """The TOTP clock of the app under test."""

    def __init__(self) -> None:
        self.now = START

    def step(self, steps: int = 1) -> None:
        """Move on by `steps` TOTP steps."""
        self.now += steps * mfa.TOTP_PERIOD


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """A clock the test moves; `app.mfa` reads it."""
    found = Clock()
    monkeypatch.setattr(mfa, "clock", lambda: found.now)
    return found


def code_at(secret: str, now: float, steps: int = 0) -> str:
    """The code of `secret` at `now`, moved by `steps` steps."""
    return pyotp.TOTP(secret).at(now + steps * mfa.TOTP_PERIOD)


async def enrol(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.post(
        "/users/me/mfa/totp", json={"current_password": PASSWORD}, headers=headers
    )
    assert response.status_code == 200, response.text
    enrolment: dict[str, Any] = response.json()
    return enrolment


async def enable(
    client: httpx.AsyncClient, headers: dict[str, str], clock: Clock
) -> tuple[str, list[str]]:
    """Enrol and confirm a factor: its secret and the recovery codes."""
    secret = (await enrol(client, headers))["secret"]
    response = await client.post(
        "/users/me/mfa/totp/confirm", json={"code": code_at(secret, clock.now)}, headers=headers
    )
    assert response.status_code == 200, response.text
    codes: list[str] = response.json()["recovery_codes"]
    return secret, codes


async def password_step(client: httpx.AsyncClient, email: str, **kwargs: Any) -> dict[str, Any]:
    """The login's first step for a user with a factor: the 401 body."""
    response = await client.post(
        "/auth/jwt/login", data={"username": email, "password": PASSWORD}, **kwargs
    )
    assert response.status_code == 401, response.text
    body: dict[str, Any] = response.json()
    return body


async def second_step(client: httpx.AsyncClient, mfa_token: str, **proof: str) -> httpx.Response:
    return await client.post("/auth/mfa/verify", json={"mfa_token": mfa_token, **proof})


async def emptied(mailbox: Mailbox) -> None:
    """Forget the mails sent so far, once they have arrived."""
    await mailbox.messages()
    mailbox.clear()


def bearer(response: httpx.Response) -> dict[str, str]:
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def actions(user: UserDB) -> list[str]:
    return [
        event.action
        async for event in AuditEvent.filter(subject_id=user.id).order_by("id")  # type: ignore[attr-defined]
    ]


# --- enrolment ------------------------------------------------------------------------------


async def test_enrolment_needs_the_current_password(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    missing = await client.post("/users/me/mfa/totp", json={}, headers=auth_headers)
    wrong = await client.post(
        "/users/me/mfa/totp", json={"current_password": "not it"}, headers=auth_headers
    )
    anonymous = await client.post("/users/me/mfa/totp", json={"current_password": PASSWORD})

    assert missing.status_code == 422
    assert_error(wrong, "MFA_INVALID_CURRENT_PASSWORD")
    assert anonymous.status_code == 401
    assert not await MfaTotp.exists()


async def test_enrolment_gives_a_160_bit_secret_its_uri_and_qr_code_stored_encrypted(
    client: httpx.AsyncClient, auth_headers: dict[str, str], user: UserDB, settings: Settings
) -> None:
    enrolment = await enrol(client, auth_headers)

    secret = enrolment["secret"]
    assert len(secret) == 32  # base32: 160 bits
    assert enrolment["otpauth_uri"].startswith("otpauth://totp/")
    assert f"secret={secret}" in enrolment["otpauth_uri"]
    assert enrolment["qr_svg"].startswith("<svg")
    stored = await MfaTotp.get(user_id=user.id)
    assert secret not in stored.secret
    cipher = make_cipher(settings)
    assert cipher is not None
    assert cipher.decrypt(stored.secret.encode()).decode() == secret
    status = await client.get("/users/me/mfa", headers=auth_headers)
    assert status.json() == {"totp": "pending", "recovery_codes_left": 0}


async def test_a_pending_factor_does_not_change_the_login(
    client: httpx.AsyncClient, auth_headers: dict[str, str], user: UserDB, login: Login
) -> None:
    await enrol(client, auth_headers)

    await login(user.email)  # 200


async def test_confirm_refuses_a_wrong_code_and_a_right_one_turns_the_factor_on(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    user: UserDB,
    login: Login,
    clock: Clock,
    mailbox: Mailbox,
) -> None:
    other_session = await login(user.email)
    secret = (await enrol(client, auth_headers))["secret"]
    wrong = code_at(secret, clock.now, steps=5)

    refused = await client.post(
        "/users/me/mfa/totp/confirm", json={"code": wrong}, headers=auth_headers
    )
    confirmed = await client.post(
        "/users/me/mfa/totp/confirm",
        json={"code": code_at(secret, clock.now)},
        headers=auth_headers,
    )

    assert_error(refused, "MFA_INVALID_CODE")
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    hashes = await MfaRecoveryCode.filter(user_id=user.id).values_list("code_hash", flat=True)
    assert all(hashed.startswith("$argon2id$") for hashed in hashes)
    assert not {normalize_recovery_code(code) for code in codes} & set(hashes)
    # Enabling ends the other sessions, not this one.
    assert (await client.get("/users/me", headers=other_session)).status_code == 401
    assert (await client.get("/users/me", headers=auth_headers)).status_code == 200
    status = await client.get("/users/me/mfa", headers=auth_headers)
    assert status.json() == {"totp": "enabled", "recovery_codes_left": 10}
    [mail] = await mailbox.messages()
    assert mail["Subject"] == "Two-step sign-in is on"
    assert "mfa_enabled" in await actions(user)
    again = await client.post(
        "/users/me/mfa/totp", json={"current_password": PASSWORD}, headers=auth_headers
    )
    assert_error(again, "MFA_ALREADY_ENABLED", 409)


# --- the login ------------------------------------------------------------------------------


async def test_login_asks_for_the_second_factor_and_gives_no_token(
    client: httpx.AsyncClient, auth_headers: dict[str, str], user: UserDB, clock: Clock
) -> None:
    await enable(client, auth_headers, clock)
    sessions_before = await Session.filter(user_id=user.id).count()

    body = await password_step(client, user.email)

    assert body["detail"] == "LOGIN_MFA_REQUIRED"
    assert body["methods"] == ["totp", "recovery_code"]
    assert body["expires_in"] == 300
    assert body["mfa_token"].startswith("mfa_")
    assert "access_token" not in body
    assert "refresh_token" not in body
    assert await Session.filter(user_id=user.id).count() == sessions_before
    # Stored hashed only.
    assert not await MfaChallenge.filter(token_hash=body["mfa_token"]).exists()


async def test_verify_with_totp_starts_a_session_of_two_factors_that_refresh_keeps(
    client: httpx.AsyncClient, auth_headers: dict[str, str], user: UserDB, clock: Clock
) -> None:
    secret, _ = await enable(client, auth_headers, clock)
    clock.step()
    body = await password_step(client, user.email)

    response = await second_step(client, body["mfa_token"], code=code_at(secret, clock.now))

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    headers = bearer(response)
    assert (await client.get("/users/me", headers=headers)).status_code == 200
    listed = (await client.get("/users/me/sessions", headers=headers)).json()
    assert [s["aal"] for s in listed if s["current"]] == [2]
    refreshed = await client.post(
        "/auth/jwt/refresh", json={"refresh_token": response.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200
    listed = (await client.get("/users/me/sessions", headers=bearer(refreshed))).json()
    assert [s["aal"] for s in listed if s["current"]] == [2]
    # The login is audited once, at the end of the second step.
    assert (await actions(user)).count("login") == 2  # auth_headers' login and this one
    used = await second_step(client, body["mfa_token"], code=code_at(secret, clock.now, 1))
    assert_error(used, "MFA_TOKEN_INVALID")


async def test_the_same_code_twice_is_refused(
    client: httpx.AsyncClient, auth_headers: dict[str, str], user: UserDB, clock: Clock
) -> None:
    secret, _ = await enable(client, auth_headers, clock)
    clock.step()
    code = code_at(secret, clock.now)
    first = await second_step(client, (await password_step(client, user.email))["mfa_token"],
                              code=code)  # fmt: skip

    again = await second_step(client, (await password_step(client, user.email))["mfa_token"],
                              code=code)  # fmt: skip

    assert first.status_code == 200, first.text
    assert_error(again, "MFA_INVALID_CODE")


async def test_the_confirming_code_does_not_sign_in(
    client: httpx.AsyncClient, auth_headers: dict[str, str], user: UserDB, clock: Clock
) -> None:
    secret, _ = await enable(client, auth_headers, clock)

    body = await password_step(client, user.email)
    response = await second_step(client, body["mfa_token"], code=code_at(secret, clock.now))

    assert_error(response, "MFA_INVALID_CODE")


@with_settings(mfa_totp_tolerance_steps=1)
async def test_an_earlier_step_after_a_later_one_is_refused(
    client: httpx.AsyncClient, auth_headers: dict[str, str], user: UserDB, clock: Clock
) -> None:
    secret, _ = await enable(client, auth_headers, clock)  # step s accepted
    clock.step()  # now s + 1; s, s + 1 and s + 2 are within the tolerance

    later = await second_step(client, (await password_step(client, user.email))["mfa_token"],
                              code=code_at(secret, clock.now, 1))  # fmt: skip
    earlier = await second_step(client, (await password_step(client, user.email))["mfa_token"],
                                code=code_at(secret, clock.now))  # fmt: skip

    assert later.status_code == 200, later.text
    assert_error(earlier, "MFA_INVALID_CODE")


async def test_tolerance_is_zero_steps_by_default(
    client: httpx.AsyncClient, auth_headers: dict[str, str], user: UserDB, clock: Clock
) -> None:
    secret, _ = await enable(client, auth_headers, clock)
    clock.step(5)

    for steps in (-1, 1):
        body = await password_step(client, user.email)
        response = await second_step(
            client, body["mfa_token"], code=code_at(secret, clock.now, steps)
        )
        assert_error(response, "MFA_INVALID_CODE")


async def test_verify_with_a_recovery_code_once_and_the_mail_says_how_many_are_left(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    user: UserDB,
    clock: Clock,
    mailbox: Mailbox,
) -> None:
    _, codes = await enable(client, auth_headers, clock)
    await emptied(mailbox)
    # Typed in lower case, without the dash, O for 0 and I for 1 (where it has them:
    # test_recovery_codes_compare_after_normalising covers every rule).
    code = next((c for c in codes if "0" in c or "1" in c), codes[0])
    typed = code.lower().replace("-", " ").replace("0", "o").replace("1", "i")

    response = await second_step(
        client, (await password_step(client, user.email))["mfa_token"], recovery_code=typed
    )
    used = await second_step(
        client, (await password_step(client, user.email))["mfa_token"], recovery_code=code
    )

    assert response.status_code == 200, response.text
    assert_error(used, "MFA_INVALID_CODE")
    listed = (await client.get("/users/me/sessions", headers=bearer(response))).json()
    assert [s["aal"] for s in listed if s["current"]] == [2]
    subjects = [m["Subject"] for m in await mailbox.messages()]
    assert "A recovery code was used to sign in" in subjects
    [mail] = [m for m in await mailbox.messages() if m["Subject"].startswith("A recovery")]
    assert "9 unused recovery codes are left" in " ".join(text_of(mail).split())
    status = await client.get("/users/me/mfa", headers=bearer(response))
    assert status.json()["recovery_codes_left"] == 9


async def test_the_mfa_token_is_no_bearer_token(
    client: httpx.AsyncClient, auth_headers: dict[str, str], user: UserDB, clock: Clock
) -> None:
    await enable(client, auth_headers, clock)
    body = await password_step(client, user.email)

    response = await client.get(
        "/users/me", headers={"Authorization": f"Bearer {body['mfa_token']}"}
    )

    assert response.status_code == 401


async def test_an_expired_mfa_token_is_refused(
    client: httpx.AsyncClient, auth_headers: dict[str, str], user: UserDB, clock: Clock
) -> None:
    secret, _ = await enable(client, auth_headers, clock)
    clock.step()
    body = await password_step(client, user.email)
    await MfaChallenge.all().update(expires_at=utcnow() - timedelta(seconds=1))

    response = await second_step(client, body["mfa_token"], code=code_at(secret, clock.now))

    assert_error(response, "MFA_TOKEN_INVALID")


@with_settings(rate_limit_mfa_failures_per_account="", rate_limit_mfa_failures_per_ip="")
async def test_an_mfa_token_allows_five_attempts(
    client: httpx.AsyncClient, auth_headers: dict[str, str], user: UserDB, clock: Clock
) -> None:
    secret, _ = await enable(client, auth_headers, clock)
    clock.step()
    body = await password_step(client, user.email)

    for _ in range(5):
        wrong = await second_step(client, body["mfa_token"], code="000000")
        assert_error(wrong, "MFA_INVALID_CODE")
    right = await second_step(client, body["mfa_token"], code=code_at(secret, clock.now))

    assert_error(right, "MFA_TOKEN_INVALID")


@with_settings(trusted_proxies=[ip_network("127.0.0.1/32")])
async def test_the_sixth_bad_code_is_refused_with_a_fresh_token_and_from_another_ip(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    user: UserDB,
    clock: Clock,
    mailbox: Mailbox,
) -> None:
    secret, _ = await enable(client, auth_headers, clock)
    clock.step()
    await emptied(mailbox)
    for attempt in range(5):
        body = await password_step(client, user.email)
        wrong = await second_step(client, body["mfa_token"], code=f"00000{attempt}")
        assert_error(wrong, "MFA_INVALID_CODE")

    fresh = await password_step(client, user.email)
    sixth = await second_step(client, fresh["mfa_token"], code=code_at(secret, clock.now))
    elsewhere = await client.post(
        "/auth/mfa/verify",
        json={"mfa_token": fresh["mfa_token"], "code": code_at(secret, clock.now)},
        headers={"X-Forwarded-For": "198.51.100.7"},
    )

    assert_error(sixth, "TOO_MANY_REQUESTS", 429)
    assert int(sixth.headers["retry-after"]) > 0
    assert_error(elsewhere, "TOO_MANY_REQUESTS", 429)
    # A correct password followed by wrong codes is mailed, once per mfa_token.
    subjects = [m["Subject"] for m in await mailbox.messages()]
    assert subjects.count("A wrong sign-in code was entered for your account") == 5
    events = await AuditEvent.filter(subject_id=user.id, action="login_failed")
    assert [e.outcome for e in events] == ["mfa_failed"] * 5


@with_settings(trusted_proxies=[ip_network("127.0.0.1/32")])
async def test_bad_codes_from_one_ip_are_limited_across_accounts(
    client: httpx.AsyncClient, create_user: Any, login: Login, clock: Clock
) -> None:
    users = [await create_user(f"user{i}@example.com") for i in range(2)]
    for user in users:
        await enable(client, await login(user.email), clock)
    ip = {"X-Forwarded-For": "203.0.113.9"}
    for attempt in range(5):
        body = await password_step(client, users[attempt % 2].email)
        wrong = await client.post(
            "/auth/mfa/verify",
            json={"mfa_token": body["mfa_token"], "code": "123456"},
            headers=ip,
        )
        assert_error(wrong, "MFA_INVALID_CODE")

    body = await password_step(client, users[1].email)
    sixth = await client.post(
        "/auth/mfa/verify", json={"mfa_token": body["mfa_token"], "code": "123456"}, headers=ip
    )

    assert_error(sixth, "TOO_MANY_REQUESTS", 429)


async def test_a_password_reset_keeps_the_factor(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    user: UserDB,
    clock: Clock,
    mailbox: Mailbox,
) -> None:
    await enable(client, auth_headers, clock)
    await emptied(mailbox)
    await client.post("/auth/forgot-password", json={"email": user.email})
    [mail] = await mailbox.messages()
    new_password = "a completely different passphrase"
    reset = await client.post(
        "/auth/reset-password", json={"token": token_in(mail), "password": new_password}
    )
    assert reset.status_code == 200, reset.text

    response = await client.post(
        "/auth/jwt/login", data={"username": user.email, "password": new_password}
    )

    assert_error_mfa_required(response)


def assert_error_mfa_required(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["detail"] == "LOGIN_MFA_REQUIRED"


# --- disable, new recovery codes, admin removal ----------------------------------------------


async def test_disable_needs_the_password_and_a_code(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    user: UserDB,
    clock: Clock,
    login: Login,
    mailbox: Mailbox,
) -> None:
    secret, _ = await enable(client, auth_headers, clock)
    clock.step()
    code = code_at(secret, clock.now)

    async def disable(**body: str) -> httpx.Response:
        return await client.request("DELETE", "/users/me/mfa/totp", json=body, headers=auth_headers)

    no_code = await disable(current_password=PASSWORD)
    wrong_password = await disable(current_password="not it", code=code)
    wrong_code = await disable(current_password=PASSWORD, code="000000")
    await emptied(mailbox)
    done = await disable(current_password=PASSWORD, code=code)

    assert_error(no_code, "MFA_INVALID_CODE")
    assert_error(wrong_password, "MFA_INVALID_CURRENT_PASSWORD")
    assert_error(wrong_code, "MFA_INVALID_CODE")
    assert done.status_code == 204, done.text
    assert not await MfaTotp.exists()
    assert not await MfaRecoveryCode.exists()
    await login(user.email)  # the password alone again
    [mail] = await mailbox.messages()
    assert mail["Subject"] == "Two-step sign-in is off"
    assert "mfa_disabled" in await actions(user)
    again = await disable(current_password=PASSWORD, code=code)
    assert_error(again, "MFA_NOT_ENABLED")


async def test_disable_with_a_recovery_code(
    client: httpx.AsyncClient, auth_headers: dict[str, str], clock: Clock
) -> None:
    _, codes = await enable(client, auth_headers, clock)

    done = await client.request(
        "DELETE",
        "/users/me/mfa/totp",
        json={"current_password": PASSWORD, "recovery_code": codes[3]},
        headers=auth_headers,
    )

    assert done.status_code == 204, done.text


async def test_new_recovery_codes_replace_the_old_ones(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    user: UserDB,
    clock: Clock,
    mailbox: Mailbox,
) -> None:
    secret, old = await enable(client, auth_headers, clock)
    clock.step()
    await emptied(mailbox)

    response = await client.post(
        "/users/me/mfa/recovery-codes",
        json={"current_password": PASSWORD, "code": code_at(secret, clock.now)},
        headers=auth_headers,
    )

    assert response.status_code == 200, response.text
    new = response.json()["recovery_codes"]
    assert len(new) == 10
    assert not set(new) & set(old)
    with_old = await second_step(
        client, (await password_step(client, user.email))["mfa_token"], recovery_code=old[0]
    )
    assert_error(with_old, "MFA_INVALID_CODE")
    with_new = await second_step(
        client, (await password_step(client, user.email))["mfa_token"], recovery_code=new[0]
    )
    assert with_new.status_code == 200, with_new.text
    subjects = [m["Subject"] for m in await mailbox.messages()]
    assert "New recovery codes for your account" in subjects


async def test_a_superuser_removes_a_users_factor(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    superuser_headers: dict[str, str],
    user: UserDB,
    clock: Clock,
    login: Login,
    mailbox: Mailbox,
) -> None:
    await enable(client, auth_headers, clock)
    await emptied(mailbox)

    by_user = await client.delete(f"/users/{user.id}/mfa", headers=auth_headers)
    removed = await client.delete(f"/users/{user.id}/mfa", headers=superuser_headers)
    again = await client.delete(f"/users/{user.id}/mfa", headers=superuser_headers)

    assert by_user.status_code == 403
    assert removed.status_code == 204
    assert again.status_code == 404
    await login(user.email)
    assert "mfa_removed_by_admin" in await actions(user)
    [mail] = await mailbox.messages()
    assert "administrator removed" in text_of(mail)


# --- start-up --------------------------------------------------------------------------------


def test_production_refuses_to_start_without_a_key_once_a_user_has_a_factor(
    settings: Settings,
) -> None:
    production = settings.model_copy(update={"environment": "production"})
    with_key = production.model_copy(update={"mfa_encryption_key": SecretStr(KEY)})

    async def start(app_settings: Settings) -> None:
        forget_cached_sql()
        async with LifespanManager(create_app(app_settings)):
            pass

    async def clear(add_a_factor: bool) -> None:
        forget_cached_sql()
        async with RegisterTortoise(config=tortoise_config(settings)):
            await clear_rows()
            if add_a_factor:
                user = await User.create(email="owner@example.com", hashed_password="x")
                await MfaTotp.create(user=user, secret="x", confirmed_at=utcnow())

    asyncio.run(clear(add_a_factor=False))
    asyncio.run(start(production))  # no factor: it starts
    asyncio.run(clear(add_a_factor=True))

    with pytest.raises(MfaKeyMissing, match=r"^MFA_ENCRYPTION_KEY must be set"):
        asyncio.run(start(production))
    problem = database_problem(production)
    asyncio.run(start(with_key))
    assert problem is not None
    assert problem.startswith("MFA_ENCRYPTION_KEY must be set")


async def test_production_without_a_key_cannot_enrol(
    client: httpx.AsyncClient, auth_headers: dict[str, str], app: FastAPI, settings: Settings
) -> None:
    # Started in development (the database may hold an earlier test's factors until the
    # client fixture clears it); the factors' logic then runs as production's would.
    production = settings.model_copy(update={"environment": "production"})
    state = app.state
    state.mfa = mfa.Mfa(production, state.password_hasher, state.mailer)

    response = await client.post(
        "/users/me/mfa/totp", json={"current_password": PASSWORD}, headers=auth_headers
    )

    assert_error(response, "MFA_NOT_CONFIGURED", 503)


def test_secrets_still_decrypt_after_a_new_key_is_put_first(settings: Settings) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = make_cipher(settings.model_copy(update={"mfa_encryption_key": SecretStr(old)}))
    after = make_cipher(
        settings.model_copy(update={"mfa_encryption_key": SecretStr(f"{new},{old}")})
    )
    assert before is not None
    assert after is not None

    stored = before.encrypt(b"JBSWY3DPEHPK3PXP")

    assert after.decrypt(stored) == b"JBSWY3DPEHPK3PXP"
    assert Fernet(new).decrypt(after.encrypt(b"x")) == b"x"  # the first key encrypts


def test_recovery_codes_compare_after_normalising() -> None:
    assert normalize_recovery_code(" ab1o0-Il23x ") == "AB1001123X"
    assert normalize_recovery_code("AB100-1123X") == "AB1001123X"
