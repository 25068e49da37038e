"""What an operator sees of a running service: JSON logs, a request id, Prometheus metrics.

- Logs: one JSON object per line on stderr (`configure_logging`), so a log shipper needs no parser
  per service. Each line carries the service and, while one is current, the request id.
- Request id: `RequestObservability` takes the caller's `X-Request-ID` (or makes one), keeps it in
  a context variable for the request's duration and echoes it in the response. `ServiceClient`
  forwards it to the services it calls, the outbox stores it in each event it records, and the
  worker runs the event's handler under it: one id follows a request across HTTP and the queue.
- Metrics: `ServiceMetrics`, one registry per app (tests build many apps in one process), rendered
  at `GET /metrics` by `shared.web`.
- Secrets: some URLs are credentials (invitations, password resets, one-click offer links, feeds).
  `without_tokens` cuts their tokens out of every path a log line shows; no header is logged.
"""

from __future__ import annotations

import logging
import re
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from time import perf_counter
from typing import Any, TextIO

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from shared.config import ServiceName

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_HEADER_KEY = REQUEST_ID_HEADER.lower().encode()
# Short and visible ASCII only: the id is echoed in a header and written into every log line, so
# a caller must not be able to smuggle in line breaks, control bytes or a megabyte of text.
_ACCEPTED_REQUEST_ID = re.compile(rb"[!-~]{1,64}")
# Where a request matched no route (404, 405) it has no template; the raw path would let any
# client mint new label values, so all such requests share one.
UNMATCHED_ROUTE = "unmatched"
# The same reasoning for methods: a client may send any token as its method.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Most of our requests take milliseconds: finer buckets low down than prometheus_client's default.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_current_request_id: ContextVar[str | None] = ContextVar("commonroom_request_id", default=None)
_request_log = logging.getLogger("commonroom.request")


# Paths whose next segment is a token, not an id: the lecturers' one-click offer links, identity's
# invitations and password resets, and the web pages that carry the same tokens. Matched anywhere
# in a text (a whole URL in an HTTP client's log line too), whatever the case and the slashes.
_TOKEN_PATHS = (
    ("v1", "offer-links"),
    ("v1", "invitations"),
    ("v1", "password-reset"),
    ("offers", "links"),
    ("invite",),
    ("reset",),
)
_TOKEN_IN_PATH = re.compile(
    # The look-ahead is for speed (this runs on every request): most slashes start none of them.
    "(/(?=["
    + "".join(sorted({segments[0][0] for segments in _TOKEN_PATHS}))
    + "])(?:"
    + "|".join("/+".join(map(re.escape, segments)) for segments in _TOKEN_PATHS)
    + r")/+)([^/?#\s\"'<>]+)",
    re.IGNORECASE,
)
_TOKEN_IN_QUERY = re.compile(r"([?&;]token=)([^&;#\s\"'<>]+)", re.IGNORECASE)
# An invitation is withdrawn by its id (`DELETE /v1/invitations/{id}`), a UUID: that stays.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_CUT_OUT = "{token}"


def _cut_path_token(found: re.Match[str]) -> str:
    prefix, segment = found.groups()
    if _UUID.fullmatch(segment) and "invitations" in prefix.lower():
        return found.group()
    return prefix + _CUT_OUT


def without_tokens(text: str) -> str:
    """`text` (a path, a URL or a log message holding them) with the token of each token-bearing
    path, and each `token=` query parameter, replaced by `{token}`: a log line is read by more
    people than may accept an invitation or answer an offer."""
    text = _TOKEN_IN_PATH.sub(_cut_path_token, text)
    if "=" in text:  # a request's path holds no query string: the request log skips this
        text = _TOKEN_IN_QUERY.sub(lambda found: found.group(1) + _CUT_OUT, text)
    return text


def current_request_id() -> str | None:
    """The id of the request (or queue job) this code runs for, if any."""
    return _current_request_id.get()


@contextmanager
def request_context(request_id: str | None) -> Iterator[None]:
    """Run a block under `request_id` (a queue job under the id of the request that caused it)."""
    token = _current_request_id.set(request_id)
    try:
        yield
    finally:
        _current_request_id.reset(token)


def new_request_id() -> str:
    return secrets.token_hex(16)


def accepted_request_id(offered: bytes | None) -> str:
    """The caller's request id where it is a short run of visible ASCII, else a new one."""
    if offered is not None and _ACCEPTED_REQUEST_ID.fullmatch(offered):
        return offered.decode("ascii")
    return new_request_id()


# What every LogRecord has; anything else on a record came in through `extra=` and is logged too,
# except uvicorn's `color_message`, its message again with terminal colour codes.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, None, None, None))) | {
    "message",
    "asctime",
    "color_message",
}


# A value msgspec cannot encode (in a record's `extra`) is logged as its str() rather than lost.
_encode_json = msgspec.json.Encoder(enc_hook=str).encode


def _log_entry(
    *, logged_at: datetime, level: str, logger: str, message: str, service: ServiceName
) -> dict[str, Any]:
    """The fields every log line starts with, whichever way it is written."""
    entry: dict[str, Any] = {
        "time": logged_at,
        "level": level,
        "logger": logger,
        "message": message,
        "service": service,
    }
    request_id = _current_request_id.get()
    if request_id is not None:
        entry["request_id"] = request_id
    return entry


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339, UTC), level, logger, message, service,
    request_id (when one is current), the record's `extra` fields, and exception text.

    The request id is read when the record is formatted, so the handler must format in the thread
    that logs (a StreamHandler does; a QueueHandler's listener thread would not see it).
    """

    def __init__(self, service: ServiceName) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = _log_entry(
            logged_at=datetime.fromtimestamp(record.created, UTC),
            level=record.levelname,
            logger=record.name,
            message=without_tokens(record.getMessage()),
            service=self.service,
        )
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES:
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = without_tokens(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return _encode_json(entry).decode()


def configure_logging(service: ServiceName, level: int = logging.INFO) -> None:
    """Send every logger of the process (ours, uvicorn's, arq's: all propagate to the root) to
    stderr as JSON lines. Called once by `commonroom serve` and `commonroom worker`."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(service))
    logging.basicConfig(handlers=[handler], level=level, force=True)


class ServiceMetrics:
    """The Prometheus metrics of one service app, in a registry of its own.

    Request count and latency are recorded by `RequestObservability`; the two gauges are set just
    before each scrape by the /metrics handler, since they are read from Redis and the database.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "commonroom_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "commonroom_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by method and route.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "commonroom_queue_depth",
            "Jobs waiting on this service's arq queue.",
            registry=self.registry,
        )
        self.outbox_backlog = Gauge(
            "commonroom_outbox_backlog",
            "Events in this service's outbox not yet relayed to the queue.",
            registry=self.registry,
        )
        # prometheus_client's `labels()` validates and locks on every call; the label sets are few
        # and fixed, so each one's children are looked up once and kept.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._children[key] = children
        count, latency = children
        count.inc()
        latency.observe(seconds)

    def render(self) -> bytes:
        """The registry in the Prometheus text format (`prometheus_client.CONTENT_TYPE_LATEST`)."""
        return generate_latest(self.registry)


class RequestLog:
    """One JSON line per HTTP request on stderr, in the shape `JsonFormatter` gives every line:
    message `METHOD /path STATUS`, and the fields method, path, route, status, duration_ms.

    Written straight to the stream rather than through `logging`: making and dispatching a
    LogRecord cost ~45 us per request in the booking server under its benchmark's load, against
    ~11 us for this, out of ~500 us for a whole booking. It still follows the logging
    configuration as far as it matters: nothing is written unless the `commonroom.request` logger
    is enabled for INFO (`configure_logging` makes it so; under pytest it is not).
    """

    def __init__(self, service: ServiceName, stream: TextIO | None = None) -> None:
        self.service = service
        self._stream = stream  # None: sys.stderr as it is when a line is written

    def write(self, *, method: str, path: str, route: str, status: int, seconds: float) -> None:
        if not _request_log.isEnabledFor(logging.INFO):
            return
        path = without_tokens(path)
        entry = _log_entry(
            logged_at=datetime.now(UTC),
            level="INFO",
            logger=_request_log.name,
            message=f"{method} {path} {status}",
            service=self.service,
        )
        entry["method"] = method
        entry["path"] = path
        entry["route"] = route
        entry["status"] = status
        entry["duration_ms"] = round(seconds * 1000, 2)
        (self._stream or sys.stderr).write(_encode_json(entry).decode() + "\n")


class RequestObservability:
    """Pure ASGI middleware: the request id, one log line and the metrics of each HTTP request.

    It wraps the whole app, outside Litestar's router, so requests that match no route (404, 405)
    are counted and carry an id too; the route template is read from `scope["path_template"]`,
    which the router sets on a match, after the request has run. It is on the hot path of every
    request, so it does no more than the id, two clock reads, one log line and two metric updates.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, log: RequestLog) -> None:
        self.app = app
        self.metrics = metrics
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        offered = None
        for name, value in scope["headers"]:
            if name == _REQUEST_ID_HEADER_KEY:
                offered = value
                break
        request_id = accepted_request_id(offered)
        echoed = (_REQUEST_ID_HEADER_KEY, request_id.encode("ascii"))
        status = 500  # what the client gets where the app fails before it starts a response

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # A copy, not an append: a cached response's message may be sent again.
                message = {**message, "headers": [*message.get("headers", ()), echoed]}
            await send(message)

        token = _current_request_id.set(request_id)
        started = perf_counter()
        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            seconds = perf_counter() - started
            method = scope["method"] if scope["method"] in _KNOWN_METHODS else "other"
            route = scope.get("path_template", UNMATCHED_ROUTE)
            self.metrics.observe_request(method, route, status, seconds)
            self.log.write(
                method=method, path=scope["path"], route=route, status=status, seconds=seconds
            )
            _current_request_id.reset(token)
