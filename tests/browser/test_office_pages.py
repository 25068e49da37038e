"""The office's pages in a real browser, in Chinese and in English: a utilisation report for a
chosen range with its heatmap and CSV, a matching run started from its form with an unmatched
session's reason in words, and invitations made, sent again and withdrawn; a community manager
refused the office's pages; every page checked by axe-core, at 320 px and for English dates."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import RunningSuite, next_monday, screenshot, sign_in
from tests.browser.test_accessibility import _check, view  # noqa: F401 - `view` is a fixture

WORDS = {
    "zh-CN": {
        "report": "使用率报表",
        "show": "查看报表",
        "busiest": "最繁忙的时段：",  # noqa: RUF001 - Chinese punctuation
        "csv": "下载此表为 CSV 文件（可用 Excel 打开）",  # noqa: RUF001 - Chinese punctuation
        "start": "开始匹配",
        "done": "已完成",
        "nobody": "讲师团中没有人讲授这个主题。",
        "invite": "发送邀请",
        "invited": "邀请已发出。",
        "resent": "已发送新的邀请，旧链接不再有效。",  # noqa: RUF001 - Chinese punctuation
        "withdrawn": "邀请已撤回，其链接不再有效。",  # noqa: RUF001 - Chinese punctuation
        "resend": "重新发送",
        "withdraw": "撤回",
        "forbidden": "无权访问",
        "school": "学校",
    },
    "en": {
        "report": "Utilisation reports",
        "show": "Show the report",
        "busiest": "Busiest hours: ",
        "csv": "Download this table as CSV (for Excel)",
        "start": "Start the run",
        "done": "Done",
        "nobody": "Nobody in the corps teaches this topic.",
        "invite": "Send the invitation",
        "invited": "The invitation is on its way.",
        "resent": "A new invitation was sent: the older link no longer works.",
        "withdrawn": "The invitation was withdrawn: its link no longer works.",
        "resend": "Send again",
        "withdraw": "Withdraw",
        "forbidden": "Not allowed",
        "school": "School",
    },
}
LOCALES = ("zh-CN", "en")
RUN_SECONDS = 90


@pytest.fixture
def office(page: Page, running: RunningSuite) -> Iterator[Page]:
    sign_in(page, running.accounts["office"])
    yield page
    page.goto("/?lang=zh-CN")  # the account's language back to the suite's default


@pytest.mark.parametrize("locale", LOCALES)
def test_the_office_sees_a_report_for_a_range_with_its_heatmap_and_downloads_its_csv(
    office: Page, locale: str
) -> None:
    words = WORDS[locale]
    first = next_monday()
    last = first + timedelta(days=13)
    office.goto(f"/reports?lang={locale}")
    expect(office.locator("h1")).to_have_text(words["report"])
    office.locator("#from").fill(first.isoformat())
    office.locator("#to").fill(last.isoformat())
    office.locator("#group_by").select_option("kind")
    office.get_by_role("button", name=words["show"]).click()
    expect(office).to_have_url(re.compile(r"group_by=kind"))
    rows = office.locator("table tbody tr")
    expect(rows.first).to_be_visible()
    labels = rows.locator("th").all_inner_texts()
    assert words["school"] in labels  # a kind in words, never its code
    assert all("_" not in label for label in labels)
    utilisation = rows.first.locator("td").nth(2).inner_text()
    assert re.fullmatch(r"\d+\.\d%", utilisation), utilisation
    heatmap = office.locator("figure.heatmap img")
    expect(heatmap).to_have_attribute("alt", re.compile("^" + re.escape(words["busiest"])))
    picture = office.request.get(heatmap.get_attribute("src") or "")
    assert picture.status == 200, picture.text()
    assert picture.headers["content-type"] == "image/png"
    # The picture loaded (the booking service draws it 1000 px wide); polled without a string
    # of script, which the page's Content-Security-Policy refuses to evaluate.
    expect(heatmap).to_have_js_property("naturalWidth", 1000, timeout=30_000)
    if locale == "zh-CN":
        screenshot(office, "reports-zh-CN-1280")
    with office.expect_download() as downloading:
        office.get_by_role("link", name=words["csv"]).click()
    download = downloading.value
    assert download.suggested_filename == f"utilisation-by-kind-{first}-to-{last}.csv"
    content = Path(download.path()).read_bytes()
    assert content.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM, for Excel
    header = content[3:].decode("utf-8").splitlines()[0]
    assert header.startswith("key,label,open_hours,booked_hours,utilisation")


def test_a_wrong_report_range_is_said_beside_the_field(office: Page) -> None:
    office.goto("/reports?lang=zh-CN&from=2026-12-10&to=2026-12-01")
    expect(office.locator("#to-error")).to_have_text("结束日期不能早于开始日期。")
    expect(office.locator("#to")).to_have_attribute("aria-invalid", "true")
    for wrong in ("/reports/utilisation.csv?from=soon", "/reports/heatmap.png?to=2026-13-01"):
        assert office.request.get(wrong).status == 400, wrong


def test_a_venue_manager_reports_on_its_own_venues_only(
    browser: Browser, office: Page, running: RunningSuite
) -> None:
    office.goto("/reports?group_by=venue")
    venues_of_the_city = office.locator("table tbody tr").count()
    own = browser.new_context(base_url=running.web_url)
    try:
        mine = own.new_page()
        sign_in(mine, running.accounts["venue_manager"])
        mine.goto("/reports?group_by=venue")
        expect(mine.locator("table tbody tr").first).to_be_visible()
        assert 1 <= mine.locator("table tbody tr").count() < venues_of_the_city
        expect(mine.locator("figure.heatmap img")).to_have_attribute("alt", re.compile(r"\S"))
    finally:
        own.close()


def _office_token(running: RunningSuite) -> str:
    account = running.accounts["office"]
    answer = httpx.post(
        f"{running.service_urls['identity']}/v1/token",
        json={"grant_type": "password", "username": account.email, "password": account.password},
    )
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


def _ask_for_a_topic_nobody_teaches(running: RunningSuite, month: str) -> str:
    """A lecture request no page of this build makes: through the lecturer service's API."""
    headers = {"Authorization": f"Bearer {_office_token(running)}"}
    venues = httpx.get(
        f"{running.service_urls['registry']}/v1/venues", params={"limit": 1}, headers=headers
    )
    topic = f"天文观测 {uuid.uuid4().hex[:6]}"
    made = httpx.post(
        f"{running.service_urls['lecturers']}/v1/requests",
        json={
            "venue_id": venues.json()["items"][0]["id"],
            "topic": topic,
            "programme": "citizen",
            "month": month,
        },
        headers=headers,
    )
    assert made.status_code == 201, made.text
    return topic


def _next_month() -> str:
    following = next_monday().replace(day=28) + timedelta(days=4)
    return following.isoformat()[:7]


@pytest.mark.parametrize("locale", LOCALES)
def test_the_office_starts_a_run_and_reads_why_a_session_went_unmatched(
    office: Page, running: RunningSuite, locale: str
) -> None:
    words = WORDS[locale]
    month = _next_month()
    topic = _ask_for_a_topic_nobody_teaches(running, month)
    office.goto(f"/runs?lang={locale}")
    office.locator("#month").fill(month)
    office.get_by_role("button", name=words["start"], exact=True).click()
    expect(office).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
    deadline = time.monotonic() + RUN_SECONDS
    while office.locator("dd.status-done, dd.status-failed").count() == 0:
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(1)
        office.reload()
    expect(office.locator("dd.status-done")).to_have_text(words["done"])
    row = office.locator("tbody tr", has=office.locator("th", has_text=topic))
    expect(row.locator("td").last).to_have_text(words["nobody"])
    assert "no_lecturer_with_topic" not in office.locator("main").inner_text()
    if locale == "zh-CN":
        screenshot(office, "run-zh-CN-1280")
    office.goto(f"/runs?lang={locale}")
    office.locator("#shown_month").fill(month)
    office.locator("#shown_month").press("Enter")
    expect(office).to_have_url(re.compile(f"month={month}"))
    expect(office.locator("tbody tr").first).to_be_visible()


@pytest.mark.parametrize("locale", LOCALES)
def test_the_office_invites_someone_sends_it_again_and_withdraws_it(
    office: Page, running: RunningSuite, locale: str
) -> None:
    words = WORDS[locale]
    school = running.accounts["venue_manager"].org
    email = f"new-{uuid.uuid4().hex[:8]}@luhu.example.org"
    office.goto(f"/users?lang={locale}")
    office.locator("#org").select_option(school)
    office.locator("form.search button").click()
    expect(office).to_have_url(re.compile(f"org={school}"))
    office.locator("#email").fill(email)
    office.locator("#role").select_option("venue_manager")
    office.locator("#locale").select_option("en")
    office.get_by_role("button", name=words["invite"]).click()
    expect(office.get_by_role("status")).to_have_text(words["invited"])
    expect(office.get_by_role("status")).to_be_focused()  # what was done is read out first
    invited = office.locator("tbody tr", has=office.locator("th", has_text=email))
    expect(invited).to_have_count(1)
    if locale == "zh-CN":
        screenshot(office, "users-zh-CN-1280")
    invited.get_by_role("button", name=re.compile("^" + words["resend"])).click()
    expect(office.get_by_role("status")).to_have_text(words["resent"])
    expect(invited).to_have_count(1)  # the new one; identity voided the older
    invited.get_by_role("button", name=re.compile("^" + words["withdraw"])).click()
    expect(office.get_by_role("status")).to_have_text(words["withdrawn"])
    expect(invited).to_have_count(0)


def test_a_venue_manager_invites_to_its_own_org_and_role_only(
    page: Page, running: RunningSuite
) -> None:
    manager = running.accounts["venue_manager"]
    sign_in(page, manager)
    page.goto("/users?lang=zh-CN")
    expect(page.locator("#org")).to_have_count(0)
    assert page.locator("#role option").evaluate_all("els => els.map(e => e.value)") == [
        "venue_manager"
    ]
    email = f"colleague-{uuid.uuid4().hex[:8]}@luhu.example.org"
    page.locator("#email").fill(email)
    page.get_by_role("button", name="发送邀请").click()
    expect(page.get_by_role("status")).to_have_text("邀请已发出。")
    expect(page.locator("tbody tr", has=page.locator("th", has_text=email))).to_have_count(1)


def test_a_community_manager_gets_the_403_page_for_the_office_pages(
    page: Page, running: RunningSuite
) -> None:
    sign_in(page, running.accounts["community_manager"])
    for path in ("/runs", "/lecturers", "/reports", "/runs/00000000-0000-7000-8000-000000000000"):
        answer = page.goto(f"{path}?lang=zh-CN")
        assert answer is not None
        assert answer.status == 403, path
        expect(page.locator("h1")).to_have_text(WORDS["zh-CN"]["forbidden"])
    nav = page.get_by_role("navigation", name="主导航").inner_text()
    assert "讲师匹配" not in nav
    assert "成员与邀请" in nav


OFFICE_PAGES = {
    "reports": "/reports",
    "reports-by-programme": "/reports?group_by=programme",
    "reports-wrong": "/reports?from=2026-12-10&to=2026-12-01",
    "lecturers": "/lecturers",
    "lecturers-found": "/lecturers?topic=书法艺术",
    "runs": "/runs",
    "users": "/users",
}


def test_the_office_pages_pass_axe_and_reflow(
    view: tuple[Page, str, int],  # noqa: F811
    running: RunningSuite,
) -> None:
    page, locale, width = view
    sign_in(page, running.accounts["office"])
    for name, path in OFFICE_PAGES.items():
        page.goto(path)
        _check(page, locale, width, name)
    page.goto(f"/runs?month={_next_month()}")
    runs = page.locator("tbody th a")
    if runs.count():
        runs.first.click()
        page.wait_for_load_state()
        _check(page, locale, width, "run")
    page.get_by_role("button", name=re.compile("退出登录|Sign out")).click()
    sign_in(page, running.accounts["venue_manager"])
    for name, path in {
        "reports-venue-manager": "/reports",
        "users-venue-manager": "/users",
    }.items():
        page.goto(path)
        _check(page, locale, width, name)
