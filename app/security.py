"""HTTP hygiene: the client IP behind trusted proxies, security headers, body-size limit, CORS."""

import json
from collections.abc import Iterable
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from fastapi import FastAPI, Request, status
from fastapi.middleware.cors import CORSMiddleware
from fastapi_users.openapi import OpenAPIResponseType
from fastapi_users.router.common import ErrorModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.settings import Settings

Network = IPv4Network | IPv6Network
REQUEST_BODY_TOO_LARGE = "REQUEST_BODY_TOO_LARGE"

# For a JSON API: nothing may be framed, sniffed, cached, or loaded as a page resource.
API_HEADERS = {
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "strict-transport-security": "max-age=31536000; includeSubDomains",
}
# The documentation pages (`app/docs.py`) load everything from the service and run no
# inline script; Swagger UI and ReDoc set inline styles, and ReDoc searches in a worker
# made from a blob.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@lru_cache(maxsize=4096)
def parse_ip(text: str) -> IPv4Address | IPv6Address | None:
    """The address `text` spells, or None (cached: the same peers come back all the time)."""
    try:
        return ip_address(text.strip())
    except ValueError:
        return None


@lru_cache(maxsize=4096)
def canonical_ip(text: str) -> str:
    """`text` as an address in its usual spelling, or `text` itself if it is none."""
    address = parse_ip(text)
    return str(address) if address is not None else text


def is_trusted(address: IPv4Address | IPv6Address | None, proxies: Iterable[Network]) -> bool:
    """Whether `address` is one of the trusted proxies."""
    return address is not None and any(address in network for network in proxies)


def client_ip(request: Request, trusted_proxies: list[Network]) -> str:
    """The address of the client: the socket peer, or who it forwards for if it is trusted.

    `X-Forwarded-For` is read from the right, skipping trusted proxies, and the first
    address that is not one is the client. Entries left of it were written by the client
    itself and are ignored, so a spoofed or rotating header changes nothing; from a peer
    that is not a trusted proxy the header is not read at all.
    """
    return client_ip_from_scope(request.scope, trusted_proxies)


def client_ip_from_scope(scope: Scope, trusted_proxies: list[Network]) -> str:
    """`client_ip` for an ASGI scope (the access log has no `Request`)."""
    peer_address = scope.get("client")
    peer = peer_address[0] if peer_address else ""
    client = parse_ip(peer)
    if not is_trusted(client, trusted_proxies):
        return canonical_ip(peer) if client is not None else peer or "unknown"
    forwarded = (
        b",".join(value for name, value in scope["headers"] if name == b"x-forwarded-for")
        .decode("latin-1")
        .split(",")
    )
    for hop in reversed(forwarded):
        address = parse_ip(hop)
        if address is None:
            break  # a broken chain: keep the last address a trusted proxy vouched for
        client = address
        if not is_trusted(address, trusted_proxies):
            break
    return str(client)


def encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """`headers` as ASGI header pairs."""
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


class SecurityHeadersMiddleware:
    """Adds `API_HEADERS` to every response that does not set them itself."""

    def __init__(self, app: ASGIApp, docs_paths: Iterable[str]) -> None:
        self.app = app
        self.docs_paths = frozenset(docs_paths)
        # Encoded once: this runs on every response.
        self.api_headers = encoded(API_HEADERS)
        self.docs_headers = encoded(
            {
                **API_HEADERS,
                "content-security-policy": DOCS_CONTENT_SECURITY_POLICY,
                "cache-control": "no-cache",
            }
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.docs_headers if scope["path"] in self.docs_paths else self.api_headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodySizeLimitMiddleware:
    """Answers 413 to a request whose body exceeds `max_bytes`, before the app reads it.

    A declared `Content-Length` is checked at once; a body without one (chunked) is read
    up to the limit and then handed to the app, so the app never sees an oversized body.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        if not declared and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body to limit (most GETs)
            return
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self.refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left; nobody is waiting for an answer
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self.refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body_sent = False

        async def replay() -> Message:
            nonlocal body_sent
            if body_sent:
                return await receive()
            body_sent = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def refuse(self, send: Send) -> None:
        """Send `413 {"detail": "REQUEST_BODY_TOO_LARGE"}`."""
        body = json.dumps({"detail": REQUEST_BODY_TOO_LARGE}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def add_http_hygiene(app: FastAPI, settings: Settings, docs_paths: Iterable[str] = ()) -> None:
    """Install the body-size limit, CORS (only for `CORS_ORIGINS`) and the security headers.

    The pages at `docs_paths` get the documentation's Content-Security-Policy.
    """
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        # Bearer tokens travel in a header, never in cookies: no credentials mode.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Retry-After"],
            max_age=600,
        )
    app.add_middleware(SecurityHeadersMiddleware, docs_paths=docs_paths)


BODY_TOO_LARGE_RESPONSES: OpenAPIResponseType = {
    status.HTTP_413_CONTENT_TOO_LARGE: {
        "model": ErrorModel,
        "description": "The request body is larger than `MAX_BODY_BYTES`.",
        "content": {"application/json": {"example": {"detail": REQUEST_BODY_TOO_LARGE}}},
    },
}
