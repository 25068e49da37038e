"""The base of every typed client one service keeps of another.

Calls carry the calling service's own token (its client-credentials grant at identity, renewed
before it expires) and the current request id (`X-Request-ID`), and have a timeout.
Reads, and writes that carry an Idempotency-Key, are retried a bounded number of times on a
transport error or a 502/503/504; any other write is tried once, since repeating it could do it
twice. When the other service cannot be reached the caller gets `ServiceUnavailable` with
`<service>_unavailable`, which its own clients see as a 503 with that code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, TypeVar

import httpx
import msgspec

from shared.config import ConfigurationError, ServiceName, Settings
from shared.errors import ServiceError, ServiceUnavailable
from shared.observability import REQUEST_ID_HEADER, current_request_id
from shared.web import MAX_IDS, MAX_LIMIT, Page

T = TypeVar("T")
RETRYABLE_STATUS = frozenset({502, 503, 504})
# A service token is renewed this long before it expires, so no call goes out on a dying one.
RENEW_BEFORE_SECONDS = 60.0


class _Grant(msgspec.Struct):
    access_token: str
    expires_in: float


class ServiceCredentials(httpx.Auth):
    """A service's own bearer token, from identity's client-credentials grant.

    Fetched on first use, shared by every call, renewed before it expires, and fetched anew once
    should a service answer 401 (identity revoked it, or rotated keys under it)."""

    def __init__(self, settings: Settings, client_id: ServiceName) -> None:
        if not settings.client_secret:
            raise ConfigurationError(
                f"COMMONROOM_CLIENT_SECRET is not set: the {client_id} service needs its client "
                "secret to call the other services"
            )
        self._client_id = client_id
        self._client_secret = settings.client_secret
        self._identity = httpx.AsyncClient(
            base_url=settings.service_url("identity"), timeout=settings.http_timeout_seconds
        )
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self._identity.aclose()

    async def token(self) -> str:
        async with self._lock:
            if self._token is None or time.monotonic() >= self._renew_at:
                await self._grant()
            assert self._token is not None
            return self._token

    async def _grant(self) -> None:
        asked = time.monotonic()
        try:
            response = await self._identity.post(
                "/v1/token",
                json={
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                },
            )
        except httpx.TransportError as exc:
            raise ServiceUnavailable(
                "the identity service cannot be reached for a service token",
                code="identity_unavailable",
            ) from exc
        if response.status_code != 200:
            raise ServiceUnavailable(
                f"identity refused this service's credentials ({response.status_code})",
                code="identity_unavailable",
            )
        grant = msgspec.json.decode(response.content, type=_Grant)
        self._token = grant.access_token
        self._renew_at = asked + max(grant.expires_in - RENEW_BEFORE_SECONDS, 0.0)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = f"Bearer {await self.token()}"
        response = yield request
        if response.status_code == 401:
            async with self._lock:
                self._token = None
            request.headers["Authorization"] = f"Bearer {await self.token()}"
            yield request


class RemoteError(ServiceError):
    """The other service answered with a problem; its status and code are kept.

    Callers map the codes they expect (a 404 becomes `unknown_resource`, say); one that escapes
    reaches the client as a 502, since the fault lies beyond this service.
    """

    status = 502
    title = "Bad gateway"

    def __init__(self, status: int, code: str, detail: str, errors: list[Any]) -> None:
        super().__init__(detail, code=code, errors=errors)
        self.remote_status = status


class ServiceClient:
    """HTTP to one service of the suite, on behalf of the service `caller` (or of whoever's
    token each request carries, where `caller` is None: the demo loader acts as many users)."""

    def __init__(
        self,
        *,
        caller: ServiceName | None,
        target: ServiceName,
        settings: Settings,
        retries: int = 2,
        backoff_seconds: float = 0.1,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.target = target
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        # Without a calling service, each request brings its own Authorization header.
        self._credentials = None if caller is None else ServiceCredentials(settings, caller)
        self._http = httpx.AsyncClient(
            base_url=settings.service_url(target),
            timeout=settings.http_timeout_seconds,
            auth=self._credentials,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._credentials is not None:
            await self._credentials.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request, retrying where that is safe; raise on a problem answer."""
        all_headers = dict(headers or {})
        request_id = current_request_id()
        if request_id is not None:
            all_headers.setdefault(REQUEST_ID_HEADER, request_id)
        content = None
        if body is not None:
            content = msgspec.json.encode(body)
            all_headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            all_headers["Idempotency-Key"] = idempotency_key
        safe = method in {"GET", "HEAD", "PUT", "DELETE"} or idempotency_key is not None
        attempts = 1 + (self.retries if safe else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = await self._http.request(
                    method, path, params=params, content=content, headers=all_headers
                )
            except httpx.TransportError as exc:
                if last:
                    raise self._unavailable() from exc
            else:
                if response.status_code not in RETRYABLE_STATUS or last:
                    return self._checked(response)
            await asyncio.sleep(self.backoff_seconds * 2**attempt)
        raise self._unavailable()  # pragma: no cover - the loop always returns or raises

    async def get(self, path: str, shape: type[T], **params: Any) -> T:
        response = await self.request("GET", path, params=params)
        return msgspec.json.decode(response.content, type=shape)

    async def every(self, path: str, item: type[T], **params: Any) -> list[T]:
        """Every item of one of the suite's lists, page after page (`?cursor=`)."""
        found: list[T] = []
        cursor: str | None = None
        while True:
            more = {"cursor": cursor} if cursor else {}
            page = await self.get(path, Page[item], limit=MAX_LIMIT, **params, **more)  # type: ignore[valid-type]
            found += page.items
            cursor = page.next_cursor
            if cursor is None:
                return found

    async def every_of(
        self, path: str, item: type[T], *, name: str, ids: Sequence[str], **params: Any
    ) -> list[T]:
        """Every item of a list filtered by ids (the query parameter `name`, repeated), asked
        for `MAX_IDS` ids at a time."""
        found: list[T] = []
        for first in range(0, len(ids), MAX_IDS):
            chunk = list(ids[first : first + MAX_IDS])
            found += await self.every(path, item, **{name: chunk}, **params)
        return found

    def _unavailable(self) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"the {self.target} service cannot be reached", code=f"{self.target}_unavailable"
        )

    def _checked(self, response: httpx.Response) -> httpx.Response:
        if response.status_code < 400:
            return response
        if response.status_code in RETRYABLE_STATUS:
            raise self._unavailable()
        try:
            problem = msgspec.json.decode(response.content)
        except msgspec.DecodeError:
            problem = {}
        if not isinstance(problem, dict):
            problem = {}
        raise RemoteError(
            response.status_code,
            str(problem.get("code", "remote_error")),
            str(problem.get("detail", response.reason_phrase)),
            list(problem.get("errors") or []),
        )
