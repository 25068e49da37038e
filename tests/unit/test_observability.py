"""JSON log lines, request ids and their way across HTTP calls and queue jobs, without I/O."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest
from arq.worker import func

from shared.config import Settings
from shared.events import Event, decode, encode
from shared.http import ServiceClient
from shared.observability import (
    JsonFormatter,
    RequestLog,
    RequestObservability,
    ServiceMetrics,
    accepted_request_id,
    configure_logging,
    current_request_id,
    request_context,
    without_tokens,
)
from shared.worker import carrying_request_id


def record(message: str, *args: Any, **extra: Any) -> logging.LogRecord:
    made = logging.LogRecord("commonroom.test", logging.WARNING, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_a_log_line_is_one_json_object_with_the_fields() -> None:
    line = JsonFormatter("booking").format(record("booked %s", "教室", status=201))
    assert "\n" not in line
    entry = msgspec.json.decode(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "commonroom.test"
    assert entry["message"] == "booked 教室"
    assert entry["service"] == "booking"
    assert entry["status"] == 201
    assert "request_id" not in entry
    assert "exception" not in entry
    logged_at = datetime.fromisoformat(entry["time"])
    assert logged_at.utcoffset() is not None
    assert logged_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_a_log_line_carries_the_current_request_id() -> None:
    with request_context("req-1"):
        line = JsonFormatter("registry").format(record("hello"))
    assert msgspec.json.decode(line)["request_id"] == "req-1"
    assert current_request_id() is None


def explode() -> None:
    raise ValueError("boom\nsecond line")


def test_a_log_line_carries_the_exception_text_on_the_same_line() -> None:
    try:
        explode()
    except ValueError:
        failed = logging.LogRecord(
            "commonroom.test", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    line = JsonFormatter("registry").format(failed)
    assert "\n" not in line
    exception = msgspec.json.decode(line)["exception"]
    assert exception.startswith("Traceback")
    assert "ValueError: boom\nsecond line" in exception


def test_an_extra_value_json_cannot_hold_is_logged_as_text() -> None:
    line = JsonFormatter("registry").format(record("odd", thing=object))
    assert msgspec.json.decode(line)["thing"] == str(object)


def test_an_extra_field_does_not_overwrite_the_service() -> None:
    line = JsonFormatter("registry").format(record("x", service="impostor"))
    assert msgspec.json.decode(line)["service"] == "registry"


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Put the root logger back as pytest had it after a test that configures logging."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_configure_logging_sends_uvicorns_lines_as_json(
    root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("lecturers")
    logging.getLogger("uvicorn.error").info("Started server process")
    lines = capsys.readouterr().err.splitlines()
    assert [msgspec.json.decode(line)["message"] for line in lines] == ["Started server process"]
    assert msgspec.json.decode(lines[0])["service"] == "lecturers"


@contextmanager
def request_log_level(level: int) -> Iterator[None]:
    logger = logging.getLogger("commonroom.request")
    kept = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(kept)


def log_a_request(stream: io.StringIO) -> None:
    RequestLog("booking", stream).write(
        method="POST", path="/v1/bookings", route="/v1/bookings", status=201, seconds=0.01234
    )


def test_the_request_log_writes_one_json_line_per_request() -> None:
    stream = io.StringIO()
    # INFO, as `configure_logging` leaves it in a served process.
    with request_log_level(logging.INFO), request_context("req-5"):
        log_a_request(stream)
    line = stream.getvalue()
    assert line.endswith("\n")
    assert line.count("\n") == 1
    entry = msgspec.json.decode(line)
    assert datetime.fromisoformat(entry.pop("time")).utcoffset() == timedelta(0)
    assert entry == {
        "level": "INFO",
        "logger": "commonroom.request",
        "message": "POST /v1/bookings 201",
        "service": "booking",
        "request_id": "req-5",
        "method": "POST",
        "path": "/v1/bookings",
        "route": "/v1/bookings",
        "status": 201,
        "duration_ms": 12.34,
    }


def test_the_request_log_is_silent_where_logging_turns_it_off() -> None:
    stream = io.StringIO()
    with request_log_level(logging.WARNING):
        log_a_request(stream)
    assert stream.getvalue() == ""


@pytest.mark.parametrize("offered", [b"abc-123", b"0123456789abcdef0123456789abcdef", b"~!:/"])
def test_a_short_printable_request_id_is_kept(offered: bytes) -> None:
    assert accepted_request_id(offered) == offered.decode()


@pytest.mark.parametrize(
    "offered",
    [None, b"", b"x" * 65, b"has space", b"line\nbreak", b"tab\t", b"\x00", "编号".encode()],
)
def test_a_missing_or_unfit_request_id_is_replaced_by_a_new_one(offered: bytes | None) -> None:
    made = accepted_request_id(offered)
    assert made != accepted_request_id(offered)
    assert len(made) == 32
    assert all(c in "0123456789abcdef" for c in made)


def event(**fields: Any) -> Event:
    return Event(
        id="e1", type="venue.created", source="registry", occurred_at=datetime.now(UTC), **fields
    )


def test_an_event_without_a_request_id_encodes_as_before_and_old_payloads_decode() -> None:
    plain = event(data={})
    assert b"request_id" not in encode(plain)
    old = msgspec.msgpack.encode(
        {
            "id": "e1",
            "type": "t",
            "source": "booking",
            "occurred_at": "2026-12-01T00:00:00Z",
            "data": {},
        }
    )
    assert decode(old).request_id is None
    assert decode(encode(event(data={}, request_id="r9"))).request_id == "r9"


async def test_a_service_client_forwards_the_current_request_id() -> None:
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("x-request-id"))
        return httpx.Response(200, json={})

    # No calling service: its credentials would ask identity first, and the id is the point here.
    client = ServiceClient(
        caller=None,
        target="registry",
        settings=Settings.from_env({}),
        transport=httpx.MockTransport(answer),
    )
    try:
        with request_context("req-7"):
            await client.request("GET", "/v1/areas")
        await client.request("GET", "/v1/areas")
    finally:
        await client.aclose()
    assert seen == ["req-7", None]


async def test_a_job_runs_under_the_request_id_it_was_enqueued_with() -> None:
    async def job(ctx: dict[str, Any], n: int) -> tuple[int, str | None]:
        return n, current_request_id()

    wrapped = carrying_request_id(func(job, name="job")).coroutine
    assert await wrapped({}, 1, origin_request_id="req-3") == (1, "req-3")
    assert await wrapped({}, 2) == (2, None)
    assert current_request_id() is None


# Shaped as the services make them: url-safe random text; a link's claim, a dot and its MAC.
INVITE = "Zx3k-9_QvL2mN8pR4tY7wA1sD6fG0hJ5kL3zX9cV2bN"
LINK = "kZQkMDE5MGMzYTItN2Q0MS03Y2MyLTlhMGUtNWIxZjJhM2M0ZDVl.b3xZ-_mac0123456789abcdefghijk"
INVITATION_ID = "0190c3a2-7d41-7cc2-9a0e-5b1f2a3c4d5e"


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        (f"/v1/offer-links/{LINK}", "/v1/offer-links/{token}"),
        (f"/v1/invitations/{INVITE}", "/v1/invitations/{token}"),
        (f"/v1/invitations/{INVITE}/accept", "/v1/invitations/{token}/accept"),
        (f"/v1/password-reset/{INVITE}", "/v1/password-reset/{token}"),
        (f"/invite/{INVITE}", "/invite/{token}"),
        (f"/reset/{INVITE}", "/reset/{token}"),
        (f"/offers/links/{LINK}", "/offers/links/{token}"),
        # A path that routes nowhere still carries the token: a mistyped one must not log it.
        (f"/V1/Offer-Links/{LINK}/", "/V1/Offer-Links/{token}/"),
        (f"//v1//invitations//{INVITE}/accept", "//v1//invitations//{token}/accept"),
    ],
)
def test_a_token_bearing_path_is_logged_with_its_token_cut_out(path: str, logged: str) -> None:
    assert without_tokens(path) == logged


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/invitations/{INVITATION_ID}",  # DELETE withdraws an invitation by its id
        f"/v1/invitations/{INVITATION_ID.upper()}",
        "/v1/invitations",
        "/v1/password-reset",
        "/reset",
        "/offers",
        f"/v1/offers/{INVITATION_ID}/accept",
        f"/v1/lecturers/{INVITATION_ID}/feed.ics",
        f"/v1/lecturers/{INVITATION_ID}/feed-token",
        "/v1/areas/朝阳区",
        "",
    ],
)
def test_ids_and_paths_without_a_token_are_logged_as_they_are(path: str) -> None:
    assert without_tokens(path) == path


@pytest.mark.parametrize(
    ("text", "logged"),
    [
        (
            f"/v1/lecturers/{INVITATION_ID}/feed.ics?token={INVITE}",
            f"/v1/lecturers/{INVITATION_ID}/feed.ics?token={{token}}",
        ),
        (f"/v1/x?lang=en&token={INVITE}&limit=5", "/v1/x?lang=en&token={token}&limit=5"),
        (f"/v1/x?TOKEN={INVITE}", "/v1/x?TOKEN={token}"),
        (f"/v1/x?token={INVITE}#top", "/v1/x?token={token}#top"),
        ("/v1/x?token_hint=1&mytoken=2", "/v1/x?token_hint=1&mytoken=2"),
    ],
)
def test_a_token_query_parameter_is_cut_out(text: str, logged: str) -> None:
    assert without_tokens(text) == logged


def test_a_whole_url_in_a_message_loses_its_token_and_keeps_the_rest() -> None:
    # The line httpx logs at INFO for each call a service makes (the web service's, one day).
    message = f'HTTP Request: GET http://id.example/v1/invitations/{INVITE} "HTTP/1.1 200 OK"'
    assert without_tokens(message) == (
        'HTTP Request: GET http://id.example/v1/invitations/{token} "HTTP/1.1 200 OK"'
    )


def fail(message: str) -> None:
    raise ValueError(message)


def test_a_log_line_and_its_exception_text_lose_the_tokens_they_hold() -> None:
    url = f"https://lecturers.example/v1/offer-links/{LINK}"
    try:
        fail(f"Client error '404 Not Found' for url '{url}'")
    except ValueError:
        failed = logging.LogRecord(
            "httpx", logging.ERROR, __file__, 1, "HTTP Request: POST %s", (url,), sys.exc_info()
        )
    line = JsonFormatter("web").format(failed)
    assert LINK not in line
    entry = msgspec.json.decode(line)
    assert entry["message"] == "HTTP Request: POST https://lecturers.example/v1/offer-links/{token}"
    assert "for url 'https://lecturers.example/v1/offer-links/{token}'" in entry["exception"]


async def test_a_request_is_logged_without_its_token_its_query_or_its_headers() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    scope: Any = {
        "type": "http",
        "method": "GET",
        "path": f"/v1/lecturers/{INVITATION_ID}/feed.ics",
        "query_string": f"token={INVITE}".encode(),
        "headers": [(b"authorization", f"Bearer {jwt}".encode()), (b"cookie", b"sid=s3cr3t")],
    }
    stream = io.StringIO()
    observed = RequestObservability(app, ServiceMetrics(), RequestLog("lecturers", stream))
    with request_log_level(logging.INFO):
        await observed(scope, receive, send)
        link_scope: Any = {**scope, "path": f"/v1/offer-links/{LINK}"}
        await observed(link_scope, receive, send)
    lines = [msgspec.json.decode(line) for line in stream.getvalue().splitlines()]
    assert [entry["path"] for entry in lines] == [
        f"/v1/lecturers/{INVITATION_ID}/feed.ics",  # the query string is never logged
        "/v1/offer-links/{token}",
    ]
    for secret in (INVITE, LINK, jwt, "Bearer", "s3cr3t"):
        assert secret not in stream.getvalue()
