"""The app refuses to serve a database it cannot use, saying why in one sentence."""

from pathlib import Path

import pytest
from asgi_lifespan import LifespanManager

from app.app import create_app
from app.db import DatabaseNotReady
from app.settings import Settings
from tests.conftest import TEST_SECRET


@pytest.mark.parametrize(
    ("broken_url", "message"),
    [
        ("sqlite://{tmp}/never-migrated.sqlite3", "run `aerich upgrade` first"),
        ("postgres://postgres@127.0.0.1:1/nowhere", "Cannot reach the database"),
        ("mysql://root:@127.0.0.1:1/nowhere", "Cannot reach the database"),
    ],
    ids=["not-migrated", "postgres-unreachable", "mysql-unreachable"],
)
async def test_startup_checks_the_database(tmp_path: Path, broken_url: str, message: str) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=broken_url.format(tmp=tmp_path),
        secret=TEST_SECRET,
    )

    with pytest.raises(DatabaseNotReady, match=message):
        async with LifespanManager(create_app(settings)):
            pass
