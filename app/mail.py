"""E-mail: messages built from templates, delivered over SMTP in the background, or logged."""

import asyncio
import logging
import re
import secrets
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

import aiosmtplib
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app import metrics
from app.settings import Settings

logger = logging.getLogger(__name__)

MAIL_TEMPLATES = Path(__file__).parent / "templates" / "mail"

MailKind = Literal[
    "verify", "reset_password", "password_changed", "email_changed", "session_revoked",
    "oauth_linked", "oauth_unlinked",
    "mfa_enabled", "mfa_disabled", "mfa_recovery_codes", "mfa_recovery_code_used", "mfa_failed",
]  # fmt: skip
SUBJECTS: dict[MailKind, str] = {
    "verify": "Verify your e-mail address",
    "reset_password": "Reset your password",
    "password_changed": "Your password was changed",
    "email_changed": "Your e-mail address was changed",
    "session_revoked": "A sign-in to your account was ended",
    "oauth_linked": "A sign-in provider was linked to your account",
    "oauth_unlinked": "A sign-in provider was unlinked from your account",
    "mfa_enabled": "Two-step sign-in is on",
    "mfa_disabled": "Two-step sign-in is off",
    "mfa_recovery_codes": "New recovery codes for your account",
    "mfa_recovery_code_used": "A recovery code was used to sign in",
    "mfa_failed": "A wrong sign-in code was entered for your account",
}


def redact(address: str) -> str:
    """The address reduced to its domain (`***@example.com`), fit for a log line."""
    _, at, domain = address.rpartition("@")
    return f"***@{domain}" if at and domain else "***"


def smtp_tls_options(mode: Literal["starttls", "tls", "none"]) -> tuple[bool, bool]:
    """aiosmtplib's `(use_tls, start_tls)` for SMTP_TLS; STARTTLS is required, never optional."""
    return {"starttls": (False, True), "tls": (True, False), "none": (False, False)}[mode]


def describe_lifetime(seconds: int) -> str:
    """A token lifetime in words for a mail or a page: `30 minutes`, `24 hours`."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0 and not (unit == "day" and seconds <= 86400):
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def is_permanent(exc: Exception) -> bool:
    """Whether the server refused for good (5xx): trying again would get the same answer."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(refused.code >= 500 for refused in exc.recipients)
    return isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 500


def readable(message: EmailMessage) -> str:
    """The mail as a person reads it: headers, then each part decoded (for the log)."""
    lines = [f"{name}: {value}" for name, value in message.items() if name != "Content-Type"]
    for part in message.iter_parts():
        lines += ["", f"--- {part.get_content_type()} ---", str(part.get_content()).rstrip()]
    return "\n".join(lines)


class Mailer:
    """Builds the service's mails and delivers them without making anyone wait.

    Without SMTP_HOST (development) a mail is written whole to the log instead.
    Delivery runs in tasks of its own, tried up to MAIL_SEND_ATTEMPTS times (once when
    the server refuses for good, 5xx); the app's shutdown waits for them (`wait_idle`).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.templates = Environment(
            loader=FileSystemLoader(MAIL_TEMPLATES),
            autoescape=select_autoescape(["html"], default_for_string=False, default=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )
        self._pending: set[asyncio.Task[bool]] = set()

    def link(self, path: str, token: str) -> str:
        """The PUBLIC_URL link to page `path` carrying `token`."""
        return f"{self.settings.public_url}{path}?{urlencode({'token': token})}"

    def build(self, kind: MailKind, to: str, **context: Any) -> EmailMessage:
        """The `kind` mail to `to`: a text part and an HTML part from `mail/<kind>.txt|.html`."""
        context = {"email": to, "public_url": self.settings.public_url, **context}
        message = EmailMessage()
        message["Subject"] = SUBJECTS[kind]
        message["From"] = self.settings.mail_from
        message["To"] = to
        message["Date"] = formatdate(localtime=False, usegmt=True)
        _, sender = parseaddr(self.settings.mail_from)
        # Not email.utils.make_msgid: it draws from the global `random` state.
        message["Message-ID"] = f"<{secrets.token_hex(16)}@{sender.rpartition('@')[2]}>"
        message.set_content(self.templates.get_template(f"{kind}.txt").render(context))
        html = self.templates.get_template(f"{kind}.html").render(context)
        message.add_alternative(html, subtype="html")
        return message

    def send_soon(self, message: EmailMessage, request_id: str | None = None) -> None:
        """Deliver `message` in a task of its own; the caller goes on at once.

        `request_id` is the request that caused the mail: every log line of the delivery
        carries it, wherever the delivery runs.
        """
        task = asyncio.get_running_loop().create_task(self.deliver(message, request_id))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def deliver(self, message: EmailMessage, request_id: str | None = None) -> bool:
        """Send `message` now, retrying; log the outcome with the address redacted."""
        to, subject = str(message["To"]), str(message["Subject"])
        settings = self.settings
        log: dict[str, object] = {"request_id": request_id} if request_id else {}
        if settings.smtp_host is None:
            # Development only (production requires SMTP_HOST): the link must be readable.
            logger.info(
                "SMTP_HOST is not set; this mail is logged, not sent:\n%s",
                readable(message),
                extra={**log, "whole_mail": True},
            )
            return True
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        use_tls, start_tls = smtp_tls_options(settings.smtp_tls)
        for attempt in range(1, settings.mail_send_attempts + 1):
            try:
                await aiosmtplib.send(
                    message,
                    hostname=settings.smtp_host,
                    port=settings.smtp_port_or_default,
                    username=settings.smtp_username,
                    password=password,
                    timeout=settings.smtp_timeout_seconds,
                    cert_bundle=str(settings.smtp_ca_file) if settings.smtp_ca_file else None,
                    use_tls=use_tls,
                    start_tls=start_tls,
                )
            except (aiosmtplib.SMTPException, OSError) as exc:
                # Servers echo the recipient in their replies; the log gets the domain only.
                reason = re.sub(re.escape(to), redact(to), f"{exc}", flags=re.IGNORECASE)
                logger.warning(
                    "Sending %r to %s failed (attempt %d of %d): %s: %s",
                    subject, redact(to), attempt, settings.mail_send_attempts,
                    type(exc).__name__, reason, extra=log,
                )  # fmt: skip
                if is_permanent(exc):
                    break
                if attempt < settings.mail_send_attempts:
                    await asyncio.sleep(settings.mail_retry_delay_seconds * 2 ** (attempt - 1))
            else:
                metrics.MAILS.labels("sent").inc()
                logger.info("Sent %r to %s.", subject, redact(to), extra=log)
                return True
        metrics.MAILS.labels("failed").inc()
        logger.error(
            "Gave up sending %r to %s after %d attempt(s).", subject, redact(to), attempt, extra=log
        )
        return False

    async def wait_idle(self, grace_seconds: float | None = None) -> None:
        """Wait until every mail handed to `send_soon` is delivered or given up.

        After `grace_seconds` the mails still under way are abandoned, and logged.
        """
        while self._pending:
            pending = set(self._pending)
            _, late = await asyncio.wait(pending, timeout=grace_seconds)
            for task in late:
                task.cancel()
                logger.error("A mail was still being sent at shutdown and was abandoned.")
            if late:
                await asyncio.wait(late)
                return
