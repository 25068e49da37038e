"""The demo city as data: deterministic, complete, and bookable as generated.

Every booking is checked against the opening hours resolved by the registry's own rules
(`services.registry.domain.hours`, with the real CN holiday calendar) and the booking rules of its
resources, so the booking service accepts what `up --demo` sends.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from datetime import date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import msgspec
import pytest
from dateutil.rrule import rrulestr

from services.booking.domain.bookings import on_grid
from services.demo.city import (
    CORE_TOPICS,
    TIMEZONE,
    VENUE_KINDS,
    BookingPlan,
    City,
    HoursDoc,
    ResourcePlan,
    build_city,
)
from services.registry.domain import hours as opening
from services.registry.domain.catalogue import ResourceCreate, check_rules
from services.registry.domain.published import OpeningHoursDoc, to_hours
from shared.time import Interval

TODAY = date(2026, 11, 25)
# A late-November start crosses New Year, exam week and the winter vacation; the others reach the
# Spring Festival, the summer exam weeks and National Day.
DAYS = (TODAY, date(2027, 1, 6), date(2027, 6, 10), date(2026, 9, 14))
ZONE = ZoneInfo(TIMEZONE)
CJK = re.compile(r"[\u4e00-\u9fff]")


@cache
def city_of(today: date) -> City:
    return build_city(today)


@pytest.fixture(params=DAYS, ids=str)
def city(request: pytest.FixtureRequest) -> City:
    return city_of(request.param)


def resolved(doc: HoursDoc, span: Interval) -> list[Interval]:
    """What the registry resolves for this document: through its own schema, rules and calendar."""
    published = msgspec.convert(msgspec.to_builtins(doc), OpeningHoursDoc)
    calendar = opening.holiday_calendar("CN", range(span.start.year - 1, span.end.year + 2))
    return opening.resolve(to_hours(published), ZONE, calendar, span)


def hours_of(city: City, resource: ResourcePlan) -> HoursDoc:
    return resource.hours or city.venue(resource.venue).hours


def occurrences(plan: BookingPlan) -> list[Interval]:
    return [Interval(slot.start, slot.end) for slot in plan.occurrences]


def test_the_same_seed_and_day_build_the_same_city() -> None:
    first, second = build_city(TODAY), build_city(TODAY, seed=2026)
    assert msgspec.json.encode(first) == msgspec.json.encode(second)


def test_another_seed_builds_another_season() -> None:
    assert build_city(TODAY, seed=7).bookings != city_of(TODAY).bookings


def test_the_city_has_ten_towns_each_with_communities() -> None:
    city = city_of(TODAY)
    (root,) = [area for area in city.areas if area.level == "city"]
    towns = [area for area in city.areas if area.level == "town"]
    assert len(towns) == 10
    assert all(town.parent == root.key and town.name.endswith(("镇", "街道")) for town in towns)
    for town in towns:
        assert any(a.parent == town.key for a in city.areas if a.level == "community")


def test_every_venue_kind_is_present_and_each_town_has_its_network() -> None:
    city = city_of(TODAY)
    assert {venue.kind for venue in city.venues} == set(VENUE_KINDS)
    for town in (area.key for area in city.areas if area.level == "town"):
        kinds = Counter(venue.kind for venue in city.venues if venue.town == town)
        assert kinds["community_education_centre"] == 1
        assert kinds["citizen_school"] >= 1
        assert kinds["school"] == 2
        assert kinds["cultural_centre"] >= 1
    names = {venue.name for venue in city.venues}
    assert "鹭湖市老年大学" in names
    assert "鹭湖市文化馆" in names


def test_venues_and_resources_are_named_in_chinese() -> None:
    city = city_of(TODAY)
    assert all(CJK.search(venue.name) and CJK.search(venue.address) for venue in city.venues)
    assert all(CJK.search(resource.name) for resource in city.resources)
    names = {resource.name for resource in city.resources}
    assert {"多功能厅", "舞蹈室", "计算机教室", "书法教室", "笔记本电脑推车"} <= names
    assert any(name.startswith("投影仪") for name in names)
    assert all(CJK.search(plan.purpose) for plan in city.bookings)


def test_resources_are_what_the_registry_accepts() -> None:
    city = city_of(TODAY)
    features = Counter(feature for r in city.resources for feature in r.features)
    assert {"projector", "piano", "computers"} <= set(features)
    for resource in city.resources:
        body = msgspec.to_builtins(resource)
        del body["key"], body["venue"], body["hours"]
        created = msgspec.convert(body, ResourceCreate)
        check_rules(created.rules)
        assert resource.type == "equipment" or (resource.capacity or 0) > 0
    assert any(r.requires_approval for r in city.resources)
    assert any(r.rules.buffer_minutes for r in city.resources)
    assert any(r.hours is not None for r in city.resources)


def test_schools_open_in_term_evenings_and_weekends_and_close_for_exams_and_holidays() -> None:
    city = city_of(TODAY)
    school = next(venue for venue in city.venues if venue.kind == "school")

    def open_on(day: date) -> list[tuple[str, str]]:
        start = datetime.combine(day, datetime.min.time(), tzinfo=ZONE)
        span = Interval(start, start + timedelta(days=1))
        return [
            (i.start.astimezone(ZONE).strftime("%H:%M"), i.end.astimezone(ZONE).strftime("%H:%M"))
            for i in resolved(school.hours, span)
        ]

    assert open_on(date(2026, 12, 2)) == [("18:00", "21:00")]  # a term Wednesday
    assert open_on(date(2026, 12, 5)) == [("08:30", "17:00")]  # a term Saturday
    assert open_on(date(2027, 1, 19)) == []  # exam week
    assert open_on(date(2027, 1, 1)) == []  # New Year's Day
    assert open_on(date(2027, 2, 1)) == [("09:00", "16:30")]  # winter vacation, a Monday
    assert open_on(date(2027, 2, 8)) == []  # the Spring Festival


def test_every_booking_lies_inside_the_opening_hours_of_every_resource(city: City) -> None:
    start = datetime.combine(city.today, datetime.min.time(), tzinfo=ZONE)
    horizon = Interval(start, start + timedelta(days=90))
    open_now = {
        r.key: resolved(hours_of(city, r), horizon)
        for r in city.resources
        if any(r.key in plan.resources for plan in city.bookings)
    }
    for plan in city.bookings:
        for interval in occurrences(plan):
            for key in plan.resources:
                assert any(o.contains(interval) for o in open_now[key]), (plan.key, key, interval)


def test_every_booking_keeps_the_rules_of_its_resources(city: City) -> None:
    # The loader runs on `today` (the venues' date): any time from its first to its last instant.
    earliest = datetime.combine(city.today, datetime.min.time(), tzinfo=ZONE)
    latest = datetime.combine(city.today, datetime.max.time(), tzinfo=ZONE)
    for plan in city.bookings:
        resources = [city.resource(key) for key in plan.resources]
        assert {r.venue for r in resources} == {plan.venue}
        for interval in occurrences(plan):
            minutes = interval.duration / timedelta(minutes=1)
            for r in resources:
                assert r.rules.min_minutes <= minutes <= r.rules.max_minutes
                assert on_grid(interval.start, TIMEZONE, r.rules.slot_minutes)
                assert on_grid(interval.end, TIMEZONE, r.rules.slot_minutes)
                assert interval.start >= latest + timedelta(minutes=r.rules.lead_minutes)
                assert interval.start <= earliest + timedelta(days=r.rules.horizon_days)
                if r.type == "room" and r.capacity is not None:
                    assert plan.attendees <= r.capacity


def test_no_two_bookings_of_a_resource_overlap_buffer_included(city: City) -> None:
    held: dict[str, list[tuple[datetime, datetime]]] = {}
    for plan in city.bookings:
        for interval in occurrences(plan):
            for key in plan.resources:
                buffer = timedelta(minutes=city.resource(key).rules.buffer_minutes)
                held.setdefault(key, []).append((interval.start, interval.end + buffer))
    for blocks in held.values():
        blocks.sort()
        for (_, first_end), (second_start, _) in itertools.pairwise(blocks):
            assert first_end <= second_start


def test_series_occurrences_are_what_their_rule_expands_to() -> None:
    city = city_of(TODAY)
    series = [plan for plan in city.bookings if plan.rrule is not None]
    assert len(series) >= 5
    for plan in series:
        assert plan.rrule is not None
        local = plan.start.astimezone(ZONE).replace(tzinfo=None)
        starts = [s.replace(tzinfo=ZONE) for s in rrulestr(plan.rrule, dtstart=local)]
        assert starts == [slot.start for slot in plan.occurrences]
        assert all(slot.end - slot.start == plan.end - plan.start for slot in plan.occurrences)


def test_a_season_of_a_few_hundred_bookings_over_the_coming_weeks() -> None:
    city = city_of(TODAY)
    made = [interval for plan in city.bookings for interval in occurrences(plan)]
    assert 200 <= len(made) <= 600
    first = min(interval.start for interval in made).date()
    last = max(interval.start for interval in made).date()
    assert (last - first).days >= 7 * 7
    assert {plan.programme for plan in city.bookings} == {
        "degree", "workforce", "assistance", "youth", "elderly", "citizen",
    }  # fmt: skip
    assert len({plan.org for plan in city.bookings}) >= 5
    then = Counter(plan.then for plan in city.bookings)
    assert then["cancel"] >= 3
    assert then["approve"] >= 3
    approval = [
        p for p in city.bookings if any(city.resource(k).requires_approval for k in p.resources)
    ]
    assert sum(1 for p in approval if p.then == "keep") >= 3  # left pending
    assert all(p.then in ("approve", "reject", "keep") for p in approval)
    assert all(p.reason for p in city.bookings if p.then in ("cancel", "reject"))


def test_the_announced_orgs_are_real_demo_orgs_with_bookings() -> None:
    city = city_of(TODAY)
    school = [v for v in city.venues if v.owner_org == city.showcase_venue_org]
    assert school
    assert all(v.kind == "school" for v in school)
    at_school = [
        p for p in city.bookings if city.venue(p.venue).owner_org == city.showcase_venue_org
    ]
    assert at_school
    assert any(
        p.then == "keep" and any(city.resource(k).requires_approval for k in p.resources)
        for p in at_school
    )
    assert any(p.org == city.showcase_community_org for p in city.bookings)
    assert {org.id for org in city.orgs} >= {
        city.office_org,
        city.showcase_venue_org,
        city.showcase_community_org,
    }


def test_forty_lecturers_cover_the_office_topics() -> None:
    city = city_of(TODAY)
    assert 35 <= len(city.lecturers) <= 45
    assert len({lecturer.name for lecturer in city.lecturers}) == len(city.lecturers)
    assert all(CJK.search(lecturer.name) for lecturer in city.lecturers)
    covered = Counter(topic for lecturer in city.lecturers for topic in lecturer.topics)
    assert all(covered[topic] >= 4 for topic in CORE_TOPICS)
    assert {"健康养生", "法律普及", "家庭教育", "数字技能", "老年照护", "非遗文化"} <= set(covered)
    towns = {area.key for area in city.areas if area.level == "town"}
    for lecturer in city.lecturers:
        assert lecturer.area in towns
        assert lecturer.availability
        assert 1 <= lecturer.max_per_month <= 8
        assert all(day.strftime("%Y-%m") == "2026-12" for day in lecturer.blackout_dates)


def test_lecture_requests_are_for_next_month_at_real_venues_on_covered_topics() -> None:
    city = city_of(TODAY)
    covered = {topic for lecturer in city.lecturers for topic in lecturer.topics}
    assert len(city.requests) >= 10
    for request in city.requests:
        assert request.month == "2026-12"
        assert city.venue(request.venue).kind in (
            "citizen_school", "community_education_centre", "elderly_university",
        )  # fmt: skip
        assert request.topic in covered
        assert request.sessions >= 1
        assert request.minutes == 90
    assert build_city(date(2026, 12, 20)).requests[0].month == "2027-01"


def test_each_role_has_a_demo_account_in_a_real_org_at_a_reserved_domain() -> None:
    from services.demo.load import demo_accounts, org_kind

    city = city_of(TODAY)
    accounts = demo_accounts(city)
    assert {a.principal.role.value for a in accounts} == {
        "office",
        "venue_manager",
        "community_manager",
        "lecturer",
    }
    assert all(a.email.endswith(".example.org") for a in accounts)
    orgs = {org.id for org in city.orgs}
    assert {a.principal.org for a in accounts} <= orgs
    kinds = {org_kind(org.id, city).value for org in city.orgs}
    assert {"office", "school", "centre", "community", "lecturer_corps"} <= kinds
