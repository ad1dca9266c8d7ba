"""Links asked for by address (forgot-password, request-verify-token, the pages' new-link forms).

The route only queues the address and answers 202; one long-lived task of the app looks the
address up, builds the mail and hands it to the mailer. Work done after the answer in the
request's own ASGI call (FastAPI's background tasks) holds the connection until it ends, so
a client sending the next request on the same connection could time whether the address
had an account. The README ("Security") describes it.
"""

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import Depends, Request

from app.mail import redact

logger = logging.getLogger(__name__)

LinkKind = Literal["reset_password", "verify"]
SendLink = Callable[[LinkKind, str, Request | None], Coroutine[Any, Any, None]]
# The request rides along, and its context (request id) too, so the lookup's log lines,
# the mail and the audit event name the request that asked.
LinkRequest = tuple[LinkKind, str, Request | None, contextvars.Context]
# Requests waiting beyond this many are dropped (and logged); the rate limits keep the
# queue far shorter than this in practice.
QUEUE_SIZE = 1000


class LinkRequests:
    """A queue of (kind, address) drained by one task: `start` it, `ask`, then `stop` it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[LinkRequest] = asyncio.Queue(QUEUE_SIZE)
        self.worker: asyncio.Task[None] | None = None

    def start(self, send_link: SendLink) -> None:
        """Start the task that calls `send_link(kind, address, request)` for each, in order."""
        self.worker = asyncio.get_running_loop().create_task(self._drain(send_link))

    def ask(self, kind: LinkKind, email: str, request: Request | None = None) -> None:
        """Queue a request; the caller goes on at once, whatever the address."""
        try:
            self.queue.put_nowait((kind, email, request, contextvars.copy_context()))
        except asyncio.QueueFull:
            logger.error("Link request queue full; dropped a %s link for %s.", kind, redact(email))

    async def join(self) -> None:
        """Wait until every request queued so far has been handled."""
        await self.queue.join()

    async def stop(self, grace_seconds: float) -> float:
        """Handle what is queued within `grace_seconds`, then stop; return the time left."""
        deadline = time.monotonic() + grace_seconds
        if self.worker is None:
            return grace_seconds
        try:
            await asyncio.wait_for(self.queue.join(), grace_seconds)
        except TimeoutError:
            logger.error(
                "%d link request(s) were still queued at shutdown and were dropped.",
                self.queue.qsize(),
            )
        self.worker.cancel()
        await asyncio.gather(self.worker, return_exceptions=True)
        self.worker = None
        return max(0.0, deadline - time.monotonic())

    async def _drain(self, send_link: SendLink) -> None:
        while True:
            kind, email, request, context = await self.queue.get()
            loop = asyncio.get_running_loop()
            try:
                await loop.create_task(send_link(kind, email, request), context=context)
            except Exception:  # one failure must not stop the links of everyone after it
                logger.exception("Handling a %s link request for %s failed.", kind, redact(email))
            finally:
                self.queue.task_done()


async def get_link_requests(request: Request) -> LinkRequests:
    """The link-request queue of the app serving this request."""
    link_requests: LinkRequests = request.app.state.link_requests
    return link_requests


LinkRequestsDep = Annotated[LinkRequests, Depends(get_link_requests)]
