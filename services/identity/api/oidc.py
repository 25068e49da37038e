"""Sign-in through the city's OpenID Connect provider: the only two paths of identity a browser
opens. Both need no token; where OpenID Connect is not configured they are 404
`oidc_not_configured`.

`login` sends the browser to the provider; `callback` takes it back, checks the provider's
answer, and sends it on to the web page it came from (`return_to`) with a one-time `code`, which
the web service trades for tokens at `POST /v1/token`. Once the callback has found its login,
`return_to` is known to be the web service's, so a refusal goes there too, as `error=<code>`
(`not_invited`, `account_exists`, `account_disabled`, `invalid_id_token`, `access_denied`,
`provider_error`, `oidc_unavailable`), for the page to say in words. A callback whose `state`
is unknown, used or too old has nowhere safe to go: 400 `invalid_state`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Response, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, QueryParameter

from services.identity.api.deps import Identity, IdentityRuntime
from services.identity.clients import CodeRefused, OidcProvider, ProviderUnavailable
from services.identity.clients import oidc_provider_of as _provider_of
from services.identity.domain.oidc import (
    IdClaims,
    InvalidIdToken,
    OidcRefused,
    PendingLogin,
    authorization_url,
    check_return_to,
    is_expired,
    new_login,
    verified_email,
    verify_id_token,
    with_parameters,
)
from services.identity.store import accounts, oidc
from shared.config import OidcSettings, Settings

_log = logging.getLogger("commonroom.identity.oidc")
_PROVIDER = {"provider": Provide(_provider_of, sync_to_thread=False)}
ProviderDep = NamedDependency[OidcProvider]
_FROM_PROVIDER = Annotated[str | None, QueryParameter(max_length=2000, required=False)]
# `state` is a name Litestar keeps for the app's own state: the query parameter is renamed.
_STATE = Annotated[str | None, QueryParameter(name="state", max_length=2000, required=False)]


class LoginFailed(Exception):
    """A login that came back but will not sign anyone in; `code` goes back to the page."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def callback_url(settings: Settings) -> str:
    """The `redirect_uri` identity registers at the provider: its public face."""
    base = settings.identity_public_url or settings.service_url("identity")
    return f"{base.rstrip('/')}/v1/oidc/callback"


def _redirect(url: str) -> Response[None]:
    return Response(
        content=None, status_code=302, headers={"Location": url, "Cache-Control": "no-store"}
    )


def _oidc_settings(identity: Identity) -> OidcSettings:
    configured = identity.settings.oidc
    assert configured is not None  # the provider dependency exists only then
    return configured


@get(
    "/v1/oidc/login",
    security=[{}],
    tags=["oidc"],
    status_code=302,
    dependencies=_PROVIDER,
    description="Sends the browser to the city's provider; `return_to` is a page of the web "
    "service (its exact origin), which the callback sends the browser back to.",
)
async def oidc_login(
    identity: IdentityRuntime, provider: ProviderDep, return_to: FromQuery[str]
) -> Response[None]:
    """Start a sign-in at the city's provider (code flow, PKCE S256, state, nonce)."""
    checked = check_return_to(return_to, identity.settings.service_url("web"))
    try:
        metadata = await provider.metadata()
    except ProviderUnavailable as exc:
        _log.warning("oidc login not started: %s", exc)
        return _redirect(with_parameters(checked, error="oidc_unavailable"))
    login = new_login()
    async with identity.database.write() as session:
        await oidc.save_login(session, login, return_to=checked, now=datetime.now(UTC))
    return _redirect(
        authorization_url(
            metadata,
            client_id=_oidc_settings(identity).client_id,
            redirect_uri=callback_url(identity.settings),
            login=login,
        )
    )


@get(
    "/v1/oidc/callback",
    security=[{}],
    tags=["oidc"],
    status_code=302,
    dependencies=_PROVIDER,
    description="Where the provider sends the browser back: on to `return_to` with `code` (or "
    "`error`) added to its own query.",
)
async def oidc_callback(
    identity: IdentityRuntime,
    provider: ProviderDep,
    login_state: _STATE = None,
    code: _FROM_PROVIDER = None,
    error: _FROM_PROVIDER = None,
) -> Response[None]:
    """Finish a sign-in at the city's provider."""
    now = datetime.now(UTC)
    pending = None
    if login_state:
        # Taken in a transaction of its own: a state works once, even if this login fails.
        async with identity.database.write() as session:
            pending = await oidc.take_login(session, login_state)
    if pending is None or is_expired(pending, now):
        raise OidcRefused(
            "this sign-in is unknown, already used or too old: start again", code="invalid_state"
        )
    try:
        one_time_code = await _finish(identity, provider, pending, code=code, error=error, now=now)
    except LoginFailed as failed:
        _log.info("oidc login refused (%s): %s", failed.code, failed)
        return _redirect(with_parameters(pending.return_to, error=failed.code))
    return _redirect(with_parameters(pending.return_to, code=one_time_code))


async def _finish(
    identity: Identity,
    provider: OidcProvider,
    pending: PendingLogin,
    *,
    code: str | None,
    error: str | None,
    now: datetime,
) -> str:
    """The one-time code for the user the provider's answer signs in."""
    if error is not None or not code:
        raise LoginFailed(
            "access_denied" if error == "access_denied" else "provider_error",
            f"the provider answered {error or 'no code'}",
        )
    claims = await _claims(identity, provider, pending, code=code, now=now)
    async with identity.database.write() as session:
        user = await oidc.linked_user(session, issuer=claims.issuer, subject=claims.subject)
        if user is None:
            # Never by e-mail alone: a first login needs an open invitation for the address
            # the provider verified.
            email = verified_email(claims)
            if email is None or not await oidc.has_open_invitation(session, email, now=now):
                raise LoginFailed("not_invited", "no invitation for a verified address")
            if await accounts.user_row_by_email(session, email) is not None:
                # The invitation is accepted with that account's own sign-in, not by a
                # provider's word for the address.
                raise LoginFailed("account_exists", "the address has an account already")
            user = await oidc.join_by_invitations(
                session,
                issuer=claims.issuer,
                subject=claims.subject,
                email=email,
                name=claims.name,
                now=now,
            )
            if user is None:
                raise LoginFailed("not_invited", "the invitation was taken meanwhile")
        if user.disabled_at is not None:
            raise LoginFailed("account_disabled", "the user is disabled")
        return await oidc.issue_code(session, user_id=user.id, now=now)


async def _claims(
    identity: Identity, provider: OidcProvider, pending: PendingLogin, *, code: str, now: datetime
) -> IdClaims:
    """The provider's ID token for `code`, checked."""
    settings = _oidc_settings(identity)
    try:
        metadata = await provider.metadata()
        id_token = await provider.exchange_code(
            code=code,
            redirect_uri=callback_url(identity.settings),
            code_verifier=pending.code_verifier,
        )
        jwks = await provider.keys()

        def verify(keys: dict[str, Any]) -> IdClaims:
            return verify_id_token(
                id_token,
                keys,
                algorithms=metadata.id_token_algorithms(),
                issuer=settings.issuer,
                client_id=settings.client_id,
                nonce=pending.nonce,
                now=now,
            )

        try:
            return verify(jwks)
        except InvalidIdToken:
            # The provider may have rotated its keys since we read them.
            fresh = await provider.keys(refresh=True)
            if fresh is jwks:
                raise
            return verify(fresh)
    except CodeRefused as exc:
        raise LoginFailed("provider_error", f"the provider refused the code: {exc}") from exc
    except ProviderUnavailable as exc:
        raise LoginFailed("oidc_unavailable", str(exc)) from exc
    except InvalidIdToken as exc:
        raise LoginFailed("invalid_id_token", str(exc)) from exc


ROUTES = [oidc_login, oidc_callback]
