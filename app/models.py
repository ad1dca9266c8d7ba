"""The Tortoise `User` model and the pydantic schemas built on it (`UserDB` among them)."""

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi_users import schemas
from pydantic import ConfigDict, Field, create_model, field_validator
from tortoise import fields
from tortoise.contrib.pydantic import PydanticModel, pydantic_model_creator
from tortoise.models import Model

EMAIL_MAX_LENGTH = 320


def normalize_email(email: str) -> str:
    """The stored, canonical form of an address: one account per address whatever its case."""
    return email.strip().lower()


class User(Model):
    """A user account; its e-mail is stored normalized, in lower case."""

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    email = fields.CharField(max_length=EMAIL_MAX_LENGTH, unique=True)
    hashed_password = fields.CharField(max_length=1024)
    is_active = fields.BooleanField(default=True)
    is_superuser = fields.BooleanField(default=False)
    is_verified = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "user"
        # The admin user list pages through users in this order (`app/admin.py`).
        indexes = (("created_at", "id"),)


class UserDBFields(PydanticModel):
    """The fields of `UserDB` that the code relies on (typed here for mypy)."""

    model_config = ConfigDict(from_attributes=True, orig_model=User)  # type: ignore[typeddict-unknown-key]

    id: uuid.UUID
    email: str
    hashed_password: str
    is_active: bool
    is_superuser: bool
    is_verified: bool
    created_at: datetime
    updated_at: datetime


def with_every_model_field(base: type[UserDBFields]) -> type[UserDBFields]:
    """`base` plus every other field of the Tortoise `User`, as Tortoise's creator types it.

    A field added to `User` (say `first_name`) thus reaches `UserDB`, and from there
    `UserRead` and the adapter, without being listed a second time here.
    """
    generated = pydantic_model_creator(User, name="UserDB")
    extra: dict[str, Any] = {
        name: (field.annotation, field)
        for name, field in generated.model_fields.items()
        if name not in base.model_fields
    }
    return create_model("UserDB", __base__=base, __module__=__name__, **extra)


if TYPE_CHECKING:
    UserDB = UserDBFields
else:
    UserDB = with_every_model_field(UserDBFields)
"""A user as the adapter returns it and the manager works with it: every field of `User`."""


class UserRead(schemas.BaseUser[uuid.UUID]):
    """A user as the API shows it."""


class UserListItem(UserRead):
    """A user as the admin user list (`GET /users`) shows it: `UserRead` and its timestamps."""

    created_at: datetime
    updated_at: datetime


class UserCreate(schemas.BaseUserCreate):
    """The body of `POST /auth/register`."""

    @field_validator("email")
    @classmethod
    def _normalize_email(cls, email: str) -> str:
        return normalize_email(email)


class UserUpdate(schemas.BaseUserUpdate):
    """The body of `PATCH /users/me` and `PATCH /users/{id}`; omitted fields stay as they are."""

    current_password: str | None = Field(
        default=None,
        description="The user's present password. `PATCH /users/me` requires it to change "
        "`email` or `password`; `PATCH /users/{id}` (superusers) ignores it.",
    )

    def create_update_dict(self) -> dict[str, Any]:
        """The changes a user may make to their own account (never `current_password`)."""
        changes: dict[str, Any] = super().create_update_dict()  # type: ignore[no-untyped-call]
        changes.pop("current_password", None)
        return changes

    def create_update_dict_superuser(self) -> dict[str, Any]:
        """The changes a superuser may make to an account (never `current_password`)."""
        changes: dict[str, Any] = super().create_update_dict_superuser()  # type: ignore[no-untyped-call]
        changes.pop("current_password", None)
        return changes

    @field_validator("email")
    @classmethod
    def _normalize_email(cls, email: str | None) -> str | None:
        return None if email is None else normalize_email(email)

    @field_validator("email", "password", "is_active", "is_superuser", "is_verified", mode="before")
    @classmethod
    def _refuse_null(cls, value: Any) -> Any:
        # An explicit null would reach the database as NULL in a NOT NULL column;
        # leaving the field out is how a client keeps the current value.
        if value is None:
            raise ValueError("may be omitted but not null")
        return value
