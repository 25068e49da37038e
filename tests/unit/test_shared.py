"""The shared vocabulary: intervals, tokens, event routing, ids, problem documents."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services import cli
from shared.auth import Principal, Role
from shared.config import ConfigurationError, Settings
from shared.errors import Forbidden, InvalidRequest
from shared.events import consumers_of
from shared.ids import new_id
from shared.time import Interval, merge, subtract, utc, window

BASE = datetime(2026, 12, 1, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return BASE + timedelta(minutes=minutes)


def span(start: int, end: int) -> Interval:
    return Interval(at(start), at(end))


intervals = st.builds(
    lambda start, length: span(start, start + length),
    st.integers(0, 500),
    st.integers(1, 120),
)


def test_touching_intervals_do_not_overlap() -> None:
    assert not span(0, 60).overlaps(span(60, 120))
    assert span(0, 61).overlaps(span(60, 120))


def test_a_duration_across_a_dst_change_is_the_time_that_passed() -> None:
    """Regression: two datetimes of one ZoneInfo subtract as wall clocks (7 days, not 169 h)."""
    berlin = ZoneInfo("Europe/Berlin")
    week = Interval(datetime(2026, 10, 19, tzinfo=berlin), datetime(2026, 10, 26, tzinfo=berlin))
    assert week.duration == timedelta(hours=169)


def test_an_inverted_or_empty_interval_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        span(60, 60)
    with pytest.raises(InvalidRequest):
        span(60, 0)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(InvalidRequest) as refused:
        utc(datetime(2026, 12, 1, 18), "start")  # noqa: DTZ001 - the point of the test
    assert refused.value.errors[0].field == "start"


def test_window_names_the_offending_field() -> None:
    with pytest.raises(InvalidRequest) as refused:
        window(at(10), at(0))
    assert refused.value.errors[0].field == "to"


def test_same_instant_in_another_offset_compares_equal() -> None:
    shanghai = timezone(timedelta(hours=8))
    assert Interval(BASE.astimezone(shanghai), at(60)) == span(0, 60)


@given(st.lists(intervals, max_size=30))
def test_merge_gives_sorted_disjoint_cover(pieces: list[Interval]) -> None:
    merged = merge(pieces)
    assert all(a.end < b.start for a, b in itertools.pairwise(merged))
    for piece in pieces:
        assert any(m.contains(piece) for m in merged)
    assert sum((m.duration for m in merged), timedelta()) <= sum(
        (p.duration for p in pieces), timedelta()
    )


@given(st.lists(intervals, max_size=20), st.lists(intervals, max_size=20))
def test_subtract_leaves_nothing_of_the_holes(base: list[Interval], holes: list[Interval]) -> None:
    rest = subtract(base, holes)
    assert all(not r.overlaps(h) for r in rest for h in holes)
    assert all(any(b.contains(r) for b in merge(base)) for r in rest)
    assert all(a.end <= b.start for a, b in itertools.pairwise(rest))
    covered = sum((r.duration for r in rest), timedelta())
    removed = sum(
        (c.duration for b in merge(base) for h in merge(holes) if (c := h.clip(b))),
        timedelta(),
    )
    assert covered + removed == sum((b.duration for b in merge(base)), timedelta())


def test_office_may_act_in_any_role_others_only_in_theirs() -> None:
    office = Principal(sub="s", role=Role.OFFICE, org="o")
    service = Principal(sub="booking", role=Role.SERVICE, org="commonroom")
    office.require(Role.VENUE_MANAGER)
    office.require_person()
    with pytest.raises(Forbidden):
        Principal(sub="s", role=Role.COMMUNITY_MANAGER, org="o").require(Role.VENUE_MANAGER)
    # A service's token is no office: it acts only where its role is named.
    with pytest.raises(Forbidden):
        service.require(Role.VENUE_MANAGER)
    service.require(Role.VENUE_MANAGER, Role.SERVICE)
    with pytest.raises(Forbidden):
        service.require_person()
    assert service.is_office_or_service
    assert not service.is_office


def test_events_route_to_their_subscribers() -> None:
    assert consumers_of("resource.created") == ["booking"]
    assert consumers_of("opening_hours.changed") == ["booking"]
    assert set(consumers_of("booking.cancelled")) == {"registry", "lecturers", "notify"}
    assert consumers_of("booking.outside_opening_hours") == ["notify"]
    assert consumers_of("user.invited") == ["notify"]
    assert consumers_of("user.disabled") == []
    assert consumers_of("area.created") == []


def test_ids_are_uuid7_and_sort_in_creation_order() -> None:
    ids = [new_id() for _ in range(200)]
    assert all(len(value) == 36 and value[14] == "7" for value in ids)
    assert len(set(ids)) == 200
    # Ids minted in different milliseconds sort by time.
    first = new_id()
    later = datetime.now(UTC) + timedelta(milliseconds=2)
    while datetime.now(UTC) < later:
        pass
    assert new_id() > first


def test_problem_fields_survive_encoding() -> None:
    from shared.problems import Problem

    body = msgspec.json.decode(
        msgspec.json.encode(
            Problem(type="t", title="x", status=422, detail="d", code="invalid_request")
        )
    )
    assert "errors" not in body
    assert body["code"] == "invalid_request"


@pytest.mark.parametrize(
    "secret",
    ["short", "CHANGE-ME-to-a-long-random-value", "CHANGE-ME" + "x" * 40],
)
def test_a_weak_or_placeholder_secret_stops_the_start(secret: str) -> None:
    with pytest.raises(ConfigurationError, match="COMMONROOM_LINK_SECRET"):
        Settings.from_env({"COMMONROOM_LINK_SECRET": secret})


def test_half_an_openid_connect_configuration_stops_the_start() -> None:
    with pytest.raises(ConfigurationError, match="COMMONROOM_OIDC_CLIENT_SECRET"):
        Settings.from_env(
            {"COMMONROOM_OIDC_ISSUER": "https://id.example", "COMMONROOM_OIDC_CLIENT_ID": "x"}
        )


def test_the_issuer_is_identitys_url_unless_set() -> None:
    assert Settings.from_env({"IDENTITY_URL": "https://id.example/"}).issuer == (
        "https://id.example"
    )
    assert Settings.from_env({"COMMONROOM_ISSUER": "urn:city"}).issuer == "urn:city"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("COMMONROOM_DB_POOL_SIZE", "many"),
        ("COMMONROOM_DB_POOL_SIZE", "0"),
        ("COMMONROOM_DB_POOL_SIZE", "0.5"),
        ("COMMONROOM_HTTP_TIMEOUT", "nan"),
        ("COMMONROOM_OFFER_TTL_HOURS", "-1"),
        ("COMMONROOM_BOOKING_RATE_PER_MINUTE", ""),
    ],
)
def test_a_setting_that_is_no_fit_number_stops_the_start_naming_it(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: value})


def test_numeric_settings_are_read_and_default() -> None:
    assert Settings.from_env({}).db_pool_size == 10
    settings = Settings.from_env(
        {
            "COMMONROOM_DB_POOL_SIZE": "4",
            "COMMONROOM_FAIR_USE_HOURS_PER_WEEK": "0",
        }
    )
    assert (settings.db_pool_size, settings.fair_use_hours_per_week) == (4, 0)


def test_the_command_refuses_to_start_on_a_weak_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMMONROOM_LINK_SECRET", "CHANGE-ME-to-a-long-random-value")
    assert cli.main(["token", "--role", "office", "--org", "city"]) == 2
    assert "placeholder" in capsys.readouterr().err
