"""The lecturer service through HTTP, on SQLite and PostgreSQL, with real registry and booking
processes; the worker's jobs run in the test, on demand."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import icalendar
import pytest
import vobject
from arq import Retry
from litestar.testing import AsyncTestClient
from sqlalchemy import update

from services.lecturers import store
from services.lecturers.worker import RUN_TRIES
from shared.config import Settings
from shared.events import Event
from shared.ids import new_id
from shared.time import next_month
from tests.conftest import Tokens, database_of, free_port
from tests.service.conftest import LecturerWorker, Town
from tests.service.test_booking import assert_problem

Client = AsyncTestClient  # type: ignore[type-arg]
EVENINGS = [{"weekdays": [1, 2, 3, 4, 5, 6, 7], "start": "18:00", "end": "21:00"}]
NEXT_MONTH = f"{next_month(datetime.now(UTC).date()):%Y-%m}"


def lecturer_body(area: str, name: str = "王老师", topics: tuple[str, ...] = ("law",)) -> Any:
    return {"name": name, "topics": list(topics), "area_id": area, "availability": EVENINGS}


async def new_lecturer(client: Client, tokens: Tokens, area: str, **more: Any) -> dict[str, Any]:
    made = await client.post(
        "/v1/lecturers", json=lecturer_body(area, **more), headers=tokens("office")
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


async def ask(
    client: Client, tokens: Tokens, venue: str, topic: str = "law", **more: Any
) -> httpx.Response:
    body = {"venue_id": venue, "topic": topic, "programme": "citizen", "month": NEXT_MONTH, **more}
    return await client.post("/v1/requests", json=body, headers=tokens("venue_manager", "org-v"))


async def offered(
    client: Client, tokens: Tokens, town: Town, worker: LecturerWorker, topics: tuple[str, ...]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A venue with a room, one lecturer per topic, a request per topic, and a run's offers."""
    venue = await town.venue()
    await town.room(venue)
    corps = [await new_lecturer(client, tokens, town.area, topics=(t,), name=t) for t in topics]
    for topic in topics:
        assert (await ask(client, tokens, venue, topic)).status_code == 201
    run = await client.post(
        "/v1/matching/runs", json={"month": NEXT_MONTH}, headers=tokens("office")
    )
    assert run.status_code == 202, run.text
    await worker.match(run.json()["run_id"])
    offers = (await client.get("/v1/offers", headers=tokens("office"))).json()["items"]
    return {lecturer["topics"][0]: lecturer for lecturer in corps}, offers


async def booking_status(town: Town, booking_server: str, booking_id: str) -> str:
    response = await town.http.get(f"{booking_server}/v1/bookings/{booking_id}")
    return str(response.json()["status"])


# ---------------------------------------------------------------------------------------------
# The corps


async def test_the_office_builds_the_corps_and_lists_it_by_topic_and_area(
    lecturers: Client, tokens: Tokens, town: Town
) -> None:
    await town.venue()
    made = await new_lecturer(lecturers, tokens, town.area, topics=("Law ", "digital skills"))
    assert made["topics"] == ["law", "digital skills"]
    assert made["max_per_month"] == 4
    assert re.fullmatch(
        rf"https://lecturers\.example\.test/v1/lecturers/{made['id']}/feed\.ics\?token=[\w-]{{43,}}",
        made["feed_url"],
    )
    await new_lecturer(lecturers, tokens, town.area, name="李医生", topics=("health",))
    office = tokens("office")
    by_topic = (await lecturers.get("/v1/lecturers?topic=LAW", headers=office)).json()
    assert [item["id"] for item in by_topic["items"]] == [made["id"]]
    in_area = (await lecturers.get(f"/v1/lecturers?area_id={town.area}", headers=office)).json()
    assert len(in_area["items"]) == 2
    school = tokens("venue_manager", "org-v")
    seen = (await lecturers.get(f"/v1/lecturers/{made['id']}", headers=school)).json()
    assert seen["feed_url"] is None  # the feed address is the lecturer's secret
    refused = await lecturers.post("/v1/lecturers", json=lecturer_body(town.area), headers=school)
    assert_problem(refused, 403, "forbidden")


async def test_a_lecturer_reads_and_changes_only_its_own_record(
    lecturers: Client, tokens: Tokens, town: Town
) -> None:
    await town.venue()
    mine = await new_lecturer(lecturers, tokens, town.area)
    other = await new_lecturer(lecturers, tokens, town.area, name="李医生")
    me = tokens("lecturer", "corps", lecturer_id=mine["id"])
    listed = (await lecturers.get("/v1/lecturers", headers=me)).json()["items"]
    assert [item["id"] for item in listed] == [mine["id"]]
    assert listed[0]["feed_url"] == mine["feed_url"]
    assert_problem(
        await lecturers.get(f"/v1/lecturers/{other['id']}", headers=me), 404, "not_found"
    )
    changed = await lecturers.patch(
        f"/v1/lecturers/{mine['id']}",
        json={"blackout_dates": [f"{NEXT_MONTH}-03"], "phone": "+86 138 0000 0000"},
        headers=me,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["blackout_dates"] == [f"{NEXT_MONTH}-03"]
    topics = await lecturers.patch(
        f"/v1/lecturers/{mine['id']}", json={"max_per_month": 30}, headers=me
    )
    assert_problem(topics, 403, "forbidden")
    theirs = await lecturers.patch(
        f"/v1/lecturers/{other['id']}", json={"phone": "110"}, headers=me
    )
    assert_problem(theirs, 404, "not_found")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"availability": [{"weekdays": [8], "start": "18:00", "end": "21:00"}]}, "availability"),
        ({"availability": [{"weekdays": [1], "start": "25:00", "end": "21:00"}]}, "availability"),
        ({"topics": []}, "topics"),
        ({"topics": ["   "]}, "topics"),
        ({"max_per_month": -1}, "max_per_month"),
        ({"email": "not an address"}, "email"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_bad_lecturers_are_refused_with_the_field_named(
    lecturers: Client, tokens: Tokens, town: Town, change: dict[str, Any], field: str
) -> None:
    await town.venue()
    body = {**lecturer_body(town.area), **change}
    refused = await lecturers.post("/v1/lecturers", json=body, headers=tokens("office"))
    assert refused.status_code in (400, 422), refused.text
    problem = refused.json()
    assert problem["code"] == "invalid_request"
    assert any(field in error["field"] for error in problem["errors"]), problem


async def test_a_lecturer_in_an_unknown_area_is_refused(lecturers: Client, tokens: Tokens) -> None:
    body = lecturer_body("00000000-0000-7000-8000-000000000000")
    refused = await lecturers.post("/v1/lecturers", json=body, headers=tokens("office"))
    assert_problem(refused, 422, "unknown_area")


# ---------------------------------------------------------------------------------------------
# Requests


async def test_a_school_requests_lectures_at_its_own_venue_only(
    lecturers: Client, tokens: Tokens, town: Town
) -> None:
    venue = await town.venue()
    made = await ask(lecturers, tokens, venue, sessions=2, audience="社区老年居民", attendees=30)
    assert made.status_code == 201, made.text
    request = made.json()
    assert (request["status"], request["org"], request["sessions"]) == ("open", "org-v", 2)
    other_school = tokens("venue_manager", "org-x")
    body = {"venue_id": venue, "topic": "law", "programme": "citizen", "month": NEXT_MONTH}
    assert_problem(
        await lecturers.post("/v1/requests", json=body, headers=other_school), 403, "forbidden"
    )
    resident = tokens("community_manager", "org-v")
    assert_problem(
        await lecturers.post("/v1/requests", json=body, headers=resident), 403, "forbidden"
    )
    unknown = {**body, "venue_id": "00000000-0000-7000-8000-000000000000"}
    assert_problem(
        await lecturers.post("/v1/requests", json=unknown, headers=tokens("office")),
        422,
        "unknown_venue",
    )
    past = {**body, "month": "2020-01"}
    assert_problem(
        await lecturers.post("/v1/requests", json=past, headers=tokens("office")),
        422,
        "month_in_past",
    )
    own = await lecturers.get("/v1/requests", headers=tokens("venue_manager", "org-v"))
    assert [item["id"] for item in own.json()["items"]] == [request["id"]]
    assert (await lecturers.get("/v1/requests", headers=other_school)).json()["items"] == []
    assert_problem(
        await lecturers.get(f"/v1/requests/{request['id']}", headers=other_school),
        404,
        "not_found",
    )
    lecturer = tokens("lecturer", "corps", lecturer_id="someone")
    assert_problem(await lecturers.get("/v1/requests", headers=lecturer), 403, "forbidden")


async def test_a_retried_request_is_made_once(
    lecturers: Client, tokens: Tokens, town: Town
) -> None:
    venue = await town.venue()
    body = {"venue_id": venue, "topic": "law", "programme": "citizen", "month": NEXT_MONTH}
    headers = {**tokens("venue_manager", "org-v"), "Idempotency-Key": "school-2026-12-law"}
    first = await lecturers.post("/v1/requests", json=body, headers=headers)
    again = await lecturers.post("/v1/requests", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["id"] == again.json()["id"]
    other = await lecturers.post("/v1/requests", json={**body, "topic": "health"}, headers=headers)
    assert_problem(other, 422, "idempotency_key_reused")


# ---------------------------------------------------------------------------------------------
# Matching and offers


async def test_a_run_offers_each_session_holds_its_room_and_says_why_not_the_rest(
    lecturers: Client,
    tokens: Tokens,
    town: Town,
    lecturer_worker: LecturerWorker,
    booking_server: str,
) -> None:
    venue = await town.venue()
    await town.room(venue)
    law = await new_lecturer(lecturers, tokens, town.area)
    wanted = (await ask(lecturers, tokens, venue, sessions=2)).json()
    nobody = (await ask(lecturers, tokens, venue, topic="astronomy")).json()
    run = await lecturers.post(
        "/v1/matching/runs", json={"month": NEXT_MONTH}, headers=tokens("office")
    )
    assert run.status_code == 202
    run_id = run.json()["run_id"]
    queued = await lecturers.get(f"/v1/matching/runs/{run_id}", headers=tokens("office"))
    assert queued.json()["status"] == "queued"
    await lecturer_worker.match(run_id)
    done = (await lecturers.get(f"/v1/matching/runs/{run_id}", headers=tokens("office"))).json()
    assert done["status"] == "done"
    assert sorted(a["session_index"] for a in done["assignments"]) == [0, 1]
    assert {a["lecturer_id"] for a in done["assignments"]} == {law["id"]}
    assert done["unmatched"] == [
        {"request_id": nobody["id"], "session_index": 0, "reason": "no_lecturer_with_topic"}
    ]
    days = {a["start"][:10] for a in done["assignments"]}
    assert len(days) == 2  # a request's sessions fall on different days
    for assignment in done["assignments"]:
        assert await booking_status(town, booking_server, assignment["booking_id"]) == "pending"
    status = (await lecturers.get(f"/v1/requests/{wanted['id']}", headers=tokens("office"))).json()
    assert status["status"] == "offered"
    # The run is done: running it again offers nothing twice.
    await lecturer_worker.match(run_id)
    offers = (await lecturers.get("/v1/offers", headers=tokens("office"))).json()["items"]
    assert len(offers) == 2
    assert_problem(
        await lecturers.get(
            f"/v1/matching/runs/{run_id}", headers=tokens("venue_manager", "org-v")
        ),
        403,
        "forbidden",
    )


async def test_only_the_offered_lecturer_answers_and_only_once(
    lecturers: Client,
    tokens: Tokens,
    town: Town,
    lecturer_worker: LecturerWorker,
    booking_server: str,
) -> None:
    corps, offers = await offered(lecturers, tokens, town, lecturer_worker, ("law", "health"))
    by_topic = {offer["topic"]: offer for offer in offers}
    law, health = by_topic["law"], by_topic["health"]
    lawyer = tokens("lecturer", "corps", lecturer_id=corps["law"]["id"])
    doctor = tokens("lecturer", "corps", lecturer_id=corps["health"]["id"])
    mine = (await lecturers.get("/v1/offers", headers=lawyer)).json()["items"]
    assert [offer["id"] for offer in mine] == [law["id"]]
    assert_problem(
        await lecturers.get(f"/v1/offers?lecturer_id={corps['health']['id']}", headers=lawyer),
        403,
        "forbidden",
    )
    assert_problem(
        await lecturers.post(f"/v1/offers/{law['id']}/accept", headers=doctor), 404, "not_found"
    )
    school = tokens("venue_manager", "org-v")
    assert_problem(
        await lecturers.post(f"/v1/offers/{law['id']}/accept", headers=school), 403, "forbidden"
    )
    accepted = await lecturers.post(f"/v1/offers/{law['id']}/accept", headers=lawyer)
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["status"], accepted.json()["sequence"]) == ("accepted", 1)
    assert await booking_status(town, booking_server, law["booking_id"]) == "confirmed"
    for again in ("accept", "decline"):
        answer = await lecturers.post(f"/v1/offers/{law['id']}/{again}", headers=lawyer)
        assert_problem(answer, 409, "invalid_transition")
    declined = await lecturers.post(
        f"/v1/offers/{health['id']}/decline", json={"reason": "出差"}, headers=doctor
    )
    assert declined.json()["status"] == "declined"
    assert declined.json()["reason"] == "出差"
    request = await lecturers.get(f"/v1/requests/{health['request_id']}", headers=school)
    assert request.json()["status"] == "open"


async def test_an_unanswered_offer_expires_and_can_no_longer_be_answered(
    lecturers: Client, tokens: Tokens, town: Town, lecturer_worker: LecturerWorker
) -> None:
    corps, (offer,) = await offered(lecturers, tokens, town, lecturer_worker, ("law",))
    # Early, the expiry job changes nothing (and asks to come back when the offer is due).
    with pytest.raises(Exception, match="Retry"):
        await lecturer_worker.expire(offer["id"])
    async with database_of(lecturers, "lecturers") as database, database.write() as session:
        await session.execute(
            update(store.OfferRow)
            .where(store.OfferRow.id == offer["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    await lecturer_worker.expire(offer["id"])
    lawyer = tokens("lecturer", "corps", lecturer_id=corps["law"]["id"])
    seen = (await lecturers.get(f"/v1/offers/{offer['id']}", headers=lawyer)).json()
    assert (seen["status"], seen["reason"]) == ("expired", "not answered in time")
    late = await lecturers.post(f"/v1/offers/{offer['id']}/accept", headers=lawyer)
    assert_problem(late, 409, "invalid_transition")


# ---------------------------------------------------------------------------------------------
# Feeds and one-click links


async def test_the_feed_needs_its_token_and_its_links_work_once(
    lecturers: Client,
    lecturers_settings: Settings,
    tokens: Tokens,
    town: Town,
    lecturer_worker: LecturerWorker,
) -> None:
    corps, (offer,) = await offered(lecturers, tokens, town, lecturer_worker, ("law",))
    lecturer = corps["law"]
    path = lecturer["feed_url"].removeprefix("https://lecturers.example.test")
    feed = await lecturers.get(path)
    assert feed.status_code == 200
    assert feed.headers["content-type"] == "text/calendar; charset=utf-8"
    calendar = icalendar.Calendar.from_ical(feed.content)
    assert calendar.errors == []
    strict = vobject.readOne(feed.text, validate=True)  # the second, stricter parser
    assert [str(e.uid.value) for e in strict.vevent_list] == [f"offer-{offer['id']}@commonroom"]
    (event,) = calendar.walk("VEVENT")
    assert (event["UID"], event["STATUS"], event["SEQUENCE"]) == (
        f"offer-{offer['id']}@commonroom",
        "TENTATIVE",
        0,
    )
    assert "市民学校" in str(event["LOCATION"])
    wrong = path[:-4] + ("AAAA" if not path.endswith("AAAA") else "BBBB")
    assert_problem(await lecturers.get(wrong), 404, "not_found")
    assert_problem(
        await lecturers.get(path.replace(lecturer["id"], "00000000-0000-7000-8000-000000000000")),
        404,
        "not_found",
    )
    links = dict(re.findall(r"(Accept|Decline): (\S+)", str(event["DESCRIPTION"])))
    # The feed's links open the web service's pages, which answer through this service's API.
    pages = f"{lecturers_settings.service_url('web')}/offers/links/"
    assert all(link.startswith(pages) for link in links.values()), links
    token = links["Accept"].removeprefix(pages)
    accept = f"/v1/offer-links/{token}"
    # An old link of this service, opened in a browser, goes to its page on the web.
    opened = await lecturers.get(accept, follow_redirects=False)
    assert opened.status_code == 303
    assert opened.headers["location"] == links["Accept"]
    assert opened.headers["cache-control"] == "no-store"
    body, mac = accept.rsplit(".", 1)
    forged = f"{body}.{'A' * len(mac)}"
    assert_problem(await lecturers.post(forged), 404, "not_found")
    assert (await lecturers.post(accept)).status_code == 200
    assert_problem(await lecturers.post(accept), 409, "invalid_transition")
    decline = f"/v1/offer-links/{links['Decline'].removeprefix(pages)}"
    assert_problem(await lecturers.post(decline), 409, "invalid_transition")
    (event,) = icalendar.Calendar.from_ical((await lecturers.get(path)).content).walk("VEVENT")
    assert (event["STATUS"], event["SEQUENCE"]) == ("CONFIRMED", 1)
    assert "Accept:" not in str(event["DESCRIPTION"])
    # A new address retires the old one at once.
    me = tokens("lecturer", "corps", lecturer_id=lecturer["id"])
    renewed = await lecturers.post(f"/v1/lecturers/{lecturer['id']}/feed-token", headers=me)
    assert renewed.json()["feed_url"] != lecturer["feed_url"]
    assert_problem(await lecturers.get(path), 404, "not_found")


JSON = {"Accept": "application/json"}


async def answer_links(client: Client, lecturer: dict[str, Any]) -> dict[str, str]:
    """The link API's paths of the accept and decline links in the lecturer's feed, by answer:
    each link opens a web page `.../offers/links/{token}`, which asks `/v1/offer-links/{token}`."""
    feed = await client.get(lecturer["feed_url"].removeprefix("https://lecturers.example.test"))
    (event,) = icalendar.Calendar.from_ical(feed.content).walk("VEVENT")
    found = re.findall(r"(Accept|Decline): (\S+)", str(event["DESCRIPTION"]))
    return {answer.lower(): f"/v1/offer-links/{url.rsplit('/', 1)[1]}" for answer, url in found}


async def test_a_link_answers_json_to_a_caller_that_asks_for_it(
    lecturers: Client,
    lecturers_settings: Settings,
    tokens: Tokens,
    town: Town,
    lecturer_worker: LecturerWorker,
) -> None:
    corps, (offer,) = await offered(lecturers, tokens, town, lecturer_worker, ("law",))
    links = await answer_links(lecturers, corps["law"])
    read = f"/v1/offers/{offer['id']}"
    shown = await lecturers.get(links["decline"], headers=JSON)
    assert shown.status_code == 200, shown.text
    assert shown.headers["content-type"].startswith("application/json")
    assert shown.headers["cache-control"] == "no-store"
    assert "accept" in shown.headers["vary"].lower()
    before = (await lecturers.get(read, headers=tokens("office"))).json()
    # The page is opened signed out: where and in which zone come with the offer.
    where = {"venue_name": "市民学校", "venue_address": None, "timezone": "Asia/Shanghai"}
    assert shown.json() == {"offer": before, "action": "decline", "done": False, **where}
    assert before["status"] == "offered"  # showing a link answers nothing
    assert (await lecturers.get(links["accept"], headers=JSON)).json()["action"] == "accept"
    # A browser's Accept is sent to the web service's page, which asks here for the JSON.
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    page = await lecturers.get(links["decline"], headers=browser, follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"].startswith(lecturers_settings.service_url("web"))
    assert page.headers["location"].endswith(links["decline"].rsplit("/", 1)[1])
    assert page.headers["vary"] == "Accept"
    body, mac = links["decline"].rsplit(".", 1)
    assert_problem(await lecturers.get(f"{body}.{'A' * len(mac)}", headers=JSON), 404, "not_found")
    done = await lecturers.post(links["decline"], headers=JSON)
    assert done.status_code == 200, done.text
    assert done.headers["content-type"].startswith("application/json")
    after = (await lecturers.get(read, headers=tokens("office"))).json()
    assert after["status"] == "declined"
    assert done.json() == {"offer": after, "action": "decline", "done": True, **where}
    assert_problem(await lecturers.post(links["decline"], headers=JSON), 409, "invalid_transition")
    assert_problem(await lecturers.get(links["accept"], headers=JSON), 409, "invalid_transition")


async def one_lecture_asked_for(client: Client, tokens: Tokens, town: Town) -> str:
    """A venue with a room, a lecturer, a request for next month, and a run asked for: its id."""
    venue = await town.venue()
    await town.room(venue)
    await new_lecturer(client, tokens, town.area)
    assert (await ask(client, tokens, venue)).status_code == 201
    run = await client.post(
        "/v1/matching/runs", json={"month": NEXT_MONTH}, headers=tokens("office")
    )
    run_id: str = run.json()["run_id"]
    return run_id


async def test_a_run_without_the_booking_service_retries_then_fails_with_the_reason(
    lecturers: Client, tokens: Tokens, town: Town, lecturers_settings: Settings
) -> None:
    run_id = await one_lecture_asked_for(lecturers, tokens, town)
    unreachable = lecturers_settings.with_service_url("booking", f"http://127.0.0.1:{free_port()}")
    async with LecturerWorker(unreachable) as worker:
        with pytest.raises(Retry):
            await worker.match(run_id)
        worker.ctx["job_try"] = RUN_TRIES
        await worker.match(run_id)
    failed = (await lecturers.get(f"/v1/matching/runs/{run_id}", headers=tokens("office"))).json()
    assert (failed["status"], failed["failure"]) == ("failed", "booking_unavailable")
    assert (await lecturers.get("/v1/offers", headers=tokens("office"))).json()["items"] == []


async def test_the_sweep_asks_again_for_a_run_whose_job_was_lost(
    lecturers: Client, tokens: Tokens, town: Town, lecturer_worker: LecturerWorker
) -> None:
    run_id = await one_lecture_asked_for(lecturers, tokens, town)
    redis = lecturer_worker.ctx["redis"]
    job = f"arq:job:match:{run_id}"
    await lecturer_worker.jobs.sweep(lecturer_worker.ctx)
    assert not await redis.exists(job)  # a young run is left alone: its event is on its way
    async with database_of(lecturers, "lecturers") as database, database.write() as session:
        long_ago = datetime.now(UTC) - timedelta(hours=1)
        await session.execute(
            update(store.RunRow).where(store.RunRow.id == run_id).values(created_at=long_ago)
        )
    await lecturer_worker.jobs.sweep(lecturer_worker.ctx)
    assert await redis.exists(job)
    await lecturer_worker.jobs.sweep(lecturer_worker.ctx)  # still on the queue: not doubled
    queued = await redis.zrange("commonroom:lecturers", 0, -1)
    assert queued.count(f"match:{run_id}".encode()) == 1
    await lecturer_worker.match(run_id)
    done = (await lecturers.get(f"/v1/matching/runs/{run_id}", headers=tokens("office"))).json()
    assert done["status"] == "done"


async def test_a_hold_the_venue_ends_before_its_offer_is_shown_is_never_shown(
    lecturers: Client, tokens: Tokens, town: Town, lecturer_worker: LecturerWorker
) -> None:
    venue = await town.venue()
    await town.room(venue)
    lecturer = await new_lecturer(lecturers, tokens, town.area)
    request = (await ask(lecturers, tokens, venue)).json()
    now = datetime.now(UTC)
    hold = store.OfferRow(
        id=new_id(),
        run_id=new_id(),
        request_id=request["id"],
        session_index=0,
        lecturer_id=lecturer["id"],
        venue_id=venue,
        venue_org="org-v",
        room_id=new_id(),
        booking_id=new_id(),
        timezone="Asia/Shanghai",
        start_at=now + timedelta(days=20),
        end_at=now + timedelta(days=20, hours=1),
        status=store.HOLDING,
        sequence=0,
        expires_at=now + timedelta(days=2),
        created_at=now,
        updated_at=now,
    )
    event = Event(
        id=new_id(),
        type="booking.rejected",
        source="booking",
        occurred_at=now,
        data={
            "id": hold.booking_id,
            "venue_id": venue,
            "resource_ids": [hold.room_id],
            "start": hold.start_at.isoformat(),
            "end": hold.end_at.isoformat(),
            "status": "rejected",
            "org": "org-v",
        },
    )
    async with database_of(lecturers, "lecturers") as database:
        async with database.write() as session:
            assert await store.hold_sessions(session, [hold]) == {hold.id}
        async with database.write() as session:
            await lecturer_worker.jobs.on_booking_ended(session, event)
        async with database.read() as session:
            assert await store.holding_offers(session, hold.run_id) == []
