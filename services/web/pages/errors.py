"""Errors as pages in the visitor's language: a signed-out visitor to the login, a refused
right as the 403 page, an unknown path as the 404 page, never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)

from services.web.pages.views import NotSignedIn, to_login, view
from services.web.runtime import page_of
from shared.errors import ServiceError
from shared.http import RemoteError

_log = logging.getLogger("commonroom.web")


def _page(request: Request[Any, Any, Any], status: int, code: str) -> Response[Any]:
    return view(page_of(request.scope), "error.html", status_code=status, status=status, code=code)


def not_signed_in(request: Request[Any, Any, Any], _: NotSignedIn) -> Response[Any]:
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return to_login(path if request.method == "GET" else "/")


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, NotFoundException):
        return _page(request, 404, "not_found")
    if isinstance(exc, PermissionDeniedException):
        # Litestar's CSRF check: a form without our token, or with a forged one.
        return _page(request, 403, "csrf")
    if isinstance(exc, ValidationException):
        return _page(request, 400, "invalid_request")
    return _page(request, exc.status_code, "error")


def service_error(request: Request[Any, Any, Any], exc: ServiceError) -> Response[Any]:
    status = exc.remote_status if isinstance(exc, RemoteError) else exc.status
    if status == 401:
        return not_signed_in(request, NotSignedIn())
    if status in (403, 404):
        return _page(request, status, "forbidden" if status == 403 else "not_found")
    if status >= 500:
        _log.warning("a service failed under a page: %s", exc.detail)
        return _page(request, 503, "unavailable")
    return _page(request, 400, "invalid_request")


def unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    _log.exception("a page failed", exc_info=exc)
    return _page(request, 500, "error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    NotSignedIn: not_signed_in,
    HTTPException: http_error,
    ServiceError: service_error,
    Exception: unexpected,
}
