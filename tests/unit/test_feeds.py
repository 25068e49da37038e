"""Lecturer feeds: RFC 5545 output that icalendar and a strict line check both accept.

No second iCalendar parser is installed, so `rfc5545_problems` below is a small strict reader:
CRLF lines folded at 75 octets, the content-line grammar, BEGIN/END balance, required and singleton
properties, escaped TEXT, and a VTIMEZONE for every TZID. `vtimezone_instant` resolves a local time
through the feed's own VTIMEZONE, as a client without a zone database would.
"""

# ruff: noqa: RUF001  (Chinese text takes full-width punctuation: that is the point of the tests)
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
import vobject
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar, Event

from services.lecturers.domain.feeds import (
    PRODID,
    FeedEntry,
    OfferStatus,
    build_feed,
    calendar_name,
    event_uid,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2027, 3, 1, 9, 30, tzinfo=UTC)
ACCEPT = "https://lecturers.example/v1/offers/o-1/accept?token=eyJhbGciOiJIUzI1NiJ9.c2lnbmVk,x;y"
DECLINE = "https://lecturers.example/v1/offers/o-1/decline?token=eyJhbGciOiJIUzI1NiJ9.c2lnbmVk"
STATES: tuple[OfferStatus, ...] = ("offered", "accepted", "declined", "expired", "cancelled")


def entry(**changes: Any) -> FeedEntry:
    start = changes.pop("start", datetime(2027, 3, 12, 19, 0, tzinfo=SHANGHAI))
    fields: dict[str, Any] = {
        "offer_id": "0190c3a2-7d41-7cc2-9a0e-5b1f2a3c4d5e",
        "request_id": "0190c3a1-0000-7000-8000-000000000001",
        "topic": "智能手机入门",
        "venue_name": "朝阳区社区学校",
        "venue_address": "北京市朝阳区朝阳路 12 号",
        "venue_zone": "Asia/Shanghai",
        "start": start,
        "end": start + timedelta(minutes=90),
        "status": "offered",
        "sequence": 0,
        "updated_at": datetime(2027, 2, 27, 8, 0, tzinfo=UTC),
        "accept_url": ACCEPT,
        "decline_url": DECLINE,
        "description": "第一节课：请带上手机。",
    }
    fields.update(changes)
    return FeedEntry(**fields)


def parse(feed: bytes) -> Calendar:
    """icalendar's reading of the feed, refusing any component it could not read cleanly."""
    calendar = Calendar.from_ical(feed)
    assert isinstance(calendar, Calendar)
    for component in calendar.walk():
        assert component.errors == [], (component.name, component.errors)
    return calendar


def starts_at(event: Event) -> datetime:
    """The event's start, which is a datetime in every feed (never an all-day date)."""
    assert isinstance(event.start, datetime)
    return event.start


def ends_at(event: Event) -> datetime:
    assert isinstance(event.end, datetime)
    return event.end


def events(feed: bytes) -> dict[str, Event]:
    return {str(event.uid): event for event in parse(feed).events}


# --- the strict reader --------------------------------------------------------------------------

NAME = r"[A-Za-z0-9-]+"
PARAM = rf'{NAME}=(?:"[^"\x00-\x08\x0a-\x1f\x7f]*"|[^";:,\x00-\x08\x0a-\x1f\x7f]*)'
CONTENT_LINE = re.compile(
    rf"(?P<name>{NAME})(?P<params>(?:;{PARAM}(?:,(?:{PARAM.split('=', 1)[1]}))*)*)"
    r":(?P<value>[^\x00-\x08\x0a-\x1f\x7f]*)"
)
TEXT = re.compile(r"(?:[^\\;,]|\\[\\;,nN])*")
DATE_TIME = re.compile(r"\d{8}T\d{6}Z?")
UTC_DATE_TIME = re.compile(r"\d{8}T\d{6}Z")
TEXT_PROPERTIES = {"SUMMARY", "LOCATION", "DESCRIPTION", "UID", "NAME", "X-WR-CALNAME"}
SINGLETONS = {
    "VCALENDAR": {"VERSION", "PRODID", "CALSCALE", "METHOD", "REFRESH-INTERVAL", "NAME"},
    "VEVENT": {
        "UID",
        "DTSTAMP",
        "DTSTART",
        "DTEND",
        "SEQUENCE",
        "STATUS",
        "SUMMARY",
        "LOCATION",
        "DESCRIPTION",
        "URL",
        "LAST-MODIFIED",
        "TRANSP",
    },
    "VTIMEZONE": {"TZID"},
    "STANDARD": {"DTSTART", "TZOFFSETFROM", "TZOFFSETTO"},
    "DAYLIGHT": {"DTSTART", "TZOFFSETFROM", "TZOFFSETTO"},
}
REQUIRED = {
    "VCALENDAR": {"VERSION", "PRODID"},
    "VEVENT": {"UID", "DTSTAMP", "DTSTART"},
    "VTIMEZONE": {"TZID"},
    "STANDARD": {"DTSTART", "TZOFFSETFROM", "TZOFFSETTO"},
    "DAYLIGHT": {"DTSTART", "TZOFFSETFROM", "TZOFFSETTO"},
}


@dataclass
class Prop:
    name: str
    params: dict[str, str]
    value: str


@dataclass
class Component:
    name: str
    props: list[Prop] = field(default_factory=list)
    children: list[Component] = field(default_factory=list)

    def get(self, name: str) -> list[Prop]:
        return [prop for prop in self.props if prop.name == name]

    def walk(self, name: str) -> list[Component]:
        found = [self] if self.name == name else []
        for child in self.children:
            found.extend(child.walk(name))
        return found


def read_strictly(feed: bytes) -> tuple[Component | None, list[str]]:
    """The feed as a component tree, and every way it breaks RFC 5545's syntax."""
    logical, problems = _unfold(feed)
    root, tree_problems = _tree(logical)
    problems += tree_problems
    if root is None or root.name != "VCALENDAR":
        return root, [*problems, "the feed is not one VCALENDAR"]
    return root, problems + _component_problems(root)


def _unfold(feed: bytes) -> tuple[list[bytes], list[str]]:
    """Physical lines (CRLF, at most 75 octets) joined into content lines."""
    problems: list[str] = []
    if not feed.endswith(b"\r\n"):
        problems.append("the last line does not end with CRLF")
    bare = feed.replace(b"\r\n", b"")
    if b"\r" in bare or b"\n" in bare:
        problems.append("a line break other than CRLF")
    physical = feed.split(b"\r\n")
    if physical and physical[-1] == b"":
        physical.pop()
    problems += [
        f"line {number} has {len(line)} octets"
        for number, line in enumerate(physical, 1)
        if len(line) > 75
    ]
    logical: list[bytes] = []
    for line in physical:
        if line[:1] not in (b" ", b"\t"):
            logical.append(line)
        elif logical:
            logical[-1] += line[1:]
        else:
            problems.append("the first line is a continuation")
    return logical, problems


def _tree(logical: list[bytes]) -> tuple[Component | None, list[str]]:
    """Content lines checked against the grammar and nested by BEGIN/END."""
    problems: list[str] = []
    stack: list[Component] = []
    root: Component | None = None
    for raw in logical:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"not UTF-8: {raw[:40]!r}")
            continue
        match = CONTENT_LINE.fullmatch(line)
        if match is None:
            problems.append(f"not a content line: {line[:60]!r}")
            continue
        name, value = match["name"].upper(), match["value"]
        if name == "BEGIN":
            if root is not None and not stack:
                problems.append(f"{value} after the end of the calendar")
            component = Component(value.upper())
            (stack[-1].children if stack else [component]).append(component)
            root = root or component
            stack.append(component)
        elif name == "END":
            if stack and stack[-1].name == value.upper():
                stack.pop()
            else:
                problems.append(f"END:{value} does not close {stack[-1].name if stack else None}")
        elif stack:
            # Enough for the single-valued parameters a feed carries.
            params = re.findall(rf'(?<=;)({NAME})=("[^"]*"|[^;:]*)', match["params"])
            stack[-1].props.append(Prop(name, {k.upper(): v for k, v in params}, value))
        else:
            problems.append(f"{name} outside any component")
    if stack:
        problems.append(f"unclosed: {[component.name for component in stack]}")
    return root, problems


def _component_problems(calendar: Component) -> list[str]:
    problems: list[str] = []
    stack = [calendar]
    while stack:
        component = stack.pop()
        stack.extend(component.children)
        counts = Counter(prop.name for prop in component.props)
        required = REQUIRED.get(component.name, set())
        problems += [f"{component.name} lacks {name}" for name in required - counts.keys()]
        problems += [
            f"{component.name} has {counts[name]} {name}"
            for name in SINGLETONS.get(component.name, set())
            if counts[name] > 1
        ]
        problems += [
            f"{prop.name} is not escaped TEXT: {prop.value[:60]!r}"
            for prop in component.props
            if prop.name in TEXT_PROPERTIES and not TEXT.fullmatch(prop.value)
        ]
        if component.name == "VEVENT":
            problems += _event_problems(component)
    if not calendar.children:
        problems.append("VCALENDAR holds no component")
    if [prop.value for prop in calendar.get("VERSION")] != ["2.0"]:
        problems.append("VERSION is not 2.0")
    uids = Counter(prop.value for event in calendar.walk("VEVENT") for prop in event.get("UID"))
    problems += [f"UID {uid} appears {n} times" for uid, n in uids.items() if n > 1]
    problems += [
        f"VTIMEZONE {tz.get('TZID')} has no observance"
        for tz in calendar.walk("VTIMEZONE")
        if not [child for child in tz.children if child.name in {"STANDARD", "DAYLIGHT"}]
    ]
    zones = {prop.value for tz in calendar.walk("VTIMEZONE") for prop in tz.get("TZID")}
    problems += [
        f"TZID {prop.params['TZID']} has no VTIMEZONE"
        for event in calendar.walk("VEVENT")
        for prop in event.props
        if "TZID" in prop.params and prop.params["TZID"] not in zones
    ]
    return problems


def _event_problems(event: Component) -> list[str]:
    problems: list[str] = []
    if event.get("DTEND") and event.get("DURATION"):
        problems.append("VEVENT has both DTEND and DURATION")
    problems += [
        f"{prop.name} is not a UTC DATE-TIME: {prop.value}"
        for prop in event.get("DTSTAMP") + event.get("LAST-MODIFIED")
        if not UTC_DATE_TIME.fullmatch(prop.value)
    ]
    for prop in event.get("DTSTART") + event.get("DTEND"):
        if not DATE_TIME.fullmatch(prop.value):
            problems.append(f"{prop.name} is not a DATE-TIME: {prop.value}")
        if "TZID" in prop.params and prop.value.endswith("Z"):
            problems.append(f"{prop.name} has both TZID and a UTC time")
    problems += [
        f"STATUS {prop.value} is not one of an event's"
        for prop in event.get("STATUS")
        if prop.value not in {"TENTATIVE", "CONFIRMED", "CANCELLED"}
    ]
    problems += [
        f"SEQUENCE {prop.value} is not a non-negative integer"
        for prop in event.get("SEQUENCE")
        if not prop.value.isdigit()
    ]
    return problems


def strict(feed: bytes) -> Component:
    calendar, problems = read_strictly(feed)
    assert problems == []
    assert calendar is not None
    return calendar


def _local(value: str) -> datetime:
    """A DATE-TIME value's wall-clock time, naive on purpose: its zone comes from elsewhere."""
    return datetime.strptime(f"{value.rstrip('Z')}+0000", "%Y%m%dT%H%M%S%z").replace(tzinfo=None)


def _offset(value: str) -> timedelta:
    sign = -1 if value[0] == "-" else 1
    return sign * timedelta(hours=int(value[1:3]), minutes=int(value[3:5]))


def vtimezone_instant(calendar: Component, prop: Prop) -> datetime:
    """DTSTART/DTEND as an instant, its zone taken from the feed's VTIMEZONE, not a zone database.

    The observance in force is the one with the latest onset (DTSTART or an RDATE, local time)
    at or before the local time, the way clients read a VTIMEZONE for existing local times.
    """
    if prop.value.endswith("Z"):
        return _local(prop.value).replace(tzinfo=UTC)
    (tz,) = [
        tz for tz in calendar.walk("VTIMEZONE") if tz.get("TZID")[0].value == prop.params["TZID"]
    ]
    local = _local(prop.value)
    onsets: list[tuple[datetime, timedelta]] = []
    for observance in tz.children:
        offset = _offset(observance.get("TZOFFSETTO")[0].value)
        dates = [observance.get("DTSTART")[0].value]
        dates += [day for rdate in observance.get("RDATE") for day in rdate.value.split(",")]
        onsets.extend((_local(day), offset) for day in dates)
    in_force = max((onset for onset in onsets if onset[0] <= local), key=lambda onset: onset[0])
    return (local - in_force[1]).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("breakage", "problem"),
    [
        (lambda feed: feed.replace(b"\r\n", b"\n"), "other than CRLF"),
        (lambda feed: feed.replace(b"SUMMARY:", b"SUMMARY:" + b"x" * 80), "octets"),
        (lambda feed: feed.replace(b"UID:", b"X-UID:"), "VEVENT lacks UID"),
        (lambda feed: feed.replace(b"TZID:Asia/Shanghai", b"TZID:Asia/Harbin"), "no VTIMEZONE"),
        (lambda feed: feed.replace(b"END:VEVENT\r\n", b""), "unclosed"),
        (lambda feed: feed.replace(b"SUMMARY:", b"SUMMARY:a,b"), "not escaped TEXT"),
        (lambda feed: feed.replace(b"DTSTAMP:20270301T093000Z", b"DTSTAMP:20270301"), "DTSTAMP"),
        (lambda feed: feed.replace(b"VERSION:2.0", b"VERSION:1.0"), "VERSION"),
    ],
)
def test_the_strict_check_catches_a_broken_feed(
    breakage: Callable[[bytes], bytes], problem: str
) -> None:
    feed = build_feed("王老师", [entry()], now=NOW)
    assert read_strictly(feed)[1] == []

    _, problems = read_strictly(breakage(feed))

    assert any(problem in found for found in problems), problems


# --- the calendar -------------------------------------------------------------------------------


def test_a_mixed_feed_passes_icalendar_and_the_strict_check() -> None:
    entries = [
        entry(offer_id=f"{state}-{zone}", status=state, sequence=n, venue_zone=zone, url=ACCEPT)
        for n, state in enumerate(STATES)
        for zone in ("Asia/Shanghai", "Europe/Berlin")
    ]
    feed = build_feed("王老师", entries, now=NOW)

    assert len(parse(feed).events) == len(entries)
    calendar = strict(feed)
    assert len(calendar.walk("VEVENT")) == len(entries)


def test_the_calendar_carries_what_subscription_clients_need() -> None:
    feed = build_feed("王老师", [entry()], now=NOW)

    calendar = parse(feed)
    assert calendar["VERSION"] == "2.0"
    assert calendar.prodid == PRODID
    assert calendar["CALSCALE"] == "GREGORIAN"
    assert calendar.method == "PUBLISH"
    assert calendar["X-WR-CALNAME"] == calendar_name("王老师") == "王老师 · Commonroom"
    assert calendar["NAME"] == calendar_name("王老师")
    assert calendar.refresh_interval == timedelta(hours=1)
    assert calendar["REFRESH-INTERVAL"].params["VALUE"] == "DURATION"
    assert calendar["X-PUBLISHED-TTL"] == "PT1H"
    assert feed.startswith(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n")
    assert feed.endswith(b"END:VCALENDAR\r\n")


def test_an_event_carries_times_place_stamp_and_revision() -> None:
    start = datetime(2027, 3, 12, 19, 0, tzinfo=SHANGHAI)
    feed = build_feed("王老师", [entry(start=start, sequence=3, url=ACCEPT)], now=NOW)

    (event,) = parse(feed).events
    assert event.uid == "offer-0190c3a2-7d41-7cc2-9a0e-5b1f2a3c4d5e@commonroom"
    assert event.start == start
    assert starts_at(event).tzinfo == SHANGHAI
    assert event.end == start + timedelta(minutes=90)
    assert event.DTSTAMP == NOW
    assert event.last_modified == datetime(2027, 2, 27, 8, 0, tzinfo=UTC)
    assert event.sequence == 3
    assert event.summary == "智能手机入门"
    assert event.location == "朝阳区社区学校, 北京市朝阳区朝阳路 12 号"
    assert event.url == ACCEPT
    assert event["X-COMMONROOM-REQUEST-ID"] == "0190c3a1-0000-7000-8000-000000000001"
    assert b"DTSTART;TZID=Asia/Shanghai:20270312T190000\r\n" in feed
    assert b"DTSTAMP:20270301T093000Z\r\n" in feed


def test_an_event_without_a_url_has_no_url_property() -> None:
    (event,) = parse(build_feed("王老师", [entry(url=None)], now=NOW)).events

    assert "URL" not in event


def test_an_empty_feed_is_still_a_valid_calendar() -> None:
    feed = build_feed("新老师", [], now=NOW)

    assert parse(feed).events == []
    calendar = strict(feed)
    assert [tz.get("TZID")[0].value for tz in calendar.walk("VTIMEZONE")] == ["UTC"]


def test_events_are_ordered_by_start_whatever_the_input_order() -> None:
    first = entry(
        offer_id="b", start=datetime(2027, 3, 1, 19, tzinfo=BERLIN), venue_zone="Europe/Berlin"
    )
    second = entry(offer_id="a", start=datetime(2027, 3, 2, 9, tzinfo=SHANGHAI))

    assert build_feed("x", [second, first], now=NOW) == build_feed("x", [first, second], now=NOW)
    assert [str(e.uid) for e in parse(build_feed("x", [second, first], now=NOW)).events] == [
        event_uid("b"),
        event_uid("a"),
    ]


# --- identity, revision and state ---------------------------------------------------------------


def test_uids_stay_the_same_across_rebuilds_and_changes() -> None:
    offered = [entry(offer_id=f"o-{n}", start=NOW + timedelta(days=n)) for n in range(5)]
    answered = [
        msgspec.structs.replace(e, status="accepted", sequence=1, updated_at=NOW) for e in offered
    ]

    before = build_feed("王老师", offered, now=NOW)
    after = build_feed("王老师", answered, now=NOW + timedelta(hours=5))

    assert set(events(before)) == set(events(after)) == {event_uid(f"o-{n}") for n in range(5)}
    assert event_uid("o-1") == "offer-o-1@commonroom"
    assert {(e.sequence, e["STATUS"]) for e in events(after).values()} == {(1, "CONFIRMED")}


def test_a_rebuild_of_the_same_offers_differs_only_in_dtstamp() -> None:
    offers = [entry(offer_id=f"o-{n}", start=NOW + timedelta(days=n)) for n in range(3)]

    first = build_feed("王老师", offers, now=NOW).split(b"\r\n")
    second = build_feed("王老师", offers, now=NOW + timedelta(minutes=7)).split(b"\r\n")

    differing = [(a, b) for a, b in zip(first, second, strict=True) if a != b]
    assert len(differing) == 3
    assert all(a.startswith(b"DTSTAMP:") for a, _ in differing)


@pytest.mark.parametrize(
    ("state", "ical_status", "transparency"),
    [
        ("offered", "TENTATIVE", "OPAQUE"),
        ("accepted", "CONFIRMED", "OPAQUE"),
        ("declined", "CANCELLED", "TRANSPARENT"),
        ("expired", "CANCELLED", "TRANSPARENT"),
        ("cancelled", "CANCELLED", "TRANSPARENT"),
    ],
)
def test_status_and_sequence_follow_the_offer(
    state: OfferStatus, ical_status: str, transparency: str
) -> None:
    (event,) = parse(build_feed("王老师", [entry(status=state, sequence=4)], now=NOW)).events

    assert event["STATUS"] == ical_status
    assert event["TRANSP"] == transparency
    assert event.sequence == 4
    assert event["X-COMMONROOM-STATUS"] == state


def test_links_show_while_the_offer_is_open() -> None:
    expires = datetime(2027, 3, 3, 9, 30, tzinfo=UTC)
    (event,) = parse(build_feed("王老师", [entry(expires_at=expires)], now=NOW)).events

    assert f"Accept: {ACCEPT}" in event.description.splitlines()
    assert f"Decline: {DECLINE}" in event.description.splitlines()
    assert "Please answer by 2027-03-03 17:30 (Asia/Shanghai)." in event.description
    assert event.description.startswith("第一节课：请带上手机。\n")


@pytest.mark.parametrize("state", ["accepted", "declined", "expired", "cancelled"])
def test_answered_offers_carry_no_links(state: OfferStatus) -> None:
    feed = build_feed("王老师", [entry(status=state)], now=NOW)

    (event,) = parse(feed).events
    assert "Accept:" not in event.description
    assert "Decline:" not in event.description
    assert b"accept?token" not in feed
    assert b"decline?token" not in feed


def test_an_offer_past_its_answer_time_loses_its_links_before_the_expiry_job_runs() -> None:
    stale = entry(expires_at=NOW - timedelta(minutes=1))

    (event,) = parse(build_feed("王老师", [stale], now=NOW)).events
    assert event["STATUS"] == "TENTATIVE"
    assert "Accept:" not in event.description
    assert "The time to answer has passed." in event.description


# --- zones --------------------------------------------------------------------------------------


def test_every_zone_used_has_one_vtimezone_and_no_other() -> None:
    entries = [
        entry(offer_id="sh", venue_zone="Asia/Shanghai"),
        entry(offer_id="sh2", venue_zone="Asia/Shanghai", start=NOW + timedelta(days=40)),
        entry(
            offer_id="be",
            venue_zone="Europe/Berlin",
            start=datetime(2027, 3, 12, 19, tzinfo=BERLIN),
        ),
    ]
    feed = build_feed("王老师", entries, now=NOW)

    assert sorted(tz.tz_name for tz in parse(feed).timezones) == ["Asia/Shanghai", "Europe/Berlin"]
    berlin = strict(feed).walk("VTIMEZONE")[1]
    assert {child.name for child in berlin.children} == {"STANDARD", "DAYLIGHT"}


def test_weekly_evening_lectures_keep_their_wall_clock_across_both_dst_changes() -> None:
    # Berlin springs forward on 28 March 2027 and falls back on 31 October 2027.
    evenings = [
        datetime(2027, 3, 21, 19, tzinfo=BERLIN),
        datetime(2027, 3, 28, 19, tzinfo=BERLIN),
        datetime(2027, 10, 24, 19, tzinfo=BERLIN),
        datetime(2027, 10, 31, 19, tzinfo=BERLIN),
    ]
    entries = [
        entry(offer_id=f"w{n}", start=start, venue_zone="Europe/Berlin")
        for n, start in enumerate(evenings)
    ]
    feed = build_feed("王老师", entries, now=NOW)

    parsed = [events(feed)[event_uid(f"w{n}")] for n in range(4)]
    assert [starts_at(event).hour for event in parsed] == [19, 19, 19, 19]
    assert [starts_at(event).utcoffset() for event in parsed] == [
        timedelta(hours=1),
        timedelta(hours=2),
        timedelta(hours=2),
        timedelta(hours=1),
    ]
    assert [event.start for event in parsed] == evenings
    for start in evenings:
        assert f"DTSTART;TZID=Europe/Berlin:{start:%Y%m%d}T190000".encode() in feed
    calendar = strict(feed)
    for event in calendar.walk("VEVENT"):
        (dtstart,) = event.get("DTSTART")
        assert vtimezone_instant(calendar, dtstart) in evenings


def test_a_night_event_across_the_spring_change_keeps_its_wall_clock_and_length() -> None:
    start = datetime(2027, 3, 28, 1, 0, tzinfo=BERLIN)
    end = datetime(2027, 3, 28, 4, 0, tzinfo=BERLIN)  # two real hours: 02:00 does not exist
    feed = build_feed("王老师", [entry(start=start, end=end, venue_zone="Europe/Berlin")], now=NOW)

    assert b"DTSTART;TZID=Europe/Berlin:20270328T010000\r\n" in feed
    assert b"DTEND;TZID=Europe/Berlin:20270328T040000\r\n" in feed
    (event,) = parse(feed).events
    assert event.end - event.start == timedelta(hours=3)  # wall clock, as aware arithmetic goes
    assert ends_at(event).astimezone(UTC) - starts_at(event).astimezone(UTC) == timedelta(hours=2)
    calendar = strict(feed)
    (vevent,) = calendar.walk("VEVENT")
    assert vtimezone_instant(calendar, vevent.get("DTSTART")[0]) == start
    assert vtimezone_instant(calendar, vevent.get("DTEND")[0]) == end


def test_the_second_pass_of_the_repeated_hour_is_written_in_utc() -> None:
    second_pass = datetime(2027, 10, 31, 2, 30, fold=1, tzinfo=BERLIN)
    feed = build_feed(
        "王老师",
        [
            entry(
                start=second_pass, end=second_pass + timedelta(hours=1), venue_zone="Europe/Berlin"
            )
        ],
        now=NOW,
    )

    assert b"DTSTART:20271031T013000Z\r\n" in feed
    assert b"DTEND;TZID=Europe/Berlin:20271031T033000\r\n" in feed
    (event,) = parse(feed).events
    # Compared in UTC: an aware datetime whose offset hangs on `fold` never equals another zone's.
    assert starts_at(event).astimezone(UTC) == second_pass.astimezone(UTC)
    assert starts_at(event).astimezone(UTC) == datetime(2027, 10, 31, 1, 30, tzinfo=UTC)
    strict(feed)


def test_an_event_in_shanghai_parses_back_at_the_same_instant() -> None:
    start = datetime(2027, 1, 1, 0, 30, tzinfo=SHANGHAI)  # first half hour of a year
    feed = build_feed("王老师", [entry(start=start)], now=NOW)

    calendar = strict(feed)
    (vevent,) = calendar.walk("VEVENT")
    assert vtimezone_instant(calendar, vevent.get("DTSTART")[0]) == start
    assert parse(feed).events[0].start == start


# --- text ---------------------------------------------------------------------------------------


def test_chinese_text_round_trips_and_folds_between_characters() -> None:
    long_topic = "社区老年大学书法与国画欣赏：从篆书、隶书到行书的演变，兼谈齐白石与徐悲鸿的花鸟画"
    feed = build_feed(
        "欧阳老师",
        [
            entry(
                topic=long_topic,
                venue_name="上海市徐汇区凌云街道社区文化活动中心",
                venue_address="上海市徐汇区梅陇路 123 弄 4 号楼三楼多功能厅",
                description="请提前十分钟到场；教室在三楼，电梯在东侧。\n联系人：李女士",
            )
        ],
        now=NOW,
    )

    calendar = parse(feed)
    assert calendar["X-WR-CALNAME"] == "欧阳老师 · Commonroom"
    (event,) = calendar.events
    assert event.summary == long_topic
    assert event.location == (
        "上海市徐汇区凌云街道社区文化活动中心, 上海市徐汇区梅陇路 123 弄 4 号楼三楼多功能厅"
    )
    assert event.description.startswith(
        "请提前十分钟到场；教室在三楼，电梯在东侧。\n联系人：李女士\n"
    )
    physical = feed.split(b"\r\n")
    assert any(line.startswith(b" ") for line in physical)  # the topic did fold
    for line in physical:
        line.decode("utf-8")  # no fold split a character
        assert len(line) <= 75
    strict(feed)


@pytest.mark.parametrize("lead", range(8))
def test_a_fold_never_splits_a_backslash_escape(lead: int) -> None:
    feed = build_feed("王老师", [entry(topic="a" * lead + ",;\\" * 40)], now=NOW)

    for line in feed.split(b"\r\n"):
        trailing = len(line) - len(line.rstrip(b"\\"))
        assert trailing % 2 == 0, line
    (event,) = parse(feed).events
    assert event.summary == "a" * lead + ",;\\" * 40


text = st.text(
    alphabet=st.one_of(
        st.characters(exclude_categories=("Cs", "Cc")),
        st.sampled_from(["\n", ",", ";", "\\", ":", '"', "中", "\t", "😀"]),
    ),
    max_size=200,
)


@settings(max_examples=150, deadline=None)
@given(topic=text, description=text, name=text)
def test_any_text_round_trips(topic: str, description: str, name: str) -> None:
    feed = build_feed(name, [entry(topic=topic, description=description)], now=NOW)

    calendar = parse(feed)
    # icalendar keeps NAME and X-WR-CALNAME raw; RFC 7986 and 5545 type them TEXT.
    for prop in ("NAME", "X-WR-CALNAME"):
        raw = calendar[prop].to_ical()
        assert isinstance(raw, bytes)
        assert unescape_text(raw.decode()) == calendar_name(lines_as_newlines(name))
    (event,) = calendar.events
    assert event.get("SUMMARY", "") == lines_as_newlines(topic)
    if description:
        assert event.description.startswith(lines_as_newlines(description) + "\n")
    strict(feed)


def unescape_text(value: str) -> str:
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m[1] in "nN" else m[1], value)


def lines_as_newlines(value: str) -> str:
    """What the feed makes of Unicode's line and paragraph separators: plain newlines."""
    return value.replace("\u2028", "\n").replace("\u2029", "\n")


def test_carriage_returns_and_controls_do_not_break_lines() -> None:
    feed = build_feed("王老师", [entry(topic="一\r\n二\r三\x00四\x1b五\u2028六")], now=NOW)

    (event,) = parse(feed).events
    assert event.summary == "一\n二\n三四五\n六"
    strict(feed)


# --- entries and scale --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"start": datetime(2027, 3, 12, 19, tzinfo=SHANGHAI).replace(tzinfo=None)},
        {"updated_at": NOW.replace(tzinfo=None)},
        {"end": datetime(2027, 3, 12, 19, tzinfo=SHANGHAI)},  # empty interval
        {"venue_zone": "Mars/Olympus_Mons"},
        {"venue_zone": "Asia/Shanghai;X=1"},
        {"status": "maybe"},
        {"sequence": -1},
        {"offer_id": ""},
        {"accept_url": "https://x.example/a b"},
        {"url": "https://x.example/\r\nX-EVIL:1"},
    ],
)
def test_a_feed_entry_refuses_what_it_cannot_write(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"."):
        entry(**changes)


def test_an_entry_must_end_after_it_starts_in_real_time_not_on_the_wall_clock() -> None:
    # 02:30 on the second pass is 01:30 UTC; 02:45 on the first pass is 00:45 UTC.
    with pytest.raises(ValueError, match="end after"):
        entry(
            start=datetime(2027, 10, 31, 2, 30, fold=1, tzinfo=BERLIN),
            end=datetime(2027, 10, 31, 2, 45, tzinfo=BERLIN),
            venue_zone="Europe/Berlin",
        )


def test_build_feed_refuses_a_naive_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        build_feed("王老师", [entry()], now=NOW.replace(tzinfo=None))


def test_a_thousand_event_feed_builds_and_reads_back() -> None:
    zones = (SHANGHAI, BERLIN)
    entries = [
        entry(
            offer_id=f"0190c3a2-7d41-7cc2-9a0e-{n:012d}",
            start=datetime(2027, 1, 4, 19, tzinfo=zones[n % 2]) + timedelta(days=n % 365),
            venue_zone=zones[n % 2].key,
            status=STATES[n % 5],
            sequence=n % 9,
            url=ACCEPT,
        )
        for n in range(1000)
    ]

    feed = build_feed("王老师", entries, now=NOW)

    assert len(parse(feed).events) == 1000
    calendar = strict(feed)
    assert len(calendar.walk("VEVENT")) == 1000
    assert len(calendar.walk("VTIMEZONE")) == 2


def test_a_second_parser_reads_every_event_at_its_instant() -> None:
    # vobject validates on reading and resolves TZIDs from the feed's own VTIMEZONEs.
    autumn = datetime(2027, 10, 31, 2, 30, tzinfo=BERLIN, fold=1)  # the repeated hour's 2nd pass
    made = [
        entry(
            offer_id="a",
            topic="健康养生; 讲座, 第一讲",
            start=datetime(2027, 3, 12, 19, tzinfo=SHANGHAI),
        ),
        entry(offer_id="b", venue_zone="Europe/Berlin", start=autumn, status="accepted"),
        entry(
            offer_id="c", venue_zone="Europe/Berlin", start=datetime(2027, 3, 28, 19, tzinfo=BERLIN)
        ),
        entry(offer_id="d", status="cancelled", sequence=4),
    ]
    calendar = vobject.readOne(build_feed("欧阳老师", made, now=NOW).decode(), validate=True)

    read = {str(event.uid.value): event for event in calendar.vevent_list}
    assert set(read) == {event_uid(one.offer_id) for one in made}
    for one in made:
        event = read[event_uid(one.offer_id)]
        # Timestamps: PEP 495 makes == across zones false for a time in the repeated hour.
        assert event.dtstart.value.timestamp() == one.start.timestamp()
        assert event.dtend.value.timestamp() == one.end.timestamp()
    assert read[event_uid("a")].summary.value == "健康养生; 讲座, 第一讲"
    assert read[event_uid("d")].status.value == "CANCELLED"
