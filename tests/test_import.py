"""Importing users with foreign password hashes, then logging in over HTTP, on each database.

The import runs in-process here (tests/test_cli.py runs it through `python -m app`);
each imported hash must let its user log in, and the login must replace it with ours.
"""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import argon2
import bcrypt
import httpx
import pytest
from pwdlib.hashers.argon2 import Argon2Hasher
from werkzeug.security import generate_password_hash

from app.foreign_hashes import (
    DjangoPbkdf2Hasher,
    ForeignBcryptHasher,
    WerkzeugPbkdf2Hasher,
    WerkzeugScryptHasher,
)
from app.models import Session, User
from app.passwords import is_known_hash
from app.settings import Settings
from app.user_import import ImportError_, OnConflict, import_users
from tests.conftest import PASSWORD

# Django 3.2's own answer for make_password("lètmein", "seasalt", "pbkdf2_sha256").
DJANGO_PASSWORD = "lètmein"
DJANGO_HASH = "pbkdf2_sha256$260000$seasalt$YlZ2Vggtqdc61YjArZuoApoBh9JNGYoDRBUGu6tcJQo="


def bcrypt_hash(password: str, prefix: str) -> str:
    """A bcrypt hash (cheap cost) written with `prefix` (2a, 2b or PHP's 2y)."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    return f"${prefix}${hashed[4:]}"


FORMATS: dict[str, tuple[str, Callable[[], str]]] = {
    "argon2id-other-params": (
        PASSWORD,
        lambda: Argon2Hasher(time_cost=3, memory_cost=64, parallelism=2).hash(PASSWORD),
    ),
    "argon2i": (
        PASSWORD,
        lambda: argon2.PasswordHasher(
            time_cost=1, memory_cost=16, parallelism=1, type=argon2.Type.I
        ).hash(PASSWORD),
    ),
    "bcrypt-2a": (PASSWORD, lambda: bcrypt_hash(PASSWORD, "2a")),
    "bcrypt-2b": (PASSWORD, lambda: bcrypt_hash(PASSWORD, "2b")),
    "bcrypt-2y": (PASSWORD, lambda: bcrypt_hash(PASSWORD, "2y")),
    "django-pbkdf2": (DJANGO_PASSWORD, lambda: DJANGO_HASH),
    "werkzeug-pbkdf2": (
        PASSWORD,
        lambda: generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000"),
    ),
    "werkzeug-scrypt": (
        PASSWORD,
        lambda: generate_password_hash(PASSWORD, method="scrypt:1024:8:1"),
    ),
}


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    """Write `records` as JSON Lines."""
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


@pytest.mark.usefixtures("client")
async def test_each_hash_format_logs_in_and_is_upgraded(
    client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    hashes = {name: make() for name, (_, make) in FORMATS.items()}
    records = [
        {"email": f"{name}@Example.com", "hashed_password": hashed, "is_verified": True}
        for name, hashed in hashes.items()
    ]
    summary = await import_users(write_jsonl(tmp_path / "users.jsonl", records))

    assert (summary.created, summary.refused) == (len(FORMATS), [])
    for name, (password, _) in FORMATS.items():
        email = f"{name}@example.com"
        assert (await User.get(email=email)).hashed_password == hashes[name]

        response = await client.post(
            "/auth/jwt/login", data={"username": email, "password": password}
        )
        wrong = await client.post(
            "/auth/jwt/login", data={"username": email, "password": password + "x"}
        )

        assert response.status_code == 200, (name, response.text)
        assert wrong.status_code == 400, name
        stored = (await User.get(email=email)).hashed_password
        expected = f"m={settings.password_hash_memory_cost},t={settings.password_hash_time_cost}"
        assert stored.startswith("$argon2id$"), name
        assert expected in stored, name


@pytest.mark.usefixtures("db")
async def test_rows_are_refused_with_their_number_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "users.jsonl"
    path.write_text(
        json.dumps({"email": "ok@example.com", "hashed_password": DJANGO_HASH}) + "\n"
        + json.dumps({"email": "md5@example.com", "hashed_password": "md5$abc$def"}) + "\n"
        + "\n"
        + "{not json\n"
        + json.dumps({"email": "not an address", "hashed_password": DJANGO_HASH}) + "\n"
        + json.dumps({"email": "flag@example.com", "hashed_password": DJANGO_HASH,
                      "is_active": "perhaps"}) + "\n"
        + json.dumps({"email": "nohash@example.com"}) + "\n"
        + json.dumps({"email": "long@example.com",  # longer than the column holds
                      "hashed_password": DJANGO_HASH.replace("seasalt", "s" * 1024)}) + "\n"
    )  # fmt: skip

    summary = await import_users(path)

    assert summary.created == 1
    assert [message.split(":")[0] for message in summary.refused] == [
        "row 2", "row 4", "row 5", "row 6", "row 7", "row 8",
    ]  # fmt: skip
    assert "longer than 1024 characters" in summary.refused[-1]
    assert "no supported format" in summary.refused[0]
    assert await User.filter(email="md5@example.com").count() == 0
    assert await User.all().count() == 1


@pytest.mark.usefixtures("db")
async def test_csv_with_flags_and_created_at(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text(
        "email,hashed_password,is_active,is_verified,is_superuser,created_at\n"
        f"Ada@Example.com,{DJANGO_HASH},true,1,yes,2020-01-02T03:04:05+02:00\n"
        f'grace@example.com,"{DJANGO_HASH}",false,0,no,\n'
    )

    summary = await import_users(path)

    assert summary.created == 2
    ada = await User.get(email="ada@example.com")
    assert (ada.is_active, ada.is_verified, ada.is_superuser) == (True, True, True)
    assert ada.created_at == datetime(2020, 1, 2, 1, 4, 5, tzinfo=UTC)
    grace = await User.get(email="grace@example.com")
    assert (grace.is_active, grace.is_verified, grace.is_superuser) == (False, False, False)


@pytest.mark.usefixtures("db")
async def test_rerun_imports_only_what_is_missing(tmp_path: Path) -> None:
    """An interrupted import (half the rows in) finished by running it again."""
    records = [{"email": f"u{n}@example.com", "hashed_password": DJANGO_HASH} for n in range(25)]
    write_jsonl(tmp_path / "half.jsonl", records[:12])
    await import_users(tmp_path / "half.jsonl", batch_size=5)

    summary = await import_users(write_jsonl(tmp_path / "all.jsonl", records), batch_size=5)

    assert (summary.created, summary.skipped) == (13, 12)
    assert await User.all().count() == 25


@pytest.mark.usefixtures("db")
async def test_on_conflict_update_fail_and_dry_run(tmp_path: Path) -> None:
    await User.create(email="ada@example.com", hashed_password=DJANGO_HASH)
    other = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
    path = write_jsonl(
        tmp_path / "users.jsonl",
        [
            {"email": "ADA@example.com", "hashed_password": other, "is_superuser": True},
            {"email": "new@example.com", "hashed_password": other},
        ],
    )

    dry = await import_users(path, on_conflict=OnConflict.update, dry_run=True)
    assert (dry.created, dry.updated) == (1, 1)
    assert await User.all().count() == 1

    with pytest.raises(ImportError_, match=r"row 1: ada@example\.com is already a user"):
        await import_users(path, on_conflict=OnConflict.fail)
    assert await User.all().count() == 1  # the batch rolled back whole

    updated = await import_users(path, on_conflict=OnConflict.update)
    assert (updated.created, updated.updated) == (1, 1)
    ada = await User.get(email="ada@example.com")
    assert (ada.hashed_password, ada.is_superuser) == (other, True)


def test_unknown_and_unreasonable_hashes_are_not_known() -> None:
    for hashed in [
        "md5$abc$def",
        "plaintext",
        "pbkdf2_sha256$0$salt$aGFzaA==",
        "scrypt:1000:8:1$salt$abcd",  # n not a power of two
        "scrypt:1073741824:8:1$salt$abcd",  # 1 TiB of memory
        "$2b$03$" + "a" * 53,  # bcrypt cost below 4
    ]:
        assert not is_known_hash(hashed), hashed


@pytest.mark.parametrize(
    "hasher",
    [DjangoPbkdf2Hasher(), WerkzeugPbkdf2Hasher(), WerkzeugScryptHasher(), ForeignBcryptHasher()],
)
def test_foreign_hashers_only_verify(hasher: Any) -> None:
    with pytest.raises(NotImplementedError):
        hasher.hash(PASSWORD)
    assert hasher.check_needs_rehash("anything")


def test_bcrypt_checks_the_first_72_bytes_as_php_did() -> None:
    long_password = "p" * 80
    hashed = bcrypt.hashpw(long_password.encode()[:72], bcrypt.gensalt(4)).decode()

    assert ForeignBcryptHasher().verify(long_password, hashed)
    assert not ForeignBcryptHasher().verify("p" * 71, hashed)


@pytest.mark.usefixtures("db")
async def test_update_keeps_the_last_superuser_and_ends_sessions(tmp_path: Path) -> None:
    admin = await User.create(email="admin@example.com", hashed_password=DJANGO_HASH,
                              is_superuser=True)  # fmt: skip
    ada = await User.create(email="ada@example.com", hashed_password=DJANGO_HASH)
    now = datetime.now(UTC)
    for user in (admin, ada):
        await Session.create(user=user, auth_time=now, last_refreshed_at=now,
                             expires_at=now + timedelta(days=1))  # fmt: skip
    demote = write_jsonl(
        tmp_path / "demote.jsonl",
        [{"email": "admin@example.com", "hashed_password": DJANGO_HASH, "is_superuser": False}],
    )
    deactivate = write_jsonl(
        tmp_path / "deactivate.jsonl",
        [{"email": "ada@example.com", "hashed_password": DJANGO_HASH, "is_active": False}],
    )

    with pytest.raises(ImportError_, match=r"row 1: admin@example\.com is the last active"):
        await import_users(demote, on_conflict=OnConflict.update)
    await import_users(deactivate, on_conflict=OnConflict.update)

    assert (await User.get(id=admin.id)).is_superuser
    assert await Session.filter(user_id=admin.id, revoked_at__isnull=True).count() == 1
    [ended] = await Session.filter(user_id=ada.id)
    assert ended.revoked_reason == "deactivated"
