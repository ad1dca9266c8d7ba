"""Serve the app with uvicorn on the configured host and port (`make run`)."""

import uvicorn

from app.db import database_problem
from app.settings import load_settings, resolve_secret

if __name__ == "__main__":
    settings = load_settings()
    if settings.environment == "production":
        resolve_secret(settings)  # a bad SECRET stops the start here, not in every worker
    # A missing, unreachable or unmigrated database: one line here, not a traceback per worker.
    problem = database_problem(settings)
    if problem is not None:
        raise SystemExit(problem)
    # The app reads X-Forwarded-For itself, only from TRUSTED_PROXIES (app/security.py);
    # uvicorn's own proxy handling would trust 127.0.0.1 and rewrite the client address.
    # The app writes its own access line (ACCESS_LOG, app/logs.py) in place of uvicorn's.
    uvicorn.run(
        "app.app:app",
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        proxy_headers=False,
        access_log=not settings.access_log,
    )
