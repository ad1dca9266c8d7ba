"""The mailer on its own: message building, log-only mode, SMTP failures and TLS modes.

Delivery goes to real SMTP servers (aiosmtpd) on loopback ports; no database is needed.
"""

import datetime
import ipaddress
import logging
import socket
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.mail import SUBJECTS, Mailer, describe_lifetime, is_permanent, redact, smtp_tls_options
from app.settings import Settings
from tests.conftest import Inbox, SMTPServer, free_port, html_of, text_of

TOKEN = "header.payload.signature"
ADDRESS = "Ada.Lovelace@Example.com"


def mail_settings(**values: object) -> Settings:
    """Settings for a mailer alone: no environment, quick retries."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        public_url="https://users.example.com/",
        mail_from="Accounts <accounts@example.org>",
        mail_retry_delay_seconds=0,
        **values,
    )


def sample_mails(mailer: Mailer) -> dict[str, EmailMessage]:
    """Each kind of mail, as the user manager builds it."""
    reset_link = mailer.link("/reset-password", TOKEN)
    verify_link = mailer.link("/verify", TOKEN)
    return {
        "reset_password": mailer.build("reset_password", ADDRESS, link=reset_link, lifetime="x"),
        "verify": mailer.build("verify", ADDRESS, link=verify_link, lifetime="x"),
        "password_changed": mailer.build("password_changed", ADDRESS),
        "email_changed": mailer.build("email_changed", ADDRESS, new_email="***@new.example"),
        "session_revoked": mailer.build(
            "session_revoked", ADDRESS, started="x", ip="192.0.2.1", user_agent="x"
        ),
        "oauth_linked": mailer.build(
            "oauth_linked", ADDRESS, provider="google", account_email="***@example.com"
        ),
        "oauth_unlinked": mailer.build(
            "oauth_unlinked", ADDRESS, provider="github", account_email=""
        ),
        "mfa_enabled": mailer.build("mfa_enabled", ADDRESS),
        "mfa_disabled": mailer.build("mfa_disabled", ADDRESS, by_admin=False),
        "mfa_recovery_codes": mailer.build("mfa_recovery_codes", ADDRESS),
        "mfa_recovery_code_used": mailer.build("mfa_recovery_code_used", ADDRESS, left=1),
        "mfa_failed": mailer.build("mfa_failed", ADDRESS),
    }


# --- building --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(SUBJECTS))
def test_every_mail_has_a_subject_a_text_part_and_an_html_part(kind: str) -> None:
    mailer = Mailer(mail_settings())
    message = sample_mails(mailer)[kind]

    assert message["Subject"] == SUBJECTS[kind]
    assert message["To"] == ADDRESS
    assert message["From"] == "Accounts <accounts@example.org>"
    assert message["Message-ID"].endswith("@example.org>")
    assert message.get_content_type() == "multipart/alternative"
    assert ADDRESS in text_of(message)
    assert ADDRESS in html_of(message)


@pytest.mark.parametrize(
    ("kind", "path"), [("reset_password", "/reset-password"), ("verify", "/verify")]
)
def test_link_mails_carry_one_token_in_a_public_url_link(kind: str, path: str) -> None:
    mailer = Mailer(mail_settings())
    message = sample_mails(mailer)[kind]
    link = f"https://users.example.com{path}?token={TOKEN}"

    assert text_of(message).count(TOKEN) == 1
    assert link in text_of(message)
    assert html_of(message).count(TOKEN) == 1
    assert f'href="{link}"' in html_of(message)


def test_html_part_escapes_what_it_shows() -> None:
    mailer = Mailer(mail_settings())

    message = mailer.build("password_changed", '"<b>x</b>"@example.com')

    assert "<b>x</b>" not in html_of(message)
    assert "&lt;b&gt;x&lt;/b&gt;" in html_of(message)


def test_link_quotes_the_token() -> None:
    mailer = Mailer(mail_settings())

    assert mailer.link("/verify", "a+b/c=") == "https://users.example.com/verify?token=a%2Bb%2Fc%3D"


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(1800, "30 minutes"), (60, "1 minute"), (3600, "1 hour"), (86400, "24 hours"),
     (172800, "2 days"), (90, "90 seconds")],
)  # fmt: skip
def test_describe_lifetime(seconds: int, words: str) -> None:
    assert describe_lifetime(seconds) == words


@pytest.mark.parametrize(
    ("address", "redacted"),
    [("ada@example.com", "***@example.com"), ("a@b@c.org", "***@c.org"), ("nobody", "***")],
)
def test_redact_keeps_only_the_domain(address: str, redacted: str) -> None:
    assert redact(address) == redacted


@pytest.mark.parametrize(
    ("mode", "options", "port"),
    [("starttls", (False, True), 587), ("tls", (True, False), 465), ("none", (False, False), 25)],
)
def test_smtp_tls_modes_map_to_aiosmtplib_options_and_default_ports(
    mode: str, options: tuple[bool, bool], port: int
) -> None:
    settings = mail_settings(smtp_tls=mode.upper())

    assert smtp_tls_options(settings.smtp_tls) == options
    assert settings.smtp_port_or_default == port
    assert mail_settings(smtp_tls=mode, smtp_port=2525).smtp_port_or_default == 2525


# --- delivery --------------------------------------------------------------------------------


async def test_without_smtp_host_the_whole_mail_goes_to_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="app.mail")
    mailer = Mailer(mail_settings(smtp_host=""))
    message = sample_mails(mailer)["reset_password"]

    assert await mailer.deliver(message)

    [record] = caplog.records
    logged = record.getMessage()
    assert "SMTP_HOST is not set" in logged
    assert "Subject: Reset your password" in logged
    assert f"To: {ADDRESS}" in logged
    assert TOKEN in logged


async def test_delivery_over_smtp(smtp_server: SMTPServer) -> None:
    smtp_server.inbox.messages.clear()
    settings = mail_settings(smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_tls="none")
    mailer = Mailer(settings)
    message = mailer.build("password_changed", ADDRESS)

    mailer.send_soon(message)
    await mailer.wait_idle()

    [received] = smtp_server.inbox.messages
    assert received["Message-ID"] == message["Message-ID"]
    assert text_of(received) == text_of(message)


async def test_refused_connection_is_retried_a_bounded_number_of_times_and_logged_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="app.mail")
    settings = mail_settings(
        smtp_host="127.0.0.1", smtp_port=free_port(), smtp_tls="none", mail_send_attempts=3
    )
    mailer = Mailer(settings)

    delivered = await mailer.deliver(mailer.build("password_changed", ADDRESS))

    assert delivered is False
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 4
    assert all("(attempt" in message for message in messages[:3])
    assert "attempt 3 of 3" in messages[2]
    assert "Gave up" in messages[3]
    assert caplog.records[3].levelno == logging.ERROR
    assert all("***@Example.com" in message for message in messages)
    assert not any("Lovelace" in message for message in messages)


class RefusingRecipients:
    """An SMTP handler that refuses every recipient, naming it in its reply as servers do."""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"


async def test_a_refused_recipient_is_tried_once_and_logged_with_the_address_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    controller = Controller(RefusingRecipients(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        caplog.set_level(logging.INFO, logger="app.mail")
        settings = mail_settings(
            smtp_host="127.0.0.1", smtp_port=controller.port, smtp_tls="none", mail_send_attempts=2
        )
        mailer = Mailer(settings)

        assert await mailer.deliver(mailer.build("password_changed", ADDRESS)) is False
    finally:
        controller.stop()

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "SMTPRecipientsRefused" in logged
    assert "User unknown" in logged
    assert "Lovelace" not in logged
    assert logged.count("(attempt ") == 1, "a 5xx refusal is final; it is not retried"
    assert "after 1 attempt(s)" in logged


# --- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (certificate, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def tls_server(
    request: pytest.FixtureRequest, certificate: tuple[Path, Path]
) -> Iterator[tuple[Inbox, int]]:
    """An SMTP server requiring STARTTLS ("starttls") or speaking TLS from the start ("tls")."""
    inbox = Inbox()
    context = server_context(certificate)
    if request.param == "starttls":
        controller = Controller(
            inbox, hostname="127.0.0.1", port=free_port(),
            tls_context=context, require_starttls=True,
        )  # fmt: skip
    else:
        controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), ssl_context=context)
    controller.start()
    yield inbox, controller.port
    controller.stop()


@pytest.mark.parametrize("tls_server", ["starttls", "tls"], indirect=True)
async def test_delivery_over_tls_checks_the_certificate_against_smtp_ca_file(
    request: pytest.FixtureRequest,
    tls_server: tuple[Inbox, int],
    certificate: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    mode = request.node.callspec.params["tls_server"]
    inbox, port = tls_server
    trusting = Mailer(
        mail_settings(
            smtp_host="localhost", smtp_port=port, smtp_tls=mode, smtp_ca_file=certificate[0]
        )
    )
    distrusting = Mailer(
        mail_settings(smtp_host="localhost", smtp_port=port, smtp_tls=mode, mail_send_attempts=1)
    )

    assert await trusting.deliver(trusting.build("password_changed", ADDRESS)) is True
    assert len(inbox.messages) == 1
    caplog.set_level(logging.WARNING, logger="app.mail")
    assert await distrusting.deliver(distrusting.build("password_changed", ADDRESS)) is False
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
    assert len(inbox.messages) == 1


@pytest.mark.parametrize("tls_server", ["starttls"], indirect=True)
async def test_a_server_that_requires_starttls_refuses_plain_mail(
    tls_server: tuple[Inbox, int],
) -> None:
    inbox, port = tls_server
    mailer = Mailer(
        mail_settings(smtp_host="localhost", smtp_port=port, smtp_tls="none", mail_send_attempts=1)
    )

    assert await mailer.deliver(mailer.build("password_changed", ADDRESS)) is False
    assert inbox.messages == []


async def test_shutdown_abandons_mail_still_under_way_after_the_grace_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A server that accepts connections (the kernel's backlog) but never greets.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        settings = mail_settings(
            smtp_host="127.0.0.1", smtp_port=silent.getsockname()[1], smtp_tls="none",
            smtp_timeout_seconds=30,
        )  # fmt: skip
        mailer = Mailer(settings)
        mailer.send_soon(mailer.build("password_changed", ADDRESS))

        await mailer.wait_idle(0.2)

    assert "abandoned" in caplog.text
    await mailer.wait_idle()  # nothing is left under way


@pytest.mark.parametrize(
    ("exc", "permanent"),
    [
        (aiosmtplib.SMTPResponseException(550, "no such user"), True),
        (aiosmtplib.SMTPResponseException(451, "try again later"), False),
        (aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(550, "no", "a")]), True),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [
                    aiosmtplib.SMTPRecipientRefused(550, "no", "a"),
                    aiosmtplib.SMTPRecipientRefused(452, "full", "b"),
                ]
            ),
            False,
        ),
        (aiosmtplib.SMTPConnectError("refused"), False),
        (ConnectionRefusedError(), False),
    ],
)
def test_only_a_5xx_refusal_is_final(exc: Exception, permanent: bool) -> None:
    assert is_permanent(exc) is permanent
