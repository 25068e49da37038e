"""The small error tree every service raises; `shared.problems` maps it to RFC 9457 responses.

Domain code raises these and never an HTTP exception, so the rules stay free of the framework.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import msgspec


class FieldError(msgspec.Struct, frozen=True):
    """One offending input: `field` is a dotted path into the request (`periods[2].end_date`)."""

    field: str
    message: str


class ServiceError(Exception):
    """An error with a stable machine-readable `code` and the HTTP status it stands for."""

    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        errors: Sequence[FieldError] | Sequence[dict[str, Any]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code
        self.errors = list(errors)
        self.headers = headers or {}


class InvalidRequest(ServiceError):
    status = 422
    default_code = "invalid_request"
    title = "Invalid request"


class Unauthenticated(ServiceError):
    status = 401
    default_code = "unauthenticated"
    title = "Unauthenticated"


class Forbidden(ServiceError):
    status = 403
    default_code = "forbidden"
    title = "Forbidden"


class NotFound(ServiceError):
    status = 404
    default_code = "not_found"
    title = "Not found"


class Conflict(ServiceError):
    status = 409
    default_code = "conflict"
    title = "Conflict"


class Gone(ServiceError):
    """It existed and is over for good: a used, withdrawn or expired single-use link."""

    status = 410
    default_code = "gone"
    title = "Gone"


class PayloadTooLarge(ServiceError):
    status = 413
    default_code = "payload_too_large"
    title = "Payload too large"


class TooManyRequests(ServiceError):
    status = 429
    default_code = "rate_limited"
    title = "Too many requests"


class ServiceUnavailable(ServiceError):
    status = 503
    default_code = "service_unavailable"
    title = "Service unavailable"
