"""The monthly lecture matching: which lecturer gives which school's session, when and where.

Pure: the service passes in the corps (with each lecturer's already accepted lectures as `busy`
and their count this month as `accepted_this_month`), the month's open requests, and per venue its
zone, area, location and each room's free intervals as the booking service's availability API
gave them. Nothing here reads the date or time of day; `solve` only measures its own elapsed
time, to keep within its budget.

A session may go to a lecturer at a start time when: the lecturer has the topic; the session lies
inside one of their weekly availability windows, read in the venue's wall-clock time; no part of
it falls on one of their blackout dates (the venue's local date); it overlaps none of their
`busy` intervals nor another session they get in this run; they stay within `max_per_month`
counting `accepted_this_month`; one room of the venue is free for the whole session and no other
session of this run uses that room at an overlapping time; the session starts on the venue's
local 30-minute grid inside the month; it lies inside one of the request's `preferred` windows
when there are any; and the request's sessions fall on different local days.

Among such assignments, the objective is lexicographic: as many sessions as possible, then the
least travel (same area 0, else the great-circle distance in km when both ends have a location,
else `UNKNOWN_TRAVEL_KM`), then the most even load (a lecturer's `c`-th lecture of the month,
accepted ones included, costs `c - 1`, so loads of 2+2 beat 3+1). The weights are computed from
the problem so that no amount of a later criterion outweighs one unit of an earlier one.

Why a session is left unmatched (`Reason`, stable strings, checked in this order):

- `no_lecturer_with_topic`: nobody in the corps teaches the topic.
- `declined_by_all`: everyone who teaches it has declined the request (or let its offer expire).
- `no_free_room`: no room of the venue is free for a whole session at any start in the month.
- `no_free_room_when_preferred`: rooms are free, but never inside the request's preferred windows.
- `no_common_free_time`: lecturers with the topic exist, but none is available (availability,
  blackout dates, accepted lectures) when a room is free and the school prefers; or such times
  exist on fewer distinct days than the request has sessions (this session would need one more).
- `corps_at_monthly_limit`: lecturers could give it at a free time, but every one of them has
  reached `max_per_month` (with this run's sessions, or already with accepted ones).
- `outcompeted`: a lecturer with room in their month could give it, but at each of their
  possible times they, or every fitting room, already serve another session of this run, which
  the objective preferred (more sessions covered elsewhere, or less travel).
- `search_limit`: a lecturer, a room and a day are still free for it alongside the run's other
  sessions: the solver's time limit or its pruning of candidate start times left it out. A rerun
  with a longer limit may place it. `first_fit` never gives this reason.

Modelling decisions (measured on the 2-core development machine; see bench/README.md):

- Time is cut into units of `gcd(30 minutes, every session length, every zone offset)`, usually 30
  minutes, and every set of instants (availability, rooms, preferences, blackouts, busy times) is
  a Python int used as a bit set over the month. Intersecting 500 lecturers with 300 requests is
  then a few big-int operations per pair instead of interval sweeps; sessions start on the local
  30-minute grid, so rounding each boundary inward (free time) or outward (busy time) to a unit
  is exact, not an approximation.
- The solver chooses, per request, up to `sessions` (lecturer, start) candidates with at most one
  per local day; session indices are given afterwards in start order. Modelling a request rather
  than its interchangeable sessions removes their symmetry.
- Before any model, a min-cost max-flow (OR-Tools' `SimpleMinCostFlow`) assigns lecturers to
  requests with the objective's own weights, ignoring clashes between sessions; its lecturers are
  then given times, scarcest request first, and the nearest-lecturer greedy fills what did not
  fit. Every real matching is also such a flow, so the flow's value bounds the objective: when
  the timed plan reaches it, the plan is optimal and CP-SAT is not started. On the bench this
  happens on most seeds. Why: measured, CP-SAT on two cores did not improve a first-fit hint of a
  10,000-candidate model at all within 8 s (presolve and the first LP take seconds), while the
  flow takes a few hundred milliseconds and its plan met the bound or came within 17 km of it.
- Otherwise CP-SAT starts from the better of first-fit and the plan (a complete hint, kept
  through presolve) and may only improve it; `solve` keeps the better of hint and result, so it
  never does worse than `first_fit`. The flow's bound is a constraint of the model, so reaching it
  ends the search as proven optimal.
- When the full candidate set is larger than `MAX_CANDIDATES`, each request keeps its
  `MAX_LECTURERS_PER_REQUEST` lowest-travel lecturers and each such pair `MAX_STARTS_PER_PAIR`
  starts spread over distinct days (rotated per lecturer, so one lecturer's candidates for
  different requests rarely collide); the starting solutions' own picks are always kept.
- No-overlap (per lecturer, and per room at venues where sessions could meet) uses optional
  interval variables and `add_no_overlap`. Measured against one at-most-one constraint per
  maximal clique of the candidates' intervals: intervals built the model faster (0.6 s against
  0.8-1.6 s for 10,600 candidates) and the solver did no worse, so the simpler form stays.
- Rooms need choosing in the model only at venues with two or more requests (or sessions that
  cross midnight); elsewhere the request's own sessions are on different days and cannot meet, so
  the first room free for the session is taken afterwards.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from time import monotonic
from typing import NamedTuple
from zoneinfo import ZoneInfo

import msgspec

# ortools.graph ships .pyi stubs but no py.typed marker (ortools.sat has one), so mypy skips it.
from ortools.graph.python import min_cost_flow  # type: ignore[import-untyped]
from ortools.sat.python import cp_model

from shared.contracts import Location
from shared.errors import FieldError, InvalidRequest
from shared.time import Interval, WeeklySpan, next_month, zone

GRID_MINUTES = 30
UNKNOWN_TRAVEL_KM = 25
MAX_LECTURERS_PER_REQUEST = 8
MAX_STARTS_PER_PAIR = 4
# Above this many (request, lecturer, start) candidates the model is pruned: measured on the
# bench, CP-SAT on two cores spends seconds in presolve and its first LP beyond about this size.
MAX_CANDIDATES = 10_000
MAX_SESSION_MINUTES = 12 * 60
# The solver never gets less than this, however long the model took to build.
MIN_SOLVER_SECONDS = 0.5
_EARTH_RADIUS_KM = 6371.0


class Reason(StrEnum):
    """Why a session went unmatched; the module docstring says when each applies."""

    NO_LECTURER_WITH_TOPIC = "no_lecturer_with_topic"
    DECLINED_BY_ALL = "declined_by_all"
    NO_FREE_ROOM = "no_free_room"
    NO_FREE_ROOM_WHEN_PREFERRED = "no_free_room_when_preferred"
    NO_COMMON_FREE_TIME = "no_common_free_time"
    CORPS_AT_MONTHLY_LIMIT = "corps_at_monthly_limit"
    OUTCOMPETED = "outcompeted"
    SEARCH_LIMIT = "search_limit"


class Lecturer(msgspec.Struct, frozen=True):
    """A member of the corps; `busy` are their already accepted lectures (any month) and
    `accepted_this_month` how many of those count against this month's `max_per_month`."""

    id: str
    topics: frozenset[str]
    area_id: str
    availability: tuple[WeeklySpan, ...]
    max_per_month: int = 4
    location: Location | None = None
    blackout_dates: frozenset[date] = frozenset()
    busy: tuple[Interval, ...] = ()
    accepted_this_month: int = 0


class Request(msgspec.Struct, frozen=True):
    """A school's request for `sessions` lectures of `minutes` each in the problem's month."""

    id: str
    venue_id: str
    topic: str
    sessions: int = 1
    minutes: int = 90
    preferred: tuple[WeeklySpan, ...] = ()
    # Lecturers who declined a session of this request or let its offer expire: not asked again.
    declined_by: frozenset[str] = frozenset()


class Room(msgspec.Struct, frozen=True):
    """A room and its free intervals in (about) the month, as the booking service answers them."""

    id: str
    free: tuple[Interval, ...]


class Venue(msgspec.Struct, frozen=True):
    id: str
    area_id: str
    timezone: str
    rooms: tuple[Room, ...] = ()
    location: Location | None = None


class Problem(msgspec.Struct, frozen=True):
    """One month's matching; `month` is its first day. Every request's venue must be present."""

    month: date
    lecturers: tuple[Lecturer, ...]
    requests: tuple[Request, ...]
    venues: tuple[Venue, ...]


class Assignment(msgspec.Struct, frozen=True):
    request_id: str
    session_index: int
    lecturer_id: str
    venue_id: str
    room_id: str
    interval: Interval


class Unmatched(msgspec.Struct, frozen=True):
    request_id: str
    session_index: int
    reason: Reason


class Score(msgspec.Struct, frozen=True):
    """The objective's parts: sessions covered, total travel in km, load penalty (lower is more
    even; it counts accepted lectures too)."""

    covered: int
    travel: int
    load: int


class Outcome(msgspec.Struct, frozen=True):
    """A run's result. `objective` weighs `score` lexicographically (higher is better, comparable
    between runs on one problem); `optimal` is True only when it is proven best: it meets the
    flow's bound, or CP-SAT proved it over all candidates with none pruned."""

    assignments: tuple[Assignment, ...]
    unmatched: tuple[Unmatched, ...]
    objective: int
    score: Score
    optimal: bool


def travel_km(lecturer: Lecturer, venue: Venue) -> int:
    """What a lecturer's trip to a venue costs: 0 within their area, else whole km (at least 1)."""
    if lecturer.area_id == venue.area_id:
        return 0
    if lecturer.location is None or venue.location is None:
        return UNKNOWN_TRAVEL_KM
    a, b = lecturer.location, venue.location
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    half = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin(math.radians(b.lon - a.lon) / 2) ** 2
    )
    return max(1, round(2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(half)))))


def load_penalty(count: int) -> int:
    """The load cost of `count` lectures in a month: the c-th costs c - 1."""
    return count * (count - 1) // 2


# ---------------------------------------------------------------------------------------------
# Time as bit sets


def _span(lo: int, hi: int) -> int:
    return ((1 << (hi - lo)) - 1) << lo if hi > lo else 0


def _fits(mask: int, units: int) -> int:
    """The starts whose next `units` units all lie in `mask` (doubling: log2(units) shifts)."""
    result, covered = mask, 1
    while covered < units:
        step = min(covered, units - covered)
        result &= result >> step
        covered += step
    return result


def _bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


class _Clock:
    """Units since `anchor` (a UTC midnight before the month in every zone)."""

    def __init__(self, anchor: datetime, step: timedelta, size: int) -> None:
        self.anchor, self.step, self.size = anchor, step, size
        self.full = (1 << size) - 1

    def floor(self, instant: datetime) -> int:
        return min(self.size, max(0, (instant - self.anchor) // self.step))

    def ceil(self, instant: datetime) -> int:
        return min(self.size, max(0, -((self.anchor - instant) // self.step)))

    def instant(self, unit: int) -> datetime:
        return self.anchor + unit * self.step

    def inward(self, pairs: Iterable[tuple[datetime, datetime]]) -> int:
        """Units wholly inside the union of `pairs` (merged first, so touching pieces join)."""
        mask, current = 0, None
        for start, end in sorted((s.astimezone(UTC), e.astimezone(UTC)) for s, e in pairs):
            if current is not None and start <= current[1]:
                current = (current[0], max(current[1], end))
                continue
            if current is not None:
                mask |= _span(self.ceil(current[0]), self.floor(current[1]))
            current = (start, end)
        if current is not None:
            mask |= _span(self.ceil(current[0]), self.floor(current[1]))
        return mask

    def outward(self, pairs: Iterable[tuple[datetime, datetime]]) -> int:
        """Units that touch any of `pairs`."""
        mask = 0
        for start, end in pairs:
            mask |= _span(self.floor(start), self.ceil(end))
        return mask


def _windows(
    windows: Iterable[WeeklySpan], tz: ZoneInfo, days: Sequence[date]
) -> list[tuple[datetime, datetime]]:
    pairs = []
    for day in days:
        weekday = day.isoweekday()
        for window in windows:
            if weekday in window.weekdays:
                end_day = day if window.end > window.start else day + timedelta(days=1)
                pairs.append(
                    (
                        datetime.combine(day, window.start, tzinfo=tz),
                        datetime.combine(end_day, window.end, tzinfo=tz),
                    )
                )
    return pairs


def _whole_days(days: Iterable[date], tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    return [
        (
            datetime.combine(day, time(), tzinfo=tz),
            datetime.combine(day + timedelta(days=1), time(), tzinfo=tz),
        )
        for day in days
    ]


class _Zone:
    """A venue zone's view of the month: the startable units and which local day each is on."""

    def __init__(self, tz: ZoneInfo, clock: _Clock, month: date) -> None:
        self.tz = tz
        first = datetime.combine(month, time(), tzinfo=tz)
        following = next_month(month)
        last = datetime.combine(following, time(), tzinfo=tz)
        self.days = [month + timedelta(days=i) for i in range(-1, (following - month).days + 1)]
        self.day_masks: list[int] = []
        self.day_starts: list[int] = []
        self.startable = 0
        for day in range((following - month).days):
            lo = clock.ceil(datetime.combine(month + timedelta(days=day), time(), tzinfo=tz))
            hi = clock.ceil(datetime.combine(month + timedelta(days=day + 1), time(), tzinfo=tz))
            mask = 0
            for unit in range(lo, hi):
                local = clock.instant(unit).astimezone(tz)
                if local.minute % GRID_MINUTES == 0 and local.second == local.microsecond == 0:
                    mask |= 1 << unit
            self.day_masks.append(mask)
            self.day_starts.append(lo)
            self.startable |= mask
        # A sentinel: units from the month's end on belong to no day of it.
        self.day_starts.append(clock.ceil(last))
        self.bounds = (clock.ceil(first), clock.ceil(last))

    def day_of(self, unit: int) -> int:
        return bisect_right(self.day_starts, unit) - 1

    def days_in(self, mask: int) -> list[int]:
        return [day for day, day_mask in enumerate(self.day_masks) if mask & day_mask]


# ---------------------------------------------------------------------------------------------
# The compiled problem


class _Compiled:
    """The problem as bit sets, with the (request, lecturer) feasibility cached."""

    def __init__(self, problem: Problem) -> None:
        _validate(problem)
        self.problem = problem
        self.venues = {venue.id: venue for venue in problem.venues}
        zones = {venue.timezone: zone(venue.timezone) for venue in problem.venues}
        self.clock = _make_clock(problem, tuple(zones.values()))
        self.zones = {name: _Zone(tz, self.clock, problem.month) for name, tz in zones.items()}
        self.lecturers = problem.lecturers
        self.requests = problem.requests
        self.caps = [max(0, lec.max_per_month - lec.accepted_this_month) for lec in self.lecturers]
        self.by_topic: dict[str, list[int]] = defaultdict(list)
        for index, lecturer in enumerate(self.lecturers):
            for topic in lecturer.topics:
                self.by_topic[topic].append(index)
        self.request_lecturers = [
            [
                i
                for i in self.by_topic.get(request.topic, [])
                if self.lecturers[i].id not in request.declined_by
            ]
            for request in self.requests
        ]
        self.units = [
            request.minutes // self._minutes(self.clock.step) for request in self.requests
        ]
        self.room_masks = {
            venue.id: [
                self.clock.inward((iv.start, iv.end) for iv in room.free) for room in venue.rooms
            ]
            for venue in problem.venues
        }
        self._room_fits: dict[tuple[str, int], list[int]] = {}
        self._window_cache: dict[tuple[tuple[WeeklySpan, ...], str], int] = {}
        self._available: dict[tuple[int, str], int] = {}
        self._fits_cache: dict[tuple[int, str, int], int] = {}
        self._feasible: dict[tuple[int, int], int] = {}
        self._travel: dict[tuple[int, int], int] = {}
        self.weights: tuple[int, int] | None = None
        self.room_starts = []  # room free and on the grid in the month
        self.request_starts = []  # ... and inside the preferred windows
        for r, request in enumerate(self.requests):
            venue = self.venues[request.venue_id]
            zone_ = self.zones[venue.timezone]
            rooms = 0
            for fits in self.room_fits(venue.id, self.units[r]):
                rooms |= fits
            rooms &= zone_.startable
            self.room_starts.append(rooms)
            if request.preferred:
                preferred = self._weekly(request.preferred, venue.timezone)
                rooms &= _fits(preferred, self.units[r])
            self.request_starts.append(rooms)

    @staticmethod
    def _minutes(step: timedelta) -> int:
        return step // timedelta(minutes=1)

    def zone_of(self, r: int) -> _Zone:
        return self.zones[self.venues[self.requests[r].venue_id].timezone]

    def room_fits(self, venue_id: str, units: int) -> list[int]:
        key = (venue_id, units)
        if key not in self._room_fits:
            self._room_fits[key] = [_fits(mask, units) for mask in self.room_masks[venue_id]]
        return self._room_fits[key]

    def _weekly(self, windows: tuple[WeeklySpan, ...], zone_name: str) -> int:
        key = (windows, zone_name)
        if key not in self._window_cache:
            zone_ = self.zones[zone_name]
            self._window_cache[key] = self.clock.inward(_windows(windows, zone_.tz, zone_.days))
        return self._window_cache[key]

    def available(self, lecturer: int, zone_name: str) -> int:
        """Units the lecturer is free in, before this run: weekly hours read in `zone_name`,
        minus their blackout dates there and their accepted lectures."""
        key = (lecturer, zone_name)
        if key not in self._available:
            lec = self.lecturers[lecturer]
            mask = self._weekly(lec.availability, zone_name)
            if lec.blackout_dates:
                tz = self.zones[zone_name].tz
                mask &= ~self.clock.outward(_whole_days(lec.blackout_dates, tz))
            if lec.busy:
                mask &= ~self.clock.outward((iv.start, iv.end) for iv in lec.busy)
            self._available[key] = mask
        return self._available[key]

    def feasible(self, r: int, lecturer: int) -> int:
        """Starts at which `lecturer` could give a session of request `r`, alone in the run."""
        key = (r, lecturer)
        if key not in self._feasible:
            zone_name = self.venues[self.requests[r].venue_id].timezone
            fits_key = (lecturer, zone_name, self.units[r])
            if fits_key not in self._fits_cache:
                self._fits_cache[fits_key] = _fits(
                    self.available(lecturer, zone_name), self.units[r]
                )
            self._feasible[key] = self.request_starts[r] & self._fits_cache[fits_key]
        return self._feasible[key]

    def accepted(self, lecturer: int) -> int:
        return self.lecturers[lecturer].accepted_this_month

    def topic_lecturers(self, r: int) -> list[int]:
        """Who may be asked to give request `r`: the topic's lecturers who have not declined it."""
        return self.request_lecturers[r]

    def travel(self, r: int, lecturer: int) -> int:
        key = (r, lecturer)
        if key not in self._travel:
            venue = self.venues[self.requests[r].venue_id]
            self._travel[key] = travel_km(self.lecturers[lecturer], venue)
        return self._travel[key]


def _validate(problem: Problem) -> None:
    errors = []
    if problem.month.day != 1:
        errors.append(FieldError("month", "must be the first day of the month"))
    venue_ids = {venue.id for venue in problem.venues}
    if len(venue_ids) != len(problem.venues):
        errors.append(FieldError("venues", "venue ids must be unique"))
    if len({lec.id for lec in problem.lecturers}) != len(problem.lecturers):
        errors.append(FieldError("lecturers", "lecturer ids must be unique"))
    if len({req.id for req in problem.requests}) != len(problem.requests):
        errors.append(FieldError("requests", "request ids must be unique"))
    for index, request in enumerate(problem.requests):
        where = f"requests[{index}]"
        if request.venue_id not in venue_ids:
            errors.append(FieldError(f"{where}.venue_id", "no such venue in the problem"))
        if request.sessions < 1:
            errors.append(FieldError(f"{where}.sessions", "must be at least 1"))
        if not 1 <= request.minutes <= MAX_SESSION_MINUTES:
            errors.append(FieldError(f"{where}.minutes", f"must be 1 to {MAX_SESSION_MINUTES}"))
    windows = [w for lec in problem.lecturers for w in lec.availability]
    windows += [w for req in problem.requests for w in req.preferred]
    if any(not 1 <= day <= 7 for window in windows for day in window.weekdays):
        errors.append(FieldError("weekdays", "ISO weekdays run from 1 (Monday) to 7"))
    if any(lec.max_per_month < 0 or lec.accepted_this_month < 0 for lec in problem.lecturers):
        errors.append(FieldError("lecturers", "monthly counts cannot be negative"))
    if errors:
        raise InvalidRequest("the matching problem is inconsistent", errors=errors)


def _make_clock(problem: Problem, zones: tuple[ZoneInfo, ...]) -> _Clock:
    """A unit that every session length, grid point and local midnight falls on."""
    step = GRID_MINUTES
    for request in problem.requests:
        step = math.gcd(step, request.minutes)
    month, following = problem.month, next_month(problem.month)
    starts, ends = [], []
    for tz in zones:
        for day in range(-1, (following - month).days + 2):
            local = datetime.combine(month + timedelta(days=day), time(12), tzinfo=tz)
            offset = local.utcoffset() or timedelta()
            step = math.gcd(step, int(offset.total_seconds()) // 60)
        starts.append(datetime.combine(month, time(), tzinfo=tz))
        ends.append(datetime.combine(following, time(), tzinfo=tz))
    first = min(starts, default=datetime.combine(month, time(), tzinfo=UTC)).astimezone(UTC)
    last = max(ends, default=datetime.combine(following, time(), tzinfo=UTC)).astimezone(UTC)
    # A day either side: availability windows past midnight and sessions ending after the month.
    anchor = datetime.combine(first.date() - timedelta(days=1), time(), tzinfo=UTC)
    horizon = last + timedelta(days=2) - anchor
    unit = timedelta(minutes=step)
    return _Clock(anchor, unit, -(-horizon // unit))


# ---------------------------------------------------------------------------------------------
# A run's state, the greedy baseline and the reasons


class _Pick(NamedTuple):
    request: int
    lecturer: int
    start: int
    room: int


class _State:
    """What a run has given out: per lecturer the units taken and lectures counted, per room the
    units used, per request the local days it has sessions on."""

    def __init__(self, c: _Compiled) -> None:
        self.c = c
        self.taken: dict[int, int] = defaultdict(int)
        self.used: dict[tuple[str, int], int] = defaultdict(int)
        self.count = [0] * len(c.lecturers)
        self.request_days: dict[int, int] = defaultdict(int)
        self.picks: list[_Pick] = []

    def open_starts(self, r: int, lecturer: int) -> int:
        """Starts still open to `lecturer` for a further session of `r` (rooms aside)."""
        starts = self.c.feasible(r, lecturer) & ~self.request_days[r]
        taken = self.taken[lecturer]
        if starts and taken:
            starts &= _fits(self.c.clock.full ^ taken, self.c.units[r])
        return starts

    def free_rooms(self, r: int) -> list[int]:
        """Per room of `r`'s venue, the starts at which it is still free for a session of `r`."""
        venue_id, units = self.c.requests[r].venue_id, self.c.units[r]
        rooms = list(self.c.room_fits(venue_id, units))
        for index, mask in enumerate(self.c.room_masks[venue_id]):
            used = self.used.get((venue_id, index))
            if used:
                rooms[index] &= _fits(mask & ~used, units)
        return rooms

    def commit(self, pick: _Pick) -> None:
        c = self.c
        units = _span(pick.start, pick.start + c.units[pick.request])
        self.taken[pick.lecturer] |= units
        self.used[c.requests[pick.request].venue_id, pick.room] |= units
        self.count[pick.lecturer] += 1
        zone_ = c.zone_of(pick.request)
        self.request_days[pick.request] |= zone_.day_masks[zone_.day_of(pick.start)]
        self.picks.append(pick)


def _lowest(mask: int) -> int:
    return (mask & -mask).bit_length() - 1


def _place(state: _State, r: int, lecturers: Iterable[int]) -> bool:
    """Give a further session of `r` to the first of `lecturers` with a free slot and room, at
    its earliest; False when none has one."""
    c = state.c
    rooms = state.free_rooms(r)
    any_room = 0
    for mask in rooms:
        any_room |= mask
    for lecturer in lecturers:
        if state.count[lecturer] >= c.caps[lecturer]:
            continue
        starts = state.open_starts(r, lecturer) & any_room
        if starts:
            start = _lowest(starts)
            room = next(i for i, mask in enumerate(rooms) if mask >> start & 1)
            state.commit(_Pick(r, lecturer, start, room))
            return True
    return False


def _greedy(c: _Compiled, *, nearest: bool = False, state: _State | None = None) -> _State:
    """Requests in order, each session at its earliest free slot with the first lecturer (in the
    corps' order) who has one, or with `nearest`, the one with the least travel, then load;
    from `state` on where one is given."""
    state = state or _State(c)
    placed: dict[int, int] = defaultdict(int)
    for pick in state.picks:
        placed[pick.request] += 1
    for r, request in enumerate(c.requests):
        for _ in range(request.sessions - placed[r]):
            lecturers = c.topic_lecturers(r)
            if nearest:
                lecturers = sorted(
                    lecturers,
                    key=lambda lec: (c.travel(r, lec), state.count[lec] + c.accepted(lec)),
                )
            if not _place(state, r, lecturers):
                break  # the next session of this request would meet the same state
    return state


def _flow_lecturers(c: _Compiled) -> tuple[dict[int, list[int]], list[int], int | None]:
    """Lecturers per request (one entry per session) by a min-cost max-flow with the
    objective's weights, clashes between sessions ignored; each request's count of options; and
    the flow's objective, a bound no real matching exceeds (each one is such a flow)."""
    per_km = _weights(c)[1]
    flow = min_cost_flow.SimpleMinCostFlow()
    requests, lecturers = len(c.requests), len(c.lecturers)
    source, sink = requests + lecturers, requests + lecturers + 1
    arcs: list[tuple[int, int, int]] = []
    options = [0] * requests
    for r, request in enumerate(c.requests):
        flow.add_arc_with_capacity_and_unit_cost(source, r, request.sessions, 0)
        for lecturer in c.topic_lecturers(r):
            starts = c.feasible(r, lecturer) if c.caps[lecturer] else 0
            if not starts:
                continue
            options[r] += starts.bit_count()
            capacity = request.sessions
            if capacity > 1 and starts.bit_count() < capacity * 24 * 60 // GRID_MINUTES:
                capacity = min(capacity, len(c.zone_of(r).days_in(starts)))
            cost = per_km * c.travel(r, lecturer)
            arc = flow.add_arc_with_capacity_and_unit_cost(r, requests + lecturer, capacity, cost)
            arcs.append((arc, r, lecturer))
    for lecturer, cap in enumerate(c.caps):
        accepted = c.accepted(lecturer)
        for k in range(accepted + 1, accepted + cap + 1):
            flow.add_arc_with_capacity_and_unit_cost(requests + lecturer, sink, 1, k - 1)
    total = sum(request.sessions for request in c.requests)
    flow.set_node_supply(source, total)
    flow.set_node_supply(sink, -total)
    planned: dict[int, list[int]] = defaultdict(list)
    if flow.solve_max_flow_with_min_cost() != flow.OPTIMAL:
        return planned, options, None
    for arc, r, lecturer in arcs:
        planned[r] += [lecturer] * flow.flow(arc)
    bound: int = _weights(c)[0] * flow.maximum_flow() - flow.optimal_cost()
    return planned, options, bound


def _flow_plan(c: _Compiled) -> tuple[_State, int | None]:
    """A strong start for the solver: the flow's lecturers, given times request by request
    (scarcest first), then the nearest-lecturer greedy for the sessions that did not fit.

    Why: measured on the bench, CP-SAT on two cores barely moves from a first-fit hint within
    the budget, while the flow is solved in milliseconds and leaves the solver only the clashes."""
    planned, options, bound = _flow_lecturers(c)
    state = _State(c)
    for r in sorted(planned, key=lambda r: options[r]):
        for lecturer in planned[r]:
            _place(state, r, (lecturer,))
    return _greedy(c, nearest=True, state=state), bound


def _static_reason(c: _Compiled, r: int, session_index: int) -> Reason | None:
    """The reasons that hold whatever else the run does."""
    if not c.by_topic.get(c.requests[r].topic):
        return Reason.NO_LECTURER_WITH_TOPIC
    if not c.topic_lecturers(r):
        return Reason.DECLINED_BY_ALL
    if not c.room_starts[r]:
        return Reason.NO_FREE_ROOM
    if not c.request_starts[r]:
        return Reason.NO_FREE_ROOM_WHEN_PREFERRED
    reachable = 0
    for lecturer in c.topic_lecturers(r):
        reachable |= c.feasible(r, lecturer)
    if len(c.zone_of(r).days_in(reachable)) <= session_index:
        return Reason.NO_COMMON_FREE_TIME
    return None


def _reason(c: _Compiled, state: _State, r: int, session_index: int) -> Reason | None:
    """Why session `session_index` of request `r` has no place beside `state`; None when one is
    still free for it."""
    static = _static_reason(c, r, session_index)
    if static is not None:
        return static
    able = [
        lecturer
        for lecturer in c.topic_lecturers(r)
        if c.feasible(r, lecturer) & ~state.request_days[r]
    ]
    with_room = [lecturer for lecturer in able if state.count[lecturer] < c.caps[lecturer]]
    if not with_room:
        return Reason.CORPS_AT_MONTHLY_LIMIT if able else Reason.NO_COMMON_FREE_TIME
    any_room = 0
    for mask in state.free_rooms(r):
        any_room |= mask
    if any(state.open_starts(r, lecturer) & any_room for lecturer in with_room):
        return None
    return Reason.OUTCOMPETED


# ---------------------------------------------------------------------------------------------
# Scoring and the outcome


def _weights(c: _Compiled) -> tuple[int, int]:
    """(per session covered, per km): one more session outweighs any travel and load, one km
    less outweighs any load."""
    if c.weights is None:
        c.weights = _compute_weights(c)
    return c.weights


def _compute_weights(c: _Compiled) -> tuple[int, int]:
    sessions = sum(request.sessions for request in c.requests)
    max_travel = max(
        (
            c.travel(r, lecturer)
            for r in range(len(c.requests))
            for lecturer in c.topic_lecturers(r)
        ),
        default=0,
    )
    max_load = sum(
        load_penalty(lec.accepted_this_month + min(cap, sessions))
        - load_penalty(lec.accepted_this_month)
        for lec, cap in zip(c.lecturers, c.caps, strict=True)
    )
    per_km = max_load + 1
    return per_km * max_travel * sessions + max_load + 1, per_km


def _score(c: _Compiled, state: _State) -> tuple[Score, int]:
    travel = sum(c.travel(pick.request, pick.lecturer) for pick in state.picks)
    base = [load_penalty(lec.accepted_this_month) for lec in c.lecturers]
    load = [
        load_penalty(lec.accepted_this_month + count)
        for lec, count in zip(c.lecturers, state.count, strict=True)
    ]
    per_session, per_km = _weights(c)
    added_load = sum(load) - sum(base)
    objective = per_session * len(state.picks) - per_km * travel - added_load
    return Score(covered=len(state.picks), travel=travel, load=sum(load)), objective


def _outcome(c: _Compiled, state: _State, *, optimal: bool) -> Outcome:
    by_request: dict[int, list[_Pick]] = defaultdict(list)
    for pick in state.picks:
        by_request[pick.request].append(pick)
    assignments, unmatched = [], []
    for r, request in enumerate(c.requests):
        venue = c.venues[request.venue_id]
        picks = sorted(by_request[r], key=lambda pick: pick.start)
        for index, pick in enumerate(picks):
            assignments.append(
                Assignment(
                    request_id=request.id,
                    session_index=index,
                    lecturer_id=c.lecturers[pick.lecturer].id,
                    venue_id=venue.id,
                    room_id=venue.rooms[pick.room].id,
                    interval=Interval(
                        c.clock.instant(pick.start), c.clock.instant(pick.start + c.units[r])
                    ),
                )
            )
        for index in range(len(picks), request.sessions):
            reason = _reason(c, state, r, index) or Reason.SEARCH_LIMIT
            unmatched.append(Unmatched(request.id, index, reason))
    score, objective = _score(c, state)
    return Outcome(tuple(assignments), tuple(unmatched), objective, score, optimal)


# ---------------------------------------------------------------------------------------------
# The CP-SAT model


class _Candidate(NamedTuple):
    request: int
    lecturer: int
    start: int


def _spread(zone_: _Zone, starts: int, limit: int, offset: int) -> list[int]:
    """Up to `limit` of `starts`, on as many distinct days as possible, spread over the month
    and rotated by `offset` so that different requests get different days of one lecturer."""
    by_day = [list(_bits(starts & zone_.day_masks[day])) for day in zone_.days_in(starts)]
    chosen: list[int] = []
    count = len(by_day)
    for j in range(min(limit, count)):
        day = by_day[(offset + j * count // min(limit, count)) % count]
        chosen.append(day[(offset + j) % len(day)])
    rest = (start for day in by_day for start in day if start not in chosen)
    while len(chosen) < limit and (extra := next(rest, None)) is not None:
        chosen.append(extra)
    return chosen


def _candidates(c: _Compiled, keep: Iterable[_Pick]) -> tuple[list[_Candidate], bool]:
    """Every feasible (request, lecturer, start) when they are few enough, else a pruned set
    that still holds the `keep` picks (the starting solutions); and whether anything was pruned."""
    pairs = [
        (r, lecturer, starts)
        for r in range(len(c.requests))
        for lecturer in c.topic_lecturers(r)
        if c.caps[lecturer] and (starts := c.feasible(r, lecturer))
    ]
    if sum(starts.bit_count() for _, _, starts in pairs) <= MAX_CANDIDATES:
        return [
            _Candidate(r, lecturer, start)
            for r, lecturer, starts in pairs
            for start in _bits(starts)
        ], False
    by_request: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for r, lecturer, starts in pairs:
        by_request[r].append((lecturer, starts))
    seen = {_Candidate(p.request, p.lecturer, p.start) for p in keep}
    chosen = list(seen)
    offered: dict[int, int] = defaultdict(int)
    for r, options in by_request.items():
        options.sort(key=lambda option: (c.travel(r, option[0]), option[0]))
        for lecturer, starts in options[:MAX_LECTURERS_PER_REQUEST]:
            for start in _spread(c.zone_of(r), starts, MAX_STARTS_PER_PAIR, offered[lecturer]):
                candidate = _Candidate(r, lecturer, start)
                if candidate not in seen:
                    seen.add(candidate)
                    chosen.append(candidate)
            offered[lecturer] += 1
    return chosen, True


def _no_overlap(
    model: cp_model.CpModel, items: Sequence[tuple[int, int, Sequence[cp_model.IntVar]]]
) -> None:
    """At most one of the items' literals at any instant: one optional interval per literal."""
    intervals = [
        model.new_optional_fixed_size_interval_var(start, end - start, literal, "")
        for start, end, literals in items
        for literal in literals
    ]
    if len(intervals) > 1:
        model.add_no_overlap(intervals)


def _sum(literals: Sequence[cp_model.IntVar]) -> cp_model.LinearExpr:
    return cp_model.LinearExpr.sum(literals)


class _Model:
    """The CP-SAT model of one run and the variables needed to read a solution back."""

    def __init__(
        self, c: _Compiled, candidates: Sequence[_Candidate], hint: _State, bound: int | None
    ) -> None:
        self.c, self.candidates = c, candidates
        self.model = cp_model.CpModel()
        self.chosen = [self.model.new_bool_var("") for _ in candidates]
        # (request, start) -> per room of the venue its literal, where rooms are chosen in the model
        self.rooms: dict[tuple[int, int], dict[int, cp_model.IntVar]] = {}
        hinted = {_Candidate(p.request, p.lecturer, p.start): p.room for p in hint.picks}
        for literal, candidate in zip(self.chosen, candidates, strict=True):
            self.model.add_hint(literal, candidate in hinted)
        per_session, per_km = _weights(c)
        terms = list(self.chosen)
        weights = [
            per_session - per_km * c.travel(cand.request, cand.lecturer) for cand in candidates
        ]
        self._requests()
        for literal, weight in self._lecturers(hint):
            terms.append(literal)
            weights.append(weight)
        self._rooms(hinted)
        objective = cp_model.LinearExpr.weighted_sum(terms, weights)
        if bound is not None:
            # The flow's bound, so that a solution reaching it ends the search as optimal.
            self.model.add(objective <= bound)
        self.model.maximize(objective)

    def _requests(self) -> None:
        by_request: dict[int, list[cp_model.IntVar]] = defaultdict(list)
        by_day: dict[tuple[int, int], list[cp_model.IntVar]] = defaultdict(list)
        for literal, cand in zip(self.chosen, self.candidates, strict=True):
            by_request[cand.request].append(literal)
            day = self.c.zone_of(cand.request).day_of(cand.start)
            by_day[cand.request, day].append(literal)
        for r, literals in by_request.items():
            if len(literals) > self.c.requests[r].sessions:
                self.model.add(_sum(literals) <= self.c.requests[r].sessions)
        for (r, _), literals in by_day.items():
            if self.c.requests[r].sessions > 1 and len(literals) > 1:
                self.model.add_at_most_one(literals)

    def _lecturers(self, hint: _State) -> list[tuple[cp_model.IntVar, int]]:
        """Capacity, no-overlap and the load terms; the k-th lecture of a month costs k - 1, and
        since costs rise with k the solver takes the cheap ones first without ordering them."""
        c, model = self.c, self.model
        by_lecturer: dict[int, list[int]] = defaultdict(list)
        for index, cand in enumerate(self.candidates):
            by_lecturer[cand.lecturer].append(index)
        penalties: list[tuple[cp_model.IntVar, int]] = []
        for lecturer, indices in by_lecturer.items():
            literals = [self.chosen[i] for i in indices]
            cap, accepted = c.caps[lecturer], c.lecturers[lecturer].accepted_this_month
            if len(literals) > cap:
                model.add(_sum(literals) <= cap)
            free = 1 if accepted == 0 else 0
            if len(literals) > free:
                ranks = range(accepted + free + 1, accepted + min(cap, len(literals)) + 1)
                extra = [model.new_bool_var("") for _ in ranks]
                model.add(_sum(literals) <= free + _sum(extra))
                hinted = hint.count[lecturer] - free
                for position, (rank, literal) in enumerate(zip(ranks, extra, strict=True)):
                    model.add_hint(literal, position < hinted)
                    penalties.append((literal, 1 - rank))
            _no_overlap(
                model,
                [
                    (cand.start, cand.start + c.units[cand.request], [self.chosen[i]])
                    for i in indices
                    for cand in (self.candidates[i],)
                ],
            )
        return penalties

    def _rooms(self, hinted: dict[_Candidate, int]) -> None:
        """Room choice and no-overlap at the venues where two sessions of the run could meet."""
        c = self.c
        groups: dict[str, dict[tuple[int, int], list[cp_model.IntVar]]] = defaultdict(
            lambda: defaultdict(list)
        )
        crossing: set[str] = set()
        hinted_rooms = {(cand.request, cand.start): room for cand, room in hinted.items()}
        for literal, cand in zip(self.chosen, self.candidates, strict=True):
            venue_id = c.requests[cand.request].venue_id
            groups[venue_id][cand.request, cand.start].append(literal)
            zone_ = c.zone_of(cand.request)
            last = cand.start + c.units[cand.request] - 1
            if zone_.day_of(cand.start) != zone_.day_of(last):
                crossing.add(venue_id)
        for venue_id, by_slot in groups.items():
            if len({r for r, _ in by_slot}) < 2 and venue_id not in crossing:
                continue
            per_room: dict[int, list[tuple[int, int, Sequence[cp_model.IntVar]]]] = defaultdict(
                list
            )
            for (r, start), literals in by_slot.items():
                fits = c.room_fits(venue_id, c.units[r])
                rooms = [i for i, mask in enumerate(fits) if mask >> start & 1]
                end = start + c.units[r]
                if len(rooms) == 1:
                    per_room[rooms[0]].append((start, end, literals))
                    continue
                choice = {room: self.model.new_bool_var("") for room in rooms}
                self.model.add(_sum(list(choice.values())) == _sum(literals))
                for room, literal in choice.items():
                    self.model.add_hint(literal, hinted_rooms.get((r, start)) == room)
                    per_room[room].append((start, end, [literal]))
                self.rooms[r, start] = choice
            for items in per_room.values():
                _no_overlap(self.model, items)

    def read(self, solver: cp_model.CpSolver) -> _State:
        c, state = self.c, _State(self.c)
        for literal, cand in zip(self.chosen, self.candidates, strict=True):
            if not solver.boolean_value(literal):
                continue
            choice = self.rooms.get((cand.request, cand.start))
            room = next((i for i, lit in (choice or {}).items() if solver.boolean_value(lit)), None)
            if room is None:
                fits = c.room_fits(c.requests[cand.request].venue_id, c.units[cand.request])
                room = next(i for i, mask in enumerate(fits) if mask >> cand.start & 1)
            state.commit(_Pick(cand.request, cand.lecturer, cand.start, room))
        return state


# ---------------------------------------------------------------------------------------------
# The public calls


def first_fit(problem: Problem) -> Outcome:
    """The greedy baseline: requests in order, each session to the first lecturer (in the corps'
    order) with a free slot, at their earliest one, in the first free room."""
    c = _Compiled(problem)
    return _outcome(c, _greedy(c), optimal=False)


def solve(problem: Problem, *, time_limit_seconds: float = 8.0, workers: int = 2) -> Outcome:
    """The best matching CP-SAT finds within `time_limit_seconds` (the whole call's budget, model
    building included), never worse than `first_fit`; `workers` are solver threads.

    The solver starts from the better of first-fit and the flow plan, and is skipped when the
    plan already meets the flow's bound (then it is optimal: no matching does better)."""
    began = monotonic()
    c = _Compiled(problem)
    plan, bound = _flow_plan(c)
    starts = [_greedy(c), plan]
    best = max(starts, key=lambda state: _score(c, state)[1])
    best_objective = _score(c, best)[1]
    if bound is not None and best_objective >= bound:
        return _outcome(c, best, optimal=True)
    candidates, pruned = _candidates(c, (pick for state in starts for pick in state.picks))
    if not candidates:
        return _outcome(c, best, optimal=not pruned)
    built = _Model(c, candidates, best, bound)
    solver = cp_model.CpSolver()
    elapsed = monotonic() - began
    solver.parameters.max_time_in_seconds = max(MIN_SOLVER_SECONDS, time_limit_seconds - elapsed)
    solver.parameters.num_workers = workers
    # Without this, presolve may fix variables against the hint (dominance, symmetry) and the
    # search then starts from a repaired, worse solution: measured, 2 sessions fewer on the bench.
    solver.parameters.keep_all_feasible_solutions_in_presolve = True
    status = solver.solve(built.model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return _outcome(c, best, optimal=False)
    found = built.read(solver)
    objective = _score(c, found)[1]
    if objective < best_objective:
        return _outcome(c, best, optimal=False)
    proven = (status == cp_model.OPTIMAL and not pruned) or objective == bound
    return _outcome(c, found, optimal=proven)


def explain(
    problem: Problem,
    request_id: str,
    session_index: int,
    assignments: Sequence[Assignment] = (),
) -> Reason | None:
    """Why session `session_index` of a request cannot be placed beside `assignments` (the
    other sessions of a run); None when a lecturer, a room and a day are still free for it."""
    c = _Compiled(problem)
    requests = {request.id: r for r, request in enumerate(c.requests)}
    lecturers = {lecturer.id: index for index, lecturer in enumerate(c.lecturers)}
    if request_id not in requests:
        raise InvalidRequest(f"no request {request_id!r} in the problem", code="unknown_request")
    state = _State(c)
    for assignment in assignments:
        if assignment.request_id == request_id and assignment.session_index == session_index:
            continue
        r = requests[assignment.request_id]
        venue = c.venues[assignment.venue_id]
        room = next(i for i, room in enumerate(venue.rooms) if room.id == assignment.room_id)
        start = c.clock.floor(assignment.interval.start)
        state.commit(_Pick(r, lecturers[assignment.lecturer_id], start, room))
    return _reason(c, state, requests[request_id], session_index)
