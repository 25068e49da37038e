"""The pure side of the reports: rows and their rounding, CSV for Excel, the heatmap matrix, open
hours cut into pieces (across midnights and DST changes), area paths and who may ask."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.booking.domain.reports import (
    GroupBy,
    GroupTotals,
    HeatmapCell,
    OpenPiece,
    area_paths,
    coverage_after,
    csv_filename,
    ensure_may_report_on,
    heatmap_matrix,
    pieces_of,
    reporting_org,
    row_of,
    utc_day,
    utilisation_csv,
)
from shared.auth import Principal, Role
from shared.errors import Forbidden
from shared.time import Interval

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def local(zone: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=zone)  # type: ignore[misc]


def totals(key: str | None, open_seconds: float, booked_seconds: float) -> GroupTotals:
    return GroupTotals(
        key=key,
        label=None if key is None else f"{key} 名",
        open_seconds=open_seconds,
        booked_seconds=booked_seconds,
        bookings=2,
        attendees=30,
        attended=25,
    )


# Rows, CSV and the matrix


def test_a_row_gives_hours_and_a_ratio_from_the_exact_seconds() -> None:
    row = row_of(totals("room", open_seconds=3 * 3600, booked_seconds=3600))
    assert (row.open_hours, row.booked_hours, row.utilisation) == (3.0, 1.0, 0.3333)
    assert (row.bookings, row.attendees, row.attended) == (2, 30, 25)


def test_nothing_open_is_zero_utilisation_and_no_programme_has_a_label() -> None:
    row = row_of(totals(None, open_seconds=0, booked_seconds=0))
    assert row.utilisation == 0.0
    assert row.key is None
    assert row.label == "no programme"


def test_csv_opens_in_excel_with_chinese_names_and_plain_numbers() -> None:
    rows = [
        row_of(totals("教室一", open_seconds=20 * 3600, booked_seconds=1200)),
        row_of(totals(None, open_seconds=0, booked_seconds=0)),
    ]
    body = utilisation_csv(rows)
    assert body.startswith("\ufeff".encode())
    assert body.endswith(b"\r\n")
    assert body.count(b"\r\n") == 3
    read = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    assert read[0][:3] == ["key", "label", "open_hours"]
    assert read[1] == ["教室一", "教室一 名", "20", "0.3333", "0.0167", "2", "30", "25"]
    assert read[2] == ["", "no programme", "0", "0", "0", "2", "30", "25"]


def test_csv_cells_that_excel_would_run_as_formulas_stay_text() -> None:
    row = row_of(totals("=HYPERLINK(1)", open_seconds=3600, booked_seconds=0))
    read = list(csv.reader(io.StringIO(utilisation_csv([row]).decode("utf-8-sig"))))
    assert read[1][:2] == ["'=HYPERLINK(1)", "'=HYPERLINK(1) 名"]


def test_the_csv_file_is_named_for_its_grouping_and_dates() -> None:
    name = csv_filename(GroupBy.AREA, date(2026, 1, 1), date(2027, 1, 1))
    assert name == "utilisation-by-area-2026-01-01-2027-01-01.csv"


def test_the_matrix_is_seven_weekdays_of_twenty_four_hours() -> None:
    matrix = heatmap_matrix(
        [
            HeatmapCell(weekday=1, hour=0, open_seconds=3600, booked_seconds=900),
            HeatmapCell(weekday=7, hour=23, open_seconds=7200, booked_seconds=7200),
            HeatmapCell(weekday=3, hour=12, open_seconds=0, booked_seconds=0),
        ]
    )
    assert len(matrix) == 7
    assert all(len(row) == 24 for row in matrix)
    assert matrix[0][0] == 0.25
    assert matrix[6][23] == 1.0
    assert sum(map(sum, matrix)) == 1.25


# Open hours cut into pieces


def test_a_day_s_hours_in_shanghai_are_cut_at_the_utc_midnight_inside_them() -> None:
    # 07:00-10:00 in Shanghai is 23:00-02:00 UTC: two UTC days.
    pieces = pieces_of(
        [Interval(local(SHANGHAI, 2027, 1, 4, 7), local(SHANGHAI, 2027, 1, 4, 10))], SHANGHAI
    )
    assert [(p.start.hour, p.end.hour, p.wall_second // 3600) for p in pieces] == [
        (23, 0, 7),
        (0, 2, 8),
    ]
    assert [p.day for p in pieces] == [utc_day(pieces[0].start), utc_day(pieces[0].start) + 1]
    assert {p.weekday for p in pieces} == {1}


def test_hours_past_local_midnight_belong_to_the_next_local_day_from_then() -> None:
    span = Interval(local(SHANGHAI, 2027, 1, 3, 22), local(SHANGHAI, 2027, 1, 4, 2))
    pieces = pieces_of([span], SHANGHAI)
    assert [(p.weekday, p.wall_second) for p in pieces] == [(7, 22 * 3600), (1, 0)]
    assert sum((p.end - p.start for p in pieces), timedelta()) == span.duration


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        # Spring forward at 02:00: the clock reads 03:00 straight after 01:59:59.
        (date(2027, 3, 28), [(0, 2 * 3600), (3 * 3600, 24 * 3600)]),
        # Fall back at 03:00: the hour 02:00-03:00 comes twice.
        (date(2027, 10, 31), [(0, 3 * 3600), (2 * 3600, 24 * 3600)]),
    ],
)
def test_a_dst_change_starts_a_new_piece_so_wall_clock_hours_stay_exact(
    day: date, expected: list[tuple[int, int]]
) -> None:
    span = Interval(
        local(BERLIN, day.year, day.month, day.day),
        local(BERLIN, day.year, day.month, day.day) + timedelta(days=2),
    )
    pieces = [p for p in pieces_of([span], BERLIN) if p.weekday == 7]
    walls = [
        (p.wall_second, p.wall_second + int((p.end - p.start).total_seconds())) for p in pieces
    ]
    # Pieces are also cut at UTC midnight (01:00 or 02:00 in Berlin); join those back up.
    joined: list[tuple[int, int]] = []
    for start, end in walls:
        if joined and joined[-1][1] == start:
            joined[-1] = (joined[-1][0], end)
        else:
            joined.append((start, end))
    assert joined == expected


def test_every_piece_lies_inside_one_utc_day_and_the_pieces_add_up() -> None:
    span = Interval(local(BERLIN, 2027, 3, 20), local(BERLIN, 2027, 4, 3))
    pieces = pieces_of([span], BERLIN)
    assert all(isinstance(p, OpenPiece) for p in pieces)
    assert all(utc_day(p.start) == utc_day(p.end - timedelta(microseconds=1)) for p in pieces)
    # Real time, not wall-clock time: Python subtracts two instants of one zone by their clocks.
    real = span.end.astimezone(UTC) - span.start.astimezone(UTC)
    assert (
        sum((p.end - p.start for p in pieces), timedelta()) == real == timedelta(days=14, hours=-1)
    )
    assert all(p.start.tzinfo is UTC for p in pieces)


# Areas, coverage, rights


def test_area_paths_run_from_the_root_and_lend_known_ancestors() -> None:
    parents: dict[str, str | None] = {"city": None, "town": "city", "street": "town"}
    assert area_paths(parents, {}) == {
        "city": "/city/",
        "town": "/city/town/",
        "street": "/city/town/street/",
    }
    assert area_paths({"new": "town"}, {"town": "/city/town/"}) == {"new": "/city/town/new/"}


def test_coverage_grows_to_take_in_a_touching_range_and_restarts_for_a_distant_one() -> None:
    def days(first: int, last: int) -> Interval:
        start = datetime(2027, 1, 1, tzinfo=UTC)
        return Interval(start + timedelta(days=first), start + timedelta(days=last))

    longest = timedelta(days=100)
    assert coverage_after(None, days(0, 10), longest) == days(0, 10)
    assert coverage_after(days(0, 10), days(10, 20), longest) == days(0, 20)
    assert coverage_after(days(0, 10), days(3, 5), longest) == days(0, 10)
    assert coverage_after(days(0, 10), days(30, 40), longest) == days(30, 40)
    assert coverage_after(days(0, 95), days(90, 110), longest) == days(90, 110)


def test_the_office_reports_on_all_a_venue_manager_on_its_own_and_no_one_else() -> None:
    office = Principal(sub="o", role=Role.OFFICE, org="city")
    manager = Principal(sub="m", role=Role.VENUE_MANAGER, org="school")
    community = Principal(sub="c", role=Role.COMMUNITY_MANAGER, org="school")
    assert reporting_org(office) is None
    assert reporting_org(manager) == "school"
    ensure_may_report_on(office, "anyone")
    ensure_may_report_on(manager, "school")
    with pytest.raises(Forbidden):
        ensure_may_report_on(manager, "another school")
    with pytest.raises(Forbidden):
        reporting_org(community)
