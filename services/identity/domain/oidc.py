"""OpenID Connect as identity's relying party sees it, the pure half: where a login may return
to, the authorization request (code flow, PKCE S256, `state`, `nonce`), and the checks of the
provider's ID token. No I/O here: the provider's documents and the time come in as values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import jwt
import msgspec

from shared.errors import ServiceError

# A login sent to the provider must come back within this long, and only once.
STATE_TTL = timedelta(minutes=10)
# How far the provider's clock may be from ours when its ID token's times are checked.
CLOCK_SKEW = timedelta(seconds=60)
SCOPE = "openid email profile"
# Asymmetric algorithms only: an HS256 ID token would be checked with our own client secret (which
# the provider shares), and `none` with nothing at all.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MAX_RETURN_TO = 2000  # the column's size
MAX_SUBJECT = 255  # OpenID Connect Core 2: `sub` is at most 255 ASCII characters
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Browsers read a backslash as a slash and drop tabs and newlines inside a URL: Python does
# neither, so such a URL could name one host to this check and another to the browser.
_AMBIGUOUS = re.compile(r"[\\\s\x00-\x1f\x7f]")
# What the callback adds to `return_to`: a URL that already carries one of them is refused, so the
# web service never has to choose between two.
ADDED_PARAMETERS = frozenset({"code", "error"})


class OidcRefused(ServiceError):
    """A login request this relying party will not go on with (400, as the contract says)."""

    status = 400
    default_code = "invalid_request"
    title = "Bad request"


class ProviderMetadata(msgspec.Struct, frozen=True):
    """The part of the provider's discovery document the relying party uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    # The defaults OpenID Connect Discovery 1.0 gives where the provider names none.
    token_endpoint_auth_methods_supported: list[str] = msgspec.field(
        default_factory=lambda: ["client_secret_basic"]
    )
    id_token_signing_alg_values_supported: list[str] = msgspec.field(
        default_factory=lambda: ["RS256"]
    )

    def client_authentication(self) -> str:
        """`client_secret_basic` or `client_secret_post`, whichever the provider takes (basic
        where it takes both, as the specification prefers)."""
        methods = self.token_endpoint_auth_methods_supported
        if "client_secret_basic" in methods or "client_secret_post" not in methods:
            return "client_secret_basic"
        return "client_secret_post"

    def id_token_algorithms(self) -> frozenset[str]:
        return ASYMMETRIC_ALGORITHMS & set(self.id_token_signing_alg_values_supported)


class LoginStart(msgspec.Struct, frozen=True):
    """The secrets of one login sent to the provider: `state` (kept hashed), `nonce`, and the
    PKCE `code_verifier` with its S256 `code_challenge`."""

    state: str
    nonce: str
    code_verifier: str

    @property
    def code_challenge(self) -> str:
        return pkce_challenge(self.code_verifier)


class PendingLogin(msgspec.Struct, frozen=True):
    """A login sent to the provider, as its callback finds it again."""

    nonce: str
    code_verifier: str
    return_to: str
    created_at: datetime


class IdClaims(msgspec.Struct, frozen=True):
    """What identity takes from a checked ID token."""

    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None


def new_login() -> LoginStart:
    # 43 characters each, from 32 random bytes: RFC 7636 asks 43 to 128 for the verifier.
    return LoginStart(
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        code_verifier=secrets.token_urlsafe(32),
    )


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA256(verifier)), without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def check_return_to(return_to: str, web_url: str) -> str:
    """`return_to`, if it is a plain URL of the web service's exact origin (scheme, host, port);
    anything else is refused: identity hands sign-in codes only to the web service."""
    refused = OidcRefused("return_to must be a page of the web service", code="invalid_return_to")
    if len(return_to) > MAX_RETURN_TO or _AMBIGUOUS.search(return_to):
        raise refused
    origin = _origin(return_to)
    if origin is None or origin != _origin(web_url):
        raise refused
    parts = urlsplit(return_to)
    if parts.username is not None or parts.password is not None:
        raise refused
    if _query_names(parts.query) & ADDED_PARAMETERS:
        raise refused
    return return_to


def _query_names(query: str) -> set[str]:
    return {pair.split("=", 1)[0] for pair in query.split("&") if pair}


def with_parameters(url: str, **parameters: str) -> str:
    """`url` with `parameters` added after its own query, which is kept byte for byte (the web
    service's own `state` in it comes back untouched)."""
    parts = urlsplit(url)
    added = urlencode(parameters)
    query = f"{parts.query}&{added}" if parts.query else added
    return urlunsplit(parts._replace(query=query))


def authorization_url(
    metadata: ProviderMetadata, *, client_id: str, redirect_uri: str, login: LoginStart
) -> str:
    """Where the browser goes to sign in at the provider: the code flow with PKCE."""
    return with_parameters(
        metadata.authorization_endpoint,
        response_type="code",
        client_id=client_id,
        redirect_uri=redirect_uri,
        scope=SCOPE,
        state=login.state,
        nonce=login.nonce,
        code_challenge=login.code_challenge,
        code_challenge_method="S256",
    )


def is_expired(pending: PendingLogin, now: datetime) -> bool:
    return pending.created_at + STATE_TTL <= now


class InvalidIdToken(ValueError):
    """The provider's ID token does not hold: its signature, its key, or one of its claims."""


def _signing_key(header: Mapping[str, Any], jwks: Mapping[str, Any], algorithm: str) -> jwt.PyJWK:
    """The provider's key for this token: the one its `kid` names or, where the token names none
    (oidc-provider-mock's do not), the provider's only signing key."""
    raw_keys = jwks.get("keys")
    keys = [k for k in raw_keys if isinstance(k, dict)] if isinstance(raw_keys, list) else []
    usable = [
        k
        for k in keys
        if k.get("kty") not in (None, "oct")
        and k.get("use", "sig") == "sig"
        and k.get("alg", algorithm) == algorithm
    ]
    kid = header.get("kid")
    if kid is not None:
        usable = [k for k in usable if k.get("kid") == kid]
    if len(usable) != 1:
        raise InvalidIdToken(
            "no key of the provider's is named by the token"
            if kid is not None
            else "the token names no key and the provider has more than one"
        )
    try:
        return jwt.PyJWK(usable[0], algorithm=algorithm)
    except jwt.PyJWTError as exc:
        raise InvalidIdToken(f"the provider's key does not fit {algorithm}") from exc


def verify_id_token(
    id_token: str,
    jwks: Mapping[str, Any],
    *,
    algorithms: frozenset[str],
    issuer: str,
    client_id: str,
    nonce: str,
    now: datetime,
) -> IdClaims:
    """The ID token's claims, once its signature (by the provider's key, with an asymmetric
    algorithm the provider announced) and its claims hold."""
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError as exc:
        raise InvalidIdToken("the ID token is not a JWS") from exc
    algorithm = header.get("alg")
    if algorithm not in algorithms:
        raise InvalidIdToken(f"the ID token's algorithm {algorithm!r} is not accepted")
    key = _signing_key(header, jwks, algorithm)
    try:
        # The signature alone: the claims are checked below, against the `now` passed in.
        claims = jwt.decode(
            id_token,
            key=key,
            algorithms=[algorithm],
            options={
                "verify_signature": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
                "verify_sub": False,
                "verify_jti": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise InvalidIdToken("the ID token's signature does not hold") from exc
    return check_claims(claims, issuer=issuer, client_id=client_id, nonce=nonce, now=now)


def _instant(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidIdToken(f"the ID token has no {name}")
    return float(value)


def check_claims(
    claims: Mapping[str, Any], *, issuer: str, client_id: str, nonce: str, now: datetime
) -> IdClaims:
    """OpenID Connect Core 3.1.3.7 over a signed token's claims: our provider, for us, current,
    and for this very login (its `nonce`)."""
    if claims.get("iss") != issuer:
        raise InvalidIdToken("the ID token is from another issuer")
    audience = claims.get("aud")
    audiences: Sequence[Any] = [audience] if isinstance(audience, str) else audience or []
    if not isinstance(audiences, list | tuple) or client_id not in audiences:
        raise InvalidIdToken("the ID token is not for this client")
    authorized_party = claims.get("azp")
    if (len(audiences) > 1 or authorized_party is not None) and authorized_party != client_id:
        raise InvalidIdToken("the ID token was issued to another party")
    moment = now.timestamp()
    skew = CLOCK_SKEW.total_seconds()
    if _instant(claims, "exp") + skew <= moment:
        raise InvalidIdToken("the ID token has expired")
    issued = _instant(claims, "iat")
    # Issued after this login began, give or take the clocks: not in the future, and no older
    # than the login itself may be.
    if issued - skew > moment or issued + STATE_TTL.total_seconds() + skew < moment:
        raise InvalidIdToken("the ID token was not issued now")
    if "nbf" in claims and _instant(claims, "nbf") - skew > moment:
        raise InvalidIdToken("the ID token is not valid yet")
    got_nonce = claims.get("nonce")
    if not isinstance(got_nonce, str) or not hmac.compare_digest(
        got_nonce.encode(), nonce.encode()
    ):
        raise InvalidIdToken("the ID token is not for this login (nonce)")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT:
        raise InvalidIdToken("the ID token names no subject")
    email = claims.get("email")
    name = claims.get("name")
    return IdClaims(
        issuer=issuer,
        subject=subject,
        email=email if isinstance(email, str) else None,
        # Only a real `true`: an address the provider has not checked links nobody.
        email_verified=claims.get("email_verified") is True,
        name=name if isinstance(name, str) and name.strip() else None,
    )


def verified_email(claims: IdClaims) -> str | None:
    """The address a first login may be matched to an invitation by: the provider's, only where
    the provider says it verified it."""
    if not claims.email_verified or claims.email is None:
        return None
    email = claims.email.strip().lower()
    return email or None
