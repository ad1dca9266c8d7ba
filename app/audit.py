"""The audit trail: security events written beside the changes they record, read back, purged.

An event is written in the transaction of the change it records where there is one
(registration, updates, resets, verification, deletion), and before the answer otherwise
(sign-ins, sign-outs, refusals), so an answered request never lacks its event.
`docs/operations.md` lists the actions.
"""

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import Request

from app import metrics
from app.logs import current_user_id, request_id_of
from app.models import USER_AGENT_MAX_LENGTH, AuditEvent, AuditEventPage, AuditEventRead
from app.security import client_ip
from app.settings import Settings

logger = logging.getLogger(__name__)

AuditAction = Literal[
    "register",
    "login",
    "login_failed",
    "logout",
    "password_change",
    "password_reset_requested",
    "password_reset",
    "email_change",
    "verify",
    "user_updated_by_admin",
    "user_deleted",
    "rate_limited",
    "refresh_reuse",
    "sessions_revoked",
    "oauth_link",
    "oauth_unlink",
    "oauth_login_failed",
    "mfa_enabled",
    "mfa_disabled",
    "mfa_removed_by_admin",
    "mfa_recovery_codes_regenerated",
    "mfa_recovery_code_used",
]
LoginOutcome = Literal["success", "bad_credentials", "inactive", "rate_limited", "mfa_failed"]
MAX_PAGE_SIZE = 200
# `id` is a signed 64-bit integer on every database.
MAX_CURSOR_DIGITS = 18


@dataclass(frozen=True)
class Event:
    """An event to write with a change: its action and a few non-secret details."""

    action: AuditAction
    details: dict[str, Any] = field(default_factory=dict)
    outcome: str = "success"


def is_enabled(request: Request | None) -> bool:
    """Whether this app writes audit events (the benchmark turns them off to compare)."""
    return request is None or getattr(request.app.state, "audit_enabled", True)


async def record(
    event: Event,
    request: Request | None,
    *,
    subject_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
) -> None:
    """Write `event` about `subject_id` by `actor_id` (default: the authenticated user).

    Inside `in_transaction()` it commits or rolls back with the change it describes.
    """
    if not is_enabled(request):
        return
    if actor_id is None and (noted := current_user_id()) is not None:
        actor_id = uuid.UUID(noted)
    values: dict[str, Any] = {
        "action": event.action,
        "outcome": event.outcome,
        "actor_id": actor_id,
        "subject_id": subject_id,
        "details": event.details,
        "request_id": request_id_of(request),
    }
    if request is not None:
        settings: Settings = request.app.state.settings
        values["client_ip"] = client_ip(request, settings.trusted_proxies)
        user_agent = request.headers.get("user-agent")
        values["user_agent"] = user_agent[:USER_AGENT_MAX_LENGTH] if user_agent else None
    await AuditEvent.create(**values)


async def record_login(
    request: Request | None, outcome: LoginOutcome, user_id: uuid.UUID | None = None
) -> None:
    """Count a log-in attempt by outcome and audit it (`login` or `login_failed`).

    Every log-in route calls this once per attempt; a refusal by the rate limiter is
    audited as `rate_limited` by the limiter itself, so here it is only counted.
    """
    metrics.LOGINS.labels(outcome).inc()
    if outcome == "rate_limited":
        return
    if outcome == "success":
        await record(Event("login"), request, subject_id=user_id, actor_id=user_id)
    else:
        await record(
            Event("login_failed", outcome=outcome), request, subject_id=user_id, actor_id=user_id
        )


async def record_logout(request: Request | None, user_id: uuid.UUID) -> None:
    """Audit a sign-out."""
    await record(Event("logout"), request, subject_id=user_id, actor_id=user_id)


async def record_sessions_revoked(
    request: Request | None, user_id: uuid.UUID, reason: str, count: int
) -> None:
    """Audit sessions of `user_id` ended for `reason` (nothing when none was open)."""
    if count:
        event = Event("sessions_revoked", {"reason": reason, "count": count})
        await record(event, request, subject_id=user_id)


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def bounded_time(moment: datetime) -> datetime:
    """A filter time in UTC, clamped to what every database stores (1970 to 9000).

    No event is older than 1970 or newer than 9000, so a bound outside them filters as
    that edge does.
    """
    try:
        utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # out of datetime's range once moved to UTC
        return EARLIEST if moment.year < 1970 else LATEST
    return min(max(utc, EARLIEST), LATEST)


async def list_events(
    *,
    subject_id: uuid.UUID | None = None,
    action: AuditAction | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: int | None = None,
    limit: int = 50,
) -> AuditEventPage:
    """Events matching the filters, newest first, `limit` at most, after `cursor` (an id)."""
    filters: dict[str, Any] = {}
    if subject_id is not None:
        filters["subject_id"] = subject_id
    if action is not None:
        filters["action"] = action
    if since is not None:
        filters["created_at__gte"] = bounded_time(since)
    if until is not None:
        filters["created_at__lt"] = bounded_time(until)
    if cursor is not None:
        filters["id__lt"] = cursor
    rows = await AuditEvent.filter(**filters).order_by("-id").limit(limit + 1)
    items = [AuditEventRead.model_validate(row) for row in rows[:limit]]
    next_cursor = str(items[-1].id) if len(rows) > limit else None
    return AuditEventPage(items=items, next_cursor=next_cursor)


async def purge(retention_days: int, now: datetime | None = None) -> int:
    """Delete the events older than `retention_days`; return how many went."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    deleted: int = await AuditEvent.filter(created_at__lt=cutoff).delete()
    return deleted
