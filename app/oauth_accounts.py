"""The linking rules of provider identities to accounts: sign-in, associate, unlink.

Safe by default (docs/oauth.md): an identity already linked signs in as its user; a new
one is linked to the account with its address only when the provider says the address
is verified and the account's is verified too; otherwise a new verified account is made
(OAUTH_ALLOW_SIGNUP) or the sign-in is refused with one code, whatever the reason, so
the answer does not tell whether the address has an account. Each link and unlink
commits with its audit event and mails the owner.
"""

import uuid
from typing import Any, Literal

from fastapi import Request
from fastapi_users import exceptions
from fastapi_users.router.common import ErrorCode
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from app import audit
from app.audit import Event
from app.logs import request_id_of
from app.mail import redact
from app.models import OAuthAccount, OAuthAccountRead, User, UserDB
from app.oauth import Identity
from app.passwords import has_usable_password, unusable_password
from app.sessions import utcnow
from app.user_db import OAuthAccountTaken, TortoiseUserDatabase
from app.users import UserManager

OAUTH_SIGN_IN_REFUSED = "OAUTH_SIGN_IN_REFUSED"
OAUTH_ACCOUNT_ALREADY_LINKED = "OAUTH_ACCOUNT_ALREADY_LINKED"
OAUTH_ACCOUNT_NOT_FOUND = "OAUTH_ACCOUNT_NOT_FOUND"
OAUTH_LAST_SIGN_IN_METHOD = "OAUTH_LAST_SIGN_IN_METHOD"


class OAuthRefused(Exception):
    """A provider sign-in, link or unlink is refused: `code` for the client, `reason` for us."""

    def __init__(self, code: str, reason: str, status: int = 400) -> None:
        super().__init__(f"{code}: {reason}")
        self.code, self.reason, self.status = code, reason, status


def user_db_of(manager: UserManager) -> TortoiseUserDatabase:
    """The manager's adapter (ours, with the OAuth methods)."""
    assert isinstance(manager.user_db, TortoiseUserDatabase)
    return manager.user_db


async def user_for_sign_in(
    manager: UserManager, provider: str, identity: Identity, request: Request
) -> UserDB:
    """The user this provider identity signs in as, linking or creating one by the rules."""
    user_db = user_db_of(manager)
    linked = await user_db.get_by_oauth_account(provider, identity.account_id)
    if linked is not None:
        if not linked.is_active:
            raise OAuthRefused(ErrorCode.LOGIN_BAD_CREDENTIALS.value, "inactive")
        [account] = [
            found
            for found in linked.oauth_accounts
            if found.oauth_name == provider and found.account_id == identity.account_id
        ]
        changes: dict[str, Any] = {"last_used_at": utcnow()}
        if identity.email is not None and identity.email_verified:
            changes["account_email"] = identity.email
        await user_db.update_oauth_account(linked, account, changes)
        return linked
    if identity.email is None or not identity.email_verified:
        raise OAuthRefused(OAUTH_SIGN_IN_REFUSED, "address not verified by the provider")
    existing = await user_db.get_by_email(identity.email)
    if existing is not None:
        if not (existing.is_verified and existing.is_active):
            raise OAuthRefused(OAUTH_SIGN_IN_REFUSED, "account unverified or inactive")
        await link(manager, existing, provider, identity, request)
        return existing
    if not manager.settings.oauth_allow_signup:
        raise OAuthRefused(OAUTH_SIGN_IN_REFUSED, "no account, and OAUTH_ALLOW_SIGNUP is off")
    return await sign_up(manager, provider, identity, request)


async def sign_up(
    manager: UserManager, provider: str, identity: Identity, request: Request
) -> UserDB:
    """A new verified account for a provider identity, with no password until a reset."""
    user_db = user_db_of(manager)
    assert identity.email is not None
    try:
        async with in_transaction():
            user = await user_db.create(
                {
                    "email": identity.email,
                    "hashed_password": unusable_password(),
                    "is_active": True,
                    "is_superuser": False,
                    "is_verified": True,
                }
            )
            await audit.record(
                Event("register", {"provider": provider}), request, subject_id=user.id
            )
            await user_db.add_oauth_account(user, account_values(provider, identity))
            await audit.record(
                Event("oauth_link", {"provider": provider}), request, subject_id=user.id
            )
    except (exceptions.UserAlreadyExists, OAuthAccountTaken):
        # A concurrent sign-in of the same identity or address won; it is theirs.
        raise OAuthRefused(OAUTH_SIGN_IN_REFUSED, "created concurrently") from None
    await manager.on_after_register(user, request)
    return user


def account_values(provider: str, identity: Identity) -> dict[str, Any]:
    """The `OAuthAccount` fields of a new link."""
    return {
        "oauth_name": provider,
        "account_id": identity.account_id,
        "account_email": identity.email or "",
        "last_used_at": utcnow(),
    }


async def link(
    manager: UserManager, user: UserDB, provider: str, identity: Identity, request: Request
) -> OAuthAccountRead:
    """Link the identity to `user` (with its audit event) and tell the owner by mail.

    Raises `OAuthRefused(OAUTH_ACCOUNT_ALREADY_LINKED)` if it is linked already, to
    anyone (the unique index decides).
    """
    user_db = user_db_of(manager)
    try:
        async with in_transaction():
            linked = await user_db.add_oauth_account(user, account_values(provider, identity))
            await audit.record(
                Event("oauth_link", {"provider": provider}), request, subject_id=user.id
            )
    except OAuthAccountTaken:
        raise OAuthRefused(OAUTH_ACCOUNT_ALREADY_LINKED, "linked already") from None
    [account] = [
        found
        for found in linked.oauth_accounts
        if found.oauth_name == provider and found.account_id == identity.account_id
    ]
    mail(manager, "oauth_linked", user, account, request)
    return account


async def associate(
    manager: UserManager, user: UserDB, provider: str, identity: Identity, request: Request
) -> OAuthAccountRead:
    """Link the identity to a signed-in `user`; already theirs, it is returned as it is."""
    linked = await user_db_of(manager).get_by_oauth_account(provider, identity.account_id)
    if linked is not None:
        if linked.id != user.id:
            raise OAuthRefused(OAUTH_ACCOUNT_ALREADY_LINKED, "linked to another account")
        [account] = [
            found
            for found in linked.oauth_accounts
            if found.oauth_name == provider and found.account_id == identity.account_id
        ]
        return account
    return await link(manager, user, provider, identity, request)


async def unlink(
    manager: UserManager, user: UserDB, account_id: uuid.UUID, request: Request
) -> None:
    """Unlink one of the user's identities, unless it is their last way to sign in.

    The user's row is locked first, so two concurrent unlinks cannot together remove
    the last two ways.
    """
    async with in_transaction() as connection:
        if connection.capabilities.dialect == "sqlite":
            # SQLite has no row locks: the first write takes the database's write lock.
            await User.filter(id=user.id).using_db(connection).update(is_active=F("is_active"))
            fresh = await User.filter(id=user.id).using_db(connection).first()
        else:
            fresh = await User.select_for_update().using_db(connection).get_or_none(id=user.id)
        accounts = await OAuthAccount.filter(user_id=user.id).using_db(connection)
        target = [account for account in accounts if account.id == account_id]
        if fresh is None or not target:
            raise OAuthRefused(OAUTH_ACCOUNT_NOT_FOUND, "no such link", 404)
        if len(accounts) == 1 and not has_usable_password(fresh.hashed_password):
            raise OAuthRefused(OAUTH_LAST_SIGN_IN_METHOD, "last way to sign in")
        await OAuthAccount.filter(id=account_id).using_db(connection).delete()
        await audit.record(
            Event("oauth_unlink", {"provider": target[0].oauth_name}), request, subject_id=user.id
        )
    mail(manager, "oauth_unlinked", user, OAuthAccountRead.model_validate(target[0]), request)


def mail(
    manager: UserManager,
    kind: Literal["oauth_linked", "oauth_unlinked"],
    user: UserDB,
    account: OAuthAccountRead,
    request: Request,
) -> None:
    """Tell the owner that a provider was linked to or unlinked from their account."""
    message = manager.mailer.build(
        kind,
        user.email,
        provider=account.oauth_name,
        account_email=redact(account.account_email) if account.account_email else "",
    )
    manager.mailer.send_soon(message, request_id=request_id_of(request))
