"""The admin user list: `GET /users` for superusers, and the query behind it (the CLI's too).

Pages are cut by a cursor, never an offset, so a page costs the same however deep it
is. Without a search, users come in the order they were created, (created_at, id),
read along the index of that name. With `q`, the e-mail prefix is a range of the
e-mail's unique index (it compares bytes on all three databases, see migration 1), and
the matches come in e-mail order, along that same index: ordering them by creation
would mean sorting every match before the first page.
"""

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi_users.router.common import ErrorModel
from pydantic import BaseModel
from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from app.models import User, UserDB, UserListItem, normalize_email
from app.user_db import is_storable_email
from app.users import fastapi_users

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50
INVALID_CURSOR = "LIST_USERS_INVALID_CURSOR"
# Appended to a prefix, the largest code point bounds every address that starts with it.
PREFIX_END = "\U0010ffff"


class InvalidCursor(ValueError):
    """A cursor that this service did not hand out (or for another search)."""


@dataclass(frozen=True)
class UserFilter:
    """What the list is narrowed to; None is no condition."""

    q: str | None = None
    is_active: bool | None = None
    is_verified: bool | None = None
    is_superuser: bool | None = None

    @property
    def prefix(self) -> str | None:
        """The normalized e-mail prefix searched for, if any."""
        prefix = normalize_email(self.q or "")
        return prefix or None


def encode_cursor(values: list[Any]) -> str:
    """An opaque cursor carrying `values`."""
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, searching: bool) -> tuple[datetime, uuid.UUID] | str:
    """The position a cursor stands for: an e-mail when searching, else (created_at, id)."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if searching:
            [email] = values
            if not isinstance(email, str) or not is_storable_email(email):
                raise InvalidCursor(cursor)
            return email
        created_at, id = values
        position = datetime.fromisoformat(created_at), uuid.UUID(id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor(cursor) from None
    if position[0].tzinfo is None:
        raise InvalidCursor(cursor)
    return position


def users_query(where: UserFilter, cursor: str | None, limit: int) -> QuerySet[User]:
    """The page's query: `limit` users after `cursor` (raises `InvalidCursor`)."""
    query = User.all()
    for flag in ("is_active", "is_verified", "is_superuser"):
        if getattr(where, flag) is not None:
            query = query.filter(**{flag: getattr(where, flag)})
    prefix = where.prefix
    if prefix is not None:
        if not is_storable_email(prefix):
            return query.filter(id__isnull=True).limit(limit)  # matches no one
        query = query.filter(email__gte=prefix, email__lt=prefix + PREFIX_END)
        if cursor is not None:
            query = query.filter(email__gt=decode_cursor(cursor, searching=True))
        return query.order_by("email").limit(limit)
    if cursor is not None:
        position = decode_cursor(cursor, searching=False)
        assert isinstance(position, tuple)
        created_at, id = position
        # The first condition alone is a range of the index; the second picks the rows
        # after the cursor among those created in the same microsecond.
        query = query.filter(
            Q(created_at__gte=created_at),
            Q(created_at__gt=created_at) | Q(id__gt=id),
        )
    return query.order_by("created_at", "id").limit(limit)


@dataclass
class Page:
    """One page of users and the cursor of the next (None on the last page)."""

    users: list[UserDB]
    next_cursor: str | None


async def list_users(where: UserFilter, cursor: str | None = None, limit: int = 50) -> Page:
    """A page of users matching `where`, after `cursor` (raises `InvalidCursor`)."""
    rows = await users_query(where, cursor, limit + 1)
    users = [UserDB.model_validate(row) for row in rows[:limit]]
    if len(rows) <= limit:
        return Page(users, None)
    last = users[-1]
    if where.prefix is not None:
        return Page(users, encode_cursor([last.email]))
    return Page(users, encode_cursor([last.created_at.isoformat(), str(last.id)]))


class UserList(BaseModel):
    """A page of the user list."""

    items: list[UserListItem]
    next_cursor: str | None


router = APIRouter()
current_superuser = fastapi_users.current_user(active=True, superuser=True)


@router.get(
    "/users",
    tags=["users"],
    name="users:list",
    dependencies=[Depends(current_superuser)],
    responses={
        status.HTTP_400_BAD_REQUEST: {
            "model": ErrorModel,
            "description": "The cursor was not handed out by this list (or for another `q`).",
            "content": {"application/json": {"example": {"detail": INVALID_CURSOR}}},
        },
        status.HTTP_401_UNAUTHORIZED: {"description": "Missing token or inactive user."},
        status.HTTP_403_FORBIDDEN: {"description": "Not a superuser."},
    },
)
async def list_users_route(
    q: Annotated[str | None, Query(max_length=320, description="E-mail prefix")] = None,
    is_active: bool | None = None,
    is_verified: bool | None = None,
    is_superuser: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> UserList:
    """List users (superusers only): by creation, or by e-mail for a prefix search `q`.

    Pass `next_cursor` as `cursor` (with the same `q` and filters) for the next page.
    """
    where = UserFilter(q, is_active, is_verified, is_superuser)
    try:
        page = await list_users(where, cursor or None, limit)
    except InvalidCursor:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, INVALID_CURSOR) from None
    return UserList(
        items=[UserListItem.model_validate(user, from_attributes=True) for user in page.users],
        next_cursor=page.next_cursor,
    )
