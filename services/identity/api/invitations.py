"""Invitations and password resets: the links identity mails, and what their holders may do.

An invitation is withdrawn by its id (`DELETE /v1/invitations/{invitation_id}`, a UUID) and read
and accepted by its token (`/v1/invitations/{token}`, never UUID-shaped), which is the only
credential those two routes take: they need no login, except that an address that already has
an account accepts while signed in as it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from litestar import Request, Response, delete, get, post
from litestar.background_tasks import BackgroundTask
from litestar.params import FromPath, FromQuery, JSONBody

from services.identity.api.deps import Identity, IdentityRuntime
from services.identity.domain.accounts import (
    User,
    check_password,
    normalise_email,
    visible_org,
)
from services.identity.domain.invitations import (
    Invitation,
    ensure_can_invite,
    ensure_can_withdraw,
    ensure_may_accept,
    ensure_not_member,
    ensure_open,
)
from services.identity.schemas import (
    InvitationAccept,
    InvitationCreate,
    InvitationPreview,
    PasswordResetConfirm,
    PasswordResetCreate,
    PasswordResetPreview,
)
from services.identity.store import accounts, invitations, logins
from shared.auth import Principal
from shared.errors import FieldError, InvalidRequest
from shared.problems import problem_spec
from shared.web import (
    Caller,
    Cursor,
    DbSession,
    Limit,
    Page,
    PathId,
    PublicDbSession,
    answer_spec,
    create_once,
    decode_cursor,
    page_of,
    service_state,
)

_log = logging.getLogger("commonroom.identity")
_INVITATION_GONE = problem_spec(
    "The invitation was used, withdrawn, replaced or has expired (`invitation_expired`)"
)
_RESET_GONE = problem_spec("The reset link was used or has expired (`reset_expired`)")


@post(
    "/v1/invitations",
    tags=["invitations"],
    responses={201: answer_spec(Invitation, description="The invitation made")},
)
async def invite(
    request: Request[Any, Any, Any],
    data: JSONBody[InvitationCreate],
    principal: Caller,
    session: DbSession,
    identity: IdentityRuntime,
) -> Response[bytes]:
    """Invite an address into an org and role; notify mails it a link valid 7 days. A newer
    invitation for the same address, org and role voids the older one."""
    ensure_can_invite(principal, data.org, data.role, data.lecturer_id)
    email = normalise_email(data.email)

    async def make() -> Invitation:
        ensure_not_member(await accounts.memberships_of_email(session, email), data.org, data.role)
        return await invitations.create_invitation(
            session,
            email=email,
            name=data.name,
            org=data.org,
            role=data.role,
            lecturer_id=data.lecturer_id,
            locale=data.locale,
            invited_by=principal.sub,
            web_url=identity.settings.service_url("web"),
            now=datetime.now(UTC),
        )

    return await create_once(request, session, principal, make)


@get("/v1/invitations", tags=["invitations"])
async def open_invitations(
    principal: Caller,
    session: DbSession,
    org: FromQuery[str | None] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[Invitation]:
    """The invitations still open: a manager's own org's, every org's for the office."""
    found = await invitations.list_open_invitations(
        session,
        org=visible_org(principal, org),
        now=datetime.now(UTC),
        after=decode_cursor(cursor),
        limit=limit,
    )
    return page_of(found, limit, lambda invitation: invitation.id)


@delete(
    "/v1/invitations/{invitation_id:uuid}",
    tags=["invitations"],
    responses={410: _INVITATION_GONE},
)
async def withdraw(invitation_id: FromPath[UUID], principal: Caller, session: DbSession) -> None:
    """Withdraw an open invitation: its link stops working."""
    invitation = await invitations.get_invitation(session, str(invitation_id))
    ensure_can_withdraw(principal, invitation)
    await invitations.withdraw_invitation(session, invitation, now=datetime.now(UTC))


@get(
    "/v1/invitations/{token:str}",
    security=[{}],
    tags=["invitations"],
    responses={410: _INVITATION_GONE},
)
async def preview(token: PathId, public_session: PublicDbSession) -> InvitationPreview:
    """What the invitation page shows (no login: the link is the credential)."""
    invitation = await invitations.invitation_by_token(public_session, token)
    ensure_open(invitation, datetime.now(UTC))
    existing = await accounts.user_row_by_email(public_session, invitation.email)
    return InvitationPreview(
        email=invitation.email,
        org=invitation.org,
        org_name=await invitations.org_name(public_session, invitation.org),
        role=invitation.role,
        expires_at=invitation.expires_at,
        existing_user=existing is not None,
        name=invitation.name,
        locale=invitation.locale,
    )


async def _caller(request: Request[Any, Any, Any]) -> Principal | None:
    """The verified caller where the request carries a token (a bad one is 401), else None."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    return await service_state(request.app.state).verifier(header)


@post(
    "/v1/invitations/{token:str}/accept",
    security=[{}],
    tags=["invitations"],
    responses={201: answer_spec(User, description="The account"), 410: _INVITATION_GONE},
)
async def accept(
    request: Request[Any, Any, Any],
    token: PathId,
    data: JSONBody[InvitationAccept],
    identity: IdentityRuntime,
    public_session: PublicDbSession,
) -> User:
    """Accept: a new account with `password`, or, for an address that has an account, the
    membership for it, while signed in as it (its password unchanged)."""
    now = datetime.now(UTC)
    # Read and hash apart from the request's write transaction: on SQLite that holds the one
    # write lock, and argon2 takes a tenth of a second.
    async with identity.database.read() as session:
        invitation = await invitations.invitation_by_token(session, token)
        ensure_open(invitation, now)
        existing = await accounts.user_row_by_email(session, invitation.email)
    existing_user = None if existing is None else existing.id
    ensure_may_accept(existing_user, await _caller(request) if existing_user else None)
    password_hash = None
    if existing_user is None:
        if data.password is None:
            raise InvalidRequest(
                "a new account needs a password",
                errors=[FieldError("password", "required for a new account")],
            )
        check_password(data.password, email=invitation.email)
        password_hash = await identity.passwords.hash(data.password)
    return await invitations.accept_invitation(
        public_session,
        token,
        name=data.name,
        password_hash=password_hash,
        existing_user=existing_user,
        now=now,
    )


def _address(email: str) -> str | None:
    try:
        return normalise_email(email)
    except InvalidRequest:
        return None


async def _send_reset(identity: Identity, email: str) -> None:
    """Make the reset link, after the answer has gone: its time tells nothing either."""
    try:
        async with identity.database.write() as session:
            await invitations.request_reset(
                session,
                email=email,
                web_url=identity.settings.service_url("web"),
                now=datetime.now(UTC),
            )
    except Exception:  # the answer is sent; the caller can only ask again
        _log.exception("a password reset could not be recorded")


@post("/v1/password-reset", security=[{}], tags=["invitations"], status_code=202)
async def request_reset(
    data: JSONBody[PasswordResetCreate], identity: IdentityRuntime
) -> Response[None]:
    """Ask for a reset link: 202 whatever the address. Only a known, active account is mailed
    one (valid 30 minutes, at most 5 an hour)."""
    address = _address(data.email)
    background = None if address is None else BackgroundTask(_send_reset, identity, address)
    return Response(None, status_code=202, background=background)


@get(
    "/v1/password-reset/{token:str}",
    security=[{}],
    tags=["invitations"],
    responses={410: _RESET_GONE},
)
async def reset_preview(token: PathId, public_session: PublicDbSession) -> PasswordResetPreview:
    """Whether a reset link still works, for the page that asks for the new password."""
    user, expires_at = await invitations.reset_by_token(
        public_session, token, now=datetime.now(UTC)
    )
    return PasswordResetPreview(email=user.email, expires_at=expires_at)


@post(
    "/v1/password-reset/{token:str}",
    security=[{}],
    tags=["invitations"],
    status_code=204,
    responses={410: _RESET_GONE},
)
async def reset_password(
    token: PathId, data: JSONBody[PasswordResetConfirm], identity: IdentityRuntime
) -> None:
    """Set a new password with a reset link, once; every login of the account ends."""
    async with identity.database.read() as session:
        user, _ = await invitations.reset_by_token(session, token, now=datetime.now(UTC))
    check_password(data.password, email=user.email)
    password_hash = await identity.passwords.hash(data.password)
    async with identity.database.write() as session:
        revoked = await invitations.use_reset(
            session, token, password_hash=password_hash, now=datetime.now(UTC)
        )
    await identity.publish_revocations(revoked)
    # Whoever was locked out by wrong guesses may sign in with the new password at once.
    await logins.forget_failures(identity.redis, user.email)


ROUTES = [
    invite,
    open_invitations,
    withdraw,
    preview,
    accept,
    request_reset,
    reset_preview,
    reset_password,
]
