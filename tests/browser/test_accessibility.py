"""Every page that exists, checked by axe-core at WCAG 2.1 A/AA: zh-CN at 1280 and 390 px wide,
English at 1280; and for each, `html[lang]`, no sideways scroll at 320 px, no English weekday
or month names on a Chinese page. A screenshot of each is saved under var/screenshots/."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.conftest import RunningSuite, axe_violations, next_monday, screenshot, sign_in

SIGNED_OUT = {
    "login": "/login",
    "reset": "/reset",
    "reset-link": "/reset/not-a-real-token",
    "invite-link": "/invite/not-a-real-token",
    "not-found": "/no-such-page",
}
_MONDAY = next_monday()
SIGNED_IN = {
    "start": "/",
    "me": "/me",
    "rooms": "/rooms",
    "rooms-found": "/rooms?type=room&min_capacity=20",
    "rooms-free": f"/rooms?date={_MONDAY.isoformat()}&from=18:00&to=21:00&minutes=90",
    "rooms-wrong": "/rooms?date=tomorrow&min_capacity=many",
    "not-found-signed-in": "/no-such-page",
}
ENGLISH_NAMES = re.compile(
    r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|"
    r"Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec|January|February|March|April|June|July|"
    r"August|September|October|November|December)\b"
)
VIEWS = [("zh-CN", 1280), ("zh-CN", 390), ("en", 1280)]


@pytest.fixture(scope="module", params=VIEWS, ids=[f"{lang}-{w}" for lang, w in VIEWS])
def view(
    request: pytest.FixtureRequest, browser: Browser, running: RunningSuite
) -> Iterator[tuple[Page, str, int]]:
    locale, width = request.param
    # axe is added as a script tag: the pages' own Content-Security-Policy would refuse it.
    context = browser.new_context(
        base_url=running.web_url, viewport={"width": width, "height": 900}, bypass_csp=True
    )
    page = context.new_page()
    page.goto(f"/login?lang={locale}")
    yield page, locale, width
    context.close()


def _check(page: Page, locale: str, width: int, name: str) -> None:
    assert page.locator("html").get_attribute("lang") == locale
    screenshot(page, f"{name}-{locale}-{width}")
    violations = axe_violations(page)
    assert violations == [], f"{name} ({locale}, {width} px): {violations}"
    if locale == "zh-CN":
        text = page.locator("body").inner_text()
        assert not ENGLISH_NAMES.search(text), f"{name}: English date words in {text!r}"
    page.set_viewport_size({"width": 320, "height": 800})
    wide = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    page.set_viewport_size({"width": width, "height": 900})
    assert not wide, f"{name} scrolls sideways at 320 px"


def test_signed_out_pages_pass_axe_and_reflow(view: tuple[Page, str, int]) -> None:
    page, locale, width = view
    for name, path in SIGNED_OUT.items():
        page.goto(path)
        _check(page, locale, width, name)


def test_signed_in_pages_pass_axe_and_reflow(
    view: tuple[Page, str, int], running: RunningSuite
) -> None:
    page, locale, width = view
    sign_in(page, running.accounts["community_manager"])
    for name, path in SIGNED_IN.items():
        page.goto(path)
        _check(page, locale, width, name)
    page.goto(SIGNED_IN["rooms-free"])
    page.locator("tbody th a").first.click()
    page.wait_for_load_state()
    _check(page, locale, width, "room-week")
    page.goto("/me")
    page.get_by_role("button", name=re.compile("修改密码|Change the password")).click()
    _check(page, locale, width, "me-with-errors")
    forged = page.request.post("/logout", form={"_csrf_token": "0" * 128})
    assert forged.status == 403
    page.set_content(forged.text())
    assert page.locator("h1").inner_text() in ("无权访问", "Not allowed")
