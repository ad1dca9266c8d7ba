"""The interactive API documentation (`/docs`, `/redoc`), served whole by the service.

FastAPI's own pages load Swagger UI and ReDoc from a public CDN (a blank page offline)
and start Swagger UI with an inline script. Here the assets come from the pinned
`fastapi-offline` package, mounted at `/docs/assets`, and the start-up code is a file
of ours, so the pages' Content-Security-Policy allows scripts from the service only.
"""

from html import escape
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
ASSETS_URL = "/docs/assets"
OWN_ASSETS_URL = "/static/docs"
VENDOR_ASSETS = Path(fastapi_offline.__file__).parent / "static"
# The pages that get the docs' Content-Security-Policy (`app/security.py`).
DOCS_PATHS = (DOCS_URL, REDOC_URL, OAUTH2_REDIRECT_URL)


def page(title: str, head: str, body: str) -> HTMLResponse:
    """A minimal HTML page."""
    return HTMLResponse(
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<link rel="icon" href="{ASSETS_URL}/favicon.png">\n'
        f"<title>{escape(title)}</title>\n{head}</head>\n<body>\n{body}</body>\n</html>\n"
    )


def docs_router(app: FastAPI) -> APIRouter:
    """The documentation pages of `app`."""
    router = APIRouter(include_in_schema=False)
    openapi_url = escape(app.openapi_url or "/openapi.json")

    @router.get(DOCS_URL)
    async def swagger_ui() -> HTMLResponse:
        """Swagger UI."""
        return page(
            f"{app.title} - Swagger UI",
            f'<link rel="stylesheet" href="{ASSETS_URL}/swagger-ui.css">\n',
            f'<div id="swagger-ui" data-openapi-url="{openapi_url}" '
            f'data-oauth2-redirect-url="{OAUTH2_REDIRECT_URL}"></div>\n'
            f'<script src="{ASSETS_URL}/swagger-ui-bundle.js"></script>\n'
            f'<script src="{OWN_ASSETS_URL}/swagger-init.js"></script>\n',
        )

    @router.get(OAUTH2_REDIRECT_URL)
    async def swagger_ui_oauth2_redirect() -> HTMLResponse:
        """Where Swagger UI's OAuth2 flows come back to."""
        return page(
            "Swagger UI: OAuth2 redirect",
            "",
            f'<script src="{OWN_ASSETS_URL}/oauth2-redirect.js"></script>\n',
        )

    @router.get(REDOC_URL)
    async def redoc() -> HTMLResponse:
        """ReDoc (it starts itself on the `<redoc>` element)."""
        return page(
            f"{app.title} - ReDoc",
            "",
            f'<redoc spec-url="{openapi_url}"></redoc>\n'
            f'<script src="{ASSETS_URL}/redoc.standalone.js"></script>\n',
        )

    return router


def add_docs(app: FastAPI) -> None:
    """Serve `/docs`, `/redoc` and their assets on `app` (built with `docs_url=None`)."""
    app.include_router(docs_router(app))
    app.mount(ASSETS_URL, StaticFiles(directory=VENDOR_ASSETS), name="docs-assets")
