"""The list of matching runs the office's pages read: every run of a month, in the order they
were asked for, paged, and the office's (and services') alone."""

from __future__ import annotations

from shared.ids import new_id
from tests.conftest import Tokens
from tests.service.test_booking import assert_problem
from tests.service.test_lecturers import NEXT_MONTH, Client


async def test_runs_are_listed_oldest_first_per_month_and_paged(
    lecturers: Client, tokens: Tokens
) -> None:
    made = []
    for _ in range(3):
        run = await lecturers.post(
            "/v1/matching/runs", json={"month": NEXT_MONTH}, headers=tokens("office")
        )
        assert run.status_code == 202, run.text
        made.append(run.json()["run_id"])
    first = await lecturers.get(
        "/v1/matching/runs", params={"month": NEXT_MONTH, "limit": 2}, headers=tokens("office")
    )
    assert first.status_code == 200, first.text
    assert [run["id"] for run in first.json()["items"]] == made[:2]
    assert first.json()["items"][0]["status"] == "queued"
    rest = await lecturers.get(
        "/v1/matching/runs",
        params={"month": NEXT_MONTH, "cursor": first.json()["next_cursor"]},
        headers=tokens("office"),
    )
    assert [run["id"] for run in rest.json()["items"]] == made[2:]
    assert rest.json()["next_cursor"] is None
    other = await lecturers.get(
        "/v1/matching/runs", params={"month": "2099-01"}, headers=tokens("office")
    )
    assert other.json() == {"items": [], "next_cursor": None}


async def test_only_the_office_lists_runs(lecturers: Client, tokens: Tokens) -> None:
    for headers in (
        tokens("venue_manager", "org-v"),
        tokens("community_manager", "org-c"),
        tokens("lecturer", "corps", lecturer_id=new_id()),
    ):
        assert_problem(await lecturers.get("/v1/matching/runs", headers=headers), 403, "forbidden")
