"""The adapter's OAuth methods (FastAPI Users' semantics), tested directly on each database."""

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from tortoise.transactions import in_transaction

from app.models import OAuthAccount, User, UserWithOAuthAccounts
from app.user_db import OAuthAccountTaken, TortoiseUserDatabase
from tests.test_user_db import new_user

pytestmark = pytest.mark.usefixtures("db")


def account(account_id: str = "sub-1", oauth_name: str = "corp") -> dict[str, object]:
    """A create_dict as FastAPI Users' manager passes it, provider tokens included."""
    return {
        "oauth_name": oauth_name, "account_id": account_id, "account_email": "a@example.com",
        "access_token": "provider-access-token", "expires_at": 1, "refresh_token": "r",
    }  # fmt: skip


async def test_add_get_and_update_an_oauth_account() -> None:
    """Linked, found by (provider, account id), updated; the user carries its accounts."""
    user_db = TortoiseUserDatabase()
    user = await user_db.create(new_user())
    linked = await user_db.add_oauth_account(user, account())
    assert isinstance(linked, UserWithOAuthAccounts)
    [added] = linked.oauth_accounts
    assert (added.oauth_name, added.account_id, added.account_email) == (
        "corp", "sub-1", "a@example.com",
    )  # fmt: skip
    found = await user_db.get_by_oauth_account("corp", "sub-1")
    assert found is not None
    assert found.id == user.id
    assert found.oauth_accounts == linked.oauth_accounts
    assert await user_db.get_by_oauth_account("other", "sub-1") is None
    assert await user_db.get_by_oauth_account("corp", "sub-2") is None
    assert await user_db.get_by_oauth_account("corp", "x\x00" * 300) is None  # never a query
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    updated = await user_db.update_oauth_account(
        found, added, {"account_email": "b@example.com", "last_used_at": moment,
                       "access_token": "new-provider-token"},
    )  # fmt: skip
    [changed] = updated.oauth_accounts
    assert changed.account_email == "b@example.com"
    assert changed.last_used_at == moment


async def test_provider_tokens_are_not_stored() -> None:
    """The table has no column for them: nothing of a provider token lands in the database."""
    assert not {"access_token", "refresh_token", "expires_at"} & set(OAuthAccount._meta.db_fields)
    user_db = TortoiseUserDatabase()
    await user_db.add_oauth_account(await user_db.create(new_user()), account())
    [row] = await OAuthAccount.all().values()
    assert "provider-access-token" not in str(row)


async def test_an_identity_links_to_one_user_only() -> None:
    """Unique (provider, account id): a second link raises, also inside a transaction."""
    user_db = TortoiseUserDatabase()
    first = await user_db.create(new_user("a@example.com"))
    second = await user_db.create(new_user("b@example.com"))
    await user_db.add_oauth_account(first, account())
    with pytest.raises(OAuthAccountTaken):
        await user_db.add_oauth_account(second, account())
    async with in_transaction():
        with pytest.raises(OAuthAccountTaken):
            await user_db.add_oauth_account(second, account())
        # The savepoint kept the transaction usable (PostgreSQL aborts it otherwise).
        await user_db.add_oauth_account(second, account("sub-2"))
    assert await OAuthAccount.filter(user_id=second.id).count() == 1


async def test_concurrent_links_of_one_identity_leave_one() -> None:
    """Two first sign-ins at once: exactly one link, the other `OAuthAccountTaken`."""
    user_db = TortoiseUserDatabase()
    users = [await user_db.create(new_user(f"u{n}@example.com")) for n in range(2)]
    results = await asyncio.gather(
        *(user_db.add_oauth_account(user, account()) for user in users), return_exceptions=True
    )
    assert sorted(type(result).__name__ for result in results) == [
        "OAuthAccountTaken", "UserWithOAuthAccounts",
    ]  # fmt: skip
    assert await OAuthAccount.all().count() == 1


async def test_accounts_are_listed_per_user_and_go_with_their_user() -> None:
    """The list is the user's own, oldest first; deleting a user deletes its links."""
    user_db = TortoiseUserDatabase()
    owner = await user_db.create(new_user("a@example.com"))
    other = await user_db.create(new_user("b@example.com"))
    await user_db.add_oauth_account(owner, account())
    await user_db.add_oauth_account(owner, account("sub-2"))
    await user_db.add_oauth_account(other, account("sub-3"))
    assert [a.account_id for a in await user_db.list_oauth_accounts(owner.id)] == [
        "sub-1", "sub-2",
    ]  # fmt: skip
    assert await user_db.list_oauth_accounts(uuid.uuid4()) == []
    await User.filter(id=owner.id).delete()
    assert [a.account_id for a in await OAuthAccount.all()] == ["sub-3"]
