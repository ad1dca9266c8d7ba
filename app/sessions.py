"""Sessions: one row per login; access tokens bound to it; refresh tokens rotated, reuse caught.

An access token is a short-lived HS256 JWT carrying the session id (`sid`); every
authenticated request reads the user joined with that session in one query
(`TortoiseUserDatabase.get_by_session`), so ending a session ends its tokens at once.

A refresh token is `<sid>.<generation>.<mac>`, the MAC an HMAC-SHA256 of the first two
parts under a key derived from SECRET: it is checked before any database access, and the
row stores only the generation counter, so the table holds no usable credential. A
refresh rotates the generation with one conditional UPDATE (no lost update between
workers, no row lock). Presenting the previous generation again within
REFRESH_REUSE_GRACE_SECONDS (a retry, or parallel refreshes) gets the current pair, which
is the same token for everyone since tokens are deterministic; an older one, or the
previous one after the grace, revokes the whole session (`refresh_reuse`) and mails the owner.
"""

import base64
import hashlib
import hmac
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from fastapi import Request
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from app import audit, metrics
from app.audit import Event
from app.logs import request_id_of
from app.mail import Mailer, redact
from app.models import IP_MAX_LENGTH, USER_AGENT_MAX_LENGTH, RevokedReason, Session, UserDB
from app.settings import Settings
from app.user_db import TortoiseUserDatabase

logger = logging.getLogger(__name__)

ACCESS_TOKEN_AUDIENCE = ["fastapi-users:auth"]  # FastAPI Users' audience, as before
REQUIRED_CLAIMS = ["exp", "iat", "sub", "sid", "aud"]
ALGORITHM = "HS256"
# Ended rows deleted per login, at most (the purge at login must stay cheap).
PURGE_BATCH = 100


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class RefreshTokenInvalid(Exception):
    """A refresh token that is malformed, forged, expired, idle-expired, revoked or reused."""


@dataclass(frozen=True)
class TokenPair:
    """What login and refresh answer (RFC 6749 section 5.1)."""

    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


@dataclass(frozen=True)
class AccessClaims:
    """The claims of a valid access token that the hot path needs."""

    user_id: uuid.UUID
    session_id: uuid.UUID


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenCodec:
    """Signs and checks access tokens (JWT) and refresh tokens (HMAC); built once per app."""

    def __init__(self, settings: Settings) -> None:
        self.secret = settings.jwt_secret
        self.access_lifetime = timedelta(seconds=settings.jwt_lifetime_seconds)
        # A key of its own, so a refresh MAC can never double as anything else signed.
        self.refresh_key = hmac.new(
            self.secret.encode(), b"fastapi-users-tortoise refresh token", hashlib.sha256
        ).digest()

    def access_token(
        self, user_id: uuid.UUID, session: Session, ends: datetime, now: datetime
    ) -> tuple[str, int]:
        """A JWT for `session`'s user and its lifetime; it never outlives the session (`ends`)."""
        expires = min(now + self.access_lifetime, ends)
        claims = {
            "sub": str(user_id),
            "sid": str(session.id),
            "aud": ACCESS_TOKEN_AUDIENCE,
            "iat": int(now.timestamp()),
            "auth_time": int(session.auth_time.timestamp()),
            "exp": int(expires.timestamp()),
        }
        token = jwt.encode(claims, self.secret, algorithm=ALGORITHM)
        return token, max(0, int(expires.timestamp()) - int(now.timestamp()))

    def read_access_token(self, token: str) -> AccessClaims | None:
        """The user and session of a valid access token, or None (any other token too)."""
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                audience=ACCESS_TOKEN_AUDIENCE,
                options={"require": REQUIRED_CLAIMS},
            )
            return AccessClaims(uuid.UUID(str(claims["sub"])), uuid.UUID(str(claims["sid"])))
        except (jwt.PyJWTError, ValueError, TypeError):
            return None

    def _mac(self, session_id: uuid.UUID, generation: int) -> str:
        message = f"{session_id}.{generation}".encode()
        return _b64(hmac.new(self.refresh_key, message, hashlib.sha256).digest())

    def refresh_token(self, session_id: uuid.UUID, generation: int) -> str:
        """The refresh token of `generation` of the session (the same each time)."""
        return f"{session_id}.{generation}.{self._mac(session_id, generation)}"

    def read_refresh_token(self, token: str) -> tuple[uuid.UUID, int]:
        """(session id, generation) of an authentic refresh token; else `RefreshTokenInvalid`."""
        parts = token.split(".")
        if len(parts) != 3 or len(token) > 200 or not parts[1].isdigit():
            raise RefreshTokenInvalid()
        try:
            session_id, generation = uuid.UUID(parts[0]), int(parts[1])
        except ValueError:
            raise RefreshTokenInvalid() from None
        if not hmac.compare_digest(parts[2], self._mac(session_id, generation)):
            raise RefreshTokenInvalid()
        return session_id, generation


@dataclass(frozen=True)
class SessionView:
    """A session as its owner (or a superuser) sees it; ended ones say when and why."""

    session: Session
    ended_at: datetime | None
    ended_reason: RevokedReason | None


async def revoke_where(which: Q, reason: RevokedReason, now: datetime) -> int:
    """End the sessions `which` selects that are still open; how many."""
    # Only sessions not revoked yet: the first reason stays.
    revoked = await Session.filter(which, revoked_at__isnull=True).update(
        revoked_at=now, revoked_reason=reason
    )
    if revoked:
        metrics.SESSION_REVOCATIONS.labels(reason).inc(revoked)
    return revoked


async def revoke_all_sessions(
    user_id: uuid.UUID, reason: RevokedReason, keep: uuid.UUID | None = None
) -> int:
    """End every open session of `user_id` but `keep`; how many (also for the CLI)."""
    which = Q(user_id=user_id)
    if keep is not None:
        which &= ~Q(id=keep)
    return await revoke_where(which, reason, utcnow())


class Sessions:
    """Starts, refreshes, lists, ends and purges sessions; built once per app."""

    def __init__(self, settings: Settings, mailer: Mailer) -> None:
        self.settings = settings
        self.mailer = mailer
        # Reads a session with its user; the app's lifespan gives it the SQLite reader.
        self.user_db = TortoiseUserDatabase()
        self.tokens = TokenCodec(settings)
        self.idle = timedelta(seconds=settings.session_idle_seconds)
        self.max_age = timedelta(seconds=settings.session_max_seconds)
        self.history = timedelta(seconds=settings.session_history_seconds)
        self.grace = timedelta(seconds=settings.refresh_reuse_grace_seconds)
        self.fresh = timedelta(seconds=settings.session_fresh_seconds)

    def live(self, now: datetime) -> Q:
        """The sessions that still work at `now`: not revoked, not expired, not idle."""
        return Q(revoked_at__isnull=True, expires_at__gt=now, last_refreshed_at__gt=now - self.idle)

    def ended_at(self, session: Session) -> datetime:
        """When `session` ends (or ended) unless revoked first: absolute or idle expiry."""
        return min(session.expires_at, session.last_refreshed_at + self.idle)

    def pair(self, user_id: uuid.UUID, session: Session, now: datetime) -> TokenPair:
        """An access token and the current refresh token of `session`."""
        ends = self.ended_at(session)
        access, expires_in = self.tokens.access_token(user_id, session, ends, now)
        refresh_expires_in = int((ends - now).total_seconds())
        return TokenPair(
            access_token=access,
            expires_in=expires_in,
            refresh_token=self.tokens.refresh_token(session.id, session.refresh_counter),
            refresh_expires_in=max(0, refresh_expires_in),
        )

    async def start(
        self, user: UserDB, ip: str | None, user_agent: str | None, aal: int = 1
    ) -> TokenPair:
        """A new session for `user`, who just proved who they are; its first token pair.

        `aal` is 2 when a second factor was proven too (app/mfa.py).

        Ended rows of the user (and a bounded batch of everyone's) are purged first, and
        past MAX_SESSIONS_PER_USER the oldest live sessions are ended (`evicted`).
        """
        now = utcnow()
        await self.purge(now, limit=PURGE_BATCH, user_id=user.id)
        await self._evict(user.id, now)
        session = await Session.create(
            user_id=user.id,
            auth_time=now,
            last_refreshed_at=now,
            expires_at=now + self.max_age,
            ip=ip[:IP_MAX_LENGTH] if ip else None,
            user_agent=user_agent[:USER_AGENT_MAX_LENGTH] if user_agent else None,
            aal=aal,
        )
        return self.pair(user.id, session, now)

    async def _evict(self, user_id: uuid.UUID, now: datetime) -> None:
        keep = self.settings.max_sessions_per_user - 1  # room for the one being started
        live = await (
            Session.filter(self.live(now), user_id=user_id)
            .order_by("-created_at")
            .values_list("id", flat=True)
        )
        if len(live) > keep:
            await revoke_where(Q(id__in=live[keep:]), "evicted", now)

    async def refresh(self, token: str, request: Request | None = None) -> TokenPair:
        """Rotate: the next token pair of the session `token` belongs to.

        Raises `RefreshTokenInvalid`; on reuse the session is revoked first (and audited
        with `request`'s details).
        """
        session_id, generation = self.tokens.read_refresh_token(token)
        now = utcnow()
        rotated = await self.user_db.rotate_session(session_id, generation, now, now - self.idle)
        found = await self.user_db.get_session(session_id)
        if found is None:
            raise RefreshTokenInvalid()
        session, email, is_active = found
        user_id: uuid.UUID = session.user_id  # type: ignore[attr-defined]
        if rotated:
            if not is_active:
                raise RefreshTokenInvalid()
            # The pair of this rotation, even should another have followed it already.
            session.refresh_counter = generation + 1
            session.last_refreshed_at = now
            metrics.SESSION_REFRESHES.inc()
            return self.pair(user_id, session, now)
        still_live = session.revoked_at is None and self.ended_at(session) > now and is_active
        if not still_live or generation >= session.refresh_counter:
            raise RefreshTokenInvalid()
        if generation == session.refresh_counter - 1 and now - session.last_refreshed_at <= (
            self.grace
        ):
            return self.pair(user_id, session, now)  # a retry or a parallel refresh
        await self._refresh_reused(session, email, generation, now, request)
        raise RefreshTokenInvalid()

    async def _refresh_reused(
        self,
        session: Session,
        email: str,
        generation: int,
        now: datetime,
        request: Request | None,
    ) -> None:
        user_id: uuid.UUID = session.user_id  # type: ignore[attr-defined]
        async with in_transaction():
            revoked = await revoke_where(Q(id=session.id), "refresh_reuse", now)
            if not revoked:
                return  # another request caught the same reuse first
            details = {"session_id": str(session.id), "generation": generation}
            await audit.record(Event("refresh_reuse", details), request, subject_id=user_id)
        metrics.SESSION_REUSE_DETECTIONS.inc()
        logger.warning(
            "Refresh token reuse: generation %d of session %s (user %s, current %d); "
            "the session is revoked.",
            generation, session.id, session.user_id, session.refresh_counter,  # type: ignore[attr-defined]
        )  # fmt: skip
        self.mailer.send_soon(
            self.mailer.build(
                "session_revoked",
                email,
                started=session.created_at.strftime("%Y-%m-%d %H:%M UTC"),
                ip=session.ip or "unknown",
                user_agent=session.user_agent or "unknown",
            ),
            request_id=request_id_of(request),
        )
        logger.info("Mailed %s about the revoked session.", redact(email))

    async def revoke(
        self, session_id: uuid.UUID, user_id: uuid.UUID, reason: RevokedReason
    ) -> bool:
        """End one session of `user_id`; False if the user has no such session."""
        if not await Session.exists(id=session_id, user_id=user_id):
            return False
        await revoke_where(Q(id=session_id), reason, utcnow())
        return True

    async def revoke_all(
        self, user_id: uuid.UUID, reason: RevokedReason, keep: uuid.UUID | None = None
    ) -> int:
        """End every session of `user_id` but `keep`; how many were still open."""
        return await revoke_all_sessions(user_id, reason, keep)

    async def list(self, user_id: uuid.UUID) -> list[SessionView]:
        """The user's open sessions and those ended within SESSION_HISTORY_SECONDS, newest first."""
        now = utcnow()
        views = []
        for session in await Session.filter(user_id=user_id).order_by("-created_at"):
            if session.revoked_at is not None:
                ended_at, reason = session.revoked_at, session.revoked_reason
            elif self.ended_at(session) <= now:
                ended_at, reason = self.ended_at(session), "expired"
            else:
                ended_at, reason = None, None
            if ended_at is None or now - ended_at <= self.history:
                views.append(SessionView(session, ended_at, reason))  # type: ignore[arg-type]
        return views

    def is_fresh(self, auth_time: datetime) -> bool:
        """Whether a login at `auth_time` is recent enough to end other sessions."""
        return utcnow() - auth_time <= self.fresh

    async def purge(
        self,
        now: datetime | None = None,
        limit: int | None = None,
        user_id: uuid.UUID | None = None,
    ) -> int:
        """Delete sessions ended more than SESSION_HISTORY_SECONDS ago; how many.

        With `limit`, at most that many past their absolute expiry (by the `expires_at`
        index) plus, with `user_id`, every such row of that user (by the `user_id` index).
        Without, every such row: `python -m app sessions purge` is meant to call this.
        """
        now = now or utcnow()
        cutoff = now - self.history
        ended = Q(revoked_at__lt=cutoff) | Q(expires_at__lt=cutoff)
        ended |= Q(last_refreshed_at__lt=cutoff - self.idle)
        deleted = 0
        if user_id is not None:
            deleted += await Session.filter(ended, user_id=user_id).delete()
        if limit is None:
            return deleted + await Session.filter(ended).delete()
        batch: list[Any] = await (
            Session.filter(expires_at__lt=cutoff).limit(limit).values_list("id", flat=True)
        )
        if batch:
            deleted += await Session.filter(id__in=batch).delete()
        return deleted
