"""Bad input in a form: the server's words beside each field, in the page's language, with the
form again; never an error page. Regression: a field's message was rendered by a macro imported
without the page's context, so any form sent with an empty field was a 500."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import RunningSuite, screenshot, sign_in

REQUIRED = {"zh-CN": "此项为必填项。", "en": "This field is required."}


def test_an_empty_login_form_says_so_beside_each_field(page: Page) -> None:
    page.goto("/login?lang=zh-CN")
    with page.expect_response(re.compile(r"/login$")) as answer:
        page.locator("main form button[type=submit]").first.click()
    assert answer.value.status == 400
    for field in ("email", "password"):
        expect(page.locator(f"#{field}-error")).to_have_text(REQUIRED["zh-CN"])
        expect(page.locator(f"#{field}")).to_have_attribute("aria-invalid", "true")
        expect(page.locator(f"#{field}")).to_have_attribute("aria-describedby", f"{field}-error")


def test_an_empty_password_change_says_so_beside_each_field_in_english_too(
    page: Page, running: RunningSuite
) -> None:
    sign_in(page, running.accounts["office"])
    page.goto("/me?lang=en")
    with page.expect_response(re.compile(r"/me/password$")) as answer:
        page.get_by_role("button", name="Change the password").click()
    assert answer.value.status == 400
    expect(page.locator("h1")).to_have_text("My account")
    expect(page.locator("#current_password-error")).to_have_text(REQUIRED["en"])
    expect(page.locator("#password-error")).to_have_text(REQUIRED["en"])
    screenshot(page, "me-password-errors-en-1280")
    page.goto("/me?lang=zh-CN")  # the account's language back to the suite's default
