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
    accepted_request_id,
    configure_logging,
    current_request_id,
    request_context,
)
from shared.worker import carrying_request_id

SECRET = "unit-secret-" + "x" * 40


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

    client = ServiceClient(
        caller="booking",
        target="registry",
        settings=Settings.from_env({"COMMONROOM_SECRET": SECRET}),
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
