"""Sign-in with OpenID Connect and OAuth 2 providers: the flow, the checks, the linking rules.

A flow is authorization code with PKCE (S256). Its `state`, PKCE verifier and `nonce`
ride in an HttpOnly cookie signed with SECRET (`FlowCookie`), so the callback is bound to
the browser that started it and any worker can finish it: no server-side state. An
OpenID Connect ID token is checked against the issuer's JWKS (signature, `iss`, `aud`,
`exp`, `nonce`); GitHub, plain OAuth 2, is asked for its verified addresses. Discovery
documents and JWKS are cached per process; an unknown `kid` refreshes the JWKS.
The routes are in app/oauth_routes.py; docs/oauth.md tells the rules.
"""

import base64
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlencode

import httpx
import jwt

from app.models import normalize_email
from app.settings import OAuthProvider, Settings

logger = logging.getLogger(__name__)

FLOW_COOKIE = "oauth_flow"
FLOW_AUDIENCE = "fastapi-users:oauth-flow"
# How often an unknown `kid` may refetch a JWKS: a forged token must not make us hammer it.
JWKS_REFRESH_SECONDS = 10.0
# Clock skew allowed on `exp` and `iat` of an ID token.
ID_TOKEN_LEEWAY_SECONDS = 60
# Algorithms an ID token may be signed with: asymmetric only (no `none`, no HMAC).
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                      "ES256", "ES384", "ES512", "EdDSA")  # fmt: skip
Purpose = Literal["login", "page", "associate"]
CALLBACK_PATHS: dict[Purpose, str] = {
    "login": "callback",
    "page": "page/callback",
    "associate": "associate/callback",
}

# Error codes, FastAPI Users' `{"detail": CODE}`.
OAUTH_INVALID_STATE = "OAUTH_INVALID_STATE"
OAUTH_INVALID_CODE = "OAUTH_INVALID_CODE"
OAUTH_INVALID_ID_TOKEN = "OAUTH_INVALID_ID_TOKEN"  # noqa: S105 (an error code)
OAUTH_PROVIDER_DENIED = "OAUTH_PROVIDER_DENIED"
OAUTH_PROVIDER_UNAVAILABLE = "OAUTH_PROVIDER_UNAVAILABLE"


class OAuthFlowError(Exception):
    """The flow cannot go on: `code` is the answer's detail, `status` its HTTP status.

    `reason` says what went wrong for the log and the audit trail, never for the client.
    """

    def __init__(self, code: str, reason: str, status: int = 400) -> None:
        super().__init__(f"{code}: {reason}")
        self.code, self.reason, self.status = code, reason, status


@dataclass(frozen=True)
class FlowCookie:
    """What the flow cookie carries from the start of a flow to its callback."""

    provider: str
    purpose: Purpose
    state: str
    verifier: str
    nonce: str
    user_id: uuid.UUID | None = None  # associate: who started it
    session_id: uuid.UUID | None = None

    def encode(self, secret: str, lifetime: int) -> str:
        """The cookie's value: a JWT signed with SECRET, valid for `lifetime` seconds."""
        claims = {
            "aud": FLOW_AUDIENCE, "exp": int(time.time()) + lifetime, "prv": self.provider,
            "pur": self.purpose, "st": self.state, "cv": self.verifier, "nonce": self.nonce,
            "uid": str(self.user_id) if self.user_id else None,
            "sid": str(self.session_id) if self.session_id else None,
        }  # fmt: skip
        return jwt.encode(claims, secret, algorithm="HS256")

    @classmethod
    def decode(
        cls, value: str | None, secret: str, provider: str, purpose: Purpose
    ) -> "FlowCookie":
        """The cookie of a flow of `provider` for `purpose`; `OAUTH_INVALID_STATE` otherwise."""
        if not value:
            raise OAuthFlowError(OAUTH_INVALID_STATE, "no flow cookie")
        try:
            claims = jwt.decode(value, secret, algorithms=["HS256"], audience=FLOW_AUDIENCE)
            found = cls(
                provider=claims["prv"], purpose=claims["pur"], state=claims["st"],
                verifier=claims["cv"], nonce=claims["nonce"],
                user_id=uuid.UUID(claims["uid"]) if claims.get("uid") else None,
                session_id=uuid.UUID(claims["sid"]) if claims.get("sid") else None,
            )  # fmt: skip
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            raise OAuthFlowError(OAUTH_INVALID_STATE, "bad or expired flow cookie") from None
        if found.provider != provider or found.purpose != purpose:
            raise OAuthFlowError(OAUTH_INVALID_STATE, "flow cookie of another flow")
        return found

    def check_state(self, state: str) -> None:
        """Refuse a callback whose `state` is not this browser's (login CSRF)."""
        if not hmac.compare_digest(self.state.encode(), state.encode()):
            raise OAuthFlowError(OAUTH_INVALID_STATE, "state differs from the flow cookie's")


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in: its account id and e-mail (normalized)."""

    account_id: str
    email: str | None
    email_verified: bool


@dataclass(frozen=True)
class Endpoints:
    """A provider's endpoints; `issuer` and `jwks_uri` for OpenID Connect only."""

    authorization: str
    token: str
    issuer: str | None = None
    jwks_uri: str | None = None
    userinfo: str | None = None


def pkce_challenge(verifier: str) -> str:
    """RFC 7636's S256 challenge of `verifier`."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class ProviderClient:
    """One configured provider: starts flows, exchanges codes, reads the identity.

    Built once per app, so its discovery document and JWKS are cached for the process.
    """

    def __init__(self, config: OAuthProvider, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self._endpoints: Endpoints | None = None
        self._jwks: jwt.PyJWKSet | None = None
        self._jwks_fetched_at = 0.0

    @property
    def name(self) -> str:
        """The provider's name, as in its routes."""
        return self.config.name

    def redirect_uri(self, purpose: Purpose) -> str:
        """Where the provider sends the browser back to (register each at the provider)."""
        return f"{self.settings.public_url}/auth/{self.name}/{CALLBACK_PATHS[purpose]}"

    def http(self) -> httpx.AsyncClient:
        """An HTTP client for the provider's endpoints (no redirects followed)."""
        return httpx.AsyncClient(timeout=self.settings.oauth_http_timeout_seconds)

    async def fetch_json(self, http: httpx.AsyncClient, method: str, url: str, **kw: Any) -> Any:
        """The JSON answer of the provider at `url`; `OAUTH_PROVIDER_UNAVAILABLE` otherwise."""
        try:
            response = await http.request(method, url, **kw)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            reason = f"{method} {url}: {type(exc).__name__}"
            raise OAuthFlowError(OAUTH_PROVIDER_UNAVAILABLE, reason, 502) from None

    async def endpoints(self, http: httpx.AsyncClient) -> Endpoints:
        """The provider's endpoints: GitHub's by configuration, the others by discovery."""
        if self._endpoints is not None:
            return self._endpoints
        config = self.config
        if config.preset == "github":
            found = Endpoints(
                authorization=f"{config.github_url}/login/oauth/authorize",
                token=f"{config.github_url}/login/oauth/access_token",
            )
        else:
            assert config.discovery_url is not None  # the settings require it
            document = await self.fetch_json(http, "GET", config.discovery_url)
            try:
                issuer = str(document["issuer"])
                found = Endpoints(
                    authorization=str(document["authorization_endpoint"]),
                    token=str(document["token_endpoint"]),
                    issuer=issuer,
                    jwks_uri=str(document["jwks_uri"]),
                    userinfo=document.get("userinfo_endpoint"),
                )
            except (KeyError, TypeError):
                raise OAuthFlowError(
                    OAUTH_PROVIDER_UNAVAILABLE, "discovery document lacks endpoints", 502
                ) from None
            # OpenID Connect Discovery 1.0, 4.3: the document is the issuer's own.
            expected = config.discovery_url.removesuffix("/.well-known/openid-configuration")
            if issuer.rstrip("/") != expected.rstrip("/"):
                raise OAuthFlowError(
                    OAUTH_PROVIDER_UNAVAILABLE, "discovery issuer differs from its URL", 502
                )
        self._endpoints = found
        return found

    async def start(
        self,
        purpose: Purpose,
        user_id: uuid.UUID | None = None,
        session_id: uuid.UUID | None = None,
    ) -> tuple[str, FlowCookie]:
        """The provider's authorization URL for a new flow, and the flow's cookie."""
        flow = FlowCookie(
            provider=self.name, purpose=purpose, state=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(64), nonce=secrets.token_urlsafe(32),
            user_id=user_id, session_id=session_id,
        )  # fmt: skip
        async with self.http() as http:
            endpoints = await self.endpoints(http)
        params = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": self.redirect_uri(purpose),
            "scope": self.config.scope,
            "state": flow.state,
            "code_challenge": pkce_challenge(flow.verifier),
            "code_challenge_method": "S256",
        }
        if self.config.preset != "github":
            params["nonce"] = flow.nonce
        separator = "&" if "?" in endpoints.authorization else "?"
        return f"{endpoints.authorization}{separator}{urlencode(params)}", flow

    async def finish(self, flow: FlowCookie, code: str) -> Identity:
        """Exchange the callback's `code` (with the flow's verifier) and read who signed in."""
        async with self.http() as http:
            endpoints = await self.endpoints(http)
            if self.config.preset == "github":
                return await self.github_identity(http, endpoints, flow, code)
            return await self.oidc_identity(http, endpoints, flow, code)

    async def exchange(
        self, http: httpx.AsyncClient, endpoints: Endpoints, flow: FlowCookie, code: str
    ) -> dict[str, Any]:
        """The token endpoint's answer; a refused code (replayed, wrong verifier) is a 400."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri(flow.purpose),
            "code_verifier": flow.verifier,
        }
        secret = self.config.client_secret.get_secret_value()
        if self.config.preset == "github":  # GitHub reads the client from the form
            form |= {"client_id": self.config.client_id, "client_secret": secret}
            auth: httpx.Auth = httpx.Auth()  # none
        else:  # client_secret_basic (every OpenID provider has it), encoded as RFC 6749 2.3.1
            auth = httpx.BasicAuth(quote(self.config.client_id, safe=""), quote(secret, safe=""))
        try:
            response = await http.post(
                endpoints.token, data=form, auth=auth, headers={"Accept": "application/json"}
            )
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            reason = f"token endpoint: {type(exc).__name__}"
            raise OAuthFlowError(OAUTH_PROVIDER_UNAVAILABLE, reason, 502) from None
        if not isinstance(answer, dict):
            raise OAuthFlowError(OAUTH_PROVIDER_UNAVAILABLE, "token endpoint: not an object", 502)
        # GitHub answers a refused code with 200 and `error`.
        if response.status_code != 200 or "error" in answer:
            if response.status_code >= 500:
                raise OAuthFlowError(OAUTH_PROVIDER_UNAVAILABLE, "token endpoint failed", 502)
            raise OAuthFlowError(OAUTH_INVALID_CODE, f"token endpoint: {answer.get('error')}")
        if not isinstance(answer.get("access_token"), str):
            raise OAuthFlowError(OAUTH_INVALID_CODE, "token endpoint: no access token")
        return answer

    async def oidc_identity(
        self, http: httpx.AsyncClient, endpoints: Endpoints, flow: FlowCookie, code: str
    ) -> Identity:
        """An OpenID provider's identity: its checked ID token, then userinfo if needed."""
        answer = await self.exchange(http, endpoints, flow, code)
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise OAuthFlowError(OAUTH_INVALID_ID_TOKEN, "no ID token")
        claims = await self.verify_id_token(http, endpoints, id_token, flow.nonce)
        if "email" not in claims and endpoints.userinfo:
            # Providers may keep the e-mail out of the ID token and serve it here.
            info = await self.fetch_json(
                http, "GET", endpoints.userinfo,
                headers={"Authorization": f"Bearer {answer['access_token']}"},
            )  # fmt: skip
            if not isinstance(info, dict) or info.get("sub") != claims["sub"]:
                raise OAuthFlowError(OAUTH_INVALID_ID_TOKEN, "userinfo of another subject")
            claims = {**info, **claims}
        email = claims.get("email")
        return Identity(
            account_id=str(claims["sub"]),
            email=normalize_email(email) if isinstance(email, str) and "@" in email else None,
            email_verified=claims.get("email_verified") is True,
        )

    async def verify_id_token(
        self, http: httpx.AsyncClient, endpoints: Endpoints, id_token: str, nonce: str
    ) -> dict[str, Any]:
        """The claims of an ID token signed by the issuer's JWKS, for us, live, with `nonce`."""
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise OAuthFlowError(OAUTH_INVALID_ID_TOKEN, "not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in SIGNING_ALGORITHMS:
            raise OAuthFlowError(OAUTH_INVALID_ID_TOKEN, f"algorithm {algorithm!r} refused")
        key = await self.signing_key(http, endpoints, header.get("kid"), algorithm)
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token, key, algorithms=[algorithm], audience=self.config.client_id,
                issuer=endpoints.issuer, leeway=ID_TOKEN_LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )  # fmt: skip
        except jwt.PyJWTError as exc:
            raise OAuthFlowError(OAUTH_INVALID_ID_TOKEN, type(exc).__name__) from None
        audience = claims["aud"]
        if (
            isinstance(audience, list)
            and len(audience) > 1
            and (claims.get("azp") != self.config.client_id)
        ):
            raise OAuthFlowError(OAUTH_INVALID_ID_TOKEN, "azp is not us")
        if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
            raise OAuthFlowError(OAUTH_INVALID_ID_TOKEN, "nonce differs")
        return claims

    async def signing_key(
        self, http: httpx.AsyncClient, endpoints: Endpoints, kid: object, algorithm: str
    ) -> jwt.PyJWK:
        """The issuer's key `kid`, refetching the JWKS once when it is unknown (rotation)."""
        for refresh in (False, True):
            if refresh:
                if time.monotonic() - self._jwks_fetched_at < JWKS_REFRESH_SECONDS:
                    break
                self._jwks = None
            if self._jwks is None:
                assert endpoints.jwks_uri is not None
                document = await self.fetch_json(http, "GET", endpoints.jwks_uri)
                try:
                    self._jwks = jwt.PyJWKSet.from_dict(document)
                except jwt.PyJWTError:
                    raise OAuthFlowError(OAUTH_PROVIDER_UNAVAILABLE, "unusable JWKS", 502) from None
                self._jwks_fetched_at = time.monotonic()
            for key in self._jwks.keys:
                if (kid is None or key.key_id == kid) and key.algorithm_name == algorithm:
                    return key
        raise OAuthFlowError(OAUTH_INVALID_ID_TOKEN, "no such signing key")

    async def github_identity(
        self, http: httpx.AsyncClient, endpoints: Endpoints, flow: FlowCookie, code: str
    ) -> Identity:
        """GitHub's user id and primary e-mail, verified only if its e-mails API says so."""
        answer = await self.exchange(http, endpoints, flow, code)
        headers = {
            "Authorization": f"Bearer {answer['access_token']}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        api = self.config.github_api_url
        user = await self.fetch_json(http, "GET", f"{api}/user", headers=headers)
        emails = await self.fetch_json(http, "GET", f"{api}/user/emails", headers=headers)
        if not isinstance(user, dict) or not isinstance(user.get("id"), int):
            raise OAuthFlowError(OAUTH_PROVIDER_UNAVAILABLE, "GitHub user without id", 502)
        primary = [
            entry for entry in emails if isinstance(entry, dict) and entry.get("primary") is True
        ] if isinstance(emails, list) else []  # fmt: skip
        address = primary[0].get("email") if primary else None
        return Identity(
            account_id=str(user["id"]),
            email=normalize_email(address) if isinstance(address, str) and "@" in address else None,
            email_verified=bool(primary) and primary[0].get("verified") is True,
        )


class Providers:
    """The configured providers by name (`app.state.oauth_providers`)."""

    def __init__(self, settings: Settings) -> None:
        self.by_name = {
            config.name: ProviderClient(config, settings) for config in settings.oauth_providers
        }

    def get(self, name: str) -> ProviderClient | None:
        """The provider called `name`, or None."""
        return self.by_name.get(name)
