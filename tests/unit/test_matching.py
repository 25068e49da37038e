"""The monthly lecture matching with plain values: each rule, each reason, DST, and properties."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.lecturers.domain.matching import (
    Assignment,
    Lecturer,
    Outcome,
    Problem,
    Reason,
    Request,
    Room,
    Venue,
    explain,
    first_fit,
    solve,
)
from shared.contracts import Location
from shared.errors import InvalidRequest
from shared.time import Interval, WeeklySpan

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
MARCH = date(2027, 3, 1)  # a Monday
EVERY_DAY = (1, 2, 3, 4, 5, 6, 7)
EVENINGS = (WeeklySpan(EVERY_DAY, time(18), time(21)),)


def at(day: date, hour: int, minute: int = 0, zone: ZoneInfo = SHANGHAI) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)


def evenings_of(
    days: range, zone: ZoneInfo = SHANGHAI, month: date = MARCH
) -> tuple[Interval, ...]:
    """Free 18:00-21:00 local on the given days of the month."""
    return tuple(
        Interval(at(month.replace(day=d), 18, zone=zone), at(month.replace(day=d), 21, zone=zone))
        for d in days
    )


def venue(
    id_: str = "v1",
    *rooms: Room,
    area: str = "north",
    zone: str = "Asia/Shanghai",
    location: Location | None = None,
) -> Venue:
    rooms = rooms or (Room("r1", evenings_of(range(1, 32))),)
    return Venue(id_, area_id=area, timezone=zone, rooms=rooms, location=location)


def lecturer(id_: str, *topics: str, **fields: object) -> Lecturer:
    values: dict[str, object] = {"area_id": "north", "availability": EVENINGS}
    values.update(fields)
    return Lecturer(id_, topics=frozenset(topics or ("law",)), **values)  # type: ignore[arg-type]


def request(id_: str, venue_id: str = "v1", topic: str = "law", **fields: object) -> Request:
    return Request(id_, venue_id=venue_id, topic=topic, **fields)  # type: ignore[arg-type]


def problem(
    lecturers: list[Lecturer], requests: list[Request], venues: list[Venue], month: date = MARCH
) -> Problem:
    return Problem(month, tuple(lecturers), tuple(requests), tuple(venues))


def reasons(outcome: Outcome) -> dict[tuple[str, int], Reason]:
    return {(u.request_id, u.session_index): u.reason for u in outcome.unmatched}


# ---------------------------------------------------------------------------------------------
# An independent check of every rule, with datetimes rather than the module's bit sets


def _inside_weekly(windows: tuple[WeeklySpan, ...], start: datetime, end: datetime) -> bool:
    """Within one window of its local day (the test data has no window past midnight)."""
    return start.date() == end.date() and any(
        start.isoweekday() in w.weekdays and w.start <= start.time() and end.time() <= w.end
        for w in windows
    )


def check(p: Problem, outcome: Outcome) -> None:
    """Fail unless every assignment keeps every rule and every session is accounted for."""
    lecturers = {lec.id: lec for lec in p.lecturers}
    requests = {req.id: req for req in p.requests}
    venues = {v.id: v for v in p.venues}
    by_lecturer: dict[str, list[Interval]] = defaultdict(list)
    by_room: dict[tuple[str, str], list[Interval]] = defaultdict(list)
    days: dict[str, list[date]] = defaultdict(list)
    for a in outcome.assignments:
        lec, req, site = lecturers[a.lecturer_id], requests[a.request_id], venues[a.venue_id]
        tz = ZoneInfo(site.timezone)
        start, end = a.interval.start.astimezone(tz), a.interval.end.astimezone(tz)
        assert a.venue_id == req.venue_id
        assert req.topic in lec.topics
        assert (start.year, start.month) == (p.month.year, p.month.month)
        assert start.minute % 30 == 0
        assert start.second == 0
        assert a.interval.duration == timedelta(minutes=req.minutes)
        assert _inside_weekly(lec.availability, start, end), (a, lec.availability)
        if req.preferred:
            assert _inside_weekly(req.preferred, start, end)
        assert start.date() not in lec.blackout_dates
        assert (end - timedelta(microseconds=1)).date() not in lec.blackout_dates
        assert not any(a.interval.overlaps(busy) for busy in lec.busy)
        room = next(room for room in site.rooms if room.id == a.room_id)
        assert any(free.contains(a.interval) for free in room.free)
        by_lecturer[lec.id].append(a.interval)
        by_room[site.id, room.id].append(a.interval)
        days[req.id].append(start.date())
    for intervals in [*by_lecturer.values(), *by_room.values()]:
        ordered = sorted(intervals)
        assert all(x.end <= y.start for x, y in itertools.pairwise(ordered))
    for lecturer_id, intervals in by_lecturer.items():
        lec = lecturers[lecturer_id]
        assert len(intervals) + lec.accepted_this_month <= lec.max_per_month
    for request_days in days.values():
        assert len(set(request_days)) == len(request_days)
    sessions = Counter(a.request_id for a in outcome.assignments)
    sessions.update(u.request_id for u in outcome.unmatched)
    assert sessions == Counter({req.id: req.sessions for req in p.requests}) - Counter()
    indices = [(a.request_id, a.session_index) for a in outcome.assignments]
    indices += [(u.request_id, u.session_index) for u in outcome.unmatched]
    assert sorted(indices) == sorted((r.id, i) for r in p.requests for i in range(r.sessions))
    assert outcome.score.covered == len(outcome.assignments)


# ---------------------------------------------------------------------------------------------
# Each rule


def test_a_session_goes_to_a_lecturer_with_the_topic() -> None:
    p = problem(
        [lecturer("history", "history"), lecturer("lawyer", "law")], [request("q")], [venue()]
    )
    outcome = solve(p)
    check(p, outcome)
    assert [a.lecturer_id for a in outcome.assignments] == ["lawyer"]
    assert outcome.optimal


def test_a_lecturer_who_declined_is_not_asked_again() -> None:
    corps = [lecturer("first"), lecturer("second")]
    outcome = solve(problem(corps, [request("q", declined_by=frozenset({"first"}))], [venue()]))
    assert [a.lecturer_id for a in outcome.assignments] == ["second"]
    alone = problem(corps[:1], [request("q", declined_by=frozenset({"first"}))], [venue()])
    for found in (solve(alone), first_fit(alone)):
        assert reasons(found) == {("q", 0): Reason.DECLINED_BY_ALL}


def test_starts_lie_on_the_local_half_hour_grid() -> None:
    room = Room("r1", (Interval(at(date(2027, 3, 3), 18, 10), at(date(2027, 3, 3), 20, 20)),))
    p = problem([lecturer("l")], [request("q")], [venue("v1", room)])
    outcome = solve(p)
    check(p, outcome)
    assert outcome.assignments[0].interval.start == at(date(2027, 3, 3), 18, 30)


def test_sessions_of_a_request_fall_on_different_days() -> None:
    room = Room("r1", (Interval(at(date(2027, 3, 3), 14), at(date(2027, 3, 3), 22)),))
    p = problem(
        [lecturer("a"), lecturer("b")],
        [request("q", sessions=2)],
        [venue("v1", room)],
    )
    outcome = solve(p)
    check(p, outcome)
    assert len(outcome.assignments) == 1
    assert reasons(outcome) == {("q", 1): Reason.NO_COMMON_FREE_TIME}


def test_blackout_dates_are_kept_free() -> None:
    mondays = (WeeklySpan((1,), time(18), time(21)),)
    p = problem(
        [lecturer("l", availability=mondays, blackout_dates=frozenset({date(2027, 3, 1)}))],
        [request("q")],
        [venue()],
    )
    outcome = first_fit(p)
    check(p, outcome)
    assert outcome.assignments[0].interval.start == at(date(2027, 3, 8), 18)


def test_accepted_lectures_block_their_time_and_count_against_the_month() -> None:
    busy = Interval(at(date(2027, 3, 1), 17), at(date(2027, 3, 1), 19))
    one = lecturer("l", busy=(busy,), accepted_this_month=2, max_per_month=3)
    p = problem([one], [request("q", sessions=2)], [venue()])
    outcome = first_fit(p)
    check(p, outcome)
    assert outcome.assignments[0].interval.start == at(date(2027, 3, 1), 19)
    assert reasons(outcome) == {("q", 1): Reason.CORPS_AT_MONTHLY_LIMIT}
    assert reasons(solve(p)) == {("q", 1): Reason.CORPS_AT_MONTHLY_LIMIT}


def test_a_lecturer_already_at_the_limit_gets_nothing() -> None:
    p = problem([lecturer("l", accepted_this_month=4, max_per_month=4)], [request("q")], [venue()])
    assert reasons(solve(p)) == {("q", 0): Reason.CORPS_AT_MONTHLY_LIMIT}


def test_a_room_is_not_used_twice_at_once_in_a_run() -> None:
    one_evening = Room("r1", (Interval(at(date(2027, 3, 2), 18), at(date(2027, 3, 2), 19, 30)),))
    p = problem(
        [lecturer("a"), lecturer("b")],
        [request("q1"), request("q2")],
        [venue("v1", one_evening)],
    )
    outcome = solve(p)
    check(p, outcome)
    assert len(outcome.assignments) == 1
    assert list(reasons(outcome).values()) == [Reason.OUTCOMPETED]


def test_two_rooms_serve_two_requests_at_once() -> None:
    slot = (Interval(at(date(2027, 3, 2), 18), at(date(2027, 3, 2), 19, 30)),)
    p = problem(
        [lecturer("a"), lecturer("b")],
        [request("q1"), request("q2")],
        [venue("v1", Room("r1", slot), Room("r2", slot))],
    )
    outcome = solve(p)
    check(p, outcome)
    assert {a.room_id for a in outcome.assignments} == {"r1", "r2"}


def test_preferred_windows_restrict_the_slot() -> None:
    saturday_mornings = (WeeklySpan((6,), time(9), time(12)),)
    rooms = (
        Room(
            "r1",
            tuple(
                Interval(at(MARCH.replace(day=d), 8), at(MARCH.replace(day=d), 22))
                for d in range(1, 32)
            ),
        ),
    )
    one = lecturer("l", availability=(WeeklySpan(EVERY_DAY, time(8), time(22)),))
    p = problem([one], [request("q", preferred=saturday_mornings)], [venue("v1", *rooms)])
    outcome = solve(p)
    check(p, outcome)
    start = outcome.assignments[0].interval.start.astimezone(SHANGHAI)
    assert start.isoweekday() == 6
    assert 9 <= start.hour < 12


# ---------------------------------------------------------------------------------------------
# The objective


def test_the_solver_covers_more_than_first_fit() -> None:
    # First-fit gives the law request to the only lecturer who also teaches history.
    both = lecturer("both", "law", "history", max_per_month=1)
    lawyer = lecturer("lawyer", "law", max_per_month=1)
    p = problem(
        [both, lawyer],
        [request("law"), request("history", "v2", topic="history")],
        [venue("v1"), venue("v2")],
    )
    greedy, best = first_fit(p), solve(p)
    check(p, greedy)
    check(p, best)
    assert greedy.score.covered == 1
    assert reasons(greedy) == {("history", 0): Reason.CORPS_AT_MONTHLY_LIMIT}
    assert best.score.covered == 2
    assert best.objective > greedy.objective
    assert best.optimal


def test_travel_prefers_the_same_area_then_the_nearest() -> None:
    site = venue("v1", area="centre", location=Location(31.23, 121.47))
    far = lecturer("far", area_id="east", location=Location(31.23, 121.90))
    near = lecturer("near", area_id="west", location=Location(31.23, 121.40))
    local = lecturer("local", area_id="centre")
    p = problem([far, near, local], [request("q")], [site])
    assert solve(p).assignments[0].lecturer_id == "local"
    p = problem([far, near], [request("q")], [site])
    outcome = solve(p)
    assert outcome.assignments[0].lecturer_id == "near"
    assert 5 <= outcome.score.travel <= 8  # about 6.7 km along the parallel


def test_load_is_spread_across_the_corps() -> None:
    p = problem(
        [lecturer("a"), lecturer("b")],
        [request("q1"), request("q2", "v2")],
        [venue("v1"), venue("v2")],
    )
    assert first_fit(p).score.load == 1  # first-fit gives both to "a"
    outcome = solve(p)
    assert {a.lecturer_id for a in outcome.assignments} == {"a", "b"}
    assert outcome.score.load == 0


def test_clashes_the_lecturer_plan_ignores_are_solved() -> None:
    # Two requests share one room, free on Monday and Tuesday evenings; "b" can only do Monday.
    # An even load needs "a" on Tuesday, whatever order the sessions are timed in.
    room = Room(
        "r1",
        (
            Interval(at(date(2027, 3, 1), 18), at(date(2027, 3, 1), 19, 30)),
            Interval(at(date(2027, 3, 2), 18), at(date(2027, 3, 2), 19, 30)),
        ),
    )
    p = problem(
        [
            lecturer("a", availability=(WeeklySpan((1, 2), time(18), time(21)),)),
            lecturer("b", availability=(WeeklySpan((1,), time(18), time(21)),)),
        ],
        [request("q1"), request("q2")],
        [venue("v1", room)],
    )
    greedy, outcome = first_fit(p), solve(p)
    check(p, outcome)
    assert greedy.score.load == 1
    assert outcome.score.covered == 2
    assert outcome.score.load == 0
    assert outcome.optimal


def test_the_solver_proves_a_plan_that_cannot_reach_the_flow_bound() -> None:
    # The nearby lecturer has one free evening for two requests: one goes to the far one.
    monday = (WeeklySpan((1,), time(18), time(19, 30)),)
    blackouts = frozenset(date(2027, 3, d) for d in (8, 15, 22, 29))
    near = lecturer("near", availability=monday, blackout_dates=blackouts)
    far = lecturer("far", area_id="south", location=Location(31.0, 121.0))
    site = Location(31.23, 121.47)
    p = problem(
        [near, far],
        [request("q1"), request("q2", "v2")],
        [venue("v1", location=site), venue("v2", location=site)],
    )
    outcome = solve(p)
    check(p, outcome)
    assert outcome.score.covered == 2
    assert sorted(a.lecturer_id for a in outcome.assignments) == ["far", "near"]
    assert outcome.optimal


# ---------------------------------------------------------------------------------------------
# Reasons and explanations


def test_no_lecturer_with_the_topic() -> None:
    p = problem([lecturer("l", "history")], [request("q", sessions=2)], [venue()])
    assert reasons(solve(p)) == {
        ("q", 0): Reason.NO_LECTURER_WITH_TOPIC,
        ("q", 1): Reason.NO_LECTURER_WITH_TOPIC,
    }


def test_no_free_room_of_the_needed_length() -> None:
    short = Room("r1", (Interval(at(date(2027, 3, 2), 18), at(date(2027, 3, 2), 19)),))
    p = problem([lecturer("l")], [request("q", minutes=90)], [venue("v1", short)])
    assert reasons(solve(p)) == {("q", 0): Reason.NO_FREE_ROOM}
    p = problem([lecturer("l")], [request("q")], [venue("v1", Room("r1", ()))])
    assert reasons(first_fit(p)) == {("q", 0): Reason.NO_FREE_ROOM}


def test_no_free_room_when_the_school_prefers() -> None:
    p = problem(
        [lecturer("l")],
        [request("q", preferred=(WeeklySpan((6, 7), time(9), time(12)),))],
        [venue()],
    )
    assert reasons(solve(p)) == {("q", 0): Reason.NO_FREE_ROOM_WHEN_PREFERRED}


def test_no_common_free_time() -> None:
    mornings = (WeeklySpan(EVERY_DAY, time(8), time(12)),)
    p = problem([lecturer("l", availability=mornings)], [request("q")], [venue()])
    assert reasons(solve(p)) == {("q", 0): Reason.NO_COMMON_FREE_TIME}


def test_outcompeted_by_another_request() -> None:
    monday = (WeeklySpan((1,), time(18), time(19, 30)),)
    blackouts = frozenset(date(2027, 3, d) for d in (8, 15, 22, 29))
    p = problem(
        [lecturer("l", availability=monday, blackout_dates=blackouts)],
        [request("q1"), request("q2", "v2")],
        [venue("v1"), venue("v2")],
    )
    outcome = solve(p)
    check(p, outcome)
    assert outcome.score.covered == 1
    assert list(reasons(outcome).values()) == [Reason.OUTCOMPETED]


def test_explain_says_none_when_a_place_is_free() -> None:
    p = problem([lecturer("a"), lecturer("b")], [request("q1"), request("q2")], [venue()])
    outcome = solve(p)
    assert explain(p, "q2", 0) is None
    assert explain(p, "q2", 0, outcome.assignments) is None
    busy = [a for a in outcome.assignments if a.request_id == "q1"]
    assert explain(p, "q2", 0, busy) is None


def test_explain_matches_the_outcome() -> None:
    p = problem(
        [
            lecturer("both", "law", "history", max_per_month=1),
            lecturer("lawyer", "law", max_per_month=1),
        ],
        [request("law"), request("history", "v2", topic="history")],
        [venue("v1"), venue("v2")],
    )
    greedy = first_fit(p)
    assert explain(p, "history", 0, greedy.assignments) == Reason.CORPS_AT_MONTHLY_LIMIT
    with pytest.raises(InvalidRequest):
        explain(p, "nope", 0)


def test_an_inconsistent_problem_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        solve(problem([lecturer("l")], [request("q", "elsewhere")], [venue()]))
    with pytest.raises(InvalidRequest):
        first_fit(problem([lecturer("l")], [request("q")], [venue()], month=date(2027, 3, 2)))


# ---------------------------------------------------------------------------------------------
# Zones


def test_shanghai_wall_clock_maps_to_utc_plus_eight() -> None:
    mondays = (WeeklySpan((1,), time(19), time(20, 30)),)
    p = problem([lecturer("l", availability=mondays)], [request("q")], [venue()])
    [assignment] = solve(p).assignments
    assert assignment.interval.start == datetime(2027, 3, 1, 11, tzinfo=UTC)


def test_availability_holds_in_wall_clock_time_across_the_october_dst_change() -> None:
    october = date(2027, 10, 1)  # Berlin leaves summer time on Sunday 31 October 2027
    sundays = (WeeklySpan((7,), time(18), time(19, 30)),)
    one = lecturer(
        "l",
        availability=sundays,
        blackout_dates=frozenset(date(2027, 10, d) for d in (3, 10, 17)),
    )
    room = Room(
        "r1", (Interval(at(october, 0, zone=BERLIN), at(date(2027, 11, 1), 0, zone=BERLIN)),)
    )
    p = problem(
        [one],
        [request("q", sessions=2)],
        [venue("v1", room, zone="Europe/Berlin")],
        month=october,
    )
    for outcome in (solve(p), first_fit(p)):
        check(p, outcome)
        starts = sorted(a.interval.start for a in outcome.assignments)
        assert starts == [
            datetime(2027, 10, 24, 16, tzinfo=UTC),  # 18:00 CEST
            datetime(2027, 10, 31, 17, tzinfo=UTC),  # 18:00 CET
        ]


# ---------------------------------------------------------------------------------------------
# Properties on small random problems

TOPICS = ("law", "history", "music")
ZONES = ("Asia/Shanghai", "Europe/Berlin")  # March 2027 holds Berlin's spring-forward


@st.composite
def problems(draw: st.DrawFn) -> Problem:
    zone_name = draw(st.sampled_from(ZONES))
    tz = ZoneInfo(zone_name)
    days = st.integers(1, 31)
    venues = []
    for v in range(draw(st.integers(1, 3))):
        rooms = []
        for r in range(draw(st.integers(1, 2))):
            free = []
            for d in sorted(draw(st.sets(days, min_size=1, max_size=6))):
                opens = draw(st.sampled_from((17, 18)))
                closes = draw(st.sampled_from((20, 21, 22)))
                free.append(
                    Interval(
                        at(MARCH.replace(day=d), opens, zone=tz),
                        at(MARCH.replace(day=d), closes, zone=tz),
                    )
                )
            rooms.append(Room(f"r{r}", tuple(free)))
        venues.append(
            Venue(
                f"v{v}", area_id=draw(st.sampled_from("ab")), timezone=zone_name, rooms=tuple(rooms)
            )
        )
    lecturers = []
    for index in range(draw(st.integers(1, 4))):
        window = WeeklySpan(
            tuple(sorted(draw(st.sets(st.integers(1, 7), min_size=1, max_size=7)))),
            time(draw(st.sampled_from((17, 18, 19)))),
            time(draw(st.sampled_from((20, 21, 22)))),
        )
        busy: tuple[Interval, ...] = ()
        if draw(st.booleans()):
            busy_day = MARCH.replace(day=draw(days))
            busy = (Interval(at(busy_day, 19, zone=tz), at(busy_day, 20, zone=tz)),)
        cap = draw(st.integers(1, 3))
        lecturers.append(
            Lecturer(
                f"l{index}",
                topics=frozenset(draw(st.sets(st.sampled_from(TOPICS), min_size=1, max_size=2))),
                area_id=draw(st.sampled_from("ab")),
                availability=(window,),
                max_per_month=cap,
                blackout_dates=frozenset(
                    MARCH.replace(day=d) for d in draw(st.sets(days, max_size=4))
                ),
                busy=busy,
                accepted_this_month=draw(st.integers(0, cap)),
            )
        )
    requests = []
    for index in range(draw(st.integers(1, 5))):
        preferred: tuple[WeeklySpan, ...] = ()
        if draw(st.booleans()):
            preferred = (
                WeeklySpan(
                    tuple(sorted(draw(st.sets(st.integers(1, 7), min_size=1)))), time(18), time(21)
                ),
            )
        requests.append(
            Request(
                f"q{index}",
                venue_id=draw(st.sampled_from([v.id for v in venues])),
                topic=draw(st.sampled_from(TOPICS)),
                sessions=draw(st.integers(1, 3)),
                minutes=draw(st.sampled_from((60, 90))),
                preferred=preferred,
            )
        )
    return problem(lecturers, requests, venues)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_every_assignment_keeps_every_rule_and_solve_covers_at_least_first_fit(p: Problem) -> None:
    greedy = first_fit(p)
    best = solve(p, time_limit_seconds=2.0)
    check(p, greedy)
    check(p, best)
    assert best.score.covered >= greedy.score.covered
    assert best.objective >= greedy.objective
    assert Reason.SEARCH_LIMIT not in reasons(greedy).values()
    if best.optimal:
        assert Reason.SEARCH_LIMIT not in reasons(best).values()


@settings(max_examples=25, deadline=None)
@given(problems())
def test_explain_agrees_with_each_unmatched_session(p: Problem) -> None:
    outcome = first_fit(p)
    for unmatched in outcome.unmatched:
        others: list[Assignment] = list(outcome.assignments)
        assert explain(p, unmatched.request_id, unmatched.session_index, others) == unmatched.reason
