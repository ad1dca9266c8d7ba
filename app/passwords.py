"""Password hashing in worker threads, so a hash never stalls the event loop."""

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import TypeVar

import anyio
from fastapi_users.password import PasswordHelper
from prometheus_client import Histogram
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from app.foreign_hashes import FOREIGN_HASHERS
from app.metrics import PASSWORD_HASH_DURATION, PASSWORD_VERIFY_DURATION
from app.settings import Settings

T = TypeVar("T")
# A stored "hash" no password matches: accounts made by a provider sign-in start with one,
# until a password reset sets a real password (Django marks its unusable passwords alike).
UNUSABLE_PASSWORD_PREFIX = "!"  # noqa: S105 (a marker, no password)


def unusable_password() -> str:
    """A `hashed_password` that no password verifies against (distinct per account)."""
    return UNUSABLE_PASSWORD_PREFIX + secrets.token_urlsafe(32)


def has_usable_password(hashed: str) -> bool:
    """Whether some password can sign in to an account with this stored hash."""
    return not hashed.startswith(UNUSABLE_PASSWORD_PREFIX)


def timed(histogram: Histogram, function: Callable[..., T]) -> Callable[..., T]:
    """`function`, its every run's duration observed in `histogram` (in its thread)."""

    def run(*args: str) -> T:
        started = time.perf_counter()
        try:
            return function(*args)
        finally:
            histogram.observe(time.perf_counter() - started)

    return run


def is_known_hash(hashed: str) -> bool:
    """Whether `hashed` is in a format a login can verify (argon2, bcrypt or a foreign one).

    An import refuses any other, which would only make an account nobody can enter.
    """
    # The prefix picks the one format a hash can be in, so one pattern is tried, not five.
    if hashed.startswith("$argon2"):
        return Argon2Hasher.identify(hashed)
    return any(h.identify(hashed) for h in FOREIGN_HASHERS if hashed.startswith(h.prefix))


class PasswordHasher:
    """Argon2id with the configured cost for new hashes; others verify and are then replaced.

    Argon2 with other parameters, bcrypt, and the foreign formats of
    `app/foreign_hashes.py` (Django, Werkzeug) verify; `verify_and_update` then returns
    a new argon2id hash, which the login stores (`UserManager.authenticate`).

    argon2-cffi and bcrypt release the GIL, so hashes run in parallel threads while
    the event loop keeps serving. At most `password_hash_concurrency` run at once:
    each argon2 hash holds `password_hash_memory_cost` KiB while it runs.
    """

    def __init__(self, settings: Settings) -> None:
        argon2 = Argon2Hasher(
            time_cost=settings.password_hash_time_cost,
            memory_cost=settings.password_hash_memory_cost,
            parallelism=settings.password_hash_parallelism,
        )
        self.password_hash = PasswordHash((argon2, *FOREIGN_HASHERS))
        self._hash = timed(PASSWORD_HASH_DURATION, self.password_hash.hash)
        self._verify_and_update = timed(
            PASSWORD_VERIFY_DURATION, self.password_hash.verify_and_update
        )
        self.limiter = anyio.CapacityLimiter(settings.password_hash_concurrency)
        self._fingerprint_key = hashlib.sha256(
            b"password-fingerprint:" + settings.jwt_secret.encode()
        ).digest()

    async def hash(self, password: str) -> str:
        """A new hash of `password`."""
        return await anyio.to_thread.run_sync(self._hash, password, limiter=self.limiter)

    async def verify_and_update(self, password: str, hashed: str) -> tuple[bool, str | None]:
        """Whether `password` matches `hashed`, and a new hash if `hashed` is outdated."""
        if not has_usable_password(hashed):
            await self.hash(password)  # the time of a verify, so timing tells nothing
            return False, None
        return await anyio.to_thread.run_sync(
            self._verify_and_update, password, hashed, limiter=self.limiter
        )

    def fingerprint(self, hashed: str) -> str:
        """A keyed digest of a stored hash: it changes whenever the password does.

        Reset tokens carry it, so a token dies once its password has been changed.
        A keyed digest costs microseconds where FastAPI Users hashes the hash again.
        """
        return hmac.new(self._fingerprint_key, hashed.encode(), hashlib.sha256).hexdigest()


class NoInlineHashing(PasswordHelper):
    """The helper FastAPI Users' base manager gets: it may generate, never hash inline.

    Every hashing path of `UserManager` awaits `PasswordHasher`; should an upgrade of
    FastAPI Users add a path that hashes on the event loop, it fails loudly here.
    """

    def hash(self, password: str) -> str:
        """Refuse: hashing on the event loop would stall every request."""
        raise RuntimeError("hash passwords with `await PasswordHasher.hash`")

    def verify_and_update(
        self, plain_password: str, hashed_password: str
    ) -> tuple[bool, str | None]:
        """Refuse: verifying on the event loop would stall every request."""
        raise RuntimeError("verify passwords with `await PasswordHasher.verify_and_update`")
