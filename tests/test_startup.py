"""The app refuses to serve a database it cannot use, saying why in one sentence."""

import subprocess
import sys
from pathlib import Path

import pytest
from asgi_lifespan import LifespanManager

from app.app import create_app
from app.db import DatabaseNotReady
from app.settings import Settings
from tests.conftest import ROOT, TEST_SECRET, child_environment, free_port


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


def test_make_run_on_an_unmigrated_database_says_so_in_one_line(
    tmp_path: Path, bytecode_cache: Path
) -> None:
    """`python main.py` (what `make run` starts) checks the database before uvicorn starts."""
    env = {
        **child_environment(bytecode_cache),
        "DATABASE_URL": f"sqlite://{tmp_path}/never-migrated.sqlite3",
        "SECRET": TEST_SECRET,
        "PORT": str(free_port()),
    }

    result = subprocess.run(  # noqa: S603 (this venv's Python, fixed arguments)
        [sys.executable, str(ROOT / "main.py")], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "run `aerich upgrade` first" in line
