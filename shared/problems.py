"""Every error leaves a service as an RFC 9457 problem document with a stable `code`.

One place maps our error tree, Litestar's own exceptions (validation, routing, body size) and any
unforeseen exception to `application/problem+json`; no stack trace ever reaches a client.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from litestar import Controller, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ControllerRouterHandler, ExceptionHandlersMap
from sqlalchemy.exc import DataError, DBAPIError

from shared.db import database_outage
from shared.errors import FieldError, ServiceError

PROBLEM_JSON = "application/problem+json"
_log = logging.getLogger("commonroom.problems")

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    503: "service_unavailable",
}
_JSON_PATH = re.compile(r"`\$\.?([^`]*)`")
_UNKNOWN_FIELD = re.compile(r"(?:unknown|missing required) field `([^`]+)`")
# The name Litestar gives the request body as a whole (its handlers' `data`).
_BODY = frozenset({"", "data", "body"})


class Problem(msgspec.Struct, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldError] | None = None


def problem_response(
    status: int,
    code: str,
    *,
    title: str,
    detail: str,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    body = Problem(
        type=f"https://commonroom.example/problems/{code}",
        title=title,
        status=status,
        detail=detail,
        code=code,
        errors=errors or None,
    )
    return Response(
        content=msgspec.json.encode(body),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _field_errors(raw: list[Any] | dict[str, Any] | None) -> list[FieldError]:
    errors: list[FieldError] = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, FieldError):
            errors.append(item)
        elif isinstance(item, dict):
            message = str(item.get("message", "invalid"))
            field = str(item.get("key") or item.get("field") or "")
            if match := _JSON_PATH.search(message):
                nested = match.group(1)
                field = f"{field}.{nested}" if field and nested else field or nested
                message = _JSON_PATH.sub(f"`{field}`", message)
            if unknown := _UNKNOWN_FIELD.search(message):  # name the field, not its parent
                name = unknown.group(1)
                field = name if field in _BODY else f"{field}.{name}"
            errors.append(FieldError(field=field or "body", message=message))
    return errors


def _service_error(_: Request[Any, Any, Any], exc: ServiceError) -> Response[bytes]:
    return problem_response(
        exc.status,
        exc.code,
        title=exc.title,
        detail=exc.detail,
        errors=_field_errors(exc.errors),
        headers=exc.headers or None,
    )


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if status >= 500:
        return _unexpected(_, exc)
    code = _HTTP_CODES.get(status, "invalid_request")
    errors = _field_errors(exc.extra) if isinstance(exc, ValidationException) else []
    detail = exc.detail
    if errors:
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors)[:1000]
    # Litestar reports undecodable JSON as a bare 400; name it so the client can tell.
    if status == 400 and not errors:
        errors = [FieldError(field="body", message=detail)]
    return problem_response(
        status,
        code,
        title=exc.__class__.__name__,
        detail=detail,
        errors=errors,
        headers=exc.headers,
    )


def _database_error(request: Request[Any, Any, Any], exc: DBAPIError) -> Response[bytes]:
    # SQLSTATE class 22, "data exception": the database refused a value the client sent, such as
    # a NUL character (PostgreSQL cannot store one) in an id that the types let through.
    if isinstance(exc, DataError) or str(getattr(exc.orig, "sqlstate", "")).startswith("22"):
        _log.info("database refused a value: %s", getattr(exc.orig, "sqlstate", None))
        return problem_response(
            422,
            "invalid_request",
            title="Invalid request",
            detail="a value in the request cannot be stored (a NUL character?)",
        )
    # SQLSTATE class 40, "transaction rollback": a deadlock (40P01) or a serialization failure
    # PostgreSQL chose this request to lose; nothing of it was stored, and the same request may
    # simply be sent again.
    if str(getattr(exc.orig, "sqlstate", "")).startswith("40"):
        _log.info(
            "transaction rolled back by the database: %s", getattr(exc.orig, "sqlstate", None)
        )
        return problem_response(
            409,
            "conflict",
            title="Conflict",
            detail="another change to the same rows was being made at once; try again",
        )
    return _unexpected(request, exc)


def _recursion(request: Request[Any, Any, Any], exc: RecursionError) -> Response[bytes]:
    # msgspec decodes JSON recursively: a body nested deeper than the interpreter's stack (a JSON
    # nesting bomb, `{"a":{"a":...}}`) is the client's error, not ours.
    if "deserializ" not in str(exc):
        return _unexpected(request, exc)
    return problem_response(
        400,
        "invalid_request",
        title="Invalid request",
        detail="the JSON is nested too deeply",
        errors=[FieldError(field="body", message="nested too deeply")],
    )


def _not_utf8(_: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[bytes]:
    # Litestar turns undecodable JSON into a 400 but lets msgspec's UnicodeDecodeError through.
    return problem_response(
        400,
        "invalid_request",
        title="Invalid request",
        detail="the request is not valid UTF-8",
        errors=[FieldError(field="body", message=f"not UTF-8 at byte {exc.start}")],
    )


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    # A database that is down or restarting reaches here in many shapes (a refused connect comes
    # unwrapped, "starting up" as a plain DBAPIError): the client may try again shortly.
    if database_outage(exc):
        _log.warning("database unavailable: %s", exc.__class__.__name__)
        return problem_response(
            503,
            "database_unavailable",
            title="Database unavailable",
            detail="the database did not answer; try again shortly",
            headers={"Retry-After": "2"},
        )
    _log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        500, "internal_error", title="Internal error", detail="something went wrong on our side"
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ServiceError: _service_error,
    HTTPException: _http_error,
    DBAPIError: _database_error,
    RecursionError: _recursion,
    UnicodeDecodeError: _not_utf8,
    Exception: _unexpected,
}


# What any operation may answer besides its success: the OpenAPI document says so, with the
# problem body, so a client (or a fuzzer holding us to the document) knows every answer's shape.
_DOCUMENTED = {
    400: "Malformed request: undecodable JSON, a bad parameter",
    401: "No token, or a bad one (`unauthenticated`)",
    403: "A valid token acting outside its rights (`forbidden`)",
    404: "No such entity, or one the caller may not know of (`not_found`)",
    409: "The request conflicts with the current state",
    413: "The request body is over the size limit (`payload_too_large`)",
    422: "The request breaks a rule; `code` says which and `errors` names the fields",
    500: "Something went wrong on our side (`internal_error`)",
    503: "A database or service this one needs does not answer; retry later",
}
PROBLEM_RESPONSES: Mapping[int, ResponseSpec] = {
    status: ResponseSpec(
        data_container=Problem,
        media_type=PROBLEM_JSON,
        description=description,
        generate_examples=False,
    )
    for status, description in _DOCUMENTED.items()
}


def problem_spec(description: str) -> ResponseSpec:
    """A problem answer only some routes give (410 for a spent link), for their `responses`."""
    return ResponseSpec(
        data_container=Problem,
        media_type=PROBLEM_JSON,
        description=description,
        generate_examples=False,
    )


def document_problems(handlers: Iterable[ControllerRouterHandler]) -> None:
    """Declare the problem responses on every route of `handlers` (controllers or route
    handlers) in the OpenAPI document; a route's own `responses` win. Call before the app is
    built: Litestar copies each handler when it registers it."""
    for handler in handlers:
        routes = (
            [item for item in vars(handler).values() if isinstance(item, HTTPRouteHandler)]
            if isinstance(handler, type) and issubclass(handler, Controller)
            else [handler]
        )
        for route in routes:
            if isinstance(route, HTTPRouteHandler):
                route.responses = {**PROBLEM_RESPONSES, **(route.responses or {})}
