"""The lecturer's page in plain values: which offers to show where, how long one stays open in
words (Babel's, in either language), the calendar's links, and the forms' input."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from services.web.clients import Offer
from services.web.domain.navigation import navigation
from services.web.domain.offers import (
    WeeklySpan,
    closes_in,
    parse_date,
    parse_span,
    span_body,
    to_answer,
    to_give,
    webcal_url,
    weekday_names,
    with_blackout,
    without_blackout,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=SHANGHAI)


def offer(id: str, status: str, starts_in_days: float, expires_in_hours: float) -> Offer:  # noqa: A002
    start = NOW + timedelta(days=starts_in_days)
    return Offer(
        id=id,
        venue_id="v",
        start=start,
        end=start + timedelta(minutes=90),
        status=status,
        expires_at=NOW + timedelta(hours=expires_in_hours),
        topic="法律",
    )


def test_offers_to_answer_are_the_open_ones_closing_first_first() -> None:
    offers = [
        offer("late", "offered", 10, 40),
        offer("soon", "offered", 12, 2),
        offer("lapsed", "offered", 9, -1),  # the worker has not marked it expired yet
        offer("taken", "accepted", 5, 40),
    ]
    assert [o.id for o in to_answer(offers, NOW)] == ["soon", "late"]


def test_lectures_to_give_are_the_accepted_ones_not_over_next_first() -> None:
    offers = [
        offer("later", "accepted", 20, 0),
        offer("next", "accepted", 3, 0),
        offer("over", "accepted", -1, 0),
        offer("declined", "declined", 4, 0),
    ]
    assert [o.id for o in to_give(offers, NOW)] == ["next", "later"]


def test_how_long_an_offer_stays_open_is_said_in_words_in_both_languages() -> None:
    assert closes_in(NOW + timedelta(hours=47, minutes=50), NOW, "zh-CN") == "2天后"
    assert closes_in(NOW + timedelta(hours=47, minutes=50), NOW, "en") == "in 2 days"
    assert closes_in(NOW + timedelta(hours=3), NOW, "zh-CN") == "3小时后"
    assert closes_in(NOW + timedelta(minutes=20), NOW, "en") == "in 20 minutes"


def test_the_calendar_link_for_apps_is_the_feed_on_webcal() -> None:
    feed = "https://lecturers.example.org/v1/lecturers/L/feed.ics?token=abc-_"
    assert webcal_url(feed) == "webcal://lecturers.example.org/v1/lecturers/L/feed.ics?token=abc-_"
    assert (
        webcal_url("http://127.0.0.1:8003/f.ics?token=t") == "webcal://127.0.0.1:8003/f.ics?token=t"
    )


def test_weekdays_are_named_by_babel_in_week_order() -> None:
    assert weekday_names([3, 1, 7], "zh-CN") == "周一、周三、周日"
    assert weekday_names([3, 1, 7], "en") == "Mon, Wed, Sun"


def test_a_blackout_date_is_read_or_its_fault_named() -> None:
    assert parse_date("2027-01-05") == (date(2027, 1, 5), None)
    assert parse_date(" ") == (None, "required")
    assert parse_date(None) == (None, "required")
    assert parse_date("5.1.2027") == (None, "not_a_date")
    assert parse_date("2027-02-30") == (None, "not_a_date")


def test_blackout_dates_are_kept_once_and_in_order() -> None:
    days = [date(2027, 1, 9), date(2027, 1, 5)]
    assert with_blackout(days, date(2027, 1, 7)) == [
        date(2027, 1, 5),
        date(2027, 1, 7),
        date(2027, 1, 9),
    ]
    assert with_blackout(days, date(2027, 1, 5)) == [date(2027, 1, 5), date(2027, 1, 9)]
    assert without_blackout(days, date(2027, 1, 9)) == [date(2027, 1, 5)]
    assert without_blackout(days, date(2027, 3, 1)) == [date(2027, 1, 5), date(2027, 1, 9)]


def test_a_weekly_span_is_read_from_the_form_or_each_fault_named() -> None:
    span, errors = parse_span(["3", "1", "1"], "18:00", "21:30")
    assert (span, errors) == (WeeklySpan([1, 3], "18:00", "21:30"), {})
    assert span_body([WeeklySpan([1, 3], "18:00", "21:30")]) == [
        {"weekdays": [1, 3], "start": "18:00", "end": "21:30"}
    ]
    assert parse_span([], "", "7pm") == (
        None,
        {"weekdays": "choose_weekdays", "start": "required", "end": "not_a_time"},
    )
    assert parse_span(["8", "x"], "18:00", "18:00") == (
        None,
        {"weekdays": "choose_weekdays", "end": "end_before_start"},
    )
    assert parse_span(["1"], "18:00:00", "19:00")[1] == {"start": "not_a_time"}


def test_a_lecturer_finds_its_offers_first_in_the_navigation() -> None:
    assert [item.path for item in navigation("lecturer")] == ["/", "/offers", "/rooms", "/me"]
    assert "/offers" not in [item.path for item in navigation("community_manager")]
