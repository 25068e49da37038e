"""Signing in and out: password, the city's provider, invitations, password resets."""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, QueryParameter
from litestar.response import Redirect, Template

from services.web.clients import Tokens
from services.web.domain.paths import local_path
from services.web.pages.views import Page, Web, view
from services.web.runtime import SESSION_COOKIE, PageContext, WebRuntime, cookie_header
from services.web.store import new_session_id
from shared.http import RemoteError

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
Next = Annotated[str | None, QueryParameter(name="next", required=False, max_length=2000)]
OIDC_COOKIE = "oidc_state"


def _client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


async def _signed_in(
    web: WebRuntime, page: PageContext, tokens: Tokens, next_path: str, *, email: str = ""
) -> Redirect:
    """A new session (a new id at every sign-in), the old one dropped, and on to `next_path`."""
    if page.session_id is not None:
        await web.sessions.delete(page.session_id)
    now = time.time()
    session = web.new_session(tokens, now=now, email=email)
    account = await web.identity.me(tokens.access_token)
    session = msgspec.structs.replace(
        session, user_id=account.id, name=account.name, email=account.email, locale=account.locale
    )
    session_id = new_session_id()
    await web.sessions.save(session_id, session, now=now)
    page.set_cookies.append(
        cookie_header(SESSION_COOKIE, session_id, max_age=None, secure=web.secure_cookies)
    )
    return Redirect(local_path(next_path), status_code=303)


async def _login_form(web: WebRuntime, page: PageContext, **context: Any) -> dict[str, Any]:
    return {"oidc": await web.identity.oidc_enabled(), **context}


@get("/login")
async def login_page(
    web: Web, page: Page, next_path: Next = None, error: str | None = None
) -> Template:
    context = await _login_form(web, page, next=local_path(next_path), error=error, email="")
    return view(page, "login.html", **context)


@post("/login")
async def login(
    request: Request[Any, Any, Any], web: Web, page: Page, data: Form
) -> Template | Redirect:
    email = data.get("email", "").strip()
    password = data.get("password", "")
    next_path = local_path(data.get("next"))
    address = _client_address(request)
    errors: dict[str, str] = {}
    if not email:
        errors["email"] = "required"
    if not password:
        errors["password"] = "required"  # noqa: S105 (a message id)
    error = None
    if not errors:
        if await web.throttle.wait_seconds(address):
            error = "too_many_attempts"
        else:
            try:
                tokens = await web.identity.password_grant(email, password)
            except RemoteError as refused:
                if refused.code in ("invalid_credentials", "invalid_request"):
                    await web.throttle.failed(address)
                error = refused.code
            else:
                return await _signed_in(web, page, tokens, next_path, email=email)
    status = 429 if error == "too_many_attempts" else 400 if errors else 401
    context = await _login_form(web, page, next=next_path, error=error, errors=errors, email=email)
    return view(page, "login.html", status_code=status, **context)


@post("/logout")
async def logout(web: Web, page: Page) -> Redirect:
    """End the session here and its login at identity, so its tokens stop everywhere."""
    if page.session is not None and page.session_id is not None:
        try:
            await web.identity.logout(page.session.refresh_token)
        finally:
            await web.sessions.delete(page.session_id)
    page.set_cookies.append(cookie_header(SESSION_COOKIE, "", max_age=0, secure=web.secure_cookies))
    return Redirect("/login", status_code=303)


@get("/auth/start")
async def oidc_start(web: Web, page: Page, next_path: Next = None) -> Redirect:
    """To identity's city login, with a `state` of our own: kept in Redis and in a cookie of this
    browser, so a callback another browser was sent to signs no one in here."""
    state = secrets.token_urlsafe(24)
    await web.sessions.start_oidc(state, local_path(next_path))
    page.set_cookies.append(
        cookie_header(OIDC_COOKIE, state, max_age=600, secure=web.secure_cookies)
    )
    return_to = f"{web.settings.service_url('web')}/auth/callback?{urlencode({'state': state})}"
    identity = web.settings.identity_public_url
    return Redirect(
        f"{identity}/v1/oidc/login?{urlencode({'return_to': return_to})}", status_code=303
    )


@get("/auth/callback")
async def oidc_callback(
    request: Request[Any, Any, Any],
    web: Web,
    page: Page,
    code: str | None = None,
    login_state: Annotated[str | None, QueryParameter(name="state", required=False)] = None,
    error: str | None = None,
) -> Template | Redirect:
    cookie = request.cookies.get(OIDC_COOKIE)
    page.set_cookies.append(cookie_header(OIDC_COOKIE, "", max_age=0, secure=web.secure_cookies))
    if not login_state or cookie is None or not secrets.compare_digest(cookie, login_state):
        return await _refused(web, page, "state_mismatch")
    next_path = await web.sessions.take_oidc(login_state)
    if next_path is None:
        return await _refused(web, page, "state_mismatch")
    if error or not code:
        return await _refused(web, page, error or "provider_error")
    try:
        tokens = await web.identity.code_grant(code)
    except RemoteError as refused:
        return await _refused(web, page, refused.code)
    return await _signed_in(web, page, tokens, next_path)


async def _refused(web: WebRuntime, page: PageContext, code: str) -> Template:
    context = await _login_form(web, page, next="/", error=code, email="")
    return view(page, "login.html", status_code=400, **context)


@get("/invite/{token:str}")
async def invitation_page(token: str, web: Web, page: Page) -> Template:
    try:
        invitation = await web.identity.invitation(token)
    except RemoteError as refused:
        return view(page, "notice.html", status_code=refused.remote_status, error=refused.code)
    return view(page, "invite.html", invitation=invitation, token=token, errors={}, name="")


@post("/invite/{token:str}")
async def accept_invitation(token: str, web: Web, page: Page, data: Form) -> Template | Redirect:
    try:
        invitation = await web.identity.invitation(token)
    except RemoteError as refused:
        return view(page, "notice.html", status_code=refused.remote_status, error=refused.code)
    name = data.get("name", "").strip() or None
    password = data.get("password", "")
    bearer = None
    if invitation.existing_user:
        if page.session is None or page.session.email != invitation.email:
            return Redirect(f"/login?{urlencode({'next': f'/invite/{token}'})}", status_code=303)
        bearer = await web.bearer(page)
    elif not password:
        return view(
            page,
            "invite.html",
            status_code=400,
            invitation=invitation,
            token=token,
            errors={"password": "required"},
            name=name or "",
        )
    try:
        await web.identity.accept_invitation(
            token, password=None if bearer else password, name=name, bearer=bearer
        )
    except RemoteError as refused:
        return view(
            page,
            "invite.html",
            status_code=400,
            invitation=invitation,
            token=token,
            errors={"password": refused.code},
            name=name or "",
        )
    if bearer is not None:
        return Redirect("/me", status_code=303)
    tokens = await web.identity.password_grant(invitation.email, password)
    return await _signed_in(web, page, tokens, "/", email=invitation.email)


@get("/reset")
async def reset_request_page(page: Page) -> Template:
    return view(page, "reset_request.html", sent=False, email="", errors={})


@post("/reset")
async def reset_request(web: Web, page: Page, data: Form) -> Template:
    email = data.get("email", "").strip()
    if "@" not in email:
        return view(
            page,
            "reset_request.html",
            status_code=400,
            sent=False,
            email=email,
            errors={"email": "invalid_email"},
        )
    await web.identity.request_reset(email)
    return view(page, "reset_request.html", sent=True, email=email, errors={})


@get("/reset/{token:str}")
async def reset_page(token: str, web: Web, page: Page) -> Template:
    try:
        preview = await web.identity.reset_preview(token)
    except RemoteError as refused:
        return view(page, "notice.html", status_code=refused.remote_status, error=refused.code)
    return view(page, "reset.html", token=token, email=preview.email, errors={})


@post("/reset/{token:str}")
async def reset(token: str, web: Web, page: Page, data: Form) -> Template | Redirect:
    password = data.get("password", "")
    try:
        preview = await web.identity.reset_preview(token)
        if not password:
            return view(
                page,
                "reset.html",
                status_code=400,
                token=token,
                email=preview.email,
                errors={"password": "required"},
            )
        await web.identity.reset_password(token, password)
    except RemoteError as refused:
        if refused.code in ("reset_expired", "not_found"):
            return view(page, "notice.html", status_code=refused.remote_status, error=refused.code)
        return view(
            page,
            "reset.html",
            status_code=400,
            token=token,
            email="",
            errors={"password": refused.code},
        )
    return Redirect("/login?done=reset", status_code=303)


ROUTES = [
    login_page,
    login,
    logout,
    oidc_start,
    oidc_callback,
    invitation_page,
    accept_invitation,
    reset_request_page,
    reset_request,
    reset_page,
    reset,
]
