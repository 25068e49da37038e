"""The lecturer's pages in a real Chromium against the suite `up --demo` starts: offers answered
on /offers and through the one-click links of the calendar feed, in Chinese and English, with
and without JavaScript; availability, blackout dates and a new calendar link; axe-core, reflow
at 320 px and no English date words on the Chinese pages.

The offers are made as people make them: the office gives the demo's lecturer a topic of its own
and asks a school for lectures on it, and a matching run offers them to that lecturer."""

# ruff: noqa: RUF001  (Chinese text takes full-width punctuation: the pages' own words)
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import icalendar
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from services.lecturers.domain.links import answer_link_claim, link_key, sign
from shared.time import next_month
from tests.browser.conftest import Account, RunningSuite, sign_in
from tests.browser.test_accessibility import _check

TOPIC = "网页测试讲座"
EVERY_DAY = [{"weekdays": [1, 2, 3, 4, 5, 6, 7], "start": "08:00", "end": "22:00"}]
RUN_SECONDS = 90
TEXT = {
    "zh-CN": {
        "title": "邀请与讲座",
        "accept": "接受",
        "decline": "谢绝",
        "decline_offer": "谢绝邀请",
        "reason": "原因（选填）",
        "accepted": "您已接受这次讲座，场地已为您预订。",
        "declined": "您已谢绝这项邀请，我们将另请其他讲师。",
        "blackout": "不能授课的日期",
        "add_day": "添加日期",
        "new_link": "换一个新的日历链接",
        "make_link": "生成新的日历链接",
        "link_ready": "新的日历链接已生成",
        "accept_lecture": "接受讲座",
        "decline_lecture": "谢绝讲座",
        "you_accepted": "您已接受这次讲座",
        "you_declined": "您已谢绝这次讲座",
        "gone": "此链接无法使用",
        "used": "这项邀请已被答复、已撤回，或答复期限已过。",
    },
    "en": {
        "title": "Offers and lectures",
        "accept": "Accept",
        "decline": "Decline",
        "decline_offer": "Decline the offer",
        "reason": "Reason (optional)",
        "accepted": "You accepted the lecture: the room is booked for you.",
        "declined": "You declined the offer: we will ask another lecturer.",
        "blackout": "A day you cannot lecture",
        "add_day": "Add the day",
        "new_link": "Get a new calendar link",
        "make_link": "Make a new calendar link",
        "link_ready": "Your new calendar link is ready",
        "accept_lecture": "Accept the lecture",
        "decline_lecture": "Decline the lecture",
        "you_accepted": "You accepted this lecture",
        "you_declined": "You declined this lecture",
        "gone": "This link does not work",
        "used": "This offer has been answered already, withdrawn, or the time to answer it",
    },
}


class Api:
    """The suite's APIs, called as the office and the lecturer would call them."""

    def __init__(self, running: RunningSuite) -> None:
        self.urls = running.service_urls
        self.http = httpx.Client(timeout=30)
        self.office = self._token(running.accounts["office"])
        lecturer = self._token(running.accounts["lecturer"])
        me = self.http.get(f"{self.urls['identity']}/v1/me", headers=_bearer(lecturer)).json()
        (membership,) = [m for m in me["memberships"] if m["role"] == "lecturer"]
        self.lecturer_id: str = membership["lecturer_id"]

    def _token(self, account: Account) -> str:
        grant = {"grant_type": "password", "username": account.email, "password": account.password}
        answer = self.http.post(f"{self.urls['identity']}/v1/token", json=grant)
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        return token

    def call(self, method: str, service: str, path: str, **kwargs: Any) -> Any:
        answer = self.http.request(
            method, f"{self.urls[service]}{path}", headers=_bearer(self.office), **kwargs
        )
        assert answer.status_code < 300, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json()

    def lecturer(self) -> dict[str, Any]:
        found: dict[str, Any] = self.call("GET", "lecturers", f"/v1/lecturers/{self.lecturer_id}")
        return found

    def prepare_lecturer(self) -> None:
        """The demo's lecturer free every day and teaching a topic nobody else does."""
        topics = [t for t in self.lecturer()["topics"] if t != TOPIC][:29]
        self.call(
            "PATCH",
            "lecturers",
            f"/v1/lecturers/{self.lecturer_id}",
            json={
                "topics": [*topics, TOPIC],
                "availability": EVERY_DAY,
                "blackout_dates": [],
                "max_per_month": 31,
            },
        )

    def offers(self, sessions: int) -> list[dict[str, Any]]:
        """`sessions` new offers of a lecture on TOPIC to the demo's lecturer."""
        month = f"{next_month(datetime.now(UTC).date()):%Y-%m}"
        area = self.lecturer()["area_id"]
        venues = self.call("GET", "registry", "/v1/venues", params={"limit": 100})["items"]
        venues.sort(key=lambda v: (v["area_id"] != area, v["kind"] != "citizen_school"))
        for venue in venues[:5]:
            request = self.call(
                "POST",
                "lecturers",
                "/v1/requests",
                json={
                    "venue_id": venue["id"],
                    "topic": TOPIC,
                    "programme": "citizen",
                    "month": month,
                    "sessions": sessions,
                },
            )
            run = self.call("POST", "lecturers", "/v1/matching/runs", json={"month": month})
            self._wait(run["run_id"])
            offers = self.call(
                "GET",
                "lecturers",
                "/v1/offers",
                params={"lecturer_id": self.lecturer_id, "status": "offered", "limit": 500},
            )["items"]
            mine = [o for o in offers if o["request_id"] == request["id"]]
            if len(mine) == sessions:
                return sorted(mine, key=lambda o: o["start"])
            self.call("POST", "lecturers", f"/v1/requests/{request['id']}/cancel")
        pytest.fail("no demo venue could hold the test's lectures")

    def _wait(self, run_id: str) -> None:
        deadline = time.monotonic() + RUN_SECONDS
        while time.monotonic() < deadline:
            run = self.call("GET", "lecturers", f"/v1/matching/runs/{run_id}")
            if run["status"] in ("done", "failed"):
                assert run["status"] == "done", run
                return
            time.sleep(0.5)
        pytest.fail(f"the matching run {run_id} did not finish in {RUN_SECONDS} s")

    def offer(self, offer_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.call("GET", "lecturers", f"/v1/offers/{offer_id}")
        return found

    def feed_links(self, offer_id: str) -> dict[str, str]:
        """The one-click links of an offer, as the lecturer's calendar feed gives them."""
        feed = self.http.get(self.lecturer()["feed_url"])
        assert feed.status_code == 200, feed.text
        for event in icalendar.Calendar.from_ical(feed.content).walk("VEVENT"):
            if str(event["UID"]) == f"offer-{offer_id}@commonroom":
                found = re.findall(r"(Accept|Decline): (\S+)", str(event["DESCRIPTION"]))
                return {answer.lower(): url for answer, url in found}
        pytest.fail(f"offer {offer_id} is not in the feed")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def api(running: RunningSuite) -> Iterator[Api]:
    made = Api(running)
    made.prepare_lecturer()
    yield made
    made.http.close()


def _lecturer_page(context: BrowserContext, running: RunningSuite, locale: str) -> Page:
    page = context.new_page()
    sign_in(page, running.accounts["lecturer"], at=f"/login?lang={locale}&next=/offers")
    expect(page.locator("h1")).to_have_text(TEXT[locale]["title"])
    return page


def _web_path(url: str) -> str:
    """A feed link's path on the web (the lecturer service's link redirects there)."""
    return "/offers/links/" + urlsplit(url).path.rsplit("/", 1)[1]


# ---------------------------------------------------------------------------------------------
# /offers


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_a_lecturer_sees_its_offers_accepts_one_and_declines_one(
    browser: Browser, running: RunningSuite, api: Api, locale: str
) -> None:
    first, second = api.offers(2)
    context = browser.new_context(base_url=running.web_url, viewport={"width": 390, "height": 844})
    page = _lecturer_page(context, running, locale)
    words = TEXT[locale]
    card = page.locator(f"#offer-{first['id']}")
    expect(card.get_by_role("heading", level=3)).to_have_text(TOPIC)
    expect(card).to_contain_text(first["start"][11:16])
    card.get_by_role("button", name=words["accept"], exact=True).click()
    expect(page.locator("#answered")).to_have_text(words["accepted"])
    assert api.offer(first["id"])["status"] == "accepted"
    # The accepted lecture is now among those to give, and no longer to answer.
    expect(page.locator(f"#offer-{first['id']}")).to_have_count(0)
    expect(page.locator("#to-give + ul")).to_contain_text(TOPIC)

    card = page.locator(f"#offer-{second['id']}")
    card.get_by_text(words["decline"], exact=True).click()
    card.get_by_label(words["reason"]).fill("那天要去医院复查" if locale == "zh-CN" else "a doctor")
    card.get_by_role("button", name=words["decline_offer"]).click()
    expect(page.locator("#answered")).to_have_text(words["declined"])
    declined = api.offer(second["id"])
    assert declined["status"] == "declined"
    assert declined["reason"] == ("那天要去医院复查" if locale == "zh-CN" else "a doctor")
    context.close()


def test_offers_are_answered_without_javascript(
    browser: Browser, running: RunningSuite, api: Api
) -> None:
    (offer,) = api.offers(1)
    context = browser.new_context(base_url=running.web_url, java_script_enabled=False)
    page = _lecturer_page(context, running, "zh-CN")
    page.locator(f"#offer-{offer['id']}").get_by_role("button", name="接受", exact=True).click()
    expect(page.locator("#answered")).to_have_text(TEXT["zh-CN"]["accepted"])
    assert api.offer(offer["id"])["status"] == "accepted"
    context.close()


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_a_lecturer_adds_a_blackout_date_and_gets_a_new_calendar_link(
    browser: Browser, running: RunningSuite, api: Api, locale: str
) -> None:
    context = browser.new_context(base_url=running.web_url)
    page = _lecturer_page(context, running, locale)
    words = TEXT[locale]
    day = (datetime.now(UTC) + timedelta(days=400)).date()
    page.get_by_role("textbox", name=words["blackout"]).fill(day.isoformat())
    page.get_by_role("button", name=words["add_day"]).click()
    assert day.isoformat() in api.lecturer()["blackout_dates"]
    expect(page.locator(f"#blackout-{day.isoformat()}")).to_be_visible()
    page.locator(f"#blackout-{day.isoformat()} + form button").click()
    assert day.isoformat() not in api.lecturer()["blackout_dates"]

    old_feed = api.lecturer()["feed_url"]
    expect(page.locator("#feed-url")).to_have_value(old_feed)
    webcal = page.locator("a[href^='webcal://']")
    assert webcal.get_attribute("href") == "webcal://" + old_feed.split("://", 1)[1]
    page.get_by_role("link", name=words["new_link"]).click()
    page.get_by_role("button", name=words["make_link"]).click()
    expect(page.locator("#answered")).to_contain_text(words["link_ready"])
    new_feed = api.lecturer()["feed_url"]
    assert new_feed != old_feed
    expect(page.locator("#feed-url")).to_have_value(new_feed)
    assert httpx.get(old_feed).status_code == 404
    context.close()


def test_an_empty_blackout_date_is_refused_beside_the_field(
    browser: Browser, running: RunningSuite, api: Api
) -> None:
    context = browser.new_context(base_url=running.web_url)
    page = _lecturer_page(context, running, "zh-CN")
    with page.expect_response(re.compile(r"/offers/blackouts$")) as answer:
        page.get_by_role("button", name="添加日期").click()
    assert answer.value.status == 400
    expect(page.locator("#blackout_dates-error")).to_have_text("此项为必填项。")
    context.close()


def test_a_lecturer_adds_and_removes_weekly_hours_without_javascript(
    browser: Browser, running: RunningSuite, api: Api
) -> None:
    context = browser.new_context(base_url=running.web_url, java_script_enabled=False)
    page = _lecturer_page(context, running, "en")
    page.get_by_label("From").fill("09:00")
    page.get_by_label("Until").fill("08:00")
    with page.expect_response(re.compile(r"/offers/availability$")) as answer:
        page.get_by_role("button", name="Add these hours").click()
    assert answer.value.status == 400
    expect(page.locator("#weekdays-error")).to_have_text("Choose at least one day of the week.")
    expect(page.locator("#end-error")).to_have_text("The end must come after the start.")
    page.get_by_label("Tue").check()
    page.get_by_label("Thu").check()
    page.get_by_label("Until").fill("11:30")
    page.get_by_role("button", name="Add these hours").click()
    expect(page.locator("#answered")).to_have_text("Your weekly hours are saved.")
    added = {"weekdays": [2, 4], "start": "09:00", "end": "11:30"}
    assert api.lecturer()["availability"] == [*EVERY_DAY, added]
    expect(page.locator("#span-1")).to_have_text("Tue, Thu 09:00–11:30")
    page.locator("#span-1 + form button").click()
    assert api.lecturer()["availability"] == EVERY_DAY
    context.close()


def test_only_a_lecturer_opens_the_offers_page(browser: Browser, running: RunningSuite) -> None:
    context = browser.new_context(base_url=running.web_url)
    page = context.new_page()
    sign_in(page, running.accounts["community_manager"], at="/login?lang=zh-CN&next=/offers")
    expect(page.locator("h1")).to_have_text("无权访问")
    context.close()


def test_the_lecturers_start_page_points_at_its_open_offers(
    browser: Browser, running: RunningSuite, api: Api
) -> None:
    api.offers(1)
    context = browser.new_context(base_url=running.web_url)
    page = context.new_page()
    sign_in(page, running.accounts["lecturer"], at="/login?lang=zh-CN")
    page.get_by_role("link", name=re.compile("待您答复的邀请")).click()
    expect(page.locator("h1")).to_have_text("邀请与讲座")
    expect(page.get_by_role("navigation").get_by_role("link", name="邀请与讲座")).to_have_attribute(
        "aria-current", "page"
    )
    context.close()


# ---------------------------------------------------------------------------------------------
# The one-click links


@pytest.mark.parametrize(("locale", "answer"), [("zh-CN", "accept"), ("en", "decline")])
def test_a_feed_link_shows_the_offer_and_only_its_button_answers(
    browser: Browser, running: RunningSuite, api: Api, locale: str, answer: str
) -> None:
    (offer,) = api.offers(1)
    links = api.feed_links(offer["id"])
    words = TEXT[locale]
    # Signed out, as from a mail; the old address on the lecturer service leads to the page.
    context = browser.new_context(base_url=running.web_url, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(f"/login?lang={locale}")
    page.goto(links[answer])
    assert page.url.startswith(f"{running.web_url}/offers/links/")
    assert page.locator("html").get_attribute("lang") == locale
    expect(page.locator("dl.facts")).to_contain_text(TOPIC)
    expect(page.locator("dl.facts")).to_contain_text(offer["start"][11:16])
    # Looking answered nothing.
    assert api.offer(offer["id"])["status"] == "offered"
    button = words["accept_lecture" if answer == "accept" else "decline_lecture"]
    expect(page.locator("main form button")).to_have_count(1)
    page.get_by_role("button", name=button).click()
    done = words["you_accepted" if answer == "accept" else "you_declined"]
    expect(page.locator("h1")).to_have_text(done)
    assert api.offer(offer["id"])["status"] == ("accepted" if answer == "accept" else "declined")
    # The link works once; so does the other one of the same offer.
    page.goto(_web_path(links[answer]))
    expect(page.locator("h1")).to_have_text(words["gone"])
    expect(page.locator("main")).to_contain_text(words["used"])
    context.close()


def test_a_link_is_answered_without_javascript_and_a_get_changes_nothing(
    browser: Browser, running: RunningSuite, api: Api
) -> None:
    (offer,) = api.offers(1)
    links = api.feed_links(offer["id"])
    # A mail scanner's fetch, following the redirect: nothing answered.
    for _ in range(2):
        assert httpx.get(links["accept"], follow_redirects=True).status_code == 200
    assert api.offer(offer["id"])["status"] == "offered"
    context = browser.new_context(base_url=running.web_url, java_script_enabled=False)
    page = context.new_page()
    page.goto(_web_path(links["accept"]))
    assert api.offer(offer["id"])["status"] == "offered"
    page.get_by_role("button", name="接受讲座").click()
    expect(page.locator("h1")).to_have_text("您已接受这次讲座")
    assert api.offer(offer["id"])["status"] == "accepted"
    context.close()


def test_a_link_posted_from_another_site_answers_nothing(running: RunningSuite, api: Api) -> None:
    """A page elsewhere knowing the link cannot answer for the lecturer: without our CSRF
    cookie and token the POST is refused."""
    (offer,) = api.offers(1)
    path = _web_path(api.feed_links(offer["id"])["accept"])
    forged = httpx.post(f"{running.web_url}{path}", data={"_csrf_token": "forged"})
    assert forged.status_code == 403
    assert api.offer(offer["id"])["status"] == "offered"


def test_an_expired_link_says_so(browser: Browser, running: RunningSuite, api: Api) -> None:
    (offer,) = api.offers(1)
    # A link as the lecturer service signs them, whose time to answer has passed.
    key = link_key((running.var_dir / "link-secret").read_text().strip())
    past = datetime.now(UTC) - timedelta(hours=1)
    token = sign(key, answer_link_claim(offer["id"], "accept", offer["sequence"], past))
    context = browser.new_context(base_url=running.web_url)
    page = context.new_page()
    response = page.goto(f"/offers/links/{token}?lang=zh-CN")
    assert response is not None
    assert response.status == 410
    expect(page.locator("h1")).to_have_text("此链接无法使用")
    expect(page.locator("main")).to_contain_text("答复期限已过")
    page.goto("/offers/links/not-a-link?lang=en")
    expect(page.locator("main")).to_contain_text("This link is not known")
    assert api.offer(offer["id"])["status"] == "offered"
    context.close()


# ---------------------------------------------------------------------------------------------
# Accessibility, reflow, dates in words

VIEWS = [("zh-CN", 1280), ("zh-CN", 390), ("en", 1280)]


@pytest.mark.parametrize(("locale", "width"), VIEWS, ids=[f"{lang}-{w}" for lang, w in VIEWS])
def test_the_lecturers_pages_pass_axe_and_reflow(
    browser: Browser, running: RunningSuite, api: Api, locale: str, width: int
) -> None:
    (offer,) = api.offers(1)
    links = api.feed_links(offer["id"])
    context = browser.new_context(
        base_url=running.web_url, viewport={"width": width, "height": 900}, bypass_csp=True
    )
    page = context.new_page()
    page.goto(f"{_web_path(links['decline'])}?lang={locale}")
    _check(page, locale, width, "lecturer-offer-link")
    page.goto("/offers/links/not-a-link")
    _check(page, locale, width, "lecturer-offer-link-unknown")
    sign_in(page, running.accounts["lecturer"], at=f"/login?lang={locale}&next=/offers")
    pages = {"offers": "/offers", "offers-feed": "/offers/feed", "start": "/"}
    for name, path in pages.items():
        page.goto(path)
        _check(page, locale, width, f"lecturer-{name}")
    page.goto("/offers")
    page.locator(f"#offer-{offer['id']} summary").click()  # the decline form, open
    page.get_by_role("button", name=TEXT[locale]["add_day"]).click()  # an error beside a field
    _check(page, locale, width, "lecturer-offers-error")
    context.close()
