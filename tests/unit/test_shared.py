"""The shared vocabulary: intervals, tokens, event routing, ids, problem documents."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import jwt
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services import cli
from shared.auth import Role, TokenVerifier, issue_token, verify_token
from shared.config import ConfigurationError, Settings
from shared.errors import Forbidden, InvalidRequest, Unauthenticated
from shared.events import consumers_of
from shared.ids import new_id
from shared.time import Interval, merge, subtract, utc, window

SECRET = "unit-secret-" + "x" * 40
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


def test_token_round_trip() -> None:
    token = issue_token(SECRET, role=Role.LECTURER, org="corps", sub="u1", lecturer_id="l1")
    principal = TokenVerifier(SECRET)(f"Bearer {token}")
    assert principal.role is Role.LECTURER
    assert principal.lecturer_id == "l1"


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(
            {"sub": "x", "role": "office", "org": "o", "exp": 4102444800},
            "another-secret-" + "y" * 40,
            algorithm="HS256",
        ),
        jwt.encode(
            {"sub": "x", "role": "office", "org": "o", "exp": 4102444800}, None, algorithm="none"
        ),
        jwt.encode({"sub": "x", "role": "office", "org": "o", "exp": 1}, SECRET, algorithm="HS256"),
        jwt.encode({"sub": "x", "role": "office", "org": "o"}, SECRET, algorithm="HS256"),
        jwt.encode(
            {"sub": "x", "role": "mayor", "org": "o", "exp": 4102444800}, SECRET, algorithm="HS256"
        ),
        jwt.encode(
            {"sub": "x", "role": "lecturer", "org": "o", "exp": 4102444800},
            SECRET,
            algorithm="HS256",
        ),
        "not.a.token",
    ],
    ids=[
        "wrong-signature",
        "alg-none",
        "expired",
        "no-exp",
        "unknown-role",
        "lecturer-no-id",
        "junk",
    ],
)
def test_bad_tokens_are_unauthenticated(token: str) -> None:
    with pytest.raises(Unauthenticated):
        verify_token(SECRET, token)


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "Bearer"])
def test_missing_bearer_is_unauthenticated(header: str | None) -> None:
    with pytest.raises(Unauthenticated):
        TokenVerifier(SECRET)(header)


def test_office_may_act_in_any_role_others_only_in_theirs() -> None:
    office = verify_token(SECRET, issue_token(SECRET, role=Role.OFFICE, org="o", sub="s"))
    office.require(Role.VENUE_MANAGER)
    manager = verify_token(
        SECRET, issue_token(SECRET, role=Role.COMMUNITY_MANAGER, org="o", sub="s")
    )
    with pytest.raises(Forbidden):
        manager.require(Role.VENUE_MANAGER)


def test_events_route_to_their_subscribers() -> None:
    assert consumers_of("resource.created") == ["booking"]
    assert consumers_of("opening_hours.changed") == ["booking"]
    assert set(consumers_of("booking.cancelled")) == {"registry", "lecturers"}
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


def test_a_verified_token_is_remembered_until_it_expires_and_no_longer() -> None:
    ttl = timedelta(minutes=5)
    # Issued so that it has about a second left.
    issued = datetime.now(UTC) - ttl + timedelta(seconds=1.5)
    token = issue_token(SECRET, role=Role.OFFICE, org="o", sub="s", ttl=ttl, now=issued)
    verifier = TokenVerifier(SECRET)
    header = f"Bearer {token}"
    assert verifier(header).sub == "s"
    assert verifier(header).sub == "s"
    time.sleep(2)
    with pytest.raises(Unauthenticated):
        verifier(header)


def test_a_bad_token_is_never_remembered() -> None:
    forged = issue_token("another-secret-" + "y" * 40, role=Role.OFFICE, org="o", sub="s")
    verifier = TokenVerifier(SECRET)
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            verifier(f"Bearer {forged}")


@pytest.mark.parametrize(
    "secret",
    ["short", "CHANGE-ME-to-a-long-random-value", "CHANGE-ME" + "x" * 40],
)
def test_a_weak_or_placeholder_secret_stops_the_start(secret: str) -> None:
    with pytest.raises(ConfigurationError):
        Settings.from_env({"COMMONROOM_SECRET": secret})


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
        Settings.from_env({"COMMONROOM_SECRET": SECRET, name: value})


def test_numeric_settings_are_read_and_default() -> None:
    assert Settings.from_env({"COMMONROOM_SECRET": SECRET}).db_pool_size == 10
    settings = Settings.from_env(
        {
            "COMMONROOM_SECRET": SECRET,
            "COMMONROOM_DB_POOL_SIZE": "4",
            "COMMONROOM_FAIR_USE_HOURS_PER_WEEK": "0",
        }
    )
    assert (settings.db_pool_size, settings.fair_use_hours_per_week) == (4, 0)


def test_the_command_refuses_to_start_on_a_weak_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMMONROOM_SECRET", "CHANGE-ME-to-a-long-random-value")
    assert cli.main(["token", "--role", "office", "--org", "city"]) == 2
    assert "placeholder" in capsys.readouterr().err
