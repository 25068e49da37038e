"""Organisations, users, memberships and oneself: parse, authorise, call the store, map.

Writes that end logins (a new password, a disabled user, an ended membership) run in
transactions of their own rather than the request's, so the revocations are published to every
verifier only once they are committed, as the token endpoint does.
"""

from __future__ import annotations

import base64
import re
import time
from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import FromQuery, JSONBody
from litestar.types import ControllerRouterHandler

from services.identity.api.deps import Identity, IdentityRuntime
from services.identity.domain.accounts import (
    Locale,
    Org,
    OrgCreate,
    User,
    check_password,
    ensure_office_person,
    memberships_to_end,
    require_current_password,
    shown_to,
    visible_org,
    wrong_current_password,
)
from services.identity.schemas import MeUpdate
from services.identity.store import accounts, logins
from shared.auth import Principal, Role
from shared.errors import FieldError, InvalidRequest, NotFound, TooManyRequests
from shared.problems import problem_spec
from shared.web import (
    Caller,
    Cursor,
    DbSession,
    Ids,
    Limit,
    Page,
    PathId,
    answer_spec,
    create_once,
    decode_cursor,
    page_of,
)

_ORG_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_TOO_MANY_ATTEMPTS = problem_spec(
    "Too many wrong passwords for the account, here and at sign-in: 10 in 15 minutes "
    "(`too_many_attempts`), with `Retry-After`"
)


def decode_org_cursor(cursor: str | None) -> str | None:
    """The org id a page of organisations ended at (org ids are the suite's names, not UUIDs)."""
    if cursor is None:
        return None
    try:
        last = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        last_id = last.decode()
    except (ValueError, UnicodeDecodeError):
        last_id = ""
    if not _ORG_ID.fullmatch(last_id):
        raise InvalidRequest(
            "the cursor is not one this service gave out",
            errors=[FieldError("cursor", "unknown cursor")],
        )
    return last_id


class OrgController(Controller):
    path = "/v1/orgs"
    tags = ("accounts",)

    @post("/", responses={201: answer_spec(Org, description="The organisation made")})
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[OrgCreate],
        principal: Caller,
        session: DbSession,
    ) -> Response[bytes]:
        """Register an organisation under the id the other services already use (office)."""
        ensure_office_person(principal)

        async def make() -> Org:
            return await accounts.create_org(session, data, now=datetime.now(UTC))

        return await create_once(request, session, principal, make)

    @get("/")
    async def search(
        self, principal: Caller, session: DbSession, limit: Limit = 50, cursor: Cursor = None
    ) -> Page[Org]:
        orgs = await accounts.list_orgs(session, after=decode_org_cursor(cursor), limit=limit)
        return page_of(orgs, limit, lambda org: org.id)

    @get("/{org_id:str}")
    async def read(self, org_id: PathId, principal: Caller, session: DbSession) -> Org:
        return await accounts.get_org(session, org_id)

    @delete("/{org_id:str}/members/{user_id:str}")
    async def end_membership(
        self,
        org_id: PathId,
        user_id: PathId,
        principal: Caller,
        identity: IdentityRuntime,
        role: FromQuery[Role | None] = None,
    ) -> None:
        """End a user's membership (`role`; without it, every role the user holds in the org,
        or the manager's own). The logins acting in it end too."""
        async with identity.database.write() as session:
            held = await accounts.memberships_of(session, user_id)
            ending = memberships_to_end(principal, held, org_id, role)
            revoked = await accounts.end_memberships(
                session, user_id, ending, now=datetime.now(UTC)
            )
        await identity.publish_revocations(revoked)


class UserController(Controller):
    path = "/v1/users"
    tags = ("accounts",)

    @get("/")
    async def search(
        self,
        principal: Caller,
        session: DbSession,
        org: FromQuery[str | None] = None,
        role: FromQuery[Role | None] = None,
        id: Ids = None,  # noqa: A002 - the query parameter's name
        lecturer_id: Ids = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[User]:
        """Users, filtered; `id` and `lecturer_id` repeat (up to 100) for bulk look-ups. Office
        and services see all; a manager the members of its own org."""
        users = await accounts.list_users(
            session,
            org=visible_org(principal, org),
            role=role,
            ids=id or [],
            lecturer_ids=lecturer_id or [],
            after=decode_cursor(cursor),
            limit=limit,
        )
        page = page_of(users, limit, lambda user: user.id)
        return Page(items=_shown(principal, page.items), next_cursor=page.next_cursor)

    @get("/{user_id:str}")
    async def read(self, user_id: PathId, principal: Caller, session: DbSession) -> User:
        shown = shown_to(principal, await accounts.get_user(session, user_id))
        if shown is None:
            raise NotFound(f"no user {user_id}")
        return shown

    @post("/{user_id:str}/disable", status_code=200)
    async def disable(self, user_id: PathId, principal: Caller, identity: IdentityRuntime) -> User:
        """Disable an account (office): its refresh tokens stop at once, its access tokens as
        soon as every service has read the revocation (seconds)."""
        ensure_office_person(principal)
        async with identity.database.write() as session:
            user, revoked = await accounts.disable_user(
                session, user_id, by=principal.sub, now=datetime.now(UTC)
            )
        await identity.publish_revocations(revoked)
        return user


def _shown(principal: Principal, users: list[User]) -> list[User]:
    return [shown for user in users if (shown := shown_to(principal, user)) is not None]


class MeController(Controller):
    path = "/v1/me"
    tags = ("accounts",)

    @get("/")
    async def read(self, principal: Caller, session: DbSession) -> User:
        """The caller's own account (a service's token has none: 404)."""
        return await accounts.get_user(session, principal.sub)

    @patch("/", responses={429: _TOO_MANY_ATTEMPTS})
    async def update(
        self, data: JSONBody[MeUpdate], principal: Caller, identity: IdentityRuntime
    ) -> User:
        """Change one's name, language or password. A new password needs the current one and
        ends every other login of the user. A service's token changes no account: 403."""
        # A service's token has no account, and changes none (403, as every account write
        # of a service is); reading is another matter.
        principal.require_person()
        password_hash = None
        if isinstance(data.password, str):
            current = data.current_password
            password_hash = await _new_password(
                identity, principal, data.password, current if isinstance(current, str) else None
            )
        async with identity.database.write() as session:
            user, revoked = await accounts.update_user(
                session,
                principal.sub,
                name=data.name if isinstance(data.name, str) else None,
                locale=data.locale if isinstance(data.locale, Locale) else None,
                password_hash=password_hash,
                keep_sid=principal.sid,
                now=datetime.now(UTC),
            )
        await identity.publish_revocations(revoked)
        return user


async def _new_password(
    identity: Identity, principal: Principal, password: str, current_password: str | None
) -> str:
    """The hash of the new password, once the current one is proven. Wrong guesses count with
    the sign-in failures of the account: a stolen access token cannot try passwords freely."""
    current = require_current_password(current_password)
    async with identity.database.read() as session:
        row = await accounts.user_row(session, principal.sub)
    wait = await logins.seconds_until_allowed(identity.redis, row.email, now=time.time())
    if wait:
        raise TooManyRequests(
            "too many wrong passwords for this account: try again later",
            code="too_many_attempts",
            headers={"Retry-After": str(wait)},
        )
    ok, _ = await identity.passwords.verify(current, row.password_hash)
    if not ok:
        await logins.record_failure(identity.redis, row.email, now=time.time())
        raise wrong_current_password()
    check_password(password, email=row.email)
    return await identity.passwords.hash(password)


ROUTES: list[ControllerRouterHandler] = [OrgController, UserController, MeController]
