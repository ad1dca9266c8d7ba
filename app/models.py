"""The Tortoise models (users, sessions, provider accounts, second factors) and the schemas."""

import functools
import unicodedata
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import idna
from fastapi_users import schemas
from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    create_model,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema
from tortoise import fields
from tortoise.contrib.pydantic import PydanticModel, pydantic_model_creator
from tortoise.models import Model

EMAIL_MAX_LENGTH = 320
EMAIL_DESCRIPTION = (
    "An address as email-validator accepts it: special-use domains (`.test`, `.local`, "
    "`.localhost`, `.invalid`, `.onion`, `.arpa`) are refused. Compared as `normalize_email` "
    "writes it: fullwidth forms folded, the domain in Unicode, lower case."
)


def fold(text: str) -> str:
    """`text` in NFKC and lower case (NFKC twice, so folding is idempotent for every character)."""
    if text.isascii():
        # NFKC leaves ASCII as it is, so lower case is all there is to do (and much cheaper).
        return text.lower()
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).lower())


def unicode_domain(domain: str) -> str:
    """The domain as email-validator writes it: UTS-46 mapped, punycode labels decoded."""
    try:
        mapped: str = idna.uts46_remap(domain, std3_rules=False, transitional=False)
    except idna.IDNAError:
        return domain
    try:
        decoded: str = idna.decode(mapped)
    except idna.IDNAError:
        return mapped
    return decoded


@functools.lru_cache(maxsize=4096)
def normalize_domain(domain: str) -> str:
    """The domain part of `normalize_email`; cached, as most addresses share a few domains."""
    return fold(unicode_domain(domain))


def normalize_email(email: str) -> str:
    """The one key an address is stored and looked up by; never raises.

    Compatibility forms fold as email-validator folds them (fullwidth `U+FF45` is `e`), the
    domain is written in Unicode whether it came as Unicode or punycode (`xn--`), NFC and
    NFD spellings meet, and the whole is lower case. Look-alikes from another script (a
    Cyrillic `U+0430` for `a`) are other characters and stay another address.
    """
    local, at, domain = email.strip().rpartition("@")
    if not at:
        return fold(email.strip())
    return f"{fold(local)}@{normalize_domain(domain)}"


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


# Why a session ended (`Session.revoked_reason`); `expired` is only ever shown, never stored.
RevokedReason = Literal[
    "logout", "logout_all", "password_change", "password_reset", "deactivated", "admin",
    "refresh_reuse", "evicted", "mfa_enabled", "expired",
]  # fmt: skip
IP_MAX_LENGTH = 45  # an IPv6 address in its longest text form
USER_AGENT_MAX_LENGTH = 255


class Session(Model):
    """A login: the `sid` of its access tokens and the generation of its refresh token.

    No column holds a credential: a refresh token is an HMAC of (id, refresh_counter)
    under the secret, so the table alone lets no one in.
    """

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="sessions", on_delete=fields.CASCADE, db_index=True
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    auth_time = fields.DatetimeField()
    last_refreshed_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(db_index=True)
    refresh_counter = fields.IntField(default=0)
    revoked_at = fields.DatetimeField(null=True)
    revoked_reason = fields.CharField(max_length=32, null=True)
    ip = fields.CharField(max_length=IP_MAX_LENGTH, null=True)
    user_agent = fields.CharField(max_length=USER_AGENT_MAX_LENGTH, null=True)
    # Authenticator assurance level of the login: 1 one factor, 2 a second factor too
    # (app/mfa.py); a refresh leaves it as it is.
    aal = fields.SmallIntField(default=1)

    class Meta:
        table = "auth_session"


OAUTH_NAME_MAX_LENGTH = 32
OAUTH_ACCOUNT_ID_MAX_LENGTH = 255


class OAuthAccount(Model):
    """A provider identity linked to a user: `(oauth_name, account_id)` signs in as `user`.

    The provider's access and refresh tokens are not kept: a sign-in needs them once,
    and nothing here calls the provider later.
    """

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="oauth_accounts", on_delete=fields.CASCADE, db_index=True
    )
    oauth_name = fields.CharField(max_length=OAUTH_NAME_MAX_LENGTH)
    account_id = fields.CharField(max_length=OAUTH_ACCOUNT_ID_MAX_LENGTH)
    account_email = fields.CharField(max_length=EMAIL_MAX_LENGTH)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "oauth_account"
        unique_together = (("oauth_name", "account_id"),)


class OAuthAccountRead(PydanticModel):
    """A linked provider identity as the API (and `UserWithOAuthAccounts`) shows it."""

    model_config = ConfigDict(from_attributes=True, orig_model=OAuthAccount)  # type: ignore[typeddict-unknown-key]

    id: uuid.UUID
    oauth_name: str = Field(description="The provider's name in OAUTH_PROVIDERS.")
    account_id: str = Field(description="The provider's id of the account (`sub`).")
    account_email: str
    created_at: datetime
    last_used_at: datetime | None


class MfaTotp(Model):
    """The TOTP factor of a user: pending until confirmed with a code, then asked at each login.

    `secret` is encrypted (`MFA_ENCRYPTION_KEY`, app/mfa.py); `last_step` is the time
    step of the last accepted code, moved forward only by a conditional UPDATE, so a
    code is accepted once on every worker and instance.
    """

    user: fields.OneToOneRelation[User] = fields.OneToOneField(
        "models.User", related_name="mfa_totp", on_delete=fields.CASCADE, primary_key=True
    )
    secret = fields.CharField(max_length=255)
    created_at = fields.DatetimeField(auto_now_add=True)
    confirmed_at = fields.DatetimeField(null=True)
    last_step = fields.BigIntField(default=0)

    class Meta:
        table = "mfa_totp"


class MfaRecoveryCode(Model):
    """One single-use recovery code of a user, stored as an argon2id hash."""

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="mfa_recovery_codes", on_delete=fields.CASCADE, db_index=True
    )
    code_hash = fields.CharField(max_length=255)
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "mfa_recovery_code"


class MfaChallenge(Model):
    """The pending second step of a login: its `mfa_token` (as SHA-256), expiry and attempts.

    In the database, so any worker or instance can finish the login; single-use and
    bounded by conditional UPDATEs.
    """

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="mfa_challenges", on_delete=fields.CASCADE, db_index=True
    )
    token_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField(db_index=True)
    attempts = fields.SmallIntField(default=0)
    failed = fields.SmallIntField(default=0)
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "mfa_challenge"


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
        if name not in base.model_fields and name in User._meta.db_fields
    }
    return create_model("UserDB", __base__=base, __module__=__name__, **extra)


if TYPE_CHECKING:
    UserDB = UserDBFields
else:
    UserDB = with_every_model_field(UserDBFields)
"""A user as the adapter returns it and the manager works with it: every field of `User`."""


class UserWithOAuthAccounts(UserDB):
    """A user with the provider identities linked to it, where FastAPI Users expects them.

    Only the adapter's OAuth methods return it: the authenticated request never reads them.
    """

    oauth_accounts: list[OAuthAccountRead] = Field(default_factory=list)


class SessionUser(UserDB):
    """The user of an authenticated request, with the session its access token belongs to."""

    session_id: uuid.UUID
    auth_time: datetime


class UserRead(schemas.BaseUser[uuid.UUID]):
    """A user as the API shows it."""

    # Stored addresses keep an internationalized domain in Unicode (`normalize_email`),
    # which JSON Schema's `email` format does not admit; `idn-email` does.
    email: EmailStr = Field(json_schema_extra={"format": "idn-email"})


class UserListItem(UserRead):
    """A user as the admin user list (`GET /users`) shows it: `UserRead` and its timestamps."""

    created_at: datetime
    updated_at: datetime


class UserCreate(schemas.BaseUserCreate):
    """The body of `POST /auth/register`."""

    email: EmailStr = Field(description=EMAIL_DESCRIPTION)
    # Strict: `0.0` or `"yes"` is not a boolean. Registration ignores these three
    # (only a superuser's `PATCH /users/{id}` sets them), null included.
    is_active: StrictBool | None = True
    is_superuser: StrictBool | None = False
    is_verified: StrictBool | None = False

    @field_validator("email")
    @classmethod
    def _normalize_email(cls, email: str) -> str:
        return normalize_email(email)


class UserUpdate(schemas.BaseUserUpdate):
    """The body of `PATCH /users/me` and `PATCH /users/{id}`; omitted fields stay as they are."""

    # Omitted is "unchanged"; null is refused (see `_refuse_null`), so the schema does not
    # offer it. Booleans are strict: `0.0` or `"yes"` is not a boolean.
    password: str | SkipJsonSchema[None] = None
    email: EmailStr | SkipJsonSchema[None] = Field(default=None, description=EMAIL_DESCRIPTION)
    is_active: StrictBool | SkipJsonSchema[None] = None
    is_superuser: StrictBool | SkipJsonSchema[None] = None
    is_verified: StrictBool | SkipJsonSchema[None] = None
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


class AuditEvent(Model):
    """A security event: who did what to which account, when, from where, with what outcome.

    `id` grows with time, so it orders events and serves as the pagination cursor.
    `details` holds a few facts (field names, a redacted address), never a secret.
    """

    id = fields.BigIntField(primary_key=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    action = fields.CharField(max_length=32)
    outcome = fields.CharField(max_length=32, default="success")
    actor_id = fields.UUIDField(null=True)
    subject_id = fields.UUIDField(null=True)
    client_ip = fields.CharField(max_length=45, null=True)
    user_agent = fields.CharField(max_length=USER_AGENT_MAX_LENGTH, null=True)
    request_id = fields.CharField(max_length=128, null=True)
    details: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)

    class Meta:
        table = "audit_event"
        indexes = (("subject_id", "id"), ("action", "id"))


class AuditEventRead(PydanticModel):
    """An audit event as the API shows it."""

    model_config = ConfigDict(from_attributes=True, orig_model=AuditEvent)  # type: ignore[typeddict-unknown-key]

    id: int
    created_at: datetime
    action: str
    outcome: str
    actor_id: uuid.UUID | None
    subject_id: uuid.UUID | None
    client_ip: str | None
    user_agent: str | None
    request_id: str | None
    details: dict[str, Any]


class AuditEventPage(PydanticModel):
    """One page of audit events, newest first; pass `next_cursor` as `cursor` for the next."""

    items: list[AuditEventRead]
    next_cursor: str | None


class TokenResponse(BaseModel):
    """A token pair (RFC 6749 section 5.1), from login and refresh."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int = Field(description="Seconds the access token is valid.")
    refresh_token: str
    refresh_expires_in: int = Field(
        description="Seconds the refresh token stays usable if not used: until the session's "
        "idle timeout or its absolute end, whichever comes first."
    )


class OAuthErrorModel(BaseModel):
    """An error of the token routes: FastAPI Users' `detail` code and RFC 6749's `error`."""

    detail: str
    error: Literal["invalid_request", "invalid_grant", "unsupported_grant_type"]


class SessionRead(BaseModel):
    """A session as `GET /users/me/sessions` shows it; ended ones have `revoked_at`."""

    id: uuid.UUID
    created_at: datetime
    auth_time: datetime = Field(description="The last password login of this session.")
    last_refreshed_at: datetime
    expires_at: datetime = Field(description="The absolute end, whatever the refreshes.")
    ip: str | None
    user_agent: str | None
    current: bool = Field(description="Whether this is the session of the calling token.")
    revoked_at: datetime | None = Field(description="When it ended; null while it is open.")
    revoked_reason: RevokedReason | None
    aal: int = Field(
        description="1: signed in with one factor; 2: with a second factor too (docs/mfa.md)."
    )


MfaMethod = Literal["totp", "recovery_code"]


class MfaRequired(BaseModel):
    """`401 LOGIN_MFA_REQUIRED`: the password was right; finish at `POST /auth/mfa/verify`."""

    detail: Literal["LOGIN_MFA_REQUIRED"]
    mfa_token: str = Field(description="Single-use, short-lived; not a bearer token.")
    expires_in: int = Field(description="Seconds the `mfa_token` is valid.")
    methods: list[MfaMethod]


class MfaVerify(BaseModel):
    """The body of `POST /auth/mfa/verify`: the `mfa_token` and a code or a recovery code."""

    mfa_token: str = Field(min_length=1, max_length=100)
    code: str | None = Field(default=None, max_length=20, description="The app's 6 digits.")
    recovery_code: str | None = Field(default=None, max_length=40)


class CurrentPassword(BaseModel):
    """A body carrying the user's present password."""

    current_password: str = Field(min_length=1, max_length=1024)


class TotpCode(BaseModel):
    """A body carrying a code from the authenticator app."""

    code: str = Field(max_length=20, description="The app's 6 digits.")


class MfaProof(BaseModel):
    """The present password and a code or a recovery code (disable, new recovery codes)."""

    current_password: str = Field(min_length=1, max_length=1024)
    code: str | None = Field(default=None, max_length=20)
    recovery_code: str | None = Field(default=None, max_length=40)


class TotpEnrolment(BaseModel):
    """A pending TOTP factor: add it to an authenticator app, then confirm with a code."""

    secret: str = Field(description="Base32, 160 bits; for typing into the app by hand.")
    otpauth_uri: str
    qr_svg: str = Field(description="The `otpauth_uri` as a QR code, an SVG document.")


class RecoveryCodes(BaseModel):
    """Recovery codes, shown this once: each signs in once in place of a TOTP code."""

    recovery_codes: list[str]


class MfaStatus(BaseModel):
    """The user's second factor."""

    totp: Literal["none", "pending", "enabled"]
    recovery_codes_left: int
