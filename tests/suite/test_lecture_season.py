"""The whole suite, end to end: a town's schools ask for lectures, a matching run offers them,
lecturers answer through their feeds and the API, and the bookings follow.

Three services and three workers, each its own process, real Redis, PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import icalendar

from shared.time import next_month
from tests.conftest import Tokens
from tests.suite.conftest import (
    EVENINGS,
    OPEN_ALL_YEAR,
    Suite,
    created,
    eventually,
    running_suite,
)


async def feed_events(suite: Suite, feed_url: str) -> dict[str, icalendar.Event]:
    """The lecturer's feed, parsed; icalendar must find nothing wrong in it."""
    async with httpx.AsyncClient(timeout=20) as anonymous:  # the token is the only credential
        response = await anonymous.get(feed_url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/calendar")
    calendar = icalendar.Calendar.from_ical(response.content)
    assert calendar.errors == []
    zones = {str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")}
    events = {str(event["UID"]): event for event in calendar.walk("VEVENT")}
    assert {event["DTSTART"].params["TZID"] for event in events.values()} <= zones
    for event in events.values():
        assert event.errors == []
    return events


def uid(offer_id: str) -> str:
    return f"offer-{offer_id}@commonroom"


async def run_matching(suite: Suite, month: str) -> dict[str, Any]:
    run_id = created(await suite.lecturers.post("/v1/matching/runs", json={"month": month}))[
        "run_id"
    ]
    finished: dict[str, Any] = {}

    async def done() -> bool:
        finished.update((await suite.lecturers.get(f"/v1/matching/runs/{run_id}")).json())
        return finished["status"] in ("done", "failed")

    await eventually(done, "the matching run finishes")
    assert finished["status"] == "done", finished
    return finished


async def offers_of(suite: Suite, request_id: str) -> list[dict[str, Any]]:
    page = (await suite.lecturers.get("/v1/offers", params={"limit": 500})).json()
    return [offer for offer in page["items"] if offer["request_id"] == request_id]


async def booking_status(suite: Suite, booking_id: str) -> str:
    return str((await suite.booking.get(f"/v1/bookings/{booking_id}")).json()["status"])


async def test_a_month_of_lectures_from_request_to_cancelled_booking(suite: Suite) -> None:
    tokens = suite.tokens
    month_day = next_month(datetime.now(UTC).date())
    month = f"{month_day:%Y-%m}"

    # The office sets up a town with two citizen schools and three lecturers.
    city = created(await suite.registry.post("/v1/areas", json={"name": "鹭湖市"}))["id"]
    town = created(
        await suite.registry.post("/v1/areas", json={"name": "城关镇", "parent_id": city})
    )["id"]
    schools: list[str] = []
    for name, org in (("城关第一市民学校", "school-a"), ("城关第二市民学校", "school-b")):
        schools.append(
            created(
                await suite.registry.post(
                    "/v1/venues",
                    json={
                        "name": name,
                        "kind": "citizen_school",
                        "area_id": town,
                        "owner_org": org,
                        "address": "城关镇人民路 1 号",
                    },
                )
            )["id"]
        )
    lecturers: dict[str, dict[str, Any]] = {}
    for name, topic in (("王老师", "law"), ("李医生", "health"), ("张护士", "health")):
        lecturers[name] = created(
            await suite.lecturers.post(
                "/v1/lecturers",
                json={"name": name, "topics": [topic], "area_id": town, "availability": EVENINGS},
            )
        )
        assert lecturers[name]["feed_url"].startswith(suite.settings.service_url("lecturers"))

    # A school publishes its hours, names its room, and asks for two lectures next month.
    school = suite.client("registry", tokens("venue_manager", "school-a"))
    published = await school.put(f"/v1/venues/{schools[0]}/opening-hours", json=OPEN_ALL_YEAR)
    assert published.status_code == 200, published.text
    created(
        await school.post(
            f"/v1/venues/{schools[0]}/resources",
            json={"name": "多功能教室", "type": "room", "capacity": 60},
        )
    )
    await school.aclose()
    asking = suite.client("lecturers", tokens("venue_manager", "school-a"))
    requests = {
        topic: created(
            await asking.post(
                "/v1/requests",
                json={
                    "venue_id": schools[0],
                    "topic": topic,
                    "programme": "citizen",
                    "month": month,
                    "audience": "社区居民",
                    "attendees": 40,
                },
            )
        )["id"]
        for topic in ("law", "health")
    }
    await asking.aclose()

    # A matching run offers both, each room held as a pending booking.
    run = await run_matching(suite, month)
    assert {a["request_id"] for a in run["assignments"]} == set(requests.values())
    assert run["unmatched"] == []
    offers = {topic: (await offers_of(suite, rid))[0] for topic, rid in requests.items()}
    for offer in offers.values():
        assert offer["status"] == "offered"
        assert await booking_status(suite, offer["booking_id"]) == "pending"
        assert date.fromisoformat(offer["start"][:10]).month == month_day.month

    # The law lecturer accepts through the link in its feed.
    law = lecturers["王老师"]
    assert offers["law"]["lecturer_id"] == law["id"]
    event = (await feed_events(suite, law["feed_url"]))[uid(offers["law"]["id"])]
    assert event["STATUS"] == "TENTATIVE"
    accept_url = re.search(r"Accept: (\S+)", str(event["DESCRIPTION"]))
    assert accept_url is not None
    # The link opens the web's page, which answers through the lecturer service's link API.
    pages = f"{suite.settings.service_url('web')}/offers/links/"
    assert accept_url.group(1).startswith(pages), accept_url.group(1)
    link = (
        f"{suite.settings.service_url('lecturers')}/v1/offer-links/"
        + accept_url.group(1)[len(pages) :]
    )
    async with httpx.AsyncClient(timeout=20) as browser:
        page = await browser.get(link)
        assert page.status_code == 303  # an old link, opened: to its page on the web
        assert page.headers["location"] == accept_url.group(1)
        clicked = await browser.post(link)
        assert clicked.status_code == 200, clicked.text
        again = await browser.post(link)
        assert again.status_code == 409  # a link works once
        assert again.json()["code"] == "invalid_transition"
    assert await booking_status(suite, offers["law"]["booking_id"]) == "confirmed"
    event = (await feed_events(suite, law["feed_url"]))[uid(offers["law"]["id"])]
    assert event["STATUS"] == "CONFIRMED"
    accepted_sequence = int(event["SEQUENCE"])

    # The health lecturer offered declines; the lecture goes to the other one, who accepts.
    first = offers["health"]
    by_id = {lecturer["id"]: lecturer for lecturer in lecturers.values()}
    declining = suite.client(
        "lecturers", tokens("lecturer", "corps", lecturer_id=first["lecturer_id"])
    )
    declined = await declining.post(f"/v1/offers/{first['id']}/decline", json={"reason": "出差"})
    await declining.aclose()
    assert declined.status_code == 200, declined.text
    assert declined.json()["status"] == "declined"
    reoffered: list[dict[str, Any]] = []

    async def offered_again() -> bool:
        reoffered[:] = [
            offer
            for offer in await offers_of(suite, requests["health"])
            if offer["status"] == "offered"
        ]
        return bool(reoffered)

    await eventually(offered_again, "the declined lecture is offered to the next lecturer")
    second = reoffered[0]
    assert second["lecturer_id"] != first["lecturer_id"]
    assert by_id[second["lecturer_id"]]["topics"] == ["health"]

    async def released() -> bool:
        return await booking_status(suite, first["booking_id"]) == "cancelled"

    await eventually(released, "the declined offer's room is given back")
    accepting = suite.client(
        "lecturers", tokens("lecturer", "corps", lecturer_id=second["lecturer_id"])
    )
    assert (await accepting.post(f"/v1/offers/{second['id']}/accept")).status_code == 200
    twice = await accepting.post(f"/v1/offers/{second['id']}/accept")
    assert twice.status_code == 409
    assert twice.json()["code"] == "invalid_transition"
    await accepting.aclose()
    assert await booking_status(suite, second["booking_id"]) == "confirmed"
    assigned = await suite.lecturers.get(f"/v1/requests/{requests['health']}")
    assert assigned.json()["status"] == "assigned"

    # The school cancels the law lecture's booking: the feed shows it cancelled and the
    # request is back in matching, where the next run offers it again.
    school_booking = suite.client("booking", tokens("venue_manager", "school-a"))
    cancel = await school_booking.post(f"/v1/bookings/{offers['law']['booking_id']}/cancel")
    await school_booking.aclose()
    assert cancel.status_code == 200, cancel.text

    async def request_open() -> bool:
        found = await suite.lecturers.get(f"/v1/requests/{requests['law']}")
        return bool(found.json()["status"] == "open")

    await eventually(request_open, "the cancelled lecture's request is open again")
    event = (await feed_events(suite, law["feed_url"]))[uid(offers["law"]["id"])]
    assert event["STATUS"] == "CANCELLED"
    assert int(event["SEQUENCE"]) > accepted_sequence
    rerun = await run_matching(suite, month)
    assert [a["request_id"] for a in rerun["assignments"]] == [requests["law"]]


async def test_an_unanswered_offer_expires_on_time_and_goes_to_the_next_lecturer(
    postgres_server_url: str, redis_url: str, tokens: Tokens
) -> None:
    ttl_seconds = 4
    async with running_suite(
        postgres_server_url, redis_url, tokens, offer_ttl_hours=ttl_seconds / 3600
    ) as suite:
        town = created(await suite.registry.post("/v1/areas", json={"name": "东湖镇"}))["id"]
        venue = created(
            await suite.registry.post(
                "/v1/venues",
                json={
                    "name": "东湖市民学校",
                    "kind": "citizen_school",
                    "area_id": town,
                    "owner_org": "school-c",
                },
            )
        )["id"]
        await suite.registry.put(f"/v1/venues/{venue}/opening-hours", json=OPEN_ALL_YEAR)
        created(
            await suite.registry.post(
                f"/v1/venues/{venue}/resources", json={"name": "报告厅", "type": "room"}
            )
        )
        for name in ("赵律师", "钱律师"):
            created(
                await suite.lecturers.post(
                    "/v1/lecturers",
                    json={
                        "name": name,
                        "topics": ["law"],
                        "area_id": town,
                        "availability": EVENINGS,
                    },
                )
            )
        month = f"{next_month(datetime.now(UTC).date()):%Y-%m}"
        request = created(
            await suite.lecturers.post(
                "/v1/requests",
                json={"venue_id": venue, "topic": "law", "programme": "citizen", "month": month},
            )
        )["id"]
        await run_matching(suite, month)
        (first,) = await offers_of(suite, request)

        async def everyone_let_it_expire() -> bool:
            offers = await offers_of(suite, request)
            return len(offers) == 2 and all(offer["status"] == "expired" for offer in offers)

        await eventually(everyone_let_it_expire, "both offers expire in turn, unanswered")
        second = next(o for o in await offers_of(suite, request) if o["id"] != first["id"])
        assert second["lecturer_id"] != first["lecturer_id"]
        # The next lecturer was asked only once the first offer had expired, for as long.
        first_expired = datetime.fromisoformat(first["expires_at"])
        assert datetime.fromisoformat(second["expires_at"]) - first_expired >= timedelta(
            seconds=ttl_seconds
        )
        for offer in (first, second):

            async def released(booking_id: str = offer["booking_id"]) -> bool:
                return await booking_status(suite, booking_id) == "cancelled"

            await eventually(released, "an expired offer's room is given back")
        found = (await suite.lecturers.get(f"/v1/requests/{request}")).json()
        assert found["status"] == "open"
        late = await suite.lecturers.post(f"/v1/offers/{first['id']}/accept")
        assert late.status_code == 409
