"""The `mfa_token` of a login's second step: issued after the password, spent with a code.

It is 256 random bits, stored only as its SHA-256 in `mfa_challenge` with an expiry and
an attempt counter, so any worker or instance can finish the login; every change is a
conditional UPDATE, so a token takes at most its attempts and is spent once.
"""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from tortoise.expressions import F

from app.models import MfaChallenge
from app.sessions import utcnow

PREFIX = "mfa_"  # tells a reader (and a secret scanner) what the token is
# Expired tokens deleted per login, at most (beside the user's own).
PURGE_BATCH = 100


def token_hash(token: str) -> str:
    """The stored form of an mfa_token (it has 256 random bits: a plain hash is enough)."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class Challenge:
    """A new mfa_token and how long it lives."""

    token: str
    expires_in: int


async def issue(user_id: uuid.UUID, lifetime_seconds: int) -> Challenge:
    """A new mfa_token for `user_id`, whose password was right (expired ones are purged)."""
    now = utcnow()
    await MfaChallenge.filter(user_id=user_id, expires_at__lt=now).delete()
    stale = (
        await MfaChallenge.filter(expires_at__lt=now)
        .limit(PURGE_BATCH)
        .values_list("id", flat=True)
    )
    if stale:
        await MfaChallenge.filter(id__in=stale).delete()
    token = PREFIX + secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=lifetime_seconds)
    await MfaChallenge.create(user_id=user_id, token_hash=token_hash(token), expires_at=expires_at)
    return Challenge(token, lifetime_seconds)


async def user_of(token: str, max_attempts: int) -> uuid.UUID | None:
    """The user of a live mfa_token (unspent, unexpired, attempts left), or None."""
    challenge = await MfaChallenge.get_or_none(token_hash=token_hash(token))
    if (
        challenge is None
        or challenge.used_at is not None
        or challenge.expires_at <= utcnow()
        or challenge.attempts >= max_attempts
    ):
        return None
    user_id: uuid.UUID = challenge.user_id  # type: ignore[attr-defined]
    return user_id


async def take_attempt(token: str, max_attempts: int) -> bool:
    """Count one attempt of a live mfa_token; False if it is not live (any more)."""
    took = await MfaChallenge.filter(
        token_hash=token_hash(token),
        used_at__isnull=True,
        expires_at__gt=utcnow(),
        attempts__lt=max_attempts,
    ).update(attempts=F("attempts") + 1)
    return bool(took)


async def first_failure(token: str) -> bool:
    """Note a wrong code on the mfa_token: True the first time (the owner is mailed once)."""
    noted = await MfaChallenge.filter(token_hash=token_hash(token), failed=0).update(failed=1)
    return bool(noted)


async def spend(token: str) -> bool:
    """Mark the mfa_token used; False if a parallel request did first."""
    spent = await MfaChallenge.filter(token_hash=token_hash(token), used_at__isnull=True).update(
        used_at=utcnow()
    )
    return bool(spent)
