"""The pure booking domain with plain values: the owners' rules, the buffer, the life of a booking,
who may do what, series expansion across DST, and free time."""

from __future__ import annotations

import itertools
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from types import FrameType
from typing import Any, Literal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from msgspec import UNSET

from services.booking.catalogue.reader import (
    KnownHours,
    covered_after,
    hours_to_read,
    month_window,
)
from services.booking.catalogue.store import HoursHeld
from services.booking.domain.availability import free_intervals, stretches_of
from services.booking.domain.bookings import (
    Bookable,
    BookingCreate,
    Refusal,
    Status,
    blocked,
    booking_org,
    ensure_attendance_allowed,
    ensure_may_approve,
    ensure_may_book,
    ensure_may_change,
    ensure_may_decide,
    ensure_visible,
    initial_status,
    inside,
    next_status,
    on_grid,
    refusals,
    refuse,
    visible_scope,
)
from services.booking.domain.series import MAX_OCCURRENCES, expand
from shared.auth import Principal, Role
from shared.contracts import ResourceType, Rules
from shared.errors import Conflict, FieldError, Forbidden, InvalidRequest, NotFound
from shared.time import Interval, merge

SHANGHAI = ZoneInfo("Asia/Shanghai")
KOLKATA = ZoneInfo("Asia/Kolkata")
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2027, 3, 1, tzinfo=UTC)
DAY = date(2027, 3, 3)


def local(hour: int, minute: int = 0, *, day: date = DAY, zone: ZoneInfo = SHANGHAI) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=zone)


def room(
    rules: Rules | None = None,
    *,
    resource_id: str = "r1",
    kind: ResourceType = ResourceType.ROOM,
    capacity: int | None = 30,
    zone: str = "Asia/Shanghai",
    requires_approval: bool = False,
) -> Bookable:
    return Bookable(
        id=resource_id,
        venue_id="v1",
        name=f"room {resource_id}",
        type=kind,
        capacity=capacity,
        requires_approval=requires_approval,
        rules=rules or Rules(),
        owner_org="org-v",
        timezone=zone,
    )


OPEN = {"r1": [Interval(local(8), local(22))]}


def field_errors(error: InvalidRequest) -> list[FieldError]:
    assert all(isinstance(item, FieldError) for item in error.errors)
    return [item for item in error.errors if isinstance(item, FieldError)]


def codes(
    interval: Interval,
    resources: list[Bookable],
    *,
    open_intervals: dict[str, list[Interval]] | None = None,
    attendees: int | None = None,
    now: datetime = NOW,
    override_hours: bool = False,
) -> list[str]:
    found = refusals(
        interval,
        resources,
        OPEN if open_intervals is None else open_intervals,
        attendees=attendees,
        now=now,
        override_hours=override_hours,
    )
    return [refusal.code for refusal in found]


# The owners' rules

# (rules, start, end, attendees, code): each breaks exactly one rule of an otherwise valid request.
ONE_RULE_BROKEN: list[tuple[Rules, datetime, datetime, int | None, str]] = [
    (Rules(), local(18), local(18, 15), None, "too_short"),
    (Rules(max_minutes=60), local(18), local(20), None, "too_long"),
    (Rules(slot_minutes=30), local(18, 15), local(20), None, "not_on_slot"),
    (Rules(slot_minutes=30), local(18), local(19, 45), None, "not_on_slot"),
    (Rules(lead_minutes=10 * 24 * 60), local(18), local(20), None, "too_soon"),
    (Rules(horizon_days=1), local(18), local(20), None, "too_far"),
    (Rules(), local(18), local(20), 31, "over_capacity"),
    (Rules(), local(21), local(23), None, "outside_opening_hours"),
    (Rules(), local(7, 45), local(9), None, "outside_opening_hours"),
]


@pytest.mark.parametrize(("rules", "start", "end", "attendees", "code"), ONE_RULE_BROKEN)
def test_each_rule_alone_gives_its_own_code(
    rules: Rules, start: datetime, end: datetime, attendees: int | None, code: str
) -> None:
    assert codes(Interval(start, end), [room(rules)], attendees=attendees) == [code]


@pytest.mark.parametrize(
    ("rules", "start", "end", "attendees", "now"),
    [
        pytest.param(Rules(), local(18), local(20), 20, NOW, id="ordinary"),
        pytest.param(Rules(), local(18), local(18, 30), None, NOW, id="exactly_min_minutes"),
        pytest.param(Rules(), local(18), local(22), None, NOW, id="exactly_max_minutes"),
        pytest.param(
            Rules(max_minutes=14 * 60), local(8), local(22), None, NOW, id="the_whole_open_day"
        ),
        pytest.param(Rules(), local(18), local(20), 30, NOW, id="exactly_the_capacity"),
        pytest.param(
            Rules(lead_minutes=120), local(18), local(20), None, local(16), id="exactly_the_lead"
        ),
        pytest.param(
            Rules(horizon_days=2),
            local(18),
            local(20),
            None,
            local(18) - timedelta(days=2),
            id="exactly_the_horizon",
        ),
    ],
)
def test_a_request_that_meets_every_rule_is_not_refused(
    rules: Rules, start: datetime, end: datetime, attendees: int | None, now: datetime
) -> None:
    assert codes(Interval(start, end), [room(rules)], attendees=attendees, now=now) == []


@pytest.mark.parametrize(
    ("rules", "start", "end", "attendees", "code"),
    [case for case in ONE_RULE_BROKEN if case[-1] != "outside_opening_hours"],
)
def test_override_hours_skips_only_the_opening_hours_check(
    rules: Rules, start: datetime, end: datetime, attendees: int | None, code: str
) -> None:
    assert codes(Interval(start, end), [room(rules)], attendees=attendees, override_hours=True) == [
        code
    ]


def test_override_hours_allows_a_booking_outside_the_opening_hours() -> None:
    late = Interval(local(21), local(23))
    assert codes(late, [room()]) == ["outside_opening_hours"]
    assert codes(late, [room()], override_hours=True) == []
    assert codes(late, [room()], open_intervals={}, override_hours=True) == []


def test_equipment_ignores_capacity_and_so_does_a_room_without_one() -> None:
    interval = Interval(local(18), local(20))
    assert codes(interval, [room(kind=ResourceType.EQUIPMENT, capacity=5)], attendees=500) == []
    assert codes(interval, [room(capacity=None)], attendees=500) == []
    assert codes(interval, [room(capacity=5)], attendees=6) == ["over_capacity"]


def test_every_resource_of_a_booking_is_checked_against_its_own_rules_and_hours() -> None:
    small = room(resource_id="r2", capacity=10)
    interval = Interval(local(18), local(20))
    found = refusals(interval, [room(), small], OPEN, attendees=20, now=NOW, override_hours=False)
    assert [(refusal.code, refusal.message) for refusal in found] == [
        ("over_capacity", "room r2 holds 10 people"),
        ("outside_opening_hours", "room r2 is not open all that time"),
    ]


def test_refusals_come_in_the_order_a_client_fixes_them_and_refuse_uses_the_first() -> None:
    # 15 minutes, off the grid, both too soon and too far, too many people, after closing.
    rules = Rules(lead_minutes=100 * 24 * 60, horizon_days=1)
    interval = Interval(local(21, 50), local(22, 5))
    found = refusals(interval, [room(rules)], OPEN, attendees=31, now=NOW, override_hours=False)
    assert [refusal.code for refusal in found] == [
        "too_short",
        "not_on_slot",
        "too_soon",
        "too_far",
        "over_capacity",
        "outside_opening_hours",
    ]
    error = refuse(found)
    assert isinstance(error, InvalidRequest)
    assert error.status == 422
    assert error.code == "too_short"
    assert error.detail == found[0].message
    assert [(item.field, item.message) for item in field_errors(error)] == [
        (refusal.field, f"{refusal.code}: {refusal.message}") for refusal in found
    ]
    assert [item.field for item in field_errors(error)] == [
        "end",
        "start",
        "start",
        "start",
        "attendees",
        "start",
    ]


def test_refuse_of_a_single_refusal_lists_just_it() -> None:
    error = refuse([Refusal("too_far", "room: book at most 1 days ahead")])
    assert error.code == "too_far"
    assert field_errors(error) == [FieldError("start", "too_far: room: book at most 1 days ahead")]


# The slot grid is the venue's wall clock


@pytest.mark.parametrize(
    ("instant", "zone", "slot", "expected"),
    [
        (local(18, zone=KOLKATA), "Asia/Kolkata", 30, True),  # 12:30 UTC
        (local(18, zone=KOLKATA), "Asia/Kolkata", 60, True),  # off an hourly grid in UTC
        (local(18, 30, zone=KOLKATA), "Asia/Kolkata", 60, False),  # 13:00 UTC, on it in UTC
        (local(18, 15, zone=KOLKATA), "Asia/Kolkata", 30, False),
        (datetime(2027, 3, 3, 12, 15, tzinfo=UTC), "Asia/Kathmandu", 30, True),  # 18:00 +05:45
        (datetime(2027, 3, 3, 12, 30, tzinfo=UTC), "Asia/Kathmandu", 30, False),  # 18:15 +05:45
        (local(18, zone=KOLKATA) + timedelta(seconds=1), "Asia/Kolkata", 30, False),
        (local(18, zone=KOLKATA) + timedelta(microseconds=1), "Asia/Kolkata", 30, False),
        # After the spring change in Berlin the grid still counts from local midnight.
        (datetime(2027, 3, 28, 1, tzinfo=UTC), "Europe/Berlin", 60, True),  # 03:00 CEST
        (datetime(2027, 3, 28, 1, 30, tzinfo=UTC), "Europe/Berlin", 60, False),
    ],
)
def test_the_slot_grid_is_counted_in_the_venue_wall_clock(
    instant: datetime, zone: str, slot: int, expected: bool
) -> None:
    assert on_grid(instant, zone, slot) is expected


def test_a_kolkata_room_with_hourly_slots_takes_18_00_local_given_in_utc() -> None:
    kolkata_room = room(Rules(slot_minutes=60), zone="Asia/Kolkata")
    opening = {"r1": [Interval(local(8, zone=KOLKATA), local(22, zone=KOLKATA))]}
    on_the_hour = Interval(
        datetime(2027, 3, 3, 12, 30, tzinfo=UTC), datetime(2027, 3, 3, 13, 30, tzinfo=UTC)
    )
    on_the_utc_hour = Interval(
        datetime(2027, 3, 3, 12, tzinfo=UTC), datetime(2027, 3, 3, 13, tzinfo=UTC)
    )
    assert codes(on_the_hour, [kolkata_room], open_intervals=opening) == []
    assert codes(on_the_utc_hour, [kolkata_room], open_intervals=opening) == ["not_on_slot"]


def test_inside_needs_one_open_interval_to_hold_all_of_it() -> None:
    morning, evening = Interval(local(8), local(12)), Interval(local(14), local(22))
    assert inside(Interval(local(8), local(12)), [morning, evening])
    assert inside(Interval(local(15), local(16)), [morning, evening])
    assert not inside(Interval(local(11), local(15)), [morning, evening])
    assert not inside(Interval(local(13), local(14)), [morning, evening])
    assert not inside(Interval(local(9), local(10)), [])


# The buffer

BASE = datetime(2027, 3, 3, tzinfo=UTC)


def span(start: int, end: int) -> Interval:
    return Interval(BASE + timedelta(minutes=start), BASE + timedelta(minutes=end))


bookings = st.builds(
    lambda start, length: span(start, start + length), st.integers(0, 600), st.integers(1, 240)
)


@given(a=bookings, b=bookings, buffer=st.integers(0, 180))
def test_blocked_stretches_are_apart_exactly_when_the_bookings_are_a_buffer_apart(
    a: Interval, b: Interval, buffer: int
) -> None:
    need = timedelta(minutes=buffer)
    apart = b.start - a.end >= need or a.start - b.end >= need
    assert blocked(a, buffer).overlaps(blocked(b, buffer)) is not apart
    assert blocked(b, buffer).overlaps(blocked(a, buffer)) is not apart


@given(start=st.integers(0, 600), first=st.integers(1, 240), second=st.integers(1, 240))
def test_touching_bookings_never_overlap_without_a_buffer(
    start: int, first: int, second: int
) -> None:
    earlier, later = span(start, start + first), span(start + first, start + first + second)
    assert blocked(earlier, 0) == earlier
    assert not blocked(earlier, 0).overlaps(blocked(later, 0))
    assert not blocked(later, 0).overlaps(blocked(earlier, 0))
    assert blocked(earlier, 1).overlaps(blocked(later, 1))


def test_the_blocked_stretch_is_the_booking_and_the_turnover_after_it() -> None:
    assert blocked(span(60, 120), 15) == span(60, 135)


# Moving a booking along

MOVES: dict[str, set[Status]] = {
    "approve": {Status.PENDING},
    "reject": {Status.PENDING},
    "cancel": {Status.PENDING, Status.CONFIRMED},
}
TARGETS = {"approve": Status.CONFIRMED, "reject": Status.REJECTED, "cancel": Status.CANCELLED}


@pytest.mark.parametrize(
    ("current", "action"), list(itertools.product(Status, ["approve", "reject", "cancel"]))
)
def test_only_the_allowed_moves_change_status(
    current: Status, action: Literal["approve", "reject", "cancel"]
) -> None:
    if current in MOVES[action]:
        assert next_status(current, action) is TARGETS[action]
    else:
        with pytest.raises(Conflict) as refused:
            next_status(current, action)
        assert refused.value.code == "invalid_transition"
        assert refused.value.status == 409


END = local(20)


@pytest.mark.parametrize("now", [END, END + timedelta(days=3)])
def test_attendance_is_recorded_for_a_confirmed_booking_once_it_has_ended(now: datetime) -> None:
    ensure_attendance_allowed(Status.CONFIRMED, END, now)  # does not raise


@pytest.mark.parametrize(
    ("status", "now"),
    [
        (Status.CONFIRMED, END - timedelta(microseconds=1)),
        (Status.CONFIRMED, END - timedelta(hours=3)),
        (Status.PENDING, END + timedelta(hours=1)),
        (Status.CANCELLED, END + timedelta(hours=1)),
        (Status.REJECTED, END + timedelta(hours=1)),
    ],
)
def test_attendance_before_the_end_or_of_an_unconfirmed_booking_is_refused(
    status: Status, now: datetime
) -> None:
    with pytest.raises(Conflict) as refused:
        ensure_attendance_allowed(status, END, now)
    assert refused.value.code == "invalid_transition"


def test_a_booking_is_pending_when_held_or_when_any_resource_needs_approval() -> None:
    free, guarded = room(), room(resource_id="r2", requires_approval=True)
    assert initial_status([free], hold=False) is Status.CONFIRMED
    assert initial_status([free], hold=True) is Status.PENDING
    assert initial_status([free, guarded], hold=False) is Status.PENDING
    assert initial_status([guarded], hold=True) is Status.PENDING


# Who may do what

OFFICE = Principal("office@commonroom", Role.OFFICE, "commonroom")
CM_A = Principal("cm@org-a", Role.COMMUNITY_MANAGER, "org-a")
CM_B = Principal("cm@org-b", Role.COMMUNITY_MANAGER, "org-b")
CM_V = Principal("cm@org-v", Role.COMMUNITY_MANAGER, "org-v")
VM_V = Principal("vm@org-v", Role.VENUE_MANAGER, "org-v")  # the venue's own manager
VM_A = Principal("vm@org-a", Role.VENUE_MANAGER, "org-a")  # manages venues of the booking's org
VM_X = Principal("vm@org-x", Role.VENUE_MANAGER, "org-x")
LECTURER = Principal("lecturer@org-a", Role.LECTURER, "org-a", lecturer_id="lecturer-1")
PRINCIPALS = {
    "office": OFFICE,
    "cm_a": CM_A,
    "cm_b": CM_B,
    "cm_v": CM_V,
    "vm_v": VM_V,
    "vm_a": VM_A,
    "vm_x": VM_X,
    "lecturer": LECTURER,
}


def request(**fields: Any) -> BookingCreate:
    return BookingCreate(
        resource_ids=["r1"], start=local(18), end=local(20), purpose="书法课", **fields
    )


# A booking of org-a at a venue of org-v. Seeing a booking is also the right to cancel it: the
# cancel route is guarded by ensure_visible (there is no separate ensure_may_cancel).
@pytest.mark.parametrize(
    ("who", "sees"),
    [
        ("office", True),
        ("cm_a", True),
        ("vm_v", True),
        ("vm_a", True),
        ("cm_b", False),
        ("cm_v", False),
        ("vm_x", False),
        ("lecturer", False),
    ],
)
def test_whoever_may_not_see_a_booking_gets_not_found(who: str, sees: bool) -> None:
    if sees:
        ensure_visible(PRINCIPALS[who], "org-a", "org-v")
    else:
        with pytest.raises(NotFound):
            ensure_visible(PRINCIPALS[who], "org-a", "org-v")


@given(
    org=st.sampled_from(["org-a", "org-b", "org-v"]),
    venue_org=st.sampled_from(["org-a", "org-v"]),
)
def test_a_lecturer_never_sees_a_booking_even_of_its_own_org(org: str, venue_org: str) -> None:
    with pytest.raises(NotFound):
        ensure_visible(LECTURER, org, venue_org)
    with pytest.raises(NotFound):
        ensure_may_decide(LECTURER, org, venue_org)


def test_the_list_scope_follows_the_role() -> None:
    assert visible_scope(OFFICE) == (None, None)
    assert visible_scope(CM_A) == ("org-a", None)
    assert visible_scope(VM_V) == ("org-v", "org-v")
    with pytest.raises(Forbidden):
        visible_scope(LECTURER)


@pytest.mark.parametrize(
    ("who", "error"),
    [
        ("office", None),
        ("vm_v", None),
        ("cm_a", Forbidden),  # sees its booking, but does not decide on it
        ("vm_a", Forbidden),  # manages venues, but not this one
        ("cm_b", NotFound),
        ("vm_x", NotFound),
        ("lecturer", NotFound),
    ],
)
def test_only_the_venue_manager_and_the_office_approve_or_reject(
    who: str, error: type[Exception] | None
) -> None:
    if error is None:
        ensure_may_decide(PRINCIPALS[who], "org-a", "org-v")
    else:
        with pytest.raises(error):
            ensure_may_decide(PRINCIPALS[who], "org-a", "org-v")


@pytest.mark.parametrize(
    ("who", "fields", "org"),
    [
        ("cm_a", {}, "org-a"),
        ("cm_a", {"org": "org-a"}, "org-a"),
        ("vm_v", {}, "org-v"),
        ("office", {}, "commonroom"),
        ("office", {"org": "org-b"}, "org-b"),
        ("office", {"hold": True, "org": "org-v"}, "org-v"),
    ],
)
def test_a_booking_belongs_to_the_callers_org_unless_the_office_names_another(
    who: str, fields: dict[str, Any], org: str
) -> None:
    assert booking_org(PRINCIPALS[who], request(**fields)) == org


@pytest.mark.parametrize(
    ("who", "fields"),
    [
        ("cm_a", {"org": "org-b"}),
        ("vm_v", {"org": "org-a"}),
        ("cm_a", {"hold": True}),
        ("cm_a", {"hold": True, "org": "org-a"}),
        ("vm_v", {"hold": True}),
        ("lecturer", {}),
    ],
)
def test_only_the_office_holds_or_books_for_another_org(who: str, fields: dict[str, Any]) -> None:
    with pytest.raises(Forbidden):
        booking_org(PRINCIPALS[who], request(**fields))


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        ("office", True),
        ("vm_v", True),
        ("vm_x", False),
        ("vm_a", False),
        ("cm_v", False),  # the owner org, but not its venue manager
        ("cm_a", False),
    ],
)
def test_override_hours_is_for_the_office_and_the_venues_own_manager(
    who: str, allowed: bool
) -> None:
    principal = PRINCIPALS[who]
    ensure_may_book(principal, request(), "org-v")  # without the override anyone may book
    if allowed:
        ensure_may_book(principal, request(override_hours=True), "org-v")
    else:
        with pytest.raises(Forbidden):
            ensure_may_book(principal, request(override_hours=True), "org-v")


LECTURER_SERVICE = Principal("lecturers", Role.SERVICE, "commonroom")


def test_a_service_makes_the_lecturer_services_calls_and_no_other_write() -> None:
    """API.md: a service's own token reads everything and makes the calls between services the
    contract names (holds, approvals, cancels), nothing else."""
    service = LECTURER_SERVICE
    assert booking_org(service, request(hold=True, org="org-v")) == "org-v"
    assert visible_scope(service) == (None, None)
    ensure_visible(service, "org-a", "org-v")  # so it may cancel
    ensure_may_approve(service, "org-a", "org-v")
    for refused in (ensure_may_decide, ensure_may_change):  # reject; attendance, a series
        with pytest.raises(Forbidden):
            refused(service, "org-a", "org-v")
    with pytest.raises(Forbidden):
        ensure_may_book(service, request(override_hours=True), "org-v")
    # Approving stays the venue's: the service's exception changes no one else's rights.
    with pytest.raises(Forbidden):
        ensure_may_approve(CM_A, "org-a", "org-v")
    ensure_may_change(CM_A, "org-a", "org-v")


def test_an_unset_org_is_the_callers() -> None:
    assert request().org is UNSET
    assert booking_org(CM_B, request()) == "org-b"


# Series


class _Expired(Exception):
    pass


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeoutError in the test's thread when `seconds` of wall time pass (POSIX)."""

    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise _Expired

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Expired:
        # Raised afresh: the interrupted frame's traceback can lack a line number.
        raise TimeoutError(f"took longer than {seconds} s") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


WEDNESDAY_EVENING = Interval(
    local(18, day=date(2027, 10, 20), zone=BERLIN), local(20, day=date(2027, 10, 20), zone=BERLIN)
)


def refused_rrule(text: str, first: Interval = WEDNESDAY_EVENING) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as refused:
        expand(text, first, BERLIN)
    assert [item.field for item in field_errors(refused.value)] == ["series.rrule"]
    return refused.value


def test_a_weekly_evening_stays_at_18_00_local_across_the_october_change() -> None:
    occurrences = expand("FREQ=WEEKLY;COUNT=3", WEDNESDAY_EVENING, BERLIN)
    in_berlin = [occurrence.in_zone(BERLIN) for occurrence in occurrences]
    assert [one.start.date() for one in in_berlin] == [
        date(2027, 10, 20),
        date(2027, 10, 27),
        date(2027, 11, 3),
    ]
    assert all(one.start.time() == time(18) and one.end.time() == time(20) for one in in_berlin)
    assert [one.start.utcoffset() for one in in_berlin] == [
        timedelta(hours=2),
        timedelta(hours=2),
        timedelta(hours=1),
    ]
    assert occurrences[2] == Interval(
        datetime(2027, 11, 3, 17, tzinfo=UTC), datetime(2027, 11, 3, 19, tzinfo=UTC)
    )
    assert occurrences[0] == WEDNESDAY_EVENING


@pytest.mark.parametrize(
    "text", ["FREQ=WEEKLY", "FREQ=DAILY;INTERVAL=2", "RRULE:FREQ=WEEKLY;BYDAY=MO"]
)
def test_a_rule_without_count_or_until_is_refused(text: str) -> None:
    assert refused_rrule(text).code == "invalid_rrule"


def test_at_most_200_occurrences() -> None:
    assert len(expand(f"FREQ=DAILY;COUNT={MAX_OCCURRENCES}", WEDNESDAY_EVENING, BERLIN)) == 200
    assert refused_rrule("FREQ=DAILY;COUNT=201").code == "too_many_occurrences"
    assert refused_rrule("FREQ=DAILY;UNTIL=20290101T000000Z").code == "too_many_occurrences"


def test_a_huge_count_is_refused_at_once() -> None:
    with time_limit(1.0):
        assert refused_rrule("FREQ=SECONDLY;COUNT=1000000").code == "too_many_occurrences"
        assert refused_rrule("FREQ=MINUTELY;COUNT=99999999999999999999").code == (
            "too_many_occurrences"
        )


@pytest.mark.parametrize(
    "text",
    [
        # Regression: dateutil walked day by day to year 9999, 4-8 s of CPU per request.
        "FREQ=DAILY;COUNT=2;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=DAILY;UNTIL=20280101T000000Z;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=HOURLY;COUNT=2;BYMONTH=4;BYMONTHDAY=31",
        "FREQ=MINUTELY;COUNT=2;BYMONTH=6;BYMONTHDAY=31",
        "FREQ=WEEKLY;COUNT=2;BYMONTH=1;BYWEEKNO=30",
        "FREQ=MONTHLY;COUNT=2;BYDAY=MO;BYSETPOS=6",
    ],
)
def test_a_rule_that_yields_nothing_is_refused_at_once(text: str) -> None:
    with time_limit(0.5):
        assert refused_rrule(text).code == "invalid_rrule"


def test_a_rare_but_real_rule_still_expands() -> None:
    # 29 February comes once in four years: the search budget reaches the next one.
    first = Interval(datetime(2028, 2, 29, 17, tzinfo=UTC), datetime(2028, 2, 29, 18, tzinfo=UTC))
    occurrences = expand("FREQ=DAILY;COUNT=2;BYMONTH=2;BYMONTHDAY=29", first, BERLIN)
    assert [one.start.date() for one in occurrences] == [date(2028, 2, 29), date(2032, 2, 29)]


def test_an_until_in_utc_is_the_instant_it_names() -> None:
    # The third occurrence starts at 18:00 CET on 3 November, 17:00 UTC.
    assert len(expand("FREQ=WEEKLY;UNTIL=20271103T170000Z", WEDNESDAY_EVENING, BERLIN)) == 3
    assert len(expand("FREQ=WEEKLY;UNTIL=20271103T165959Z", WEDNESDAY_EVENING, BERLIN)) == 2
    assert len(expand("RRULE:FREQ=WEEKLY;UNTIL=20271103t170000z", WEDNESDAY_EVENING, BERLIN)) == 3
    # Local 17:00 would have excluded the occurrence at 18:00 local, as would reading Z as local.
    assert len(expand("FREQ=WEEKLY;UNTIL=20271103T170000", WEDNESDAY_EVENING, BERLIN)) == 2


def test_an_until_before_the_first_occurrence_yields_nothing_and_is_refused() -> None:
    assert refused_rrule("FREQ=WEEKLY;UNTIL=20271001T000000Z").code == "invalid_rrule"


@pytest.mark.parametrize(
    "text",
    [
        "hello COUNT=3",
        "COUNT=3",
        "FREQ=FORTNIGHTLY;COUNT=3",
        "FREQ=WEEKLY;COUNT=three",
        "FREQ=WEEKLY;COUNT=3;BYDAY=XX",
        "FREQ=WEEKLY;COUNT=3;COLOUR=BLUE",
        "FREQ=WEEKLY;UNTIL=tomorrowZ",
        "FREQ=WEEKLY;COUNT=0",
        "DTSTART:20271020T180000\nRRULE:FREQ=WEEKLY;COUNT=3",
        "FREQ=WEEKLY;COUNT=3;DTSTART=20271020T180000",
        "RRULE:FREQ=WEEKLY;COUNT=3\nEXDATE:20271027T180000",
        "RRULE:FREQ=WEEKLY;COUNT=3\nRDATE:20271028T180000",
    ],
)
def test_garbage_and_anything_beyond_the_rrule_is_refused(text: str) -> None:
    assert refused_rrule(text).code == "invalid_rrule"


def test_a_zero_interval_is_refused() -> None:
    assert refused_rrule("FREQ=DAILY;COUNT=3;INTERVAL=0").code == "invalid_rrule"


def test_a_start_in_the_skipped_hour_takes_the_offset_before_the_change() -> None:
    eve = date(2027, 3, 27)
    first = Interval(local(2, 30, day=eve, zone=BERLIN), local(4, day=eve, zone=BERLIN))
    occurrences = expand("FREQ=DAILY;COUNT=3", first, BERLIN)
    # 02:30 does not exist on 28 March; at +01:00 it is 01:30 UTC, 03:30 on the clock.
    assert occurrences[1].start == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)
    assert occurrences[2].in_zone(BERLIN).start.time() == time(2, 30)


def test_an_occurrence_starting_in_the_skipped_hour_keeps_its_length_instead_of_vanishing() -> None:
    # Regression: 02:30-03:15 on 28 March placed both ends naively, ended before it started and
    # was dropped from the series without a word.
    eve = date(2027, 3, 27)
    first = Interval(local(2, 30, day=eve, zone=BERLIN), local(3, 15, day=eve, zone=BERLIN))
    occurrences = expand("FREQ=DAILY;COUNT=3", first, BERLIN)
    assert len(occurrences) == 3
    assert occurrences[1] == Interval(
        datetime(2027, 3, 28, 1, 30, tzinfo=UTC), datetime(2027, 3, 28, 2, 15, tzinfo=UTC)
    )


def test_the_first_occurrence_is_the_requested_interval_even_in_the_repeated_hour() -> None:
    # 02:30-03:30 CET on 31 October 2027, the second time the clock shows 02:30.
    first = Interval(
        datetime(2027, 10, 31, 1, 30, tzinfo=UTC), datetime(2027, 10, 31, 2, 30, tzinfo=UTC)
    )
    assert expand("FREQ=DAILY;COUNT=2", first, BERLIN)[0] == first


DST_ZONES = st.sampled_from(
    [
        "Europe/Berlin",
        "America/New_York",
        "Australia/Sydney",
        "Australia/Lord_Howe",  # a half-hour change
        "America/Santiago",  # changes at midnight
    ]
).map(ZoneInfo)


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    """Whether a naive wall-clock time happens in `zone` (it does not in a spring-forward gap)."""
    back = wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    return back == wall


@settings(max_examples=150, deadline=None)
@given(
    zone=DST_ZONES,
    day=st.dates(date(2026, 12, 1), date(2027, 12, 31)),
    quarter=st.integers(0, 95),
    quarters=st.integers(1, 24),
    count=st.integers(1, 60),
)
def test_every_daily_occurrence_has_the_wall_clock_start_and_length_of_the_first(
    zone: ZoneInfo, day: date, quarter: int, quarters: int, count: int
) -> None:
    wall_start = datetime.combine(day, time()) + timedelta(minutes=15 * quarter)
    length = timedelta(minutes=15 * quarters)
    walls = [wall_start + timedelta(days=n) for n in range(count)]
    # A wall-clock time the clock skips cannot be kept; that case has its own test above.
    assume(all(_exists(wall, zone) and _exists(wall + length, zone) for wall in walls))
    first = Interval(wall_start.replace(tzinfo=zone), (wall_start + length).replace(tzinfo=zone))

    occurrences = expand(f"FREQ=DAILY;COUNT={count}", first, zone)

    assert len(occurrences) == count
    assert occurrences[0] == first
    for wall, occurrence in zip(walls, occurrences, strict=True):
        here = occurrence.in_zone(zone)
        assert here.start.replace(tzinfo=None) == wall
        assert here.end.replace(tzinfo=None) - here.start.replace(tzinfo=None) == length


# Free time


def interval_list(max_size: int) -> st.SearchStrategy[list[Interval]]:
    pieces = st.builds(
        lambda start, length: span(start, start + length), st.integers(0, 1200), st.integers(1, 300)
    )
    return st.lists(pieces, max_size=max_size)


def _clear(candidate: Interval, booked: list[Interval], buffer: int) -> bool:
    need = timedelta(minutes=buffer)
    return all(candidate.end + need <= b.start or b.end + need <= candidate.start for b in booked)


@settings(max_examples=300)
@given(open_=interval_list(4), booked=interval_list(5), buffer=st.integers(0, 60))
def test_free_intervals_are_sorted_disjoint_open_and_a_buffer_away_from_bookings(
    open_: list[Interval], booked: list[Interval], buffer: int
) -> None:
    free = free_intervals(open_, booked, buffer)
    assert free == sorted(free)
    for earlier, later in itertools.pairwise(free):
        assert earlier.end < later.start  # disjoint, and none could be longer
    assert all(_within_union(interval, open_) for interval in free)
    assert all(_clear(interval, booked, buffer) for interval in free)


def _within_union(interval: Interval, pieces: list[Interval]) -> bool:
    """Whether `interval` lies in the union of `pieces` (which may overlap or touch)."""
    cursor = interval.start
    for piece in sorted(pieces):
        if piece.start <= cursor < piece.end:
            cursor = piece.end
        if cursor >= interval.end:
            return True
    return False


@settings(max_examples=150)
@given(open_=interval_list(4), booked=interval_list(5), buffer=st.integers(0, 60))
def test_free_intervals_cover_every_minute_a_booking_could_use(
    open_: list[Interval], booked: list[Interval], buffer: int
) -> None:
    free = free_intervals(open_, booked, buffer)
    need = timedelta(minutes=buffer)
    for minute in range(0, 1500, 5):
        instant = BASE + timedelta(minutes=minute)
        usable = any(o.start <= instant < o.end for o in open_) and all(
            not (b.start - need <= instant < b.end + need) for b in booked
        )
        assert usable == any(f.start <= instant < f.end for f in free), instant


@settings(max_examples=300)
@given(
    open_=interval_list(4),
    booked=interval_list(5),
    buffer=st.integers(0, 60),
    data=st.data(),
)
def test_a_booking_placed_in_free_time_keeps_the_buffer_to_every_other(
    open_: list[Interval], booked: list[Interval], buffer: int, data: st.DataObject
) -> None:
    free = free_intervals(open_, booked, buffer)
    assume(free)
    room_for = data.draw(st.sampled_from(free))
    minutes = int(room_for.duration / timedelta(minutes=1))
    offset = data.draw(st.integers(0, minutes - 1))
    length = data.draw(st.integers(1, minutes - offset))
    candidate = Interval(
        room_for.start + timedelta(minutes=offset),
        room_for.start + timedelta(minutes=offset + length),
    )
    assert _clear(candidate, booked, buffer)
    for other in booked:
        assert not blocked(candidate, buffer).overlaps(blocked(other, buffer))


def test_a_booking_and_its_buffers_are_cut_out_of_the_open_day() -> None:
    opening = [Interval(local(8), local(22))]
    free = free_intervals(opening, [Interval(local(10), local(11))], 15)
    assert free == [Interval(local(8), local(9, 45)), Interval(local(11, 15), local(22))]
    assert free_intervals(opening, [Interval(local(10), local(11))], 0) == [
        Interval(local(8), local(10)),
        Interval(local(11), local(22)),
    ]
    assert free_intervals(opening, [Interval(local(6), local(23))], 15) == []


def test_stretches_of_keeps_only_the_long_enough_free_intervals() -> None:
    free = [Interval(local(8), local(9, 45)), Interval(local(11, 15), local(22))]
    assert stretches_of(free, 105) == free  # exactly long enough counts
    assert stretches_of(free, 106) == [Interval(local(11, 15), local(22))]
    assert stretches_of(free, 11 * 60) == []
    assert stretches_of([], 15) == []


def _registry_answer(hours: list[Interval], asked: Interval) -> list[Interval]:
    """What the registry says of `asked`: the open intervals clipped to it, merged."""
    return merge(piece for interval in hours if (piece := interval.clip(asked)) is not None)


@given(
    hours=st.lists(
        st.builds(lambda s, n: span(s, s + n), st.integers(0, 1400), st.integers(1, 300))
    ),
    asked=st.lists(
        st.builds(lambda s, n: span(s, s + n), st.integers(0, 1200), st.integers(1, 400)),
        min_size=1,
        max_size=4,
    ),
    wanted=st.builds(lambda s, n: span(s, s + n), st.integers(0, 1600), st.integers(1, 600)),
)
def test_known_hours_answer_as_the_registry_would_inside_what_was_asked(
    hours: list[Interval], asked: list[Interval], wanted: Interval
) -> None:
    known = KnownHours()
    for window in asked:
        known = known.adding(window, _registry_answer(hours, window))
    covered = merge(asked)
    answer = known.within(wanted)
    if any(piece.start <= wanted.start and wanted.end <= piece.end for piece in covered):
        assert answer == _registry_answer(hours, wanted)
    else:
        assert answer is None


@given(
    start=st.builds(
        lambda minute: datetime(2020, 1, 1, tzinfo=UTC) + timedelta(minutes=minute),
        st.integers(0, 10 * 365 * 24 * 60),
    ),
    minutes=st.integers(1, 400 * 24 * 60),
)
def test_the_month_window_is_the_fewest_whole_utc_months_holding_the_window(
    start: datetime, minutes: int
) -> None:
    wanted = Interval(start, start + timedelta(minutes=minutes))
    months = month_window(wanted)
    assert months.start <= wanted.start
    assert wanted.end <= months.end
    for edge in (months.start, months.end):
        assert (edge.day, edge.hour, edge.minute, edge.second, edge.microsecond) == (1, 0, 0, 0, 0)
    assert months.start > wanted.start - timedelta(days=31)
    assert months.end < wanted.end + timedelta(days=31)


def test_known_hours_join_an_interval_open_across_two_windows_asked_apart() -> None:
    evening = [span(20 * 60, 26 * 60)]  # 20:00 to 02:00 the next day
    first, second = span(0, 24 * 60), span(24 * 60, 48 * 60)
    known = (
        KnownHours()
        .adding(second, _registry_answer(evening, second))
        .adding(first, _registry_answer(evening, first))
    )
    assert known.within(span(19 * 60, 27 * 60)) == evening
    assert known.within(span(12 * 60, 49 * 60)) is None


def _utc(month: int, day: int = 1, year: int = 2027) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def test_a_month_read_at_the_held_generation_grows_the_stretch_held_reading_what_joins_them() -> (
    None
):
    held = HoursHeld(Interval(_utc(1, 10), _utc(2, 10)), generation=3)
    february, april = Interval(_utc(2), _utc(3)), Interval(_utc(4), _utc(5))
    assert covered_after(held, 3, february) == Interval(_utc(1, 10), _utc(3))
    assert hours_to_read(held, 3, february) == [february]
    # The days between are read too: one stretch, not two that push each other out.
    assert covered_after(held, 3, april) == Interval(_utc(1, 10), _utc(5))
    assert hours_to_read(held, 3, april) == [Interval(_utc(2, 10), _utc(5))]


def test_a_month_read_at_another_generation_or_too_far_off_is_not_joined_to_the_stretch() -> None:
    held = HoursHeld(Interval(_utc(1), _utc(2)), generation=3)
    march = Interval(_utc(3), _utc(4))
    # Held from an older reading: replaced.
    assert covered_after(held, 4, march) == march
    assert hours_to_read(held, 4, march) == [march]
    # Held from a newer reading than this one: left as it is.
    assert covered_after(held, 2, march) is None
    assert hours_to_read(held, 2, march) == [march]
    # More than two years in all: replaced.
    far = Interval(_utc(3, year=2029), _utc(4, year=2029))
    assert covered_after(held, 3, far) == far
    assert hours_to_read(held, 3, far) == [far]
    assert covered_after(None, 3, march) == march
