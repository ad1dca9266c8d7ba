"""The second factor: TOTP enrolment, codes accepted once, recovery codes, the login's mfa_token.

A TOTP secret is encrypted at rest with MFA_ENCRYPTION_KEY (Fernet; several keys
rotate, the first encrypts). A code is accepted only when its time step is later than
the last accepted one, by one conditional UPDATE: the same code twice, or an older step
after a newer one, is refused on every worker and instance. Recovery codes are argon2id
hashes (hashed and checked in the password hasher's threads), each used once.

A login of a user with a confirmed factor gets an `mfa_token` instead of tokens
(`app/session_routes.py`, `app/mfa_tokens.py`). Wrong codes are
counted per user and per client IP by the rate limiter (`rate_limit_mfa_failures_*`).
docs/mfa.md describes the flow.
"""

import base64
import hashlib
import hmac
import io
import logging
import secrets
import time
import uuid

import anyio
import pyotp
import segno
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from fastapi import Request
from tortoise.transactions import in_transaction

from app import audit, mfa_tokens
from app.audit import Event
from app.logs import request_id_of
from app.mail import Mailer, MailKind
from app.models import (
    MfaMethod,
    MfaRecoveryCode,
    MfaStatus,
    MfaTotp,
    TotpEnrolment,
    UserDB,
)
from app.passwords import PasswordHasher
from app.ratelimit import RateLimiter
from app.sessions import revoke_all_sessions, utcnow
from app.settings import Settings

logger = logging.getLogger(__name__)

TOTP_DIGITS = 6
TOTP_PERIOD = 30
SECRET_BASE32_LENGTH = 32  # 160 bits (RFC 4226's recommended length)
RECOVERY_CODE_COUNT = 10
# Crockford's base32: no I, L, O or U, so a code read aloud or copied by hand survives.
RECOVERY_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
RECOVERY_CODE_LENGTH = 10  # 50 bits, shown as XXXXX-XXXXX
FAILURES = "mfa_failures"  # the rate limiter's failure limit (RATE_LIMIT_MFA_FAILURES_*)


def clock() -> float:
    """Seconds since the epoch; TOTP steps are counted from it (tests move it)."""
    return time.time()


class MfaError(Exception):
    """A second-factor request that cannot be honoured; `code` is the API's error code."""

    code = "MFA_ERROR"


class MfaInvalidCurrentPassword(MfaError):
    """The present password is missing or wrong."""

    code = "MFA_INVALID_CURRENT_PASSWORD"


class MfaAlreadyEnabled(MfaError):
    """The user already has a confirmed factor."""

    code = "MFA_ALREADY_ENABLED"


class MfaNotEnabled(MfaError):
    """The user has no confirmed factor (or no pending one, to confirm)."""

    code = "MFA_NOT_ENABLED"


class MfaInvalidCode(MfaError):
    """The code or recovery code is wrong, already used, or of an earlier time step."""

    code = "MFA_INVALID_CODE"


class MfaTokenInvalid(MfaError):
    """The mfa_token is unknown, expired, used, or out of attempts."""

    code = "MFA_TOKEN_INVALID"


class MfaNotConfigured(MfaError):
    """Production without MFA_ENCRYPTION_KEY: no factor can be stored."""

    code = "MFA_NOT_CONFIGURED"


class MfaKeyMissing(RuntimeError):
    """Production without MFA_ENCRYPTION_KEY while users have a factor: refuse to start."""


def normalize_recovery_code(code: str) -> str:
    """A recovery code as stored: upper case, no spaces or dashes, O read as 0, I and L as 1."""
    kept = "".join(code.split()).replace("-", "").upper()
    return kept.replace("O", "0").replace("I", "1").replace("L", "1")


def new_recovery_code() -> str:
    """A fresh recovery code, `XXXXX-XXXXX`."""
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def qr_svg(uri: str) -> str:
    """`uri` as a QR code, an SVG document (segno; nothing leaves the service)."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=4, border=4, xmldecl=False)
    return buffer.getvalue().decode("ascii")


def matching_step(secret: str, code: str, now: float, tolerance: int) -> int | None:
    """The time step within `tolerance` steps of `now` whose code is `code`, or None."""
    code = code.strip().replace(" ", "")
    if len(code) != TOTP_DIGITS or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD)
    current = int(now) // TOTP_PERIOD
    found = None
    for step in range(current - tolerance, current + tolerance + 1):
        # Every candidate is compared, so the time taken tells nothing.
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def make_cipher(settings: Settings) -> MultiFernet | None:
    """The cipher of TOTP secrets: MFA_ENCRYPTION_KEY, or in development one derived from SECRET.

    None in production without a key (then no factor can be enrolled).
    """
    if settings.mfa_encryption_key is not None:
        keys = settings.mfa_encryption_key.get_secret_value().replace(",", " ").split()
        return MultiFernet([Fernet(key) for key in keys])
    if settings.environment == "production":
        return None
    derived = hmac.new(
        settings.jwt_secret.encode(), b"fastapi-users-tortoise mfa key", hashlib.sha256
    ).digest()
    return MultiFernet([Fernet(base64.urlsafe_b64encode(derived))])


async def require_mfa_key(settings: Settings) -> None:
    """Raise `MfaKeyMissing` in production without MFA_ENCRYPTION_KEY once a user has a factor."""
    if settings.environment != "production" or settings.mfa_encryption_key is not None:
        return
    if await MfaTotp.exists():
        raise MfaKeyMissing(
            "MFA_ENCRYPTION_KEY must be set: users have a second factor whose secret it decrypts"
        )


class Mfa:
    """Enrols, checks and removes second factors; issues and redeems mfa_tokens.

    Built once per app (`app.state.mfa`).
    """

    def __init__(self, settings: Settings, hasher: PasswordHasher, mailer: Mailer) -> None:
        self.settings = settings
        self.hasher = hasher
        self.mailer = mailer
        self.cipher = make_cipher(settings)

    # --- the factor ------------------------------------------------------------------------

    def _encrypt(self, secret: str) -> str:
        if self.cipher is None:
            raise MfaNotConfigured()
        return self.cipher.encrypt(secret.encode()).decode("ascii")

    def _decrypt(self, stored: str) -> str:
        if self.cipher is None:
            raise MfaNotConfigured()
        try:
            return self.cipher.decrypt(stored.encode()).decode()
        except InvalidToken:
            # A key was changed without keeping the old one in MFA_ENCRYPTION_KEY.
            logger.error("A TOTP secret does not decrypt with MFA_ENCRYPTION_KEY.")
            raise MfaNotConfigured() from None

    async def has_factor(self, user_id: uuid.UUID) -> bool:
        """Whether the user has a confirmed factor (then a login needs it)."""
        return await MfaTotp.exists(user_id=user_id, confirmed_at__isnull=False)

    async def status(self, user_id: uuid.UUID) -> MfaStatus:
        """The user's factor and how many recovery codes are left."""
        factor = await MfaTotp.get_or_none(user_id=user_id)
        left = await MfaRecoveryCode.filter(user_id=user_id, used_at__isnull=True).count()
        if factor is None:
            return MfaStatus(totp="none", recovery_codes_left=left)
        state = "pending" if factor.confirmed_at is None else "enabled"
        return MfaStatus(totp=state, recovery_codes_left=left)

    async def check_password(self, user: UserDB, password: str) -> None:
        """Raise `MfaInvalidCurrentPassword` unless `password` is the user's."""
        try:
            password.encode("utf-8")
        except UnicodeEncodeError:
            raise MfaInvalidCurrentPassword() from None
        verified, _ = await self.hasher.verify_and_update(password, user.hashed_password)
        if not verified:
            raise MfaInvalidCurrentPassword()

    async def enrol(self, user: UserDB, password: str) -> TotpEnrolment:
        """A new pending TOTP factor (replacing a pending one): secret, URI and QR code."""
        await self.check_password(user, password)
        if await self.has_factor(user.id):
            raise MfaAlreadyEnabled()
        secret = pyotp.random_base32(SECRET_BASE32_LENGTH)
        stored = self._encrypt(secret)
        async with in_transaction():
            await MfaTotp.filter(user_id=user.id).delete()
            await MfaTotp.create(user_id=user.id, secret=stored)
        uri = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD).provisioning_uri(
            name=user.email, issuer_name=self.settings.mfa_issuer
        )
        return TotpEnrolment(secret=secret, otpauth_uri=uri, qr_svg=qr_svg(uri))

    async def confirm(
        self, user: UserDB, code: str, keep_session: uuid.UUID | None, request: Request
    ) -> list[str]:
        """Turn the pending factor on with a valid code: the recovery codes, shown once.

        Ends the user's other sessions and mails the owner.
        """
        factor = await MfaTotp.get_or_none(user_id=user.id, confirmed_at__isnull=True)
        if factor is None:
            raise MfaAlreadyEnabled() if await self.has_factor(user.id) else MfaNotEnabled()
        step = matching_step(
            self._decrypt(factor.secret), code, clock(), self.settings.mfa_totp_tolerance_steps
        )
        if step is None:
            raise MfaInvalidCode()
        codes, hashes = await self._new_recovery_codes()
        async with in_transaction():
            confirmed = await MfaTotp.filter(user_id=user.id, confirmed_at__isnull=True).update(
                confirmed_at=utcnow(), last_step=step
            )
            if not confirmed:  # a parallel confirmation won
                raise MfaAlreadyEnabled()
            await self._store_recovery_codes(user.id, hashes)
            ended = await revoke_all_sessions(user.id, "mfa_enabled", keep=keep_session)
            enabled = Event("mfa_enabled", {"method": "totp"})
            await audit.record(enabled, request, subject_id=user.id)
            await audit.record_sessions_revoked(request, user.id, "mfa_enabled", ended)
        self._mail("mfa_enabled", user.email, request)
        return codes

    async def disable(self, user: UserDB, request: Request) -> None:
        """Remove the user's factor and recovery codes (proof already checked); mail the owner."""
        async with in_transaction():
            await self._remove(user.id)
            await audit.record(Event("mfa_disabled"), request, subject_id=user.id)
        self._mail("mfa_disabled", user.email, request, by_admin=False)

    async def remove_by_admin(self, user: UserDB, request: Request) -> bool:
        """A superuser removes the user's factor; False if there was none. Logged and mailed."""
        async with in_transaction():
            removed = await self._remove(user.id)
            if removed:
                await audit.record(Event("mfa_removed_by_admin"), request, subject_id=user.id)
        if removed:
            logger.warning("A superuser removed the second factor of user %s.", user.id)
            self._mail("mfa_disabled", user.email, request, by_admin=True)
        return bool(removed)

    async def _remove(self, user_id: uuid.UUID) -> int:
        removed: int = await MfaTotp.filter(user_id=user_id).delete()
        await MfaRecoveryCode.filter(user_id=user_id).delete()
        return removed

    async def regenerate_recovery_codes(self, user: UserDB, request: Request) -> list[str]:
        """New recovery codes in place of the old ones (proof already checked); mailed about."""
        if not await self.has_factor(user.id):
            raise MfaNotEnabled()
        codes, hashes = await self._new_recovery_codes()
        async with in_transaction():
            await MfaRecoveryCode.filter(user_id=user.id).delete()
            await self._store_recovery_codes(user.id, hashes)
            await audit.record(Event("mfa_recovery_codes_regenerated"), request, subject_id=user.id)
        self._mail("mfa_recovery_codes", user.email, request)
        return codes

    async def _new_recovery_codes(self) -> tuple[list[str], list[str]]:
        codes = [new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
        # Ten argon2id hashes in the hasher's threads (bounded by its concurrency).
        hashes = [await self.hasher.hash(normalize_recovery_code(code)) for code in codes]
        return codes, hashes

    @staticmethod
    async def _store_recovery_codes(user_id: uuid.UUID, hashes: list[str]) -> None:
        await MfaRecoveryCode.bulk_create(
            [MfaRecoveryCode(user_id=user_id, code_hash=hashed) for hashed in hashes]
        )

    # --- proving the factor ----------------------------------------------------------------

    async def accept_totp(self, user_id: uuid.UUID, code: str) -> bool:
        """Whether `code` is valid now and of a later step than any accepted before.

        The step moves forward by one conditional UPDATE, so of two requests with one
        code (on any workers) exactly one is accepted.
        """
        factor = await MfaTotp.get_or_none(user_id=user_id, confirmed_at__isnull=False)
        if factor is None:
            return False
        step = matching_step(
            self._decrypt(factor.secret), code, clock(), self.settings.mfa_totp_tolerance_steps
        )
        if step is None:
            return False
        advanced = await MfaTotp.filter(
            user_id=user_id, confirmed_at__isnull=False, last_step__lt=step
        ).update(last_step=step)
        return bool(advanced)

    async def use_recovery_code(self, user_id: uuid.UUID, code: str) -> int | None:
        """Spend a recovery code: how many are left after it, or None if it is not one."""
        normalized = normalize_recovery_code(code)
        if len(normalized) != RECOVERY_CODE_LENGTH or not normalized.isascii():
            return None
        unused = await MfaRecoveryCode.filter(user_id=user_id, used_at__isnull=True)
        password_hash = self.hasher.password_hash

        def find() -> MfaRecoveryCode | None:
            # At most RECOVERY_CODE_COUNT argon2id checks, in one of the hasher's threads.
            for row in unused:
                if password_hash.verify(normalized, row.code_hash):
                    return row
            return None

        found = await anyio.to_thread.run_sync(find, limiter=self.hasher.limiter)
        if found is None:
            return None
        spent = await MfaRecoveryCode.filter(id=found.id, used_at__isnull=True).update(
            used_at=utcnow()
        )
        if not spent:  # a parallel request used it first
            return None
        return len(unused) - 1

    async def prove(
        self,
        user: UserDB,
        code: str | None,
        recovery_code: str | None,
        limiter: RateLimiter,
        ip: str,
        request: Request,
        mfa_token: str | None = None,
    ) -> MfaMethod:
        """Check a code or a recovery code of `user` (once), within the failure limits.

        With `mfa_token` (the login's second step), one of its attempts is taken first.
        Raises `RateLimited` when the failures used a limit up, `MfaTokenInvalid`, or
        `MfaInvalidCode` when wrong.
        """
        account = str(user.id)
        await limiter.check_failures(FAILURES, ip, account)
        if mfa_token is not None and not await mfa_tokens.take_attempt(
            mfa_token, self.settings.mfa_token_max_attempts
        ):
            raise MfaTokenInvalid()
        method: MfaMethod | None = None
        left: int | None = None
        if code:
            method = "totp" if await self.accept_totp(user.id, code) else None
        elif recovery_code:
            left = await self.use_recovery_code(user.id, recovery_code)
            method = "recovery_code" if left is not None else None
        if method is None:
            await limiter.count_failure(FAILURES, ip, account)
            if mfa_token is not None:
                await self.challenge_failed(mfa_token, user, request)
            raise MfaInvalidCode()
        if left is not None:
            await audit.record(
                Event("mfa_recovery_code_used", {"left": left}), request, subject_id=user.id
            )
            self._mail("mfa_recovery_code_used", user.email, request, left=left)
        return method

    async def challenge_failed(self, token: str, user: UserDB, request: Request) -> None:
        """A wrong code after a right password: audit it; mail the owner once per mfa_token."""
        await audit.record_login(request, "mfa_failed", user.id)
        if await mfa_tokens.first_failure(token):
            self._mail("mfa_failed", user.email, request)

    def _mail(self, kind: MailKind, to: str, request: Request | None, **context: object) -> None:
        self.mailer.send_soon(
            self.mailer.build(kind, to, **context), request_id=request_id_of(request)
        )
