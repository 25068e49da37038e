"""What every page handler shares: the runtime, the page context, rendering, sign-in checks."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.response import Redirect, Template

from services.web.clients import CatalogueClient
from services.web.domain.locales import LOCALES
from services.web.domain.navigation import current
from services.web.domain.paths import with_lang
from services.web.domain.text import ROLE_NAMES, message_for
from services.web.runtime import PageContext, WebRuntime, page_of
from services.web.store import SessionGone


class NotSignedIn(Exception):
    """The page needs a signed-in visitor: to the login, and back here afterwards."""


def runtime_of(state: State) -> WebRuntime:
    held: WebRuntime = state["web"]
    return held


def provide_runtime(state: State) -> WebRuntime:
    return runtime_of(state)


def provide_catalogue(state: State) -> CatalogueClient:
    return runtime_of(state).catalogue


def provide_page(request: Request[Any, Any, Any]) -> PageContext:
    return page_of(request.scope)


async def provide_bearer(request: Request[Any, Any, Any], web: WebRuntime) -> str:
    """The signed-in visitor's own access token (fresh); a signed-out one goes to the login."""
    try:
        return await web.bearer(page_of(request.scope))
    except SessionGone as gone:
        raise NotSignedIn from gone


Web = NamedDependency[WebRuntime]
Page = NamedDependency[PageContext]
Bearer = NamedDependency[str]
Catalogue = NamedDependency[CatalogueClient]
DEPENDENCIES = {
    "web": Provide(provide_runtime, sync_to_thread=False),
    "page": Provide(provide_page, sync_to_thread=False),
    "bearer": Provide(provide_bearer),
    "catalogue": Provide(provide_catalogue, sync_to_thread=False),
}


def view(page: PageContext, template: str, *, status_code: int = 200, **context: Any) -> Template:
    """A page in the visitor's language, with the layout's navigation and language switch."""
    other = {
        locale: with_lang(page.path, page.query, locale)
        for locale in LOCALES
        if locale != page.locale
    }
    return Template(
        template_name=template,
        context={
            "page": page,
            "nav": page.nav,
            "nav_current": current(page.nav, page.path),
            "other_locales": other,
            "role_names": ROLE_NAMES,
            "message_for": message_for,
            **context,
        },
        status_code=status_code,
    )


def to_login(path: str) -> Redirect:
    return Redirect(f"/login?{urlencode({'next': path})}", status_code=303)


def field_errors(errors: list[Any]) -> dict[str, str]:
    """The API's `errors` as field → code-ish message id (first one per field)."""
    found: dict[str, str] = {}
    for error in errors:
        if isinstance(error, dict) and "field" in error:
            found.setdefault(str(error["field"]), str(error.get("message", "")))
    return found
