"""Booking a room and looking after one's bookings, in a real browser against the running suite:
the form from a free cell of the week grid, the confirmation that takes the focus, refusals in
words beside the field, a weekly repeat with its skipped dates, cancel and cancel the rest of a
series, the keyboard alone, JavaScript off, and the list that shows one's own organisation's
bookings only. Each test books its own slot (the first free hour of a room's week when it runs)
and names it with a purpose of its own, so the tests do not depend on each other."""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import date, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from services.web.i18n import load_catalogues
from tests.browser.conftest import Account, RunningSuite, next_monday, screenshot, sign_in

# Two weeks on: past every demo room's lead time, inside every horizon and term.
WEEK = next_monday() + timedelta(days=14)
FREE_SEARCH = f"/rooms?date={WEEK.isoformat()}&from=18:00&to=21:00&minutes=90"
BOOK = re.compile("^(预订|Book)$")
# What the pages say, as message ids of the one catalogue (whose translations tests/unit check).
MESSAGES = {
    "confirmed": "Booked and confirmed",
    "pending": "Awaiting the venue's approval",
    "cancelled": "The booking is cancelled; its time is free again.",
    "too_far": "Too far ahead: this room can be booked at most %(days)s days ahead.",
    "conflict": "The time is taken: another booking (with its turnover time) holds %(when)s.",
    "taken": "taken by another booking",
    "cancel": "Cancel this booking",
    "cancel_rest": "Cancel every date still to come",
    "not_a_count": "Enter a whole number, such as 30.",
    "recorded": "The head count is recorded.",
}
CATALOGUES = load_catalogues()


def said(locale: str, key: str) -> str:
    """The page's words for `key` in `locale`, up to the first value they name."""
    return CATALOGUES[locale].gettext(MESSAGES[key]).split("%(")[0]


def series_cancelled(locale: str, count: int) -> str:
    return CATALOGUES[locale].ngettext(
        "%(num)s date of the series is cancelled.",
        "%(num)s dates of the series are cancelled.",
        count,
    ) % {"num": count}


def purpose_for(name: str) -> str:
    return f"{name} {uuid.uuid4().hex[:8]}"


def open_a_week(page: Page, weeks_on: int = 0) -> str:
    """A room's week grid from the free-time search, `weeks_on` weeks after WEEK; its path.
    Each test books in a week and an hour of its own (`free_cell`), so that no test finds the
    hours it needs taken by another."""
    page.goto(FREE_SEARCH)
    link = page.locator("tbody th a").first
    room = (link.get_attribute("href") or "").split("?")[0]
    page.goto(f"{room}?week={(WEEK + timedelta(weeks=weeks_on)).isoformat()}")
    return room


EVENING, NIGHT, LATE = "18:00", "19:00", "20:00"
# The free cell the keyboard looks for, as free_cell finds it.
IS_AN_EVENING_FREE_CELL = f"""() => {{
    const here = document.activeElement;
    return here.matches("td.free a.book")
        && here.closest("tr").querySelector("th").textContent.trim() === "{EVENING}";
}}"""


def free_cell(page: Page, hour: str = EVENING) -> Locator:
    """The first day of the week whose `hour` is free as a whole (an evening hour is long
    enough for every demo room's shortest booking)."""
    row = page.locator("tbody tr").filter(has=page.locator("th", has_text=hour))
    return row.locator("td.free a.book").first


def book_from_the_grid(page: Page, purpose: str, hour: str = EVENING, **fields: str) -> None:
    """Follow the first free cell of the week on screen, fill the form, send it."""
    free_cell(page, hour).click()
    page.wait_for_load_state()
    fill_and_send(page, purpose, **fields)


def fill_and_send(page: Page, purpose: str, **fields: str) -> None:
    page.locator("#purpose").fill(purpose)
    for name, value in fields.items():
        page.locator(f"#{name}").fill(value)
    page.get_by_role("button", name=BOOK).click()
    page.wait_for_load_state()


def made(page: Page, locale: str) -> None:
    """The confirmation says in words what was made, and holds the focus."""
    expect(page).to_have_url(re.compile(r"/bookings/made/[0-9a-f-]+$"))
    heading = page.locator("#confirmation h1")
    expect(heading).to_have_text(
        re.compile(f"^({said(locale, 'confirmed')}|{said(locale, 'pending')})$")
    )
    expect(page.locator("#confirmation")).to_be_focused()


@contextmanager
def in_language(page: Page, locale: str) -> Iterator[None]:
    """The signed-in account in `locale` for the test, and back in Chinese afterwards (the
    choice is kept at identity, so it would outlive the test)."""
    page.goto(f"/bookings?lang={locale}")
    try:
        yield
    finally:
        page.goto("/bookings?lang=zh-CN")


def row_of(page: Page, purpose: str) -> Locator:
    return page.locator("table.bookings tbody tr", has_text=purpose)


def test_a_community_manager_books_a_room_and_cancels_it_in_chinese_and_english(
    page: Page, running: RunningSuite
) -> None:
    sign_in(page, running.accounts["community_manager"])
    for locale in ("zh-CN", "en"):
        with in_language(page, locale):
            purpose = purpose_for(f"flow {locale}")
            open_a_week(page)
            book_from_the_grid(page, purpose, attendees="12")
            made(page, locale)
            screenshot(page, f"booking-made-{locale}-1280")
            page.goto("/bookings")
            row = row_of(page, purpose)
            expect(row).to_have_count(1)
            row.get_by_role("link").click()
            page.locator("#reason").fill("场地调整" if locale == "zh-CN" else "moved elsewhere")
            page.get_by_role("button", name=said(locale, "cancel")).click()
            expect(page.locator("#done")).to_have_text(said(locale, "cancelled"))
            expect(page.locator("#done")).to_be_focused()
            expect(row_of(page, purpose)).to_contain_text(
                "场地调整" if locale == "zh-CN" else "moved elsewhere"
            )
            page.goto("/bookings?show=upcoming")
            expect(row_of(page, purpose)).to_have_count(0)


def test_a_room_is_booked_with_the_keyboard_alone(page: Page, running: RunningSuite) -> None:
    sign_in(page, running.accounts["community_manager"])
    open_a_week(page, 1)
    page.locator("body").focus()
    for _ in range(400):
        page.keyboard.press("Tab")
        if page.evaluate(IS_AN_EVENING_FREE_CELL):
            break
    else:
        raise AssertionError("Tab never reached a free cell of the week grid")
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    expect(page).to_have_url(re.compile(r"/bookings/new\?"))
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "purpose":
            break
    else:
        raise AssertionError("Tab never reached the purpose")
    purpose = purpose_for("keyboard")
    page.keyboard.type(purpose)
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.type") == "submit":
            break
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    made(page, "zh-CN")
    screenshot(page, "booking-made-keyboard-zh-CN-1280")


def test_booking_works_with_javascript_off_and_a_double_submit_makes_one_booking(
    browser: Browser, running: RunningSuite
) -> None:
    context = browser.new_context(base_url=running.web_url, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, running.accounts["community_manager"])
        open_a_week(page, 1)
        free_cell(page, NIGHT).click()
        page.wait_for_load_state()
        purpose = purpose_for("no script")
        page.locator("#purpose").fill(purpose)
        form = page.locator("form.booking")
        fields: dict[str, str | float | bool] = {
            name: form.locator(f"[name={name}]").first.get_attribute("value") or ""
            for name in ("_csrf_token", "idempotency_key", "resource_ids")
        }
        fields |= {
            name: page.locator(f"#{name}").input_value()
            for name in ("date", "start_time", "end_time")
        }
        fields |= {"purpose": purpose, "mode": "skip_conflicts"}
        # The same form sent twice, as a double click sends it: one booking.
        first = page.request.post("/bookings", form=fields)
        second = page.request.post("/bookings", form=fields)
        assert first.ok
        assert second.ok
        assert first.url == second.url
        assert re.search(r"/bookings/made/", first.url)
        page.goto(first.url)
        expect(page.locator("#confirmation h1")).to_have_text(
            re.compile(f"^({said('zh-CN', 'confirmed')}|{said('zh-CN', 'pending')})$")
        )
        page.goto("/bookings")
        expect(row_of(page, purpose)).to_have_count(1)
        # And the form itself, sent by the browser without script, for a slot of its own.
        open_a_week(page, 1)
        book_from_the_grid(page, purpose_for("no script form"), LATE)
        made(page, "zh-CN")
    finally:
        context.close()


def test_a_refused_booking_says_why_beside_the_field_in_the_readers_language(
    page: Page, running: RunningSuite
) -> None:
    sign_in(page, running.accounts["community_manager"])
    open_a_week(page, 2)
    free_cell(page).click()
    page.wait_for_load_state()
    form_url = page.url
    # A year ahead: past every room's booking horizon.
    page.locator("#date").fill((WEEK + timedelta(days=365)).isoformat())
    fill_and_send(page, purpose_for("too far"))
    expect(page.locator("#date-error")).to_contain_text(said("zh-CN", "too_far"))
    expect(page.locator("#date")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#problems")).to_be_focused()
    screenshot(page, "booking-refused-zh-CN-1280")
    # Taken: the same slot booked first, then asked for again, in English.
    with in_language(page, "en"):
        page.goto(form_url)
        fill_and_send(page, purpose_for("first"))
        made(page, "en")
        page.goto(form_url)
        fill_and_send(page, purpose_for("second"))
        error = page.locator("#start_time-error")
        expect(error).to_contain_text(said("en", "conflict"))
        start = page.locator("#start_time").input_value()
        expect(error).to_contain_text(re.compile(rf"\w{{3}}, \w{{3}} \d+ .*{start}"))
        screenshot(page, "booking-refused-conflict-en-1280")


def test_a_weekly_repeat_lists_the_date_it_skipped(page: Page, running: RunningSuite) -> None:
    sign_in(page, running.accounts["community_manager"])
    open_a_week(page, 3)
    free_cell(page).click()
    page.wait_for_load_state()
    first_week_form = page.url
    start_time = page.locator("#start_time").input_value()
    end_time = page.locator("#end_time").input_value()
    day = page.locator("#date").input_value()
    # The week after is taken at that time first...
    second_week = (date.fromisoformat(day) + timedelta(days=7)).isoformat()
    page.locator("#date").fill(second_week)
    fill_and_send(page, purpose_for("in the way"))
    made(page, "zh-CN")
    # ...then three weeks from the first are asked for, skipping what cannot be booked.
    page.goto(first_week_form)
    purpose = purpose_for("weekly")
    page.locator("#repeat input[name=repeat]").check()
    page.locator("#count").fill("3")
    fill_and_send(page, purpose, start_time=start_time, end_time=end_time)
    made(page, "zh-CN")
    skipped = page.locator("#skipped li")
    expect(skipped.first).to_contain_text(said("zh-CN", "taken"))
    second_day = re.escape(second_week.replace("-0", "-").split("-", 1)[1].replace("-", "月"))
    expect(skipped.first).to_contain_text(re.compile(second_day + "日"))
    screenshot(page, "booking-repeat-skipped-zh-CN-1280")
    booked = page.locator("#booked li").count()
    assert booked + skipped.count() == 3
    page.goto("/bookings")
    expect(row_of(page, purpose)).to_have_count(booked)


def test_the_rest_of_a_series_is_cancelled_at_once(page: Page, running: RunningSuite) -> None:
    sign_in(page, running.accounts["community_manager"])
    with in_language(page, "en"):
        open_a_week(page, 3)
        purpose = purpose_for("series")
        free_cell(page, NIGHT).click()
        page.wait_for_load_state()
        page.locator("#repeat input[name=repeat]").check()
        page.locator("#count").fill("3")
        page.locator("input[name=mode][value=all_or_nothing]").check()
        fill_and_send(page, purpose)
        made(page, "en")
        page.goto("/bookings")
        expect(row_of(page, purpose)).to_have_count(3)
        row_of(page, purpose).first.get_by_role("link").click()
        page.get_by_role("button", name=said("en", "cancel_rest")).click()
        expect(page.locator("#done")).to_have_text(series_cancelled("en", 3))
        expect(row_of(page, purpose)).to_have_count(3)
        page.goto("/bookings?show=upcoming")
        expect(row_of(page, purpose)).to_have_count(0)


def test_another_organisations_booking_is_not_shown(
    browser: Browser, page: Page, running: RunningSuite
) -> None:
    school: Account = running.accounts["venue_manager"]
    context = browser.new_context(base_url=running.web_url)
    other = context.new_page()
    try:
        sign_in(other, school)
        open_a_week(other)
        purpose = purpose_for("school only")
        book_from_the_grid(other, purpose, NIGHT)
        made(other, "zh-CN")
        other.goto("/bookings")
        expect(row_of(other, purpose)).to_have_count(1)
    finally:
        context.close()
    sign_in(page, running.accounts["community_manager"])
    for section in ("upcoming", "past", "cancelled"):
        page.goto(f"/bookings?show={section}")
        expect(page.locator("h1")).to_have_text("预订列表")
        expect(row_of(page, purpose)).to_have_count(0)


def test_a_lecturer_may_not_open_the_booking_pages(page: Page, running: RunningSuite) -> None:
    sign_in(page, running.accounts["lecturer"])
    for path in ("/bookings", "/bookings/new?resource_id=x"):
        answer = page.goto(path)
        assert answer is not None
        assert answer.status == 403
        expect(page.locator("h1")).to_have_text("无权访问")


def _moved_two_months_back(base: Path, purpose: str) -> None:
    """Time passing, for one booking: the booking service takes no booking in the past, so the
    test moves one of its own two months back (it was at most seven weeks ahead) in booking's
    SQLite file (`commonroom up`'s)."""
    [database] = sorted(base.glob("up[0-9]*/var/booking.db"))
    with closing(sqlite3.connect(database)) as db, db:
        moved = db.execute(
            "UPDATE bookings SET start_at = datetime(start_at, '-60 days'), "
            "end_at = datetime(end_at, '-60 days') WHERE purpose = ?",
            (purpose,),
        ).rowcount
    assert moved == 1


def test_the_head_count_that_came_is_recorded_after_the_end(
    page: Page, running: RunningSuite, tmp_path_factory: pytest.TempPathFactory
) -> None:
    sign_in(page, running.accounts["community_manager"])
    open_a_week(page, 2)
    purpose = purpose_for("ended")
    book_from_the_grid(page, purpose, NIGHT, attendees="20")
    made(page, "zh-CN")
    expect(page.locator("#confirmation h1")).to_have_text(said("zh-CN", "confirmed"))
    _moved_two_months_back(tmp_path_factory.getbasetemp(), purpose)
    page.goto("/bookings?show=past")
    row = row_of(page, purpose)
    row.locator("input[name=attended]").fill("-3")
    row.get_by_role("button").click()
    expect(row_of(page, purpose).locator(".error")).to_have_text(said("zh-CN", "not_a_count"))
    row_of(page, purpose).locator("input[name=attended]").fill("17")
    row_of(page, purpose).get_by_role("button").click()
    expect(page.locator("#done")).to_have_text(said("zh-CN", "recorded"))
    expect(page.locator("#done")).to_be_focused()
    expect(row_of(page, purpose).locator("input[name=attended]")).to_have_value("17")
    screenshot(page, "bookings-past-zh-CN-1280")
