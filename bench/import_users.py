"""`make bench-import`: `python -m app import` of 100k users against a bare executemany.

Both write the same rows into a fresh, migrated SQLite database. The import runs as an
operator runs it (a subprocess, start-up included), so its rate is a floor; the
baseline is `sqlite3.executemany` of rows already in memory, in one transaction. Peak
memory (the child's max RSS) is measured at 10k and at 100k rows: streamed, it must
not grow with the file. BENCH_IMPORT_ROWS sets the larger size.
"""

import json
import logging
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AERICH = str(Path(sys.executable).with_name("aerich"))
# Django's pbkdf2_sha256, stored as is by the import: no hashing is measured.
HASH = "pbkdf2_sha256$260000$seasalt$YlZ2Vggtqdc61YjArZuoApoBh9JNGYoDRBUGu6tcJQo="

log = logging.getLogger("bench")


def write_file(path: Path, rows: int) -> None:
    """A JSON Lines file of `rows` users."""
    with path.open("w") as file:
        for n in range(rows):
            record = {
                "email": f"user{n}@example.com",
                "hashed_password": HASH,
                "is_verified": n % 2 == 0,
                "created_at": "2024-01-01T00:00:00+00:00",
            }
            file.write(json.dumps(record) + "\n")


def migrated_database(folder: Path, name: str) -> Path:
    """A fresh SQLite database migrated by `aerich upgrade`."""
    database = folder / f"{name}.sqlite3"
    subprocess.run(  # noqa: S603 (this venv's aerich)
        [AERICH, "upgrade"], cwd=ROOT, env={**os.environ, "DATABASE_URL": f"sqlite://{database}"},
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return database


def import_run(folder: Path, rows: int) -> dict[str, Any]:
    """Import a file of `rows` users through `python -m app import`; seconds and peak RSS."""
    source = folder / f"users-{rows}.jsonl"
    write_file(source, rows)
    database = migrated_database(folder, f"import-{rows}")
    env = {**os.environ, "DATABASE_URL": f"sqlite://{database}", "PYTHONPATH": str(ROOT),
           "SECRET": "bench-secret-" + "x" * 40, "LOG_LEVEL": "warning"}  # fmt: skip
    started = time.perf_counter()
    completed = subprocess.run(  # noqa: S603 (this venv's Python, fixed arguments)
        [sys.executable, "-m", "app", "import", str(source)],
        cwd=folder, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    wall_seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"import failed: {completed.stderr.strip()[-500:]}")
    # The import's own time, as its summary says ("... in 3.21 s (...)"), without the
    # interpreter's start-up.
    seconds = float(completed.stdout.rsplit(" in ", 1)[1].split(" s ", 1)[0])
    # The largest RSS of any child so far: the runs go from small to large.
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    with closing(sqlite3.connect(database)) as connection:
        count = connection.execute("SELECT COUNT(*) FROM user").fetchone()[0]
    assert count == rows, (count, rows)
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "peak_mib": peak_mib,
            "wall_seconds": wall_seconds}  # fmt: skip


def executemany_run(folder: Path, rows: int) -> dict[str, Any]:
    """The same rows by `sqlite3.executemany` in one transaction; seconds."""
    database = migrated_database(folder, f"executemany-{rows}")
    now = datetime.now(UTC).isoformat(sep=" ")
    values = [
        (str(uuid.uuid4()), f"user{n}@example.com", HASH, 1, 0, n % 2 == 0,
         "2024-01-01 00:00:00+00:00", now)
        for n in range(rows)
    ]  # fmt: skip
    with closing(sqlite3.connect(database)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        started = time.perf_counter()
        with connection:
            connection.executemany(
                "INSERT INTO user (id, email, hashed_password, is_active, is_superuser,"
                " is_verified, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
        seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}


def main() -> None:
    """Run the three measurements and print the ratios."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = int(os.environ.get("BENCH_IMPORT_ROWS", "100000"))
    with tempfile.TemporaryDirectory(prefix="bench-import-") as workdir:
        folder = Path(workdir)
        log.info("import of %d rows ...", rows // 10)
        small = import_run(folder, rows // 10)
        log.info("import of %d rows ...", rows)
        large = import_run(folder, rows)
        log.info("executemany of %d rows ...", rows)
        bare = executemany_run(folder, rows)
    lines = [
        "| step | rows | seconds | rows/s | peak RSS MiB |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {step['rows']} | {step['seconds']:.2f} | {step['rows_per_s']:.0f} "
            f"| {step.get('peak_mib', float('nan')):.0f} |"
            for name, step in (("import", small), ("import", large), ("executemany", bare))
        ),
        "",
        f"- import rate vs bare executemany: {large['rows_per_s'] / bare['rows_per_s']:.2f}x"
        f" (start-up included: {rows / large['wall_seconds'] / bare['rows_per_s']:.2f}x)",
        f"- peak RSS at {rows} rows vs {rows // 10}: {large['peak_mib'] / small['peak_mib']:.2f}x",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
