"""Signing in and out: the published keys, the token endpoint's four grants, logout."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.enums import MediaType
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import JSONBody

from services.identity.api.deps import Identity, IdentityRuntime
from services.identity.domain.accounts import pick_membership
from services.identity.domain.tokens import (
    REFRESH_TTL,
    SERVICE_ACCESS_TTL,
    USER_ACCESS_TTL,
    Membership,
    access_token,
    service_membership,
)
from services.identity.schemas import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    Grant,
    Jwks,
    Logout,
    PasswordGrant,
    RefreshGrant,
    TokenAnswer,
)
from services.identity.store import accounts, logins, oidc
from services.identity.store.rows import UserRow
from shared.errors import FieldError, InvalidRequest, TooManyRequests, Unauthenticated
from shared.problems import problem_spec
from shared.web import answer_spec

_FORM = "application/x-www-form-urlencoded"
_MAX_LIFETIME_OF_LOGIN = REFRESH_TTL


# What a grant's JSON Schema says, by the name Litestar's `Schema` gives it.
_SCHEMA_KEYS = {
    "title": "title",
    "enum": "enum",
    "required": "required",
    "maxLength": "max_length",
    "minLength": "min_length",
    "pattern": "pattern",
}
_NULL = {"type": "null"}


def _openapi_schema(schema: dict[str, Any], defs: dict[str, Any], *, form: bool) -> Schema:
    """Litestar's form of a msgspec JSON Schema, its references inlined (they point into the
    schema's own `$defs`, which a document does not have). A form has no null: an optional field
    is one left out. A keyword it does not know is an error, never a constraint dropped."""
    if "$ref" in schema:
        return _openapi_schema(defs[schema["$ref"].rsplit("/", 1)[1]], defs, form=form)
    fields: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("$defs", "discriminator", "default"):
            continue  # the mapping names `$defs`; the tags are in each grant's `enum` anyway
        if key == "anyOf":
            options = [option for option in value if not (form and option == _NULL)]
            fields["any_of"] = [_openapi_schema(option, defs, form=form) for option in options]
        elif key == "properties":
            fields["properties"] = {
                name: _openapi_schema(item, defs, form=form) for name, item in value.items()
            }
        elif key == "type":
            fields["type"] = OpenAPIType(value)
        else:
            fields[_SCHEMA_KEYS[key]] = value
    return Schema(**fields)


_GRANT = msgspec.json.schema(Grant)
_JSON_GRANT = _openapi_schema(_GRANT, _GRANT["$defs"], form=False)
_FORM_GRANT = _openapi_schema(_GRANT, _GRANT["$defs"], form=True)


@dataclass
class _TokenOperation(Operation):
    """The token endpoint reads its grant itself, JSON or form-encoded, so Litestar sees no
    `data` to document: the document is told here what it takes."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            content={
                MediaType.JSON: OpenAPIMediaType(schema=_JSON_GRANT),
                _FORM: OpenAPIMediaType(schema=_FORM_GRANT),
            },
        )


_TOO_MANY_ATTEMPTS = problem_spec(
    "Too many wrong passwords for the account: 10 in 15 minutes (`too_many_attempts`), with "
    "`Retry-After`"
)


def _invalid_credentials() -> Unauthenticated:
    return Unauthenticated(
        "the e-mail address or the password is wrong", code="invalid_credentials"
    )


def _invalid_grant() -> Unauthenticated:
    return Unauthenticated("the refresh token or code is not valid", code="invalid_grant")


@get(
    "/.well-known/jwks.json",
    security=[{}],
    tags=["tokens"],
    responses={200: answer_spec(Jwks, description="the keys tokens are signed with")},
)
async def jwks(identity: IdentityRuntime) -> Response[bytes]:
    """The public keys every service checks tokens against (no token needed)."""
    return Response(await identity.keyring.jwks(datetime.now(UTC)), media_type="application/json")


async def _grant_of(request: Request[Any, Any, Any]) -> Grant:
    """The grant, sent as JSON or form-encoded as OAuth 2 clients send it."""
    raw: Any
    if request.content_type[0] == _FORM:
        raw = dict((await request.form()).items())
    else:
        try:
            raw = msgspec.json.decode(await request.body())
        except msgspec.DecodeError as exc:
            raise InvalidRequest("the body is not JSON") from exc
    try:
        grant: Grant = msgspec.convert(raw, Grant)
    except msgspec.ValidationError as exc:
        field = "grant_type" if "grant_type" in str(exc) or not isinstance(raw, dict) else "body"
        raise InvalidRequest(str(exc), errors=[FieldError(field, str(exc))]) from exc
    return grant


@post(
    "/v1/token",
    security=[{}],
    tags=["tokens"],
    operation_class=_TokenOperation,
    responses={
        200: answer_spec(TokenAnswer, description="the tokens"),
        401: problem_spec(
            "The grant is refused: a wrong e-mail address or password (`invalid_credentials`), "
            "client (`invalid_client`), refresh token or code (`invalid_grant`)"
        ),
        429: _TOO_MANY_ATTEMPTS,
    },
    status_code=200,
)
async def token(request: Request[Any, Any, Any], identity: IdentityRuntime) -> TokenAnswer:
    """Trade a grant for an access token (and, for a person, a refresh token)."""
    grant = await _grant_of(request)
    if isinstance(grant, PasswordGrant):
        return await _password(identity, grant)
    if isinstance(grant, RefreshGrant):
        return await _refresh(identity, grant)
    if isinstance(grant, ClientCredentialsGrant):
        return await _client_credentials(identity, grant)
    return await _authorization_code(identity, grant)


async def _password(identity: Identity, grant: PasswordGrant) -> TokenAnswer:
    redis = identity.redis
    # Counted per submitted username, as typed but for case and spaces, whether it exists or not.
    username = grant.username.strip().lower()
    wait = await logins.seconds_until_allowed(redis, username, now=time.time())
    if wait:
        raise TooManyRequests(
            "too many failed sign-ins for this account: try again later",
            code="too_many_attempts",
            headers={"Retry-After": str(wait)},
        )
    async with identity.database.read() as session:
        user = await accounts.user_row_by_email(session, username)
    stored = user.password_hash if user is not None and user.disabled_at is None else None
    ok, rehashed = await identity.passwords.verify(grant.password, stored)
    if not ok or user is None:
        await logins.record_failure(redis, username, now=time.time())
        raise _invalid_credentials()
    await logins.forget_failures(redis, username)
    return await _sign_in(
        identity, user, kind="password", org=grant.org, role=grant.role, rehashed=rehashed
    )


async def _sign_in(
    identity: Identity,
    user: UserRow,
    *,
    kind: str,
    org: str | None,
    role: Any,
    rehashed: str | None = None,
) -> TokenAnswer:
    """A new login for `user` in the membership asked for: its access and refresh tokens."""
    now = datetime.now(UTC)
    async with identity.database.write() as session:
        held = await accounts.memberships_of(session, user.id)
        membership = pick_membership(held, org=org, role=role)
        if rehashed is not None:
            fresh = await accounts.user_row(session, user.id)
            fresh.password_hash = rehashed
        sid = await logins.start_login(
            session, sub=user.id, kind=kind, now=now, lifetime=_MAX_LIFETIME_OF_LOGIN
        )
        refresh = await logins.issue_refresh_token(
            session, sid=sid, user_id=user.id, membership=membership, now=now
        )
    return await _answer(identity, user.id, membership, sid, held, now, refresh=refresh)


async def _answer(
    identity: Identity,
    sub: str,
    membership: Membership,
    sid: str,
    held: list[Membership],
    now: datetime,
    *,
    refresh: str | None,
) -> TokenAnswer:
    ttl = USER_ACCESS_TTL if refresh is not None else SERVICE_ACCESS_TTL
    signed = access_token(
        await identity.keyring.signing_key(now),
        issuer=identity.issuer,
        sub=sub,
        membership=membership,
        sid=sid,
        now=now,
        ttl=ttl,
    )
    return TokenAnswer(
        access_token=signed,
        expires_in=int(ttl.total_seconds()),
        memberships=held,
        refresh_token=msgspec.UNSET if refresh is None else refresh,
    )


async def _refresh(identity: Identity, grant: RefreshGrant) -> TokenAnswer:
    now = datetime.now(UTC)
    revoked: list[str] = []
    refreshed: logins.Refreshed | None = None
    async with identity.database.write() as session:
        owner = await logins.owner_of_refresh_token(session, grant.refresh_token)
        user = None if owner is None else await accounts.user_row(session, owner)
        if user is not None and user.disabled_at is None:
            held = await accounts.memberships_of(session, user.id)
            wanted = (
                pick_membership(held, org=grant.org, role=grant.role)
                if grant.org is not None or grant.role is not None
                else None
            )
            try:
                refreshed = await logins.use_refresh_token(
                    session, grant.refresh_token, now=now, membership=wanted
                )
            except logins.Replayed as replay:
                revoked = await logins.revoke_logins(session, [replay.sid], now=now)
    # Published once the revocation is committed; the 401 below must not roll it back.
    await identity.publish_revocations(revoked)
    carried = None if refreshed is None else _still_held(held, refreshed.membership)
    if refreshed is None or carried is None:
        raise _invalid_grant()
    return await _answer(
        identity,
        refreshed.user_id,
        carried,
        refreshed.sid,
        held,
        now,
        refresh=refreshed.refresh_token,
    )


def _still_held(held: list[Membership], membership: Membership) -> Membership | None:
    """The user's current form of a membership a login acts in, or None if it has ended."""
    return next((m for m in held if m.org == membership.org and m.role == membership.role), None)


async def _client_credentials(identity: Identity, grant: ClientCredentialsGrant) -> TokenAnswer:
    if not identity.client_is(grant.client_id, grant.client_secret):
        raise Unauthenticated("unknown client or wrong secret", code="invalid_client")
    now = datetime.now(UTC)
    sid = f"client:{grant.client_id}"
    return await _answer(
        identity, grant.client_id, service_membership(), sid, [], now, refresh=None
    )


async def _authorization_code(identity: Identity, grant: AuthorizationCodeGrant) -> TokenAnswer:
    # Only the web service brings codes back, and only with its own credentials.
    if grant.client_id != "web" or not identity.client_is(grant.client_id, grant.client_secret):
        raise Unauthenticated("unknown client or wrong secret", code="invalid_client")
    async with identity.database.write() as session:
        user_id = await oidc.redeem_code(session, grant.code, now=datetime.now(UTC))
        user = None if user_id is None else await accounts.user_row(session, user_id)
    if user is None or user.disabled_at is not None:
        raise _invalid_grant()
    return await _sign_in(identity, user, kind="oidc", org=grant.org, role=grant.role)


@post("/v1/logout", security=[{}], tags=["tokens"], status_code=204)
async def logout(data: JSONBody[Logout], identity: IdentityRuntime) -> None:
    """End the login a refresh token belongs to: all its tokens stop working."""
    async with identity.database.write() as session:
        sid = await logins.login_of_refresh_token(session, data.refresh_token)
        members = (
            [] if sid is None else await logins.revoke_logins(session, [sid], now=datetime.now(UTC))
        )
    await identity.publish_revocations(members)


ROUTES = [jwks, token, logout]
