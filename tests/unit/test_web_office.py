"""The office's pages' pure rules: who opens which page, the report form and its range, the
heatmap's text alternative, every reason of the matching in words, and who invites whom."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from services.lecturers.domain.matching import Reason
from services.web.domain import formatting
from services.web.domain.navigation import navigation
from services.web.domain.office import (
    KIND_NAMES,
    PROGRAMME_NAMES,
    UNKNOWN_REASON,
    UNMATCHED_REASONS,
    InviteForm,
    ReportQuery,
    heatmap_summary,
    in_city,
    invitable_roles,
    invitation_body,
    invite_form,
    may_end_membership,
    may_open,
    next_month,
    parse_month,
    reason_message,
    report_query,
    row_label,
    run_month,
)
from services.web.i18n import load_catalogues
from shared.contracts import Programme

TODAY = date(2026, 12, 6)
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("page", "allowed"),
    [
        ("/reports", {"office", "venue_manager"}),
        ("/lecturers", {"office"}),
        ("/runs", {"office"}),
        ("/users", {"office", "venue_manager", "community_manager"}),
    ],
)
def test_each_office_page_opens_for_its_roles_only(page: str, allowed: set[str]) -> None:
    for role in ("office", "venue_manager", "community_manager", "lecturer", "service", ""):
        assert may_open(page, role) == (role in allowed)


def test_the_navigation_offers_each_role_the_office_pages_it_may_open() -> None:
    for role in ("office", "venue_manager", "community_manager", "lecturer"):
        paths = [item.path for item in navigation(role)]
        for page in ("/reports", "/lecturers", "/runs", "/users"):
            assert (page in paths) == may_open(page, role), (role, page)
        assert paths[0] == "/"
        assert paths[-1] == "/me"


def test_a_report_without_dates_covers_the_next_four_weeks_by_venue() -> None:
    query, errors = report_query({}, TODAY)
    assert errors == {}
    assert (query.first, query.last, query.group_by) == (TODAY, date(2027, 1, 2), "venue")


def test_a_report_covers_whole_days_in_the_city_zone_with_the_last_day_included() -> None:
    query, errors = report_query(
        {"from": "2026-12-01", "to": "2026-12-31", "group_by": "area"}, TODAY
    )
    assert errors == {}
    assert query.api_params() == {
        "from": "2026-12-01T00:00:00+08:00",
        "to": "2027-01-01T00:00:00+08:00",
        "group_by": "area",
    }
    assert query.heatmap_params() == {
        "from": "2026-12-01T00:00:00+08:00",
        "to": "2027-01-01T00:00:00+08:00",
    }
    assert query.filename() == "utilisation-by-area-2026-12-01-to-2026-12-31.csv"
    assert query.start == datetime(2026, 12, 1, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("form", "errors"),
    [
        ({"from": "yesterday"}, {"from": "not_a_date"}),
        ({"from": "2026-12-10", "to": "2026-12-09"}, {"to": "last_before_first"}),
        ({"from": "2026-01-01", "to": "2027-01-02"}, {"to": "range_too_long"}),
        ({"group_by": "resource"}, {"group_by": "invalid_request"}),
        (
            {"group_by": "weekday", "to": "soon"},
            {"group_by": "invalid_request", "to": "not_a_date"},
        ),
    ],
)
def test_a_wrong_report_form_names_each_wrong_field(
    form: dict[str, str], errors: dict[str, str]
) -> None:
    query, found = report_query(form, TODAY)
    assert found == errors
    assert query.first <= query.last  # the page still has a range to show in the fields


def test_a_report_of_a_full_year_is_allowed() -> None:
    assert report_query({"from": "2026-01-01", "to": "2026-12-31"}, TODAY)[1] == {}


def test_kinds_and_programmes_are_named_in_words_and_places_as_the_api_names_them() -> None:
    assert row_label("kind", "school", "school") == "School"
    assert row_label("programme", "elderly", "elderly") == "Education for the elderly"
    assert row_label("venue", "v-1", "鹭湖一中") == "鹭湖一中"
    assert row_label("kind", "unheard_of", "unheard_of") == "unheard_of"
    assert set(PROGRAMME_NAMES) == {programme.value for programme in Programme}
    assert len(KIND_NAMES) == 8


def _matrix(cells: dict[tuple[int, int], float]) -> list[list[float]]:
    return [[cells.get((day, hour), 0.0) for hour in range(24)] for day in range(1, 8)]


def test_the_heatmap_summary_names_the_busiest_and_the_quietest_used_hours() -> None:
    summary = heatmap_summary(
        _matrix({(1, 18): 0.9, (3, 19): 0.9, (5, 9): 0.5, (6, 10): 0.1, (7, 8): 0.2, (2, 20): 0.3})
    )
    assert [(c.weekday, c.hour) for c in summary.busiest] == [(1, 18), (3, 19), (5, 9)]
    assert [(c.weekday, c.hour) for c in summary.quietest] == [(6, 10), (7, 8), (2, 20)]
    assert summary.used_hours == 6


def test_the_heatmap_summary_never_names_an_hour_both_busiest_and_quietest() -> None:
    summary = heatmap_summary(_matrix({(1, 18): 0.9, (2, 18): 0.4}))
    assert [(c.weekday, c.hour) for c in summary.busiest] == [(1, 18), (2, 18)]
    assert summary.quietest == ()
    assert heatmap_summary(_matrix({})).busiest == ()


def test_every_reason_the_matching_gives_has_words_in_both_languages() -> None:
    assert set(UNMATCHED_REASONS) == {reason.value for reason in Reason}
    catalogues = load_catalogues()
    for reason in Reason:
        message = reason_message(reason.value)
        assert reason.value not in message
        chinese = catalogues["zh-CN"].gettext(message)
        assert chinese != message
        assert "_" not in chinese
    assert reason_message("some_new_reason") == UNKNOWN_REASON


def test_a_run_is_asked_for_this_month_or_a_later_one() -> None:
    assert run_month("2027-01", TODAY) == ("2027-01", None)
    assert run_month(" 2026-12 ", TODAY) == ("2026-12", None)
    assert run_month("2026-11", TODAY) == ("2026-11", "month_in_past")
    assert run_month("2027-13", TODAY)[1] == "not_a_month"
    assert run_month("2027-1", TODAY)[1] == "not_a_month"
    assert parse_month("March") is None
    assert next_month(TODAY) == "2027-01"
    assert next_month(date(2026, 1, 31)) == "2026-02"


def test_the_office_invites_anyone_and_a_manager_its_own_role_only() -> None:
    assert invitable_roles("office") == ("office", "venue_manager", "community_manager", "lecturer")
    assert invitable_roles("venue_manager") == ("venue_manager",)
    assert invitable_roles("community_manager") == ("community_manager",)
    assert invitable_roles("lecturer") == ()
    assert may_end_membership("office", "lecturer")
    assert may_end_membership("venue_manager", "venue_manager")
    assert not may_end_membership("venue_manager", "community_manager")
    assert not may_end_membership("lecturer", "lecturer")


def test_an_invitation_form_is_checked_for_what_the_page_offered() -> None:
    roles = invitable_roles("venue_manager")
    typed, errors = invite_form(
        {"email": " a@b.org ", "role": "venue_manager", "locale": "en"}, roles, ("zh-CN", "en")
    )
    assert errors == {}
    assert invitation_body(typed, "school-1") == {
        "email": "a@b.org",
        "org": "school-1",
        "role": "venue_manager",
        "locale": "en",
    }
    _, errors = invite_form({"role": "office", "locale": "fr"}, roles, ("zh-CN", "en"))
    assert errors == {"email": "required", "role": "forbidden", "locale": "required"}
    _, errors = invite_form(
        {"email": "l@b.org", "role": "lecturer", "locale": "zh-CN"},
        invitable_roles("office"),
        ("zh-CN", "en"),
    )
    assert errors == {"lecturer_id": "lecturer_id_required"}


def test_a_lecturers_invitation_carries_its_lecturer_id_and_a_name_where_typed() -> None:
    typed = InviteForm(
        email="l@b.org", role="lecturer", locale="zh-CN", name="王老师", lecturer_id="x"
    )
    assert invitation_body(typed, "corps") == {
        "email": "l@b.org",
        "org": "corps",
        "role": "lecturer",
        "locale": "zh-CN",
        "name": "王老师",
        "lecturer_id": "x",
    }


def test_percentages_weekdays_and_months_are_in_the_readers_language() -> None:
    assert formatting.percent(0.8534, "zh-CN") == "85.3%"
    assert formatting.percent(0.0038, "en") == "0.4%"
    assert formatting.weekday_name(1, "zh-CN") == "星期一"
    assert formatting.weekday_name(7, "en") == "Sunday"
    assert formatting.month_name("2027-03", "zh-CN") == "2027年3月"
    assert formatting.month_name("2027-03", "en") == "March 2027"
    assert formatting.language_name("wuu", "zh-CN") == "吴语"
    assert formatting.language_name("zh", "en") == "Chinese"
    assert formatting.language_name("xx-unknown", "en") == "xx-unknown"


def test_a_report_query_keeps_its_form_for_the_pages_links() -> None:
    query = ReportQuery(date(2026, 12, 1), date(2026, 12, 7), "kind")
    assert query.form() == {"from": "2026-12-01", "to": "2026-12-07", "group_by": "kind"}


def test_instants_an_api_gives_in_utc_are_shown_on_the_citys_clock() -> None:
    shown = in_city(datetime(2026, 12, 6, 19, 8, tzinfo=ZoneInfo("UTC")))
    assert shown == datetime(2026, 12, 7, 3, 8, tzinfo=SHANGHAI)
    assert formatting.date_time(shown, "zh-CN") == "2026年12月7日 03:08:00"
