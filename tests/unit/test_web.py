"""The web service's pure rules: where sign-in may send the browser back to, which language a
page is in, when a session ends, and that the one catalogue is complete in both languages."""

from __future__ import annotations

import contextvars
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from services.web.domain import formatting
from services.web.domain.locales import chosen_locale
from services.web.domain.paths import local_path, with_lang
from services.web.domain.rooms import CITY_ZONE, room_query
from services.web.domain.sessions import (
    ABSOLUTE,
    IDLE,
    Membership,
    WebSession,
    is_over,
    needs_refresh,
    refresh_at,
    seconds_left,
)
from services.web.domain.week import Span, Status, week_grid
from services.web.i18n import TRANSLATIONS, Translator, load_catalogues, po_file, use_locale

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "wanted",
    [
        None,
        "",
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "/ok\r\nSet-Cookie: x=1",
        "/login?next=/me",
        "/logout",
    ],
)
def test_sign_in_never_sends_the_browser_off_site_or_back_to_the_login(
    wanted: str | None,
) -> None:
    assert local_path(wanted) == "/"


def test_sign_in_sends_the_browser_back_to_a_local_page_with_its_query() -> None:
    assert local_path("/rooms/abc?week=2026-11-23") == "/rooms/abc?week=2026-11-23"


def test_the_language_switch_keeps_the_query() -> None:
    assert with_lang("/login", "next=%2Fme&lang=zh-CN", "en") == "/login?next=%2Fme&lang=en"


def test_the_language_asked_for_wins_then_the_cookie_then_the_account_then_chinese() -> None:
    assert chosen_locale(asked="en", cookie="zh-CN", account="zh-CN") == "en"
    assert chosen_locale(asked="fr", cookie="EN", account="zh-CN") == "en"
    assert chosen_locale(asked=None, cookie=None, account="en") == "en"
    assert chosen_locale(asked=None, cookie="xx", account=None) == "zh-CN"


def _session(created: float, seen: float) -> WebSession:
    return WebSession(
        user_id="u",
        created_at=created,
        seen_at=seen,
        access_token="a",
        refresh_at=created + 840,
        refresh_token="r",
        membership=Membership("org", "community_manager"),
    )


def test_a_session_ends_after_two_idle_hours_or_twelve_hours_in_all() -> None:
    idle, absolute = IDLE.total_seconds(), ABSOLUTE.total_seconds()
    assert not is_over(_session(0, 0), idle - 1)
    assert is_over(_session(0, 0), idle)
    assert not is_over(_session(0, absolute - 10), absolute - 1)
    assert is_over(_session(0, absolute - 10), absolute)
    assert seconds_left(_session(0, absolute - 10), absolute - 5) <= 6


def test_an_access_token_is_refreshed_a_minute_early_or_sooner_where_configured() -> None:
    assert refresh_at(100, 900, 0) == 100 + 840
    assert refresh_at(100, 900, 2) == 102
    assert needs_refresh(_session(0, 0), 840)
    assert not needs_refresh(_session(0, 0), 839)


def test_chinese_dates_have_no_english_names() -> None:
    day = date(2026, 11, 23)
    assert formatting.long_date(day, "zh-CN") == "2026年11月23日星期一"
    assert formatting.short_day(day, "zh-CN") == "11月23日周一"
    assert formatting.short_day(day, "en") == "Mon, Nov 23"
    moment = datetime(2026, 11, 23, 18, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert formatting.clock(moment, "zh-CN") == "18:00"


def test_features_are_named_in_the_readers_language_and_a_venues_own_word_kept() -> None:
    translator = Translator()

    def named(locale: str, codes: list[str]) -> str:
        use_locale(locale)  # in a context of its own, as each request is rendered
        return translator.features(codes)

    def in_request(locale: str, codes: list[str]) -> str:
        return contextvars.copy_context().run(named, locale, codes)

    assert in_request("zh-CN", ["projector", "whiteboard", "木地板"]) == "投影仪、白板和木地板"
    assert in_request("en", ["sound_system", "piano"]) == "sound system and piano"
    assert in_request("en", []) == ""


def test_every_message_of_the_pages_is_translated_in_both_languages() -> None:
    """The catalogue extracted now from the code and templates has no message that either
    language's `.po` lacks or leaves empty."""
    web = ROOT / "services/web"
    found = extract_from_dir(
        web,
        method_map=[("**.py", "python"), ("**/templates/**.html", "jinja2")],
        options_map={"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}},
        keywords={**DEFAULT_KEYWORDS, "N_": None},
    )
    wanted = {message for _, _, message, _, _ in found if isinstance(message, str)}
    assert wanted
    for locale in ("zh-CN", "en"):
        with po_file(locale).open("rb") as source:
            have = {m.id: m.string for m in read_po(source) if m.id}
        missing = sorted(m for m in wanted if not have.get(m))  # type: ignore[call-overload]
        assert not missing, f"{locale} lacks {missing}"
    assert load_catalogues()["zh-CN"].gettext("Sign in") == "登录"
    assert (TRANSLATIONS / "messages.pot").exists()


def test_a_room_search_reads_a_date_and_times_in_the_city_zone() -> None:
    query, errors = room_query(
        {"date": "2026-11-23", "from": "18:00", "to": "20:00", "min_capacity": "30"}
    )
    assert errors == {}
    assert query.start == datetime(2026, 11, 23, 18, 0, tzinfo=CITY_ZONE)
    assert query.end == datetime(2026, 11, 23, 20, 0, tzinfo=CITY_ZONE)
    assert query.resource_params() == {"min_capacity": 30}


def test_a_wrong_room_search_names_each_wrong_field() -> None:
    _, errors = room_query(
        {"date": "23.11.2026", "min_capacity": "many", "minutes": "5", "type": "boat"}
    )
    assert errors == {
        "date": "not_a_date",
        "min_capacity": "not_a_count",
        "minutes": "not_minutes",
        "type": "invalid_request",
    }
    _, errors = room_query({"date": "2026-11-23", "from": "20:00", "to": "18:00"})
    assert errors == {"to": "end_before_start"}
    _, errors = room_query({"from": "18:00"})
    assert errors == {"date": "date_for_times"}


def test_the_week_grid_shows_closed_free_partly_free_and_booked_hours() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    monday = date(2026, 11, 23)

    def at(hour: int, minute: int = 0) -> datetime:
        return datetime(2026, 11, 23, hour, minute, tzinfo=zone)

    opened = [Span(at(18), at(21))]
    free = [Span(at(18), at(19)), Span(at(20, 30), at(21))]
    week = week_grid(monday, zone, opened, free)
    assert [row.hour.hour for row in week.rows] == [18, 19, 20]
    monday_cells = [row.cells[0] for row in week.rows]
    assert [cell.status for cell in monday_cells] == [Status.FREE, Status.BOOKED, Status.PARTLY]
    assert monday_cells[2].free == Span(at(20, 30), at(21))
    assert all(row.cells[1].status is Status.CLOSED for row in week.rows)
    assert [day.isoformat() for day in week.days][::6] == ["2026-11-23", "2026-11-29"]
