# ruff: noqa: RUF001, RUF002 - the Chinese pages' words carry full-width punctuation and en dashes
"""The venue manager's pages end to end, in Chinese and in English: a room added and its rules
edited, bookings of it approved and rejected in place (and approved with JavaScript off), the
opening hours given a closure, a holiday and a make-up working day seen in the preview, the
registry's refusals beside the fields, and another organisation's venue refused.

Each test works on a school of its own, made through the APIs (the demo city's venues stay as
the other tests expect them)."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_skeleton
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import RunningSuite, next_monday, screenshot, sign_in
from tests.browser.desk_api import DeskApi, unique
from tests.browser.test_accessibility import _check as check_page
from tests.browser.test_accessibility import view  # noqa: F401 (the fixture, per language and width)

CITY = ZoneInfo("Asia/Shanghai")
WORDS = {
    "zh-CN": {
        "venues": "场馆",
        "resources": "场地和设备",
        "hours": "开放时间",
        "name": "名称",
        "capacity": "容量（人）",
        "features": "设施，用逗号分隔",
        "approval": "预订需要我审批",
        "add": "添加",
        "added": "已添加。可在场馆开放时间内预订。",
        "edit": "编辑",
        "min": "最短预订时长（分钟）",
        "buffer": "两次预订之间的间隔（分钟）",
        "save": "保存",
        "saved": "已保存。",
        "rules_shown": "60–240 分钟",
        "buffer_shown": "预订间隔 15 分钟",
        "min_over_max": "最短预订时长不能超过最长预订时长。",
        "approvals": r"^待审批 \((\d+)\)$",
        "approvals_label": "待审批",
        "approve": "批准",
        "reject": "拒绝",
        "approved": "已批准：",
        "rejected": "已拒绝：",
        "reason": "拒绝理由",
        "reason_required": "请填写理由：预订人会在拒绝通知中看到。",
        "approved_notice": "预订已批准，系统会发邮件通知预订人。",
        "closure_name": "原因，例如考试",
        "first_day": "开始日期",
        "last_day": "结束日期",
        "add_closure": "添加闭馆",
        "closed": "不开放",
        "period_name": "名称，例如秋季学期",
        "add_period": "添加时段",
        "end_before_start": "最后一天不能早于第一天。",
        "spans_required": "请至少填写一段开放时间，或将该时段标为关闭。",
        "national_day": "法定节假日：国庆节",
        "make_up": "调休上班日",
        "forbidden": "无权访问",
    },
    "en": {
        "venues": "Venues",
        "resources": "Rooms and equipment",
        "hours": "Opening hours",
        "name": "Name of the room or item",
        "capacity": "Capacity (people)",
        "features": "Features, separated by commas",
        "approval": "Bookings need my approval",
        "add": "Add",
        "added": "Added. It can be booked within the venue's opening hours.",
        "edit": "Edit",
        "min": "Shortest booking (minutes)",
        "buffer": "Free time between two bookings (minutes)",
        "save": "Save",
        "saved": "Saved.",
        "rules_shown": "60–240 minutes",
        "buffer_shown": "15 minutes between bookings",
        "min_over_max": "The shortest booking must not be longer than the longest.",
        "approvals": r"^Approvals \((\d+)\)$",
        "approvals_label": "Approvals",
        "approve": "Approve",
        "reject": "Reject",
        "approved": "Approved: ",
        "rejected": "Rejected: ",
        "reason": "Reason for a rejection",
        "reason_required": "Give a reason: the booker reads it in the rejection.",
        "approved_notice": "The booking was approved. Its booker is told by e-mail.",
        "closure_name": "Reason, such as exams",
        "first_day": "First day",
        "last_day": "Last day",
        "add_closure": "Add the closure",
        "closed": "closed",
        "period_name": "Name, such as autumn term",
        "add_period": "Add the period",
        "end_before_start": "The last day must not be before the first day.",
        "spans_required": "Give at least one span of opening hours, or mark the period closed.",
        "national_day": "Public holiday: National Day",
        "make_up": "Make-up working day",
        "forbidden": "Not allowed",
    },
}
LOCALES = ["zh-CN", "en"]


@pytest.fixture(scope="session")
def api(running: RunningSuite, tmp_path_factory: pytest.TempPathFactory) -> DeskApi:
    output = next(tmp_path_factory.getbasetemp().glob("up*/up.out"))
    return DeskApi.from_up_output(output)


def _school(api: DeskApi) -> dict[str, Any]:
    """A school of the venue manager's, open every day of the coming months, 08:00–22:00."""
    venue = api.new_venue(unique("测试学校"))
    today = datetime.now(CITY).date()
    api.term(venue["id"], (today - timedelta(days=30)).isoformat(), "2027-12-31")
    return venue


def _open_venue(page: Page, words: dict[str, str], venue: dict[str, Any], what: str) -> None:
    """From the start page, through the navigation and the pick of a venue."""
    page.goto("/")
    page.get_by_role("navigation").get_by_role("link", name=words["venues"], exact=True).click()
    page.get_by_role("link", name=_for(words[what], venue["name"])).click()
    page.wait_for_load_state()


def _for(action: str, thing: str) -> re.Pattern[str]:
    """A control's name: what it does, and (for screen readers) what it does it to."""
    return re.compile(rf"^{re.escape(action)}\s*:\s*{re.escape(thing)}$")


def _day_label(day: date, locale: str) -> str:
    return format_skeleton("MMMEd", day, locale="zh_Hans_CN" if locale == "zh-CN" else "en")


def _preview_row(page: Page, day: date, locale: str) -> Any:
    return page.locator("table.preview tbody tr").filter(
        has=page.locator("th", has_text=re.compile(f"^{re.escape(_day_label(day, locale))}$"))
    )


@pytest.mark.parametrize("locale", LOCALES)
def test_a_room_is_added_its_rules_edited_and_its_bookings_approved_and_rejected_in_place(
    page: Page, running: RunningSuite, api: DeskApi, locale: str
) -> None:
    words = WORDS[locale]
    venue = _school(api)
    sign_in(page, running.accounts["venue_manager"], at=f"/login?lang={locale}")
    _open_venue(page, words, venue, "resources")

    room = unique("多功能厅" if locale == "zh-CN" else "Hall")
    page.get_by_label(words["name"], exact=True).fill(room)
    page.get_by_label(words["capacity"]).fill("40")
    page.get_by_label(words["features"]).fill(
        "投影仪，白板" if locale == "zh-CN" else "projector, whiteboard"
    )
    page.get_by_label(words["approval"]).check()
    page.get_by_role("button", name=words["add"], exact=True).click()
    expect(page.get_by_role("status")).to_have_text(words["added"])
    row = page.locator("tbody tr").filter(has_text=room)
    expect(row).to_contain_text("投影仪" if locale == "zh-CN" else "projector")

    row.get_by_role("link", name=_for(words["edit"], room)).click()
    page.get_by_label(words["min"]).fill("300")
    page.get_by_role("button", name=words["save"], exact=True).click()
    expect(page.locator("#min_minutes-error")).to_have_text(words["min_over_max"])
    expect(page.locator("#min_minutes")).to_have_attribute("aria-invalid", "true")
    page.get_by_label(words["min"]).fill("60")
    page.get_by_label(words["buffer"]).fill("15")
    page.get_by_role("button", name=words["save"], exact=True).click()
    expect(page.get_by_role("status")).to_have_text(words["saved"])
    row = page.locator("tbody tr").filter(has_text=room)
    expect(row).to_contain_text(words["rules_shown"])
    expect(row).to_contain_text(words["buffer_shown"])

    resource = next(
        r
        for r in api.call("GET", "registry", "/v1/resources", params={"venue_id": venue["id"]})[
            "items"
        ]
        if r["name"] == room
    )
    assert resource["requires_approval"] is True
    assert resource["rules"]["buffer_minutes"] == 15
    monday = next_monday()
    asked = [
        api.book(
            resource["id"],
            datetime.combine(monday + timedelta(days=n), time(18), CITY),
            unique(f"{locale} 书法班"),
        )
        for n in range(2)
    ]
    assert {b["status"] for b in asked} == {"pending"}

    page.goto("/approvals")
    badge = page.get_by_role("navigation").get_by_role("link", name=re.compile(words["approvals"]))
    expect(badge).to_be_visible()
    waiting = int(re.match(words["approvals"], badge.inner_text()).group(1))  # type: ignore[union-attr]
    assert waiting >= 2
    first, second = (page.locator(f"#booking-{b['id']}") for b in asked)
    expect(first).to_contain_text(venue["name"])
    expect(first).to_contain_text(room)
    screenshot(page, f"desk-approvals-flow-{locale}-1280")

    first.get_by_role("button", name=re.compile(f"^{words['approve']}")).click()
    expect(page.locator(f"#booking-{asked[0]['id']}")).to_have_text(
        words["approved"] + asked[0]["purpose"]
    )
    expect(badge).to_have_text(f"{words['approvals_label']} ({waiting - 1})")
    second.get_by_role("button", name=re.compile(f"^{words['reject']}")).click()
    expect(page.locator(f"#reason-{asked[1]['id']}-error")).to_have_text(words["reason_required"])
    page.locator(f"#booking-{asked[1]['id']}").get_by_label(words["reason"]).fill("场地维修")
    page.locator(f"#booking-{asked[1]['id']}").get_by_role(
        "button", name=re.compile(f"^{words['reject']}")
    ).click()
    expect(page.locator(f"#booking-{asked[1]['id']}")).to_have_text(
        words["rejected"] + asked[1]["purpose"]
    )
    assert api.booking(asked[0]["id"])["status"] == "confirmed"
    rejected = api.booking(asked[1]["id"])
    assert (rejected["status"], rejected["reason"]) == ("rejected", "场地维修")

    page.goto("/approvals")
    expect(page.locator(f"#booking-{asked[0]['id']}")).to_have_count(0)
    badge = page.get_by_role("navigation").get_by_role("link", name=re.compile(words["approvals"]))
    assert int(re.match(words["approvals"], badge.inner_text()).group(1)) == waiting - 2  # type: ignore[union-attr]
    page.goto("/?lang=zh-CN")


def test_a_room_is_marked_part_of_a_hall_and_a_cycle_is_refused_beside_the_field(
    page: Page, running: RunningSuite, api: DeskApi
) -> None:
    words = WORDS["zh-CN"]
    venue = _school(api)
    sign_in(page, running.accounts["venue_manager"], at="/login?lang=zh-CN")
    _open_venue(page, words, venue, "resources")
    hall, half = unique("体育馆"), unique("东半场")
    page.get_by_label(words["name"], exact=True).fill(hall)
    page.get_by_role("button", name=words["add"], exact=True).click()
    expect(page.get_by_role("status")).to_have_text(words["added"])
    page.get_by_label(words["name"], exact=True).fill(half)
    page.get_by_label("属于哪个大厅").select_option(label=hall)
    page.get_by_role("button", name=words["add"], exact=True).click()
    expect(page.get_by_role("status")).to_have_text(words["added"])
    expect(page.locator("tbody tr").filter(has_text=half)).to_contain_text(f"属于{hall}")
    # The hall made part of its own half: the registry's refusal, in words, beside the field.
    hall_row = page.locator("tbody tr").filter(
        has=page.locator("th", has_text=re.compile(f"^{hall}$"))
    )
    hall_row.get_by_role("link", name=_for(words["edit"], hall)).click()
    page.get_by_label("属于哪个大厅").select_option(label=half)
    page.get_by_role("button", name=words["save"], exact=True).click()
    expect(page.locator("#part_of-error")).to_have_text("房间不能属于它自己或它的某一部分。")
    expect(page.locator("#part_of")).to_have_attribute("aria-invalid", "true")


def test_a_booking_is_approved_with_javascript_off(
    browser: Browser, running: RunningSuite, api: DeskApi
) -> None:
    venue = _school(api)
    room = api.call(
        "POST",
        "registry",
        f"/v1/venues/{venue['id']}/resources",
        json={"name": "报告厅", "type": "room", "requires_approval": True},
    )
    asked = api.book(
        room["id"], datetime.combine(next_monday(), time(19), CITY), unique("无脚本审批")
    )
    context = browser.new_context(base_url=running.web_url, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, running.accounts["venue_manager"])
        page.goto("/approvals")
        page.locator(f"#booking-{asked['id']}").get_by_role(
            "button", name=re.compile("^批准")
        ).click()
        expect(page).to_have_url(re.compile(r"/approvals\?done=approved$"))
        expect(page.get_by_role("status")).to_have_text(WORDS["zh-CN"]["approved_notice"])
        expect(page.locator(f"#booking-{asked['id']}")).to_have_count(0)
        assert api.booking(asked["id"])["status"] == "confirmed"
    finally:
        context.close()


@pytest.mark.parametrize("locale", LOCALES)
def test_closures_holidays_and_make_up_days_show_in_the_preview_and_refusals_beside_the_fields(
    page: Page, running: RunningSuite, api: DeskApi, locale: str
) -> None:
    words = WORDS[locale]
    venue = _school(api)
    sign_in(page, running.accounts["venue_manager"], at=f"/login?lang={locale}")
    _open_venue(page, words, venue, "hours")
    closing = next_monday() + timedelta(days=2)
    expect(_preview_row(page, closing, locale)).to_contain_text("08:00–22:00")

    closure = page.locator("form").filter(has=page.locator("#closure-name"))
    closure.get_by_label(words["closure_name"]).fill("校庆" if locale == "zh-CN" else "School fair")
    closure.get_by_label(words["first_day"]).fill(closing.isoformat())
    closure.get_by_label(words["last_day"]).fill(closing.isoformat())
    closure.get_by_role("button", name=words["add_closure"]).click()
    expect(page).to_have_url(re.compile(r"saved=added"))
    expect(_preview_row(page, closing, locale)).to_contain_text(words["closed"])
    expect(_preview_row(page, closing + timedelta(days=1), locale)).to_contain_text("08:00–22:00")

    period = page.locator("form").filter(has=page.locator("#period-name"))
    period.get_by_label(words["period_name"]).fill("坏时段" if locale == "zh-CN" else "Wrong")
    period.get_by_label(words["first_day"]).fill("2027-02-10")
    period.get_by_label(re.compile(f"^{words['last_day']}")).fill("2027-02-01")
    page.locator("#span0-day1").check()
    page.locator("#span0-start").fill("18:00")
    page.locator("#span0-end").fill("21:00")
    period.get_by_role("button", name=words["add_period"]).click()
    expect(page.locator("#period-end_date-error")).to_have_text(words["end_before_start"])
    expect(page.locator("#period-end_date")).to_have_attribute("aria-invalid", "true")
    screenshot(page, f"desk-hours-errors-{locale}-1280")
    page.locator("#span0-day1").uncheck()
    page.locator("#span0-start").fill("")
    page.locator("#span0-end").fill("")
    page.locator("#period-end_date").fill("2027-02-20")
    period.get_by_role("button", name=words["add_period"]).click()
    expect(page.locator("#spans-error")).to_have_text(words["spans_required"])

    page.locator("#period-name").fill("2026 秋季" if locale == "zh-CN" else "Autumn 2026")
    page.locator("#period-start_date").fill("2026-09-01")
    page.locator("#period-end_date").fill("2026-10-31")
    for weekday in range(1, 6):
        page.locator(f"#span0-day{weekday}").check()
    page.locator("#span0-start").fill("18:00")
    page.locator("#span0-end").fill("21:00")
    page.locator("form").filter(has=page.locator("#period-name")).get_by_role(
        "button", name=words["add_period"]
    ).click()
    expect(page).to_have_url(re.compile(r"saved=added"))
    page.goto(f"/venues/{venue['id']}/hours?week=2026-09-28")
    national_day = _preview_row(page, date(2026, 10, 1), locale)
    expect(national_day).to_contain_text(words["national_day"])
    expect(national_day).to_contain_text(words["closed"])
    # A Saturday worked in exchange for the holiday: open with a Monday's hours.
    make_up = _preview_row(page, date(2026, 10, 10), locale)
    expect(make_up).to_contain_text(words["make_up"])
    expect(make_up).to_contain_text("18:00–21:00")
    expect(_preview_row(page, date(2026, 10, 11), locale)).to_contain_text(words["closed"])
    screenshot(page, f"desk-hours-holidays-{locale}-1280")
    page.goto("/?lang=zh-CN")


def test_another_organisations_venue_and_the_desk_of_other_roles_are_refused(
    page: Page, running: RunningSuite, api: DeskApi
) -> None:
    other = api.other_orgs_venue()
    sign_in(page, running.accounts["venue_manager"])
    for path in (f"/venues/{other['id']}/resources", f"/venues/{other['id']}/hours"):
        answer = page.goto(path)
        assert answer is not None, path
        assert answer.status == 403, path
        expect(page.locator("h1")).to_have_text(WORDS["zh-CN"]["forbidden"])
    refused = page.request.post(
        f"/venues/{other['id']}/hours/holidays",
        form={"public_holidays": "open", "_csrf_token": _csrf(page)},
    )
    assert refused.status == 403
    page.get_by_role("button", name="退出登录").click()
    sign_in(page, running.accounts["community_manager"])
    for path in ("/approvals", "/requests", "/venues"):
        answer = page.goto(path)
        assert answer is not None, path
        assert answer.status == 403, path


def _csrf(page: Page) -> str:
    page.goto("/approvals")
    token = page.locator("input[name=_csrf_token]").first.get_attribute("value")
    assert token
    return token


def test_the_office_sees_every_venues_lecture_requests_in_words(
    page: Page, running: RunningSuite
) -> None:
    sign_in(page, running.accounts["office"])
    page.goto("/requests")
    rows = page.locator("tbody tr")
    assert rows.count() > 0
    first = rows.first.inner_text()
    assert re.search(r"\d{4}年\d{1,2}月", first), first
    assert re.search(r"等待讲师|已向讲师发出邀约|全部场次已接受|已撤回", first), first


@pytest.fixture(scope="module")
def desk_pages(api: DeskApi) -> dict[str, str]:
    """A school with a room, hours and a booking waiting: every page of the desk has content."""
    venue = _school(api)
    room = api.call(
        "POST",
        "registry",
        f"/v1/venues/{venue['id']}/resources",
        json={"name": "音乐教室", "type": "room", "capacity": 30, "requires_approval": True},
    )
    api.book(room["id"], datetime.combine(next_monday(), time(20), CITY), "合唱排练")
    return {
        "approvals": "/approvals",
        "venues": "/venues",
        "resources": f"/venues/{venue['id']}/resources",
        "resource": f"/venues/{venue['id']}/resources/{room['id']}",
        "hours": f"/venues/{venue['id']}/hours",
        "hours-holidays": f"/venues/{venue['id']}/hours?week=2026-09-28",
        "requests": "/requests",
    }


def test_the_desk_pages_pass_axe_and_reflow_with_chinese_dates(
    view: tuple[Page, str, int],  # noqa: F811 - the fixture imported above
    running: RunningSuite,
    desk_pages: dict[str, str],
) -> None:
    """Each page of the desk, and its forms with errors, at WCAG 2.1 A/AA (zh-CN at 1280 and
    390 px, English at 1280): `html[lang]`, no sideways scroll at 320 px, no English weekday or
    month names on a Chinese page; a screenshot of each under var/screenshots/."""
    page, locale, width = view
    sign_in(page, running.accounts["venue_manager"])
    for name, path in desk_pages.items():
        page.goto(path)
        check_page(page, locale, width, f"desk-{name}")
    page.goto(desk_pages["resources"])
    page.get_by_role("button", name=WORDS[locale]["add"], exact=True).click()
    check_page(page, locale, width, "desk-resources-errors")
    page.goto(desk_pages["hours"])
    page.locator("form").filter(has=page.locator("#period-name")).locator(
        "button[type=submit]"
    ).click()
    check_page(page, locale, width, "desk-hours-errors")
    page.goto(desk_pages["approvals"])
    page.locator(".card form.reject button[type=submit]").first.click()
    page.wait_for_load_state()
    check_page(page, locale, width, "desk-approvals-errors")
    page.get_by_role("button", name=re.compile("退出登录|Sign out")).click()
    sign_in(page, running.accounts["office"])
    page.goto("/requests")
    check_page(page, locale, width, "desk-requests-office")
    page.get_by_role("button", name=re.compile("退出登录|Sign out")).click()
