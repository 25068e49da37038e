"""Utilisation reports: what a row says, how open hours are cut for the database, CSV and heatmap.

Pure: the store sums seconds in SQL and hands over one `GroupTotals` per group or one
`HeatmapCell` per (weekday, hour); this module turns them into rows, CSV bytes and the 7 x 24
matrix. It also cuts a resource's resolved open intervals into `OpenPiece`s, the rows of
booking's replica of opening hours (see `services.booking.reports.projection` for why).

A piece never crosses a UTC midnight, a local midnight or a change of the venue's UTC offset. So
each piece has one UTC day (the key the store joins bookings to it on, an equality a hash join can
use), one local weekday, and wall-clock seconds that advance with real time from `wall_second`:
the heatmap's local hour of any instant inside it is plain arithmetic in SQL, with no time zone
support needed of the database (SQLite has none). Cutting is exact, so nothing is approximated.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum

import msgspec

from shared.auth import Principal, Role
from shared.errors import Forbidden
from shared.time import Interval

HOUR_DIGITS = 4
RATIO_DIGITS = 4
SECONDS_PER_HOUR = 3600
DAYS = 7
HOURS = 24
EPOCH_DAY = date(1970, 1, 1)
NO_PROGRAMME = "no programme"
# Litestar adds `; charset=utf-8` to a text type itself.
CSV_MEDIA_TYPE = "text/csv"
CSV_COLUMNS = (
    "key",
    "label",
    "open_hours",
    "booked_hours",
    "utilisation",
    "bookings",
    "attendees",
    "attended",
)
# A cell starting with one of these is a formula to Excel; a leading apostrophe makes it text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class GroupBy(StrEnum):
    RESOURCE = "resource"
    VENUE = "venue"
    AREA = "area"
    KIND = "kind"
    PROGRAMME = "programme"


class TableFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


class PictureFormat(StrEnum):
    JSON = "json"
    PNG = "png"


class GroupTotals(msgspec.Struct, frozen=True):
    """One group's sums as the database gives them: seconds, and booking counts."""

    key: str | None
    label: str | None
    open_seconds: float
    booked_seconds: float
    bookings: int
    attendees: int
    attended: int


class UtilisationRow(msgspec.Struct, frozen=True):
    key: str | None
    label: str
    open_hours: float
    booked_hours: float
    utilisation: float
    bookings: int
    attendees: int
    attended: int


class Utilisation(msgspec.Struct, frozen=True):
    items: list[UtilisationRow]


class HeatmapCell(msgspec.Struct, frozen=True):
    """Open and booked seconds in one local hour of one ISO weekday, summed over the range."""

    weekday: int
    hour: int
    open_seconds: float
    booked_seconds: float


class Heatmap(msgspec.Struct, frozen=True):
    matrix: list[list[float]]


class OpenPiece(msgspec.Struct, frozen=True):
    """A stretch of open time inside one UTC day, one local day and one UTC offset.

    `day` counts UTC days from 1970-01-01; `weekday` (ISO) and `wall_second` (seconds after local
    midnight, on the wall clock) are those of `start`.
    """

    start: datetime
    end: datetime
    day: int
    weekday: int
    wall_second: int


def ratio(booked: float, available: float) -> float:
    """Booked over open, rounded; 0 where nothing was open."""
    return round(booked / available, RATIO_DIGITS) if available > 0 else 0.0


def row_of(totals: GroupTotals) -> UtilisationRow:
    """The report row of a group; the ratio comes from the exact seconds, not rounded hours."""
    return UtilisationRow(
        key=totals.key,
        label=totals.label or totals.key or NO_PROGRAMME,
        open_hours=round(totals.open_seconds / SECONDS_PER_HOUR, HOUR_DIGITS),
        booked_hours=round(totals.booked_seconds / SECONDS_PER_HOUR, HOUR_DIGITS),
        utilisation=ratio(totals.booked_seconds, totals.open_seconds),
        bookings=totals.bookings,
        attendees=totals.attendees,
        attended=totals.attended,
    )


def utilisation_csv(rows: Sequence[UtilisationRow]) -> bytes:
    """The rows as CSV Excel opens cleanly: UTF-8 with a BOM (so Chinese names survive), CRLF
    lines, a header row, numbers as plain decimals, no cell Excel would take for a formula."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(
        [
            _text(row.key or ""),
            _text(row.label),
            _plain(row.open_hours),
            _plain(row.booked_hours),
            _plain(row.utilisation),
            row.bookings,
            row.attendees,
            row.attended,
        ]
        for row in rows
    )
    return ("\ufeff" + out.getvalue()).encode()


def csv_filename(group_by: GroupBy, first: date, until: date) -> str:
    return f"utilisation-by-{group_by.value}-{first}-{until}.csv"


def heatmap_title(scope_name: str | None) -> str:
    return f"Utilisation of {scope_name or 'all venues'}, by weekday and hour"


def heatmap_subtitle(first: date, until: date) -> str:
    return f"{first} to {until} (end excluded); hours on each venue's own clock"


def _text(value: str) -> str:
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


def _plain(number: float) -> str:
    """A decimal without exponent or trailing zeros: 12.5, 0.3333, 0."""
    text = f"{number:.{max(HOUR_DIGITS, RATIO_DIGITS)}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def heatmap_matrix(cells: Iterable[HeatmapCell]) -> list[list[float]]:
    """Seven rows (Monday first) of 24 local hours; each cell booked over open time in it."""
    matrix = [[0.0] * HOURS for _ in range(DAYS)]
    for cell in cells:
        matrix[cell.weekday - 1][cell.hour] = ratio(cell.booked_seconds, cell.open_seconds)
    return matrix


def utc_day(instant: datetime) -> int:
    """Days from 1970-01-01 to the instant's UTC date: the day key of pieces and bookings."""
    return (instant.astimezone(UTC).date() - EPOCH_DAY).days


def pieces_of(intervals: Iterable[Interval], zone: tzinfo) -> list[OpenPiece]:
    """Open intervals cut at every UTC midnight, local midnight and change of UTC offset."""
    found: list[OpenPiece] = []
    for interval in intervals:
        start = interval.start.astimezone(UTC)
        end = interval.end.astimezone(UTC)
        while start < end:
            cut = min(end, _next_utc_midnight(start), _next_local_midnight(start, zone))
            cut = _offset_change(start, cut, zone) or cut
            local = start.astimezone(zone)
            found.append(
                OpenPiece(
                    start=start,
                    end=cut,
                    day=utc_day(start),
                    weekday=local.isoweekday(),
                    wall_second=local.hour * 3600 + local.minute * 60 + local.second,
                )
            )
            start = cut
    return found


def _next_utc_midnight(instant: datetime) -> datetime:
    return datetime.combine(instant.date() + timedelta(days=1), time(), tzinfo=UTC)


def _next_local_midnight(instant: datetime, zone: tzinfo) -> datetime:
    # Where midnight is skipped by a DST change, zoneinfo reads it with the offset before the
    # change, which is the very instant the new date begins.
    local_day = instant.astimezone(zone).date()
    return datetime.combine(local_day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)


def _offset_change(start: datetime, end: datetime, zone: tzinfo) -> datetime | None:
    """The first whole second in (start, end) whose UTC offset differs from `start`'s.

    Offsets change once or twice a year at most, so the bisection runs only on those days.
    """
    offset = start.astimezone(zone).utcoffset()
    low, high = 0, int((end - start).total_seconds()) - 1
    if high <= low or _offset_at(start, high, zone) == offset:
        return None
    while high - low > 1:
        middle = (low + high) // 2
        if _offset_at(start, middle, zone) == offset:
            low = middle
        else:
            high = middle
    return start + timedelta(seconds=high)


def _offset_at(start: datetime, seconds: int, zone: tzinfo) -> timedelta | None:
    return (start + timedelta(seconds=seconds)).astimezone(zone).utcoffset()


def area_paths(parents: Mapping[str, str | None], known: Mapping[str, str]) -> dict[str, str]:
    """Each area's ancestry as `/root/.../area/`, so a subtree is a prefix match in SQL.

    An ancestor outside `parents` lends its path from `known`, or else is taken as the root's
    parent (the caller fetched what it needed); a cycle, which the registry never makes, is cut
    where it closes.
    """
    paths: dict[str, str] = {}
    for area_id in parents:
        chain: list[str] = []
        current: str | None = area_id
        while current is not None and current in parents and current not in paths:
            if current in chain:
                break
            chain.append(current)
            current = parents[current]
        prefix = "/"
        if current is not None:
            prefix = paths.get(current) or known.get(current, "/")
        for ancestor in reversed(chain):
            prefix = paths[ancestor] = f"{prefix}{ancestor}/"
    return paths


def reporting_org(principal: Principal) -> str | None:
    """Whose venues the caller's reports cover: the office's and a service's all (None), a
    venue manager's its organisation's; anyone else may not ask."""
    principal.require(Role.VENUE_MANAGER, Role.SERVICE)
    return None if principal.is_office_or_service else principal.org


def ensure_may_report_on(principal: Principal, owner_org: str) -> None:
    """The office reports on any venue; a venue manager on its own organisation's only."""
    if reporting_org(principal) not in (None, owner_org):
        raise Forbidden("a venue manager reports on its own venues only")


def coverage_after(held: Interval | None, wanted: Interval, longest: timedelta) -> Interval:
    """The stretch of open hours to hold once `wanted` is needed: grown to take it in, or
    replaced by it where they do not touch or the whole would exceed `longest`."""
    if held is None or held.end < wanted.start or wanted.end < held.start:
        return wanted
    grown = Interval(min(held.start, wanted.start), max(held.end, wanted.end))
    return grown if grown.duration <= longest else wanted
