"""The venue manager's desk as pure rules: who manages which venue, the approval queue, a
rejection's reason, the forms of a room and of an opening-hours period, the registry's refusals
put beside the fields, and the preview's days with holidays and make-up working days named."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from services.web.clients import (
    Booking,
    HoursDoc,
    Interval,
    ManagedVenue,
    PeriodDoc,
    ResourceDetail,
    Rules,
    SpanDoc,
)
from services.web.domain import hours_editor, resource_form
from services.web.domain.formatting import month_name
from services.web.domain.navigation import navigation
from services.web.domain.registry_errors import code_of, field_codes
from services.web.domain.venue_desk import awaiting, decision, managed, may_manage

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _venue(venue_id: str, org: str) -> ManagedVenue:
    return ManagedVenue(id=venue_id, name=venue_id, kind="school", owner_org=org)


def _booking(booking_id: str, venue_id: str, day: int) -> Booking:
    start = datetime(2026, 12, day, 18, tzinfo=SHANGHAI)
    return Booking(
        id=booking_id,
        resource_ids=["r"],
        venue_id=venue_id,
        org="centre",
        booked_by="u",
        start=start,
        end=start.replace(hour=19),
        status="pending",
        purpose="书法班",
    )


def test_a_venue_manager_manages_its_own_organisations_venues_and_the_office_all() -> None:
    venues = [_venue("a", "school-1"), _venue("b", "school-2"), _venue("c", "school-1")]
    assert [v.id for v in managed("venue_manager", "school-1", venues)] == ["a", "c"]
    assert [v.id for v in managed("office", "office", venues)] == ["a", "b", "c"]
    assert managed("community_manager", "school-1", venues) == []
    assert not may_manage("venue_manager", "school-2", venues[0])


def test_the_queue_holds_only_the_managers_venues_soonest_first() -> None:
    bookings = [_booking("late", "a", 20), _booking("elsewhere", "b", 8), _booking("soon", "a", 9)]
    assert [b.id for b in awaiting(bookings, ["a"])] == ["soon", "late"]


def test_a_rejection_needs_a_reason_and_an_approval_does_not() -> None:
    assert decision("approve", "  ") == (decision("approve", "")[0], None)
    assert decision("approve", "")[0] is not None
    assert decision("reject", "  ") == (None, "reason_required")
    made, problem = decision("reject", " 场地维修 ")
    assert problem is None
    assert made is not None
    assert made.reason == "场地维修"
    assert decision("reject", "x" * 501) == (None, "reason_too_long")
    assert decision("cancel", "")[1] == "invalid_request"


def test_venue_managers_and_the_office_find_the_desk_in_the_navigation() -> None:
    for role in ("venue_manager", "office"):
        paths = [item.path for item in navigation(role)]
        assert {"/approvals", "/venues", "/requests"} <= set(paths)
        assert paths[-1] == "/me"
    assert "/approvals" not in [item.path for item in navigation("community_manager")]


def test_a_month_is_named_in_the_readers_language() -> None:
    assert month_name("2027-03", "zh-CN") == "2027年3月"
    assert month_name("2027-03", "en") == "March 2027"


def test_the_room_form_reads_features_in_either_comma_and_rules_as_whole_numbers() -> None:
    body, errors = resource_form.resource_from_form(
        {
            "name": " 多功能厅 ",
            "type": "room",
            "capacity": "40",
            "features": "投影仪，白板、 钢琴, wifi",  # noqa: RUF001 - the full-width comma is the point
            "requires_approval": "true",
            "min_minutes": "60",
            "buffer_minutes": "15",
            "max_minutes": "",
        }
    )
    assert errors == {}
    assert body == {
        "name": "多功能厅",
        "type": "room",
        "capacity": 40,
        "features": ["投影仪", "白板", "钢琴", "wifi"],
        "requires_approval": True,
        "rules": {"min_minutes": 60, "buffer_minutes": 15},
        "part_of": None,  # a room of its own: null takes a room out of a hall
    }


def test_a_room_is_marked_part_of_another_room_of_its_venue_never_of_itself_or_equipment() -> None:
    body, _ = resource_form.resource_from_form({"name": "东半场", "type": "room", "part_of": "h1"})
    assert body is not None
    assert body["part_of"] == "h1"
    venue = [
        ResourceDetail(id="h1", venue_id="v", name="体育馆", type="room"),
        ResourceDetail(id="e1", venue_id="v", name="投影仪", type="equipment"),
        ResourceDetail(id="r1", venue_id="v", name="东半场", type="room", part_of="h1"),
    ]
    assert [hall.id for hall in resource_form.halls_for("r1", venue)] == ["h1"]
    assert [hall.id for hall in resource_form.halls_for(None, venue)] == ["r1", "h1"]
    assert resource_form.form_of(venue[2])["part_of"] == "h1"
    assert code_of("part_of must name another room of the same venue") == "hall_elsewhere"
    assert code_of("a room cannot be part of itself or of its own parts") == "hall_cycle"


def test_the_room_form_names_each_field_it_cannot_read() -> None:
    body, errors = resource_form.resource_from_form(
        {"name": "", "type": "hall", "capacity": "many", "lead_minutes": "1.5"}
    )
    assert body is None
    assert errors == {
        "name": "required",
        "type": "required",
        "capacity": "not_a_count",
        "lead_minutes": "not_a_count",
    }


def test_an_edit_form_shows_every_rule_of_the_resource() -> None:
    resource = ResourceDetail(
        id="r",
        venue_id="v",
        name="报告厅",
        type="room",
        capacity=None,
        features=["piano"],
        rules=Rules(min_minutes=60, buffer_minutes=10),
    )
    form = resource_form.form_of(resource)
    assert form["capacity"] == ""
    assert form["min_minutes"] == "60"
    assert form["buffer_minutes"] == "10"
    assert form["max_minutes"] == "240"
    assert resource_form.resource_from_form(form)[0]["rules"]["max_minutes"] == 240  # type: ignore[index]


def test_the_registrys_refusals_land_beside_the_fields_of_the_period_sent() -> None:
    refused = [
        {"field": "periods[2].end_date", "message": "must not be before start_date"},
        {
            "field": "periods[2].spans",
            "message": "an open period needs spans (or set closed: true)",
        },
        {"field": "periods[2].spans[0].weekdays", "message": "must not be empty"},
        {"field": "periods[0].name", "message": "something else"},
        {"field": "$.rules.min_minutes", "message": "Expected `int` >= 1"},
    ]
    assert field_codes(refused, within="periods[2].") == {
        "end_date": "end_date_before_start",
        "spans": "spans_required",
        "spans[0].weekdays": "weekdays_required",
    }
    assert field_codes(refused)["rules.min_minutes"] == "too_small"
    assert resource_form.field_of("rules.min_minutes") == "min_minutes"


def test_a_period_form_becomes_the_registrys_period_and_back() -> None:
    form = {
        "name": ["秋季学期"],
        "start_date": ["2026-09-01"],
        "end_date": [""],
        "spans[0].weekdays": ["1", "2", "3", "4", "5", "12"],
        "spans[0].start": ["18:00"],
        "spans[0].end": ["21:00"],
        "spans[1].weekdays": [],
        "spans[1].start": [""],
        "spans[1].end": [""],
    }
    period, errors = hours_editor.period_from_form(form)
    assert errors == {}
    assert period == PeriodDoc(
        name="秋季学期",
        start_date="2026-09-01",
        end_date=None,
        spans=[SpanDoc(weekdays=[1, 2, 3, 4, 5], start="18:00", end="21:00")],
    )
    again = hours_editor.form_of(period)
    assert hours_editor.period_from_form(again)[0] == period


def test_a_period_form_names_what_it_cannot_read() -> None:
    period, errors = hours_editor.period_from_form(
        {
            "name": [""],
            "start_date": ["1 September"],
            "end_date": ["2026-13-01"],
            "spans[0].weekdays": ["1"],
            "spans[0].start": ["6pm"],
            "spans[0].end": [""],
        }
    )
    assert period is None
    assert errors == {
        "name": "required",
        "start_date": "not_a_date",
        "end_date": "not_a_date",
        "spans[0].start": "not_a_time",
        "spans[0].end": "required",
    }


def test_a_closure_is_a_closed_period_added_at_the_end_or_put_in_place() -> None:
    term = PeriodDoc(name="term", start_date="2026-09-01", end_date="2027-01-20")
    hours = HoursDoc(periods=[term], public_holidays="closed")
    closure, _ = hours_editor.period_from_form(
        {
            "name": ["校庆"],
            "start_date": ["2026-12-09"],
            "end_date": ["2026-12-09"],
            "closed": ["true"],
        }
    )
    assert closure is not None
    assert closure.closed
    added, at = hours_editor.with_period(hours, closure, None)
    assert (at, added.periods) == (1, [term, closure])
    replaced, at = hours_editor.with_period(added, term, 1)
    assert (at, replaced.periods) == (1, [term, term])
    assert hours_editor.without_period(added, 0).periods == [closure]
    assert hours_editor.with_public_holidays(hours, "open") == HoursDoc(
        periods=[term], public_holidays="open"
    )
    assert hours_editor.with_public_holidays(hours, "sometimes") is None


def test_the_preview_names_national_day_and_the_make_up_saturday_in_both_languages() -> None:
    chinese = hours_editor.named_days("CN", {2026}, "zh-CN")
    english = hours_editor.named_days("CN", {2026}, "en")
    assert chinese.holidays[date(2026, 10, 1)] == "国庆节"
    assert english.holidays[date(2026, 10, 1)] == "National Day"
    assert date(2026, 10, 10) in chinese.workdays  # a Saturday worked for the holiday week
    opened = [
        Interval(  # Friday evening past midnight, into Saturday
            start=datetime(2026, 10, 9, 22, tzinfo=SHANGHAI),
            end=datetime(2026, 10, 10, 1, tzinfo=SHANGHAI),
        ),
        Interval(
            start=datetime(2026, 10, 10, 10, tzinfo=UTC),
            end=datetime(2026, 10, 10, 13, tzinfo=UTC),
        ),
    ]
    weeks = hours_editor.preview_weeks(date(2026, 9, 28), 2, SHANGHAI, opened, chinese)
    assert [len(week) for week in weeks] == [7, 7]
    first_of_october = weeks[0][3]
    assert (first_of_october.day, first_of_october.holiday, first_of_october.spans) == (
        date(2026, 10, 1),
        "国庆节",
        [],
    )
    saturday = weeks[1][5]
    assert saturday.day == date(2026, 10, 10)
    assert saturday.workday
    assert [(s.hour, e.hour) for s, e in saturday.spans] == [(0, 1), (18, 21)]
    assert all(s.tzinfo == SHANGHAI for s, _ in saturday.spans)
    assert [(s.hour, e.hour) for s, e in weeks[1][4].spans] == [(22, 0)]


def test_a_calendar_the_holidays_package_cannot_name_in_chinese_keeps_its_default_names() -> None:
    german = hours_editor.named_days("DE", {2026}, "zh-CN")
    assert german.holidays[date(2026, 10, 3)] == "German Unity Day"
    assert hours_editor.named_days("XX", {2026}, "en").holidays == {}


def test_periods_are_listed_with_weekdays_in_the_readers_language() -> None:
    hours = HoursDoc(
        periods=[
            PeriodDoc(
                name="term",
                start_date="2026-09-01",
                spans=[SpanDoc(weekdays=[1, 6, 7], start="08:30", end="17:00")],
            )
        ]
    )
    (row,) = hours_editor.period_rows(hours, "zh-CN")
    assert row.spans == [(["周一", "周六", "周日"], "08:30", "17:00")]
    assert row.end is None
    assert hours_editor.period_rows(hours, "en")[0].spans[0][0] == ["Mon", "Sat", "Sun"]
