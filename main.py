"""Serve the app with uvicorn on the configured host and port (`make run`)."""

import uvicorn

from app.settings import load_settings

if __name__ == "__main__":
    settings = load_settings()
    uvicorn.run("app.app:app", host=settings.host, port=settings.port, log_level=settings.log_level)
