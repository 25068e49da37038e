"""The booking pages checked as every page is (tests/browser/test_accessibility.py): axe-core at
WCAG 2.1 A/AA in zh-CN at 1280 and 390 px and in English at 1280, `html[lang]`, no English
weekday or month names on a Chinese page, no sideways scroll at 320 px; a screenshot of each
under var/screenshots/."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import Page

from tests.browser.conftest import RunningSuite, sign_in
from tests.browser.test_accessibility import _check, view  # noqa: F401 - the shared fixture
from tests.browser.test_bookings import (
    LATE,
    WEEK,
    fill_and_send,
    free_cell,
    open_a_week,
    purpose_for,
)


def test_the_booking_pages_pass_axe_and_reflow(
    view: tuple[Page, str, int],  # noqa: F811 - the fixture imported above
    running: RunningSuite,
) -> None:
    page, locale, width = view
    sign_in(page, running.accounts["community_manager"])
    page.goto(f"/bookings?lang={locale}")
    open_a_week(page, 3)
    free_cell(page, LATE).click()
    page.wait_for_load_state()
    _check(page, locale, width, "booking-form")
    form = page.url
    page.locator("#date").fill((WEEK + timedelta(days=365)).isoformat())
    fill_and_send(page, purpose_for("axe refused"), attendees="-5")
    _check(page, locale, width, "booking-form-refused")
    page.goto(form)
    page.locator("#repeat input[name=repeat]").check()
    page.locator("#count").fill("2")
    fill_and_send(page, purpose_for("axe"))
    _check(page, locale, width, "booking-made")
    for section in ("upcoming", "past", "cancelled"):
        page.goto(f"/bookings?show={section}")
        _check(page, locale, width, f"bookings-{section}")
    page.goto("/bookings?show=upcoming")
    page.locator("table.bookings td.act a").first.click()
    page.wait_for_load_state()
    assert re.search(r"/bookings/[^/]+/cancel$", page.url)
    _check(page, locale, width, "booking-cancel")
    page.goto("/bookings?lang=zh-CN")
