"""What one web process holds while it runs, and the per-request page context.

An ASGI wrapper around the whole app (so unknown paths and errors get it too) finds the session
from its cookie, picks the page's language (`?lang=`, the cookie, the account's), keeps a new
choice in a cookie and at identity, and adds the headers every page carries.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from services.web.badges import pending_approvals
from services.web.clients import (
    CatalogueClient,
    IdentityClient,
    OffersClient,
    OfficeClient,
    Tokens,
    VenueDeskClient,
)
from services.web.domain.locales import chosen_locale, known
from services.web.domain.navigation import NavItem, navigation
from services.web.domain.sessions import (
    Membership,
    WebSession,
    needs_touch,
    refresh_at,
)
from services.web.i18n import Translator, use_locale
from services.web.store import LoginThrottle, SessionGone, Sessions
from shared.config import Settings
from shared.errors import ServiceError
from shared.http import RemoteError

SESSION_COOKIE = "session"
LANG_COOKIE = "lang"
LANG_COOKIE_SECONDS = 365 * 24 * 3600
_log = logging.getLogger("commonroom.web")
_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        (
            b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            b"frame-ancestors 'none'; form-action 'self' http: https:; base-uri 'none'"
        ),
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


@dataclass
class WebRuntime:
    settings: Settings
    sessions: Sessions
    throttle: LoginThrottle
    identity: IdentityClient
    catalogue: CatalogueClient
    translator: Translator
    secure_cookies: bool
    offers: OffersClient
    office: OfficeClient
    desk: VenueDeskClient

    def new_session(self, tokens: Tokens, *, now: float, email: str = "") -> WebSession:
        return WebSession(
            user_id="",
            created_at=now,
            seen_at=now,
            access_token=tokens.access_token,
            refresh_at=refresh_at(now, tokens.expires_in, self.settings.web_token_seconds),
            refresh_token=tokens.refresh_token,
            membership=tokens.memberships[0] if tokens.memberships else Membership("", ""),
            memberships=tuple(tokens.memberships),
            email=email,
        )

    def with_tokens(
        self, session: WebSession, tokens: Tokens, membership: Membership, *, now: float
    ) -> WebSession:
        return msgspec.structs.replace(
            session,
            access_token=tokens.access_token,
            refresh_at=refresh_at(now, tokens.expires_in, self.settings.web_token_seconds),
            refresh_token=tokens.refresh_token,
            membership=membership,
            memberships=tuple(tokens.memberships),
        )

    async def bearer(self, page: PageContext) -> str:
        """The signed-in visitor's access token, refreshed first where it is due."""
        if page.session is None or page.session_id is None:
            raise SessionGone

        async def refresh(session: WebSession) -> WebSession:
            try:
                tokens = await self.identity.refresh(session.refresh_token)
            except RemoteError as refused:
                if refused.remote_status in (400, 401, 403):
                    raise SessionGone from refused
                raise
            return self.with_tokens(session, tokens, session.membership, now=time.time())

        try:
            page.session = await self.sessions.refreshed(
                page.session_id, page.session, refresh, now=time.time()
            )
        except SessionGone:
            await self.sessions.delete(page.session_id)
            page.session = None
            raise
        return page.session.access_token


@dataclass
class PageContext:
    """What every page knows of its request: language, visitor, navigation."""

    locale: str
    path: str
    query: str = ""
    session_id: str | None = None
    session: WebSession | None = None
    new_locale: str | None = None
    set_cookies: list[str] = field(default_factory=list)
    # Counts shown beside navigation items, by path (the approvals waiting, for a venue manager).
    badges: dict[str, int] = field(default_factory=dict)

    @property
    def nav(self) -> tuple[NavItem, ...]:
        return () if self.session is None else navigation(self.session.membership.role)


def page_of(scope: Scope) -> PageContext:
    found: PageContext = scope["state"]["page"]
    return found


def _cookies(scope: Scope) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # noqa: S112 - a malformed cookie header counts as none
                continue
    return {key: morsel.value for key, morsel in jar.items()}


def cookie_header(name: str, value: str, *, max_age: int | None, secure: bool) -> str:
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


class PageMiddleware:
    """Session, language and headers for every request of the web app."""

    def __init__(self, app: ASGIApp, runtime_of: Any) -> None:
        self.app = app
        self.runtime_of = runtime_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        runtime: WebRuntime = self.runtime_of(scope)
        page = await self._page(runtime, scope)
        scope.setdefault("state", {})["page"] = page
        use_locale(page.locale)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += _SECURITY_HEADERS
                headers += [(b"set-cookie", c.encode("latin-1")) for c in page.set_cookies]
                if page.session is not None:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)

    async def _page(self, runtime: WebRuntime, scope: Scope) -> PageContext:
        now = time.time()
        cookies = _cookies(scope)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        asked = known(next(iter(query.get("lang", [])), None))
        session_id = cookies.get(SESSION_COOKIE)
        session = None
        if session_id:
            try:
                session = await runtime.sessions.load(session_id, now=now)
            except Exception:  # Redis away: the page is served signed out, not as a 500
                _log.warning("sessions cannot be read", exc_info=True)
        page = PageContext(
            locale=chosen_locale(
                asked=asked,
                cookie=cookies.get(LANG_COOKIE),
                account=None if session is None else session.locale,
            ),
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            session_id=session_id if session is not None else None,
            session=session,
        )
        if asked is not None:
            page.set_cookies.append(
                cookie_header(
                    LANG_COOKIE,
                    asked,
                    max_age=LANG_COOKIE_SECONDS,
                    secure=runtime.secure_cookies,
                )
            )
        if session is not None and session_id is not None:
            if asked is not None and asked != session.locale:
                await self._keep_locale(runtime, page, asked)
            elif needs_touch(session, now):
                touched = msgspec.structs.replace(session, seen_at=now)
                await runtime.sessions.save(session_id, touched, now=now)
                page.session = touched
        await self._badges(runtime, page, scope)
        return page

    async def _badges(self, runtime: WebRuntime, page: PageContext, scope: Scope) -> None:
        """The venue manager's count of approvals waiting, on every page it opens."""
        session = page.session
        if session is None or page.session_id is None or session.membership.role != "venue_manager":
            return
        if page.path.startswith(("/static/", "/health/")):
            return
        if any(name == b"hx-request" for name, _ in scope.get("headers", [])):
            return  # a fragment, not a page with a navigation
        try:
            token = await runtime.bearer(page)
            page.badges["/approvals"] = await pending_approvals(
                runtime.sessions.redis, runtime.desk, page.session_id, token, session.membership.org
            )
        except SessionGone:
            return
        except Exception:  # a page is served without its count rather than not at all
            _log.warning("the approvals waiting could not be counted", exc_info=True)

    async def _keep_locale(self, runtime: WebRuntime, page: PageContext, locale: str) -> None:
        """Save the language chosen at identity (so mail follows) and in the session."""
        try:
            token = await runtime.bearer(page)
            await runtime.identity.update_me(token, locale=locale)
        except SessionGone:
            return
        except ServiceError:  # identity away: the cookie keeps the choice meanwhile
            _log.warning("the language could not be saved at identity", exc_info=True)
            return
        assert page.session is not None
        assert page.session_id is not None
        now = time.time()
        page.session = msgspec.structs.replace(page.session, locale=locale, seen_at=now)
        await runtime.sessions.save(page.session_id, page.session, now=now)
