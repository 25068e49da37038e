"""The booking pages' rules without I/O: the form read into a booking, the booking service's
refusals put back beside the fields in words, and the list split into its sections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec

from services.web.domain.bookings import (
    BOOKING_ROLES,
    Listed,
    explain_refusal,
    form_times,
    may_cancel,
    may_record_attendance,
    place_of,
    read_booking_form,
    refusal_words,
    sections,
)
from services.web.domain.navigation import navigation
from services.web.i18n import load_catalogues
from shared.contracts import Rules

SHANGHAI = ZoneInfo("Asia/Shanghai")
DASH = "\N{EN DASH}"
ROOM = "11111111-1111-1111-1111-111111111111"
PROJECTOR = "22222222-2222-2222-2222-222222222222"
# Every refusal code of API.md § Booking, and the others a booking form can meet.
REFUSAL_CODES = (
    "outside_opening_hours",
    "too_short",
    "too_long",
    "not_on_slot",
    "too_soon",
    "too_far",
    "over_capacity",
    "mixed_venues",
    "unknown_resource",
    "conflict",
    "fair_use_exceeded",
    "rate_limited",
    "invalid_rrule",
    "too_many_occurrences",
    "idempotency_key_reused",
    "forbidden",
    "invalid_request",
)


def _form(**fields: str | list[str]) -> dict[str, list[str]]:
    base: dict[str, str | list[str]] = {
        "resource_ids": [ROOM],
        "date": "2026-12-10",
        "start_time": "18:00",
        "end_time": "20:00",
        "purpose": "书法课",
    }
    base.update(fields)
    return {k: v if isinstance(v, list) else [v] for k, v in base.items()}


def test_a_typed_date_and_times_are_read_in_the_venue_zone() -> None:
    draft, problems = read_booking_form(
        _form(resource_ids=[ROOM, PROJECTOR], programme="elderly", attendees="25"), SHANGHAI
    )
    assert problems == []
    assert draft is not None
    assert draft.start == datetime(2026, 12, 10, 18, 0, tzinfo=SHANGHAI)
    body = draft.body()
    assert body["start"] == "2026-12-10T18:00:00+08:00"
    assert body["end"] == "2026-12-10T20:00:00+08:00"
    assert body["resource_ids"] == [ROOM, PROJECTOR]
    assert body["programme"] == "elderly"
    assert body["attendees"] == 25
    assert "series" not in body


def test_the_week_grids_instants_are_taken_and_shown_as_typed_fields() -> None:
    start, end = "2026-12-10T18:00:00+08:00", "2026-12-10T19:00:00+08:00"
    fields = {"resource_ids": [ROOM], "start": [start], "end": [end], "purpose": ["课"]}
    draft, problems = read_booking_form(fields, SHANGHAI)
    assert problems == []
    assert draft is not None
    assert draft.end - draft.start == timedelta(hours=1)
    typed = form_times(datetime.fromisoformat(start), datetime.fromisoformat(end), SHANGHAI)
    assert typed == {"date": "2026-12-10", "start_time": "18:00", "end_time": "19:00"}
    assert (
        form_times(
            datetime.fromisoformat("2026-12-10T18:00"),
            datetime.fromisoformat("2026-12-10T19:00"),
            SHANGHAI,
        )
        == {}
    )


def test_a_weekly_repeat_becomes_an_rrule_until_a_date_or_for_a_count() -> None:
    until, _ = read_booking_form(
        _form(repeat="weekly", until="2027-01-14", mode="all_or_nothing"), SHANGHAI
    )
    assert until is not None
    assert until.body()["series"] == {
        "rrule": "FREQ=WEEKLY;UNTIL=20270114T235959",
        "mode": "all_or_nothing",
    }
    counted, _ = read_booking_form(_form(repeat="weekly", count="6"), SHANGHAI)
    assert counted is not None
    assert counted.body()["series"] == {"rrule": "FREQ=WEEKLY;COUNT=6", "mode": "skip_conflicts"}


def test_each_wrong_field_is_named() -> None:
    draft, problems = read_booking_form(
        _form(
            date="next thursday",
            start_time="6pm",
            purpose="",
            attendees="many",
            programme="karaoke",
            repeat="weekly",
            count="500",
        ),
        SHANGHAI,
    )
    assert draft is None
    assert {p.field for p in problems} == {
        "date",
        "start_time",
        "purpose",
        "attendees",
        "programme",
        "count",
    }
    _, backwards = read_booking_form(_form(start_time="20:00", end_time="18:00"), SHANGHAI)
    assert [p.field for p in backwards] == ["end_time"]
    _, no_end = read_booking_form(_form(repeat="weekly"), SHANGHAI)
    assert [p.field for p in no_end] == ["until"]
    _, early = read_booking_form(_form(repeat="weekly", until="2026-12-01"), SHANGHAI)
    assert [p.field for p in early] == ["until"]


def test_every_refusal_code_has_words_of_its_own_in_both_languages() -> None:
    catalogues = load_catalogues()
    general = refusal_words("invalid_request")
    for code in REFUSAL_CODES:
        words = refusal_words(code)
        assert words != code
        assert code == "invalid_request" or words != general, code
        for locale in ("zh-CN", "en"):
            assert catalogues[locale].gettext(words), (code, locale)
        assert catalogues["zh-CN"].gettext(words) != words, code


def test_a_conflict_says_when_the_other_booking_holds_the_room() -> None:
    errors = [
        {
            "field": "resource_ids",
            "message": f"booking b1 holds {ROOM} from 2026-12-10T17:30:00+08:00 "
            "to 2026-12-10T19:00:00+08:00",
        }
    ]
    problems, failures = explain_refusal(
        "conflict", errors, "taken", rules=Rules(), capacity=None, zone=SHANGHAI, locale="zh-CN"
    )
    assert failures == []
    [problem] = problems
    assert problem.field == "start_time"
    assert problem.params == {"when": f"12月10日周四 17:30{DASH}19:00"}
    english, _ = explain_refusal(
        "conflict", errors, "taken", rules=Rules(), capacity=None, zone=SHANGHAI, locale="en"
    )
    assert english[0].params == {"when": f"Thu, Dec 10 17:30{DASH}19:00"}


def test_a_rule_refusal_quotes_the_rooms_rule_in_the_readers_words() -> None:
    rules = Rules(min_minutes=60, lead_minutes=24 * 60, horizon_days=90)
    soon, _ = explain_refusal(
        "too_soon", [], "", rules=rules, capacity=30, zone=SHANGHAI, locale="zh-CN"
    )
    assert soon[0].field == "date"
    assert soon[0].params == {"ahead": "24小时"}
    short, _ = explain_refusal(
        "too_short", [], "", rules=rules, capacity=30, zone=SHANGHAI, locale="en"
    )
    assert (short[0].field, short[0].params) == ("end_time", {"minutes": "60"})
    full, _ = explain_refusal(
        "over_capacity", [], "", rules=rules, capacity=30, zone=SHANGHAI, locale="en"
    )
    assert (full[0].field, full[0].params) == ("attendees", {"capacity": "30"})
    share, _ = explain_refusal(
        "fair_use_exceeded",
        [],
        "the organisation holds 40 of its 40 hours at this venue in the week from 2026-12-07",
        rules=rules,
        capacity=30,
        zone=SHANGHAI,
        locale="zh-CN",
    )
    assert share[0].params == {"week": "2026年12月7日星期一"}
    unknown, _ = explain_refusal(
        "something_new", [], "", rules=rules, capacity=30, zone=SHANGHAI, locale="en"
    )
    assert (unknown[0].field, unknown[0].message) == ("form", refusal_words("invalid_request"))


def test_a_repeat_refused_as_a_whole_lists_each_failing_date_in_words() -> None:
    errors = [
        {
            "field": "series",
            "message": "conflict: 2026-12-17T18:00:00+08:00 to 2026-12-17T20:00:00+08:00",
        },
        {
            "field": "series",
            "message": "outside_opening_hours: 2026-12-24T18:00:00+08:00 to "
            "2026-12-24T20:00:00+08:00",
        },
    ]
    problems, failures = explain_refusal(
        "conflict", errors, "", rules=Rules(), capacity=None, zone=SHANGHAI, locale="zh-CN"
    )
    assert [p.field for p in problems] == ["repeat"]
    assert [f.when for f in failures] == [
        f"12月17日周四 18:00{DASH}20:00",
        f"12月24日周四 18:00{DASH}20:00",
    ]
    assert [f.reason for f in failures] == ["taken by another booking", "the room is closed then"]


def _booking(start: datetime, *, status: str = "confirmed", hours: int = 2) -> Listed:
    return Listed(
        id=f"{status}-{start.isoformat()}",
        resource_ids=[ROOM],
        venue_id="v1",
        org="cec-chengdong",
        start=start,
        end=start + timedelta(hours=hours),
        status=status,
        purpose="课",
    )


def test_the_list_splits_into_upcoming_past_and_cancelled() -> None:
    now = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
    later = _booking(now + timedelta(days=2))
    soon = _booking(now + timedelta(days=1), status="pending")
    running = _booking(now - timedelta(hours=1))
    ended = _booking(now - timedelta(days=3))
    cancelled = _booking(now + timedelta(days=5), status="cancelled")
    rejected = _booking(now - timedelta(days=5), status="rejected")
    split = sections([later, soon, running, ended, cancelled, rejected], now)
    assert split.upcoming == [running, soon, later]
    assert split.past == [ended]
    assert split.cancelled == [cancelled, rejected]
    assert may_cancel(soon, now)
    assert not may_cancel(ended, now)
    assert not may_cancel(cancelled, now)
    assert may_record_attendance(ended, now)
    assert not may_record_attendance(running, now)
    assert not may_record_attendance(_booking(now - timedelta(days=3), status="pending"), now)


def test_a_row_names_its_rooms_and_venue() -> None:
    booking = _booking(datetime(2026, 12, 10, 10, tzinfo=UTC))
    booking = msgspec.structs.replace(booking, resource_ids=[ROOM, PROJECTOR])
    names = {ROOM: "书法教室", PROJECTOR: "投影仪"}
    assert (
        place_of(booking, names, {"v1": "城东社区教育中心"})
        == "书法教室、投影仪 · 城东社区教育中心"
    )


def test_the_roles_that_book_find_the_bookings_in_the_navigation() -> None:
    for role in ("office", "venue_manager", "community_manager", "lecturer"):
        paths = [item.path for item in navigation(role)]
        assert ("/bookings" in paths) == (role in BOOKING_ROLES), role
