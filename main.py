"""Serve the app with uvicorn on the configured host and port (`make run`)."""

import uvicorn

from app.settings import load_settings, resolve_secret

if __name__ == "__main__":
    # Check SECRET once here, so a bad one stops the start instead of every worker.
    settings = resolve_secret(load_settings())
    uvicorn.run("app.app:app", host=settings.host, port=settings.port, log_level=settings.log_level)
