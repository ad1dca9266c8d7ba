"""Password hashes made by other systems, verified at login and then replaced by ours.

pwdlib verifies argon2 (any variant and parameters) and bcrypt; these hashers add the
formats users bring along from Django, Werkzeug/Flask and PHP-style bcrypt (`$2y$`).
None of them ever makes a hash: `check_needs_rehash` is always true, so a successful
login stores a new argon2id hash in their place (`PasswordHasher.verify_and_update`).
"""

import hashlib
import hmac
import re
from base64 import b64encode

import bcrypt
from pwdlib.hashers.base import HasherProtocol, ensure_bytes, ensure_str

# Beyond these the verify would be a denial of service, not a password check.
MAX_PBKDF2_ITERATIONS = 10_000_000
MAX_SCRYPT_MEMORY_BYTES = 1 << 30
BCRYPT_MAX_PASSWORD_BYTES = 72

DJANGO_PBKDF2 = re.compile(
    r"^pbkdf2_sha256\$(?P<iterations>\d{1,9})\$(?P<salt>[^$]+)\$(?P<hash>[A-Za-z0-9+/=]+)$"
)
WERKZEUG_PBKDF2 = re.compile(
    r"^pbkdf2:sha256:(?P<iterations>\d{1,9})\$(?P<salt>[^$]+)\$(?P<hash>[0-9a-f]+)$"
)
WERKZEUG_SCRYPT = re.compile(
    r"^scrypt:(?P<n>\d{1,9}):(?P<r>\d{1,3}):(?P<p>\d{1,3})\$(?P<salt>[^$]+)\$(?P<hash>[0-9a-f]+)$"
)
BCRYPT = re.compile(r"^\$2[aby]\$(?P<rounds>\d{2})\$[A-Za-z0-9./]{53}$")


class ForeignHasher(HasherProtocol):
    """A hasher that only verifies: its hashes are always replaced at the next login."""

    pattern: re.Pattern[str]
    # How every hash of the format starts: a cheap test before the pattern's.
    prefix: str

    @classmethod
    def identify(cls, hash: str | bytes) -> bool:
        """Whether `hash` is in this hasher's format (with sane parameters)."""
        match = cls.pattern.match(ensure_str(hash))
        return match is not None and cls.acceptable(match)

    @classmethod
    def acceptable(cls, match: re.Match[str]) -> bool:
        """Whether the parameters of a matching hash are within reason."""
        return True

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        """Refuse: new hashes are always argon2id."""
        raise NotImplementedError(f"{type(self).__name__} only verifies")

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        """Whether `password` matches `hash`."""
        match = self.pattern.match(ensure_str(hash))
        return match is not None and self.acceptable(match) and self.matches(password, match)

    def matches(self, password: str | bytes, match: re.Match[str]) -> bool:
        """Whether `password` matches the parsed hash."""
        raise NotImplementedError

    def check_needs_rehash(self, hash: str | bytes) -> bool:
        """Always: a foreign hash is replaced by ours at the first chance."""
        return True


class DjangoPbkdf2Hasher(ForeignHasher):
    """Django's default `pbkdf2_sha256$<iterations>$<salt>$<base64 digest>`."""

    pattern = DJANGO_PBKDF2
    prefix = "pbkdf2_sha256$"

    @classmethod
    def acceptable(cls, match: re.Match[str]) -> bool:
        """A positive iteration count within `MAX_PBKDF2_ITERATIONS`."""
        return 0 < int(match["iterations"]) <= MAX_PBKDF2_ITERATIONS

    def matches(self, password: str | bytes, match: re.Match[str]) -> bool:
        """Django's `PBKDF2PasswordHasher.verify`."""
        digest = hashlib.pbkdf2_hmac(
            "sha256", ensure_bytes(password), match["salt"].encode(), int(match["iterations"])
        )
        return hmac.compare_digest(b64encode(digest), match["hash"].encode())


class WerkzeugPbkdf2Hasher(ForeignHasher):
    """Werkzeug's (Flask's) `pbkdf2:sha256:<iterations>$<salt>$<hex digest>`."""

    pattern = WERKZEUG_PBKDF2
    prefix = "pbkdf2:sha256:"

    @classmethod
    def acceptable(cls, match: re.Match[str]) -> bool:
        """A positive iteration count within `MAX_PBKDF2_ITERATIONS`."""
        return 0 < int(match["iterations"]) <= MAX_PBKDF2_ITERATIONS

    def matches(self, password: str | bytes, match: re.Match[str]) -> bool:
        """`werkzeug.security.check_password_hash`."""
        digest = hashlib.pbkdf2_hmac(
            "sha256", ensure_bytes(password), match["salt"].encode(), int(match["iterations"])
        )
        return hmac.compare_digest(digest.hex(), match["hash"])


class WerkzeugScryptHasher(ForeignHasher):
    """Werkzeug's (Flask's) default since 3.0, `scrypt:<n>:<r>:<p>$<salt>$<hex digest>`."""

    pattern = WERKZEUG_SCRYPT
    prefix = "scrypt:"

    @classmethod
    def acceptable(cls, match: re.Match[str]) -> bool:
        """n a power of two above 1, and the memory it needs within reason."""
        n, r, p = int(match["n"]), int(match["r"]), int(match["p"])
        power_of_two = n > 1 and n & (n - 1) == 0
        return power_of_two and r > 0 and p > 0 and 128 * n * r * p <= MAX_SCRYPT_MEMORY_BYTES

    def matches(self, password: str | bytes, match: re.Match[str]) -> bool:
        """`werkzeug.security.check_password_hash`."""
        n, r, p = int(match["n"]), int(match["r"]), int(match["p"])
        digest = hashlib.scrypt(
            ensure_bytes(password),
            salt=match["salt"].encode(),
            n=n,
            r=r,
            p=p,
            maxmem=132 * n * r * p,  # Werkzeug's margin over the 128 * n * r * p needed
        )
        return hmac.compare_digest(digest.hex(), match["hash"])


class ForeignBcryptHasher(ForeignHasher):
    """bcrypt from other systems: `$2a$`, `$2b$` and PHP's `$2y$` (the same algorithm).

    Those systems used the first 72 bytes of a longer password (the bcrypt library now
    refuses longer ones), so the same is done here to let their users in.
    """

    pattern = BCRYPT
    prefix = "$2"

    @classmethod
    def acceptable(cls, match: re.Match[str]) -> bool:
        """A cost bcrypt accepts (4 to 31)."""
        return 4 <= int(match["rounds"]) <= 31

    def matches(self, password: str | bytes, match: re.Match[str]) -> bool:
        """bcrypt's `checkpw` on the password's first 72 bytes."""
        secret = ensure_bytes(password)[:BCRYPT_MAX_PASSWORD_BYTES]
        try:
            return bcrypt.checkpw(secret, match.string.encode())
        except ValueError:
            return False


FOREIGN_HASHERS: tuple[ForeignHasher, ...] = (
    ForeignBcryptHasher(),
    DjangoPbkdf2Hasher(),
    WerkzeugPbkdf2Hasher(),
    WerkzeugScryptHasher(),
)
