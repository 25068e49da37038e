"""The city's OpenID Connect provider, as identity calls it: its discovery document and keys
(both cached), and its token endpoint.

What the provider answers is checked in `services.identity.domain.oidc`; this module only moves
it. A provider that cannot be reached, or answers what is no such document, is
`ServiceUnavailable` with `oidc_unavailable`.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any
from urllib.parse import quote

import httpx
import msgspec
from litestar import Request

from services.identity.domain.oidc import ProviderMetadata
from shared.config import OidcSettings
from shared.errors import NotFound, ServiceUnavailable
from shared.web import service_state

# The discovery document changes when the provider is reconfigured: read again hourly.
METADATA_MAX_AGE_SECONDS = 3600.0
# The provider's keys likewise, and again for a token they cannot check, at most this often.
KEYS_MAX_AGE_SECONDS = 3600.0
KEYS_REFETCH_SECONDS = 10.0


class ProviderUnavailable(ServiceUnavailable):
    default_code = "oidc_unavailable"


class CodeRefused(Exception):
    """The provider's token endpoint would not exchange the code (used, expired, not ours)."""


class _TokenResponse(msgspec.Struct):
    id_token: str
    token_type: str = "Bearer"  # noqa: S105 (the scheme, not a token)


class OidcProvider:
    """One process's client of the provider, shared by every request."""

    def __init__(self, settings: OidcSettings, *, timeout: float) -> None:
        self.settings = settings
        self._http = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._metadata: ProviderMetadata | None = None
        self._metadata_at = 0.0
        self._keys: dict[str, Any] | None = None
        self._keys_at = 0.0
        # One fetch at a time of each document, however many logins come back at once.
        self._metadata_lock = asyncio.Lock()
        self._keys_lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get_json(self, url: str) -> Any:
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            return msgspec.json.decode(response.content)
        except (httpx.HTTPError, msgspec.DecodeError) as exc:
            raise ProviderUnavailable("the city's sign-in provider does not answer") from exc

    async def metadata(self) -> ProviderMetadata:
        """The provider's discovery document, read once an hour; its `issuer` must be the one
        configured (OpenID Connect Discovery 4.3)."""
        async with self._metadata_lock:
            if self._metadata is None or _older_than(self._metadata_at, METADATA_MAX_AGE_SECONDS):
                issuer = self.settings.issuer.rstrip("/")
                raw = await self._get_json(f"{issuer}/.well-known/openid-configuration")
                try:
                    found = msgspec.convert(raw, ProviderMetadata)
                except msgspec.ValidationError as exc:
                    raise ProviderUnavailable(
                        "the provider's discovery document lacks what sign-in needs"
                    ) from exc
                if found.issuer != self.settings.issuer:
                    raise ProviderUnavailable(
                        "the provider's discovery document names another issuer"
                    )
                self._metadata, self._metadata_at = found, time.monotonic()
            return self._metadata

    async def keys(self, *, refresh: bool = False) -> dict[str, Any]:
        """The provider's JWKS, read once an hour; `refresh` (a token it could not check: the
        provider may have rotated its keys) reads it again, but no more often than every few
        seconds, so made-up tokens cannot make us hammer the provider."""
        metadata = await self.metadata()
        async with self._keys_lock:
            if (
                self._keys is None
                or _older_than(self._keys_at, KEYS_MAX_AGE_SECONDS)
                or (refresh and _older_than(self._keys_at, KEYS_REFETCH_SECONDS))
            ):
                raw = await self._get_json(metadata.jwks_uri)
                if not isinstance(raw, dict) or not isinstance(raw.get("keys"), list):
                    raise ProviderUnavailable("the provider's key set is no JWKS")
                self._keys, self._keys_at = raw, time.monotonic()
            return self._keys

    async def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> str:
        """The ID token the provider gives for an authorization code, authenticated with our
        client secret the way its discovery document says."""
        metadata = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        headers = {"Accept": "application/json"}
        client_id, secret = self.settings.client_id, self.settings.client_secret
        if metadata.client_authentication() == "client_secret_basic":
            # RFC 6749 2.3.1: each part form-encoded before they are joined.
            pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form |= {"client_id": client_id, "client_secret": secret}
        try:
            response = await self._http.post(metadata.token_endpoint, data=form, headers=headers)
        except httpx.HTTPError as exc:
            raise ProviderUnavailable("the city's sign-in provider does not answer") from exc
        if response.status_code in (400, 401):
            raise CodeRefused(response.text[:200])
        if response.status_code != 200:
            raise ProviderUnavailable(
                f"the provider's token endpoint answered {response.status_code}"
            )
        try:
            answer = msgspec.json.decode(response.content, type=_TokenResponse)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ProviderUnavailable("the provider's token endpoint gave no ID token") from exc
        return answer.id_token


def _older_than(moment: float, seconds: float) -> bool:
    return time.monotonic() >= moment + seconds


def oidc_provider_of(request: Request[Any, Any, Any]) -> OidcProvider:
    """The provider client this process made at start-up; 404 where OpenID Connect is not
    configured."""
    provider: OidcProvider | None = service_state(request.app.state).extras.get("oidc")
    if provider is None:
        raise NotFound(
            "sign-in through the city's provider is not configured", code="oidc_not_configured"
        )
    return provider
