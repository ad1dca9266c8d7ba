"""Serve the app with uvicorn on HOST:PORT, in WEB_CONCURRENCY workers (`make run`).

This is the documented way to run the service, with one worker or several: it checks the
settings and the database once, before any worker starts, and stops with one line and a
non-zero exit when either is unusable. `uvicorn app.app:app --workers N` started directly
has no such step: each worker fails on its own and uvicorn restarts it, forever.
"""

import uvicorn

from app.db import database_problem
from app.settings import load_settings, resolve_secret


def main() -> None:
    """Check once, then serve."""
    settings = load_settings()  # a bad setting stops here, in one line
    if settings.environment == "production":
        resolve_secret(settings)  # a bad SECRET stops the start here, not in every worker
    # A missing, unreachable, unmigrated or outdated database: one line here, not a
    # traceback per worker.
    problem = database_problem(settings)
    if problem is not None:
        raise SystemExit(problem)
    # The app reads X-Forwarded-For itself, only from TRUSTED_PROXIES (app/security.py);
    # uvicorn's own proxy handling would trust 127.0.0.1 and rewrite the client address.
    # The app writes its own access line (ACCESS_LOG, app/logs.py) in place of uvicorn's.
    # h11 by default, because it bounds the request head (MAX_HEADER_BYTES); httptools,
    # faster, reads headers of any size, so it is for a proxy that bounds them
    # (HTTP_PARSER; docs/security.md, "HTTP").
    uvicorn.run(
        "app.app:app",
        host=settings.host,
        port=settings.port,
        workers=settings.web_concurrency,
        http=settings.http_parser,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        log_level=settings.log_level,
        proxy_headers=False,
        access_log=not settings.access_log,
    )


if __name__ == "__main__":
    main()
