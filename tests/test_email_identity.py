"""One address, one key: `normalize_email` is how every route turns an address into an account.

Registration stores what the e-mail validator makes of an address (compatibility forms
folded, the domain in Unicode); login, forgot-password, request-verify-token, the pages and
the rate limiter (tests/test_ratelimit.py) look it up the same way. A look-alike from
another script stays another address.
"""

import unicodedata

import httpx
import pytest
from pydantic import EmailStr, TypeAdapter

from app.models import User, normalize_email
from tests.conftest import PASSWORD, Mailbox

FULLWIDTH_DOMAIN = "fw@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com"  # fullwidth domain
FULLWIDTH_LOCAL = "\uff46\uff57@example.com"  # the local part in fullwidth letters
NFC = unicodedata.normalize("NFC", "jos\u00e9@example.com")
NFD = unicodedata.normalize("NFD", NFC)
IDN = "ana@b\u00fccher.example"
PUNYCODE = "ana@xn--bcher-kva.example"
CYRILLIC_LOOK_ALIKE = "\u0430dmin@example.com"  # the first letter is CYRILLIC SMALL LETTER A

SPELLINGS = [
    pytest.param(FULLWIDTH_DOMAIN, "fw@example.com", id="fullwidth-domain"),
    pytest.param(FULLWIDTH_LOCAL, "fw@example.com", id="fullwidth-local-part"),
    pytest.param(NFD, NFC, id="nfd-is-nfc"),
    pytest.param("\u00c5SA@EXAMPLE.COM", "\u00e5sa@example.com", id="unicode-upper-case"),
    pytest.param("ANA@B\u00dcCHER.EXAMPLE", IDN, id="idn-upper-case"),
    pytest.param(PUNYCODE, IDN, id="punycode-is-idn"),
    pytest.param("  User@Example.COM ", "user@example.com", id="ascii-case-and-spaces"),
    pytest.param("x@\u210cello.com", "x@hello.com", id="script-capital-in-domain"),
]


@pytest.mark.parametrize(("typed", "key"), SPELLINGS)
def test_normalize_email_gives_one_key_per_address(typed: str, key: str) -> None:
    assert normalize_email(typed) == key
    assert normalize_email(key) == key


@pytest.mark.parametrize(("typed", "key"), SPELLINGS)
def test_normalize_email_agrees_with_the_validator(typed: str, key: str) -> None:
    """What registration stores (validator, then key) is the key of what was typed."""
    validated = TypeAdapter(EmailStr).validate_python(typed)
    assert normalize_email(validated) == normalize_email(typed) == key


def test_a_cyrillic_look_alike_is_another_address() -> None:
    assert normalize_email(CYRILLIC_LOOK_ALIKE) != normalize_email("admin@example.com")
    assert normalize_email("admin@ex\u0430mple.com") != normalize_email("admin@example.com")


@pytest.mark.parametrize(
    "text", ["", "no-at-sign", "a@", "@", "a@b@c", "a@xn--zz", "a@\u2488.com", "\x00@x.y"]
)
def test_normalize_email_never_raises_and_is_idempotent(text: str) -> None:
    once = normalize_email(text)
    assert normalize_email(once) == once


async def register(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post("/auth/register", json={"email": email, "password": PASSWORD})


async def login(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post("/auth/jwt/login", data={"username": email, "password": PASSWORD})


@pytest.mark.parametrize(("typed", "key"), SPELLINGS)
async def test_log_in_with_what_was_typed_at_registration(
    client: httpx.AsyncClient, typed: str, key: str
) -> None:
    registered = await register(client, typed)

    assert registered.status_code == 201, registered.text
    assert registered.json()["email"] == key
    assert (await login(client, typed)).status_code == 200
    assert (await login(client, key)).status_code == 200
    assert await User.filter(email=key).count() == 1


@pytest.mark.parametrize(("typed", "key"), SPELLINGS)
async def test_another_spelling_cannot_register_twice(
    client: httpx.AsyncClient, typed: str, key: str
) -> None:
    assert (await register(client, key)).status_code == 201

    again = await register(client, typed)

    assert again.status_code == 400
    assert again.json() == {"detail": "REGISTER_USER_ALREADY_EXISTS"}


async def test_a_cyrillic_look_alike_registers_as_another_account(
    client: httpx.AsyncClient,
) -> None:
    assert (await register(client, "admin@example.com")).status_code == 201

    look_alike = await register(client, CYRILLIC_LOOK_ALIKE)

    assert look_alike.status_code == 201
    assert look_alike.json()["email"] == CYRILLIC_LOOK_ALIKE
    assert await User.all().count() == 2


@pytest.mark.parametrize(
    ("path", "subject"),
    [
        ("/auth/forgot-password", "Reset your password"),
        ("/auth/request-verify-token", "Verify your e-mail address"),
    ],
)
@pytest.mark.parametrize(("typed", "key"), [SPELLINGS[0], SPELLINGS[5]])
async def test_mails_asked_for_in_another_spelling_reach_the_account(
    client: httpx.AsyncClient, mailbox: Mailbox, path: str, subject: str, typed: str, key: str
) -> None:
    assert (await register(client, key)).status_code == 201

    assert (await client.post(path, json={"email": typed})).status_code == 202

    mail = await mailbox.only_message()
    assert mail["Subject"] == subject
    assert mail["To"] == key


async def test_the_new_link_page_finds_the_account_in_another_spelling(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    assert (await register(client, "fw@example.com")).status_code == 201

    page = await client.post("/reset-password/new-link", data={"email": FULLWIDTH_DOMAIN})

    assert page.status_code == 200
    assert (await mailbox.only_message())["To"] == "fw@example.com"


async def test_patch_me_to_another_spelling_of_the_own_address_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    assert (await register(client, "fw@example.com")).status_code == 201
    token = (await login(client, "fw@example.com")).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}

    # No current password: a change of address would need it, so none is made.
    response = await client.patch("/users/me", json={"email": FULLWIDTH_DOMAIN}, headers=headers)

    assert response.status_code == 200, response.text
    assert response.json()["email"] == "fw@example.com"
