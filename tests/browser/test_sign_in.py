"""Signing in and out in a real browser: the way back after sign-in, CSRF, two tabs refreshing
at once, the language switch, and the login with JavaScript off."""

from __future__ import annotations

import re
import time
from urllib.parse import quote

from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import TOKEN_SECONDS, RunningSuite, next_monday, screenshot, sign_in


def test_a_signed_out_visitor_is_sent_to_the_login_and_back_afterwards(
    page: Page, running: RunningSuite
) -> None:
    page.goto("/me")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fme$"))
    screenshot(page, "login-zh-CN-1280")
    sign_in(page, running.accounts["community_manager"], at=page.url)
    expect(page).to_have_url(re.compile(r"/me$"))
    expect(page.locator("h1")).to_have_text("我的账户")
    page.get_by_role("button", name="退出登录").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/me")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_a_wrong_password_is_said_in_words_next_to_the_form(
    page: Page, running: RunningSuite
) -> None:
    account = running.accounts["venue_manager"]
    page.goto("/login")
    page.get_by_label("电子邮箱").fill(account.email)
    page.get_by_label("密码").fill("not-the-password")
    page.locator("main form button[type=submit]").first.click()
    expect(page.get_by_role("alert")).to_have_text("电子邮箱或密码不正确。")


def test_sign_in_goes_back_to_local_pages_only(page: Page, running: RunningSuite) -> None:
    sign_in(page, running.accounts["office"], at=f"/login?next={quote('https://evil.example/')}")
    expect(page).to_have_url(re.compile(r"^http://127\.0\.0\.1:\d+/$"))


def test_a_form_without_our_csrf_token_or_with_a_forged_one_is_refused(
    page: Page, running: RunningSuite
) -> None:
    account = running.accounts["community_manager"]
    page.goto("/login")  # the CSRF cookie is set
    form = {"email": account.email, "password": account.password}
    missing = page.request.post("/login", form=form, max_redirects=0)
    assert missing.status == 403
    assert "此表单不是从本站页面提交的" in missing.text()
    forged = page.request.post("/login", form={**form, "_csrf_token": "0" * 128}, max_redirects=0)
    assert forged.status == 403
    page.goto("/me")
    expect(page).to_have_url(re.compile(r"/login"))  # neither signed anyone in


def test_two_tabs_refreshing_at_once_stay_signed_in(
    context: BrowserContext, running: RunningSuite
) -> None:
    first = context.new_page()
    sign_in(first, running.accounts["community_manager"])
    second = context.new_page()
    for _ in range(3):
        time.sleep(TOKEN_SECONDS + 1)  # the access token is due for a refresh in both tabs
        answers = first.evaluate(
            """async () => Promise.all([1, 2, 3, 4].map(async () => {
                const r = await fetch("/me"); return [r.status, new URL(r.url).pathname];
            }))"""
        )
        assert answers == [[200, "/me"]] * 4
    second.goto("/me")
    expect(second.locator("h1")).to_have_text("我的账户")
    first.reload()
    expect(first.locator("h1")).to_contain_text("欢迎")


def test_the_language_switch_is_kept_in_a_cookie_and_at_identity(
    browser: Browser, running: RunningSuite
) -> None:
    account = running.accounts["lecturer"]
    context = browser.new_context(base_url=running.web_url)
    try:
        page = context.new_page()
        page.goto("/login")
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        page.get_by_role("link", name="English").click()
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.locator("h1")).to_have_text("Sign in")
        page.goto("/login")  # no ?lang: the cookie keeps it
        expect(page.locator("h1")).to_have_text("Sign in")
        sign_in(page, account)
        page.goto("/me?lang=en")  # signed in: saved at identity too
        expect(page.locator("h1")).to_have_text("My account")
    finally:
        context.close()
    fresh = browser.new_context(base_url=running.web_url)  # no cookie: the account's language
    try:
        page = fresh.new_page()
        sign_in(page, account)
        page.goto("/me")
        expect(page.locator("html")).to_have_attribute("lang", "en")
        page.get_by_label("中文").check()
        page.get_by_role("button", name="Save the language").click()
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        expect(page.get_by_role("status")).to_have_text("已保存。")
    finally:
        fresh.close()


def test_signing_in_works_with_javascript_off(browser: Browser, running: RunningSuite) -> None:
    context = browser.new_context(base_url=running.web_url, java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, running.accounts["venue_manager"], at="/login?next=%2Fme")
        expect(page).to_have_url(re.compile(r"/me$"))
        page.get_by_role("button", name="退出登录").click()
        expect(page).to_have_url(re.compile(r"/login$"))
    finally:
        context.close()


def test_a_community_manager_finds_rooms_free_on_an_evening(
    page: Page, running: RunningSuite
) -> None:
    sign_in(page, running.accounts["community_manager"])
    page.get_by_role("link", name="找场地").first.click()
    page.get_by_label("类型").select_option("room")
    page.get_by_label("可容纳人数不少于").fill("20")
    monday = next_monday()
    page.get_by_label("日期").fill(monday.isoformat())
    page.get_by_label("从").fill("18:00")
    page.get_by_label("到", exact=True).fill("21:00")
    page.get_by_role("button", name="搜索").click()
    caption = page.locator("table caption")
    expect(caption).to_contain_text("共找到")
    first_free = page.locator("tbody tr td").nth(3).inner_text()
    assert re.fullmatch(r"(\d\d:\d\d–\d\d:\d\d(, )?)+", first_free), first_free  # noqa: RUF001
    screenshot(page, "rooms-free-zh-CN-1280")
    page.locator("tbody th a").first.click()
    grid = page.locator("table.week")
    expect(grid.locator("thead th[scope=col]")).to_have_count(8)
    free = grid.get_by_role("link", name=re.compile(r"可预订$")).first
    expect(free).to_have_accessible_name(
        re.compile(r"^\d+月\d+日周. \d\d:\d\d–\d\d:\d\d 可预订$")  # noqa: RUF001
    )
    assert grid.locator("td.booked, td.closed").count() > 0  # status in words, not colour alone
    expect(grid.locator("td.closed").first).to_contain_text("不开放")
    page.goto("/rooms?min_capacity=many")  # what a browser's number field cannot send
    expect(page.locator("#min_capacity-error")).to_have_text("请输入整数，例如 30。")  # noqa: RUF001
