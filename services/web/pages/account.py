"""The start page of each role, and one's own account: name, language, password, membership."""

from __future__ import annotations

import asyncio
import time

import msgspec
from litestar import get, post
from litestar.response import Redirect, Template

from services.web.domain.locales import known
from services.web.domain.sessions import Membership
from services.web.pages import offers
from services.web.pages.auth import Form
from services.web.pages.views import Bearer, NotSignedIn, Page, Web, view
from services.web.runtime import PageContext, WebRuntime
from shared.http import RemoteError


def _signed_in(page: PageContext) -> None:
    if page.session is None:
        raise NotSignedIn


@get("/")
async def start(web: Web, page: Page, bearer: Bearer) -> Template:
    return view(page, "home.html", **await offers.lecturer_start(web, page, bearer))


async def _me(web: WebRuntime, page: PageContext, bearer: str, **context: object) -> Template:
    account, orgs = await asyncio.gather(web.identity.me(bearer), web.identity.orgs(bearer))
    status = 400 if context.get("errors") else 200
    return view(
        page,
        "me.html",
        status_code=status,
        account=account,
        org_names={org.id: org.name for org in orgs},
        **{"errors": {}, "saved": None, **context},
    )


@get("/me")
async def me_page(web: Web, page: Page, bearer: Bearer, saved: str | None = None) -> Template:
    return await _me(web, page, bearer, saved=saved)


@post("/me/name")
async def change_name(web: Web, page: Page, bearer: Bearer, data: Form) -> Template | Redirect:
    name = data.get("name", "").strip()
    if not name:
        return await _me(web, page, bearer, errors={"name": "required"})
    try:
        await web.identity.update_me(bearer, name=name)
    except RemoteError as refused:
        return await _me(web, page, bearer, errors={"name": refused.code})
    await _remember(web, page, name=name)
    return Redirect("/me?saved=name", status_code=303)


@post("/me/language")
async def change_language(web: Web, page: Page, bearer: Bearer, data: Form) -> Template | Redirect:
    locale = known(data.get("locale"))
    if locale is None:
        return await _me(web, page, bearer, errors={"locale": "invalid_request"})
    # The GET after the redirect keeps it: in the cookie, at identity, in the session.
    return Redirect(f"/me?saved=language&lang={locale}", status_code=303)


@post("/me/password")
async def change_password(web: Web, page: Page, bearer: Bearer, data: Form) -> Template | Redirect:
    current, new = data.get("current_password", ""), data.get("password", "")
    errors = {
        field: "required"
        for field, value in (("current_password", current), ("password", new))
        if not value
    }
    if errors:
        return await _me(web, page, bearer, errors=errors)
    try:
        await web.identity.update_me(bearer, password=new, current_password=current)
    except RemoteError as refused:
        field = (
            "current_password"
            if refused.code in ("wrong_password", "too_many_attempts", "current_password_required")
            else "password"
        )
        return await _me(web, page, bearer, errors={field: refused.code})
    return Redirect("/me?saved=password", status_code=303)


@post("/me/membership")
async def switch_membership(
    web: Web, page: Page, bearer: Bearer, data: Form
) -> Template | Redirect:
    """Act in another of one's memberships: a new token for it, in the same login."""
    _signed_in(page)
    assert page.session is not None
    assert page.session_id is not None
    wanted = Membership(org=data.get("org", ""), role=data.get("role", ""))
    held = {(m.org, m.role): m for m in page.session.memberships}
    if (wanted.org, wanted.role) not in held:
        return await _me(web, page, bearer, errors={"membership": "forbidden"})
    membership = held[(wanted.org, wanted.role)]
    try:
        tokens = await web.identity.refresh(page.session.refresh_token, membership)
    except RemoteError as refused:
        return await _me(web, page, bearer, errors={"membership": refused.code})
    now = time.time()
    page.session = web.with_tokens(page.session, tokens, membership, now=now)
    await web.sessions.save(page.session_id, page.session, now=now)
    return Redirect("/", status_code=303)


async def _remember(web: WebRuntime, page: PageContext, *, name: str) -> None:
    if page.session is not None and page.session_id is not None:
        page.session = msgspec.structs.replace(page.session, name=name)
        await web.sessions.save(page.session_id, page.session, now=time.time())


ROUTES = [start, me_page, change_name, change_language, change_password, switch_membership]
