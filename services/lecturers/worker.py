"""The lecturer service's worker: matching runs, offer expiry, and what follows an offer that
closed without a lecture or a booking the venue cancelled.

- `matching.requested` (a run asked for over HTTP, or a re-offer) enqueues the `match` job.
- `match` asks the registry for the venues' rooms and the booking service for their free time,
  solves, holds a room per assignment as a pending booking, and only then shows the offers, all
  at once. Each hold is journalled first (an offer row in status `holding`), so an attempt cut
  short is finished, or its holds given back, by the next; a run that cannot reach the booking
  service after `RUN_TRIES` attempts fails with the reason and gives its holds back.
- Each offer gets an `expire_offer` job deferred to its answer time (arq's `_defer_until`).
- `offer.declined`, `offer.expired`, `offer.cancelled`: the held booking is released; after a
  decline or an expiry, while the request is still open, a re-offer run for that request is
  queued (those who declined are not asked again).
- `booking.cancelled`, `booking.rejected` of a lecture's booking cancel its offer (and so the
  feed shows it cancelled, and the request goes back to matching).
- `sweep`, every ten minutes, is the backstop for what Redis may have lost (it keeps nothing on
  disk on these machines): offers past their answer time, holds of failed runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from time import monotonic
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import msgspec
from arq import Retry
from arq.connections import ArqRedis
from arq.cron import cron
from arq.worker import func
from redis.exceptions import LockError
from sqlalchemy.ext.asyncio import AsyncSession

from services.lecturers import store
from services.lecturers.clients import Booking, Registry, Room
from services.lecturers.domain import matching
from services.lecturers.domain.corps import (
    OfferStatus,
    RequestStatus,
    is_due_to_expire,
    month_start,
)
from services.lecturers.domain.links import answer_links, link_key, web_link_pages
from services.lecturers.domain.runs import (
    RunAssignment,
    RunUnmatched,
    bookable_window,
    open_sessions,
    room_suits,
)
from shared.config import Settings
from shared.contracts import BookingChanged, OfferChanged, Programme
from shared.db import Database, database_outage
from shared.errors import NotFound, ServiceError, ServiceUnavailable
from shared.events import Event, queue_name
from shared.http import RemoteError
from shared.ids import new_id
from shared.observability import current_request_id
from shared.outbox import EventHandler
from shared.time import Interval, next_month, zone
from shared.worker import WorkerSettings, transient, worker_settings

_log = logging.getLogger("commonroom.lecturers")
T = TypeVar("T")
Item = TypeVar("Item")

MATCH_JOB = "match"
EXPIRE_JOB = "expire_offer"
RUN_TRIES = 5
MATCHING_SECONDS = 8.0
# Longer than the slowest run measured (600 sessions: 37 s on a loaded 2-core machine), short
# enough that a run whose worker was killed is taken up again (by arq, after the job's timeout)
# within a few minutes.
LOCK_SECONDS = 120
# Calls to the other services at once: enough to overlap their latency, few enough to be polite.
CONCURRENT_CALLS = 8
# A run queued or running this long has lost its job (retries and the month's lock included, a
# run ends within minutes): the sweep asks for it again.
STUCK_AFTER = timedelta(minutes=30)
REOFFERED = ("offer.declined", "offer.expired")
CLOSED = (*REOFFERED, "offer.cancelled")


def month_window(month: str) -> Interval:
    """The month in UTC, a day wider on each side: it holds the month in every zone."""
    first = month_start(month)
    start = datetime.combine(first, datetime.min.time(), tzinfo=UTC) - timedelta(days=1)
    end = datetime.combine(next_month(first), datetime.min.time(), tzinfo=UTC)
    return Interval(start, end + timedelta(days=1))


def _in_month(row: store.OfferRow, month: str) -> bool:
    return row.start_at.astimezone(ZoneInfo(row.timezone)).strftime("%Y-%m") == month


def _local_month(venue: store.VenueRow, month: str) -> Interval:
    tz = zone(venue.timezone)
    first = month_start(month)
    start = datetime.combine(first, datetime.min.time(), tzinfo=tz)
    return Interval(start, datetime.combine(next_month(first), datetime.min.time(), tzinfo=tz))


class Plan(msgspec.Struct, frozen=True):
    """A run's problem and what maps the solver's answers back to the service's records."""

    problem: matching.Problem
    requests: dict[str, store.RequestRow]
    venues: dict[str, store.VenueRow]  # by the problem's venue key
    open_indices: dict[str, list[int]]


class Jobs:
    """What the worker's jobs and event handlers share: the clients, and the queue (set once
    the worker has connected to Redis)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # For the one-click links `offer.created` carries (API.md), on the web service's pages;
        # derived here, so a worker without the link secret refuses to start, as the app does.
        self.link_key = link_key(settings.link_secret)
        self.link_pages = web_link_pages(settings.service_url("web"))
        self.registry = Registry(settings)
        self.booking = Booking(settings)
        self._queue: ArqRedis | None = None

    async def start(self, ctx: dict[str, Any]) -> None:
        self._queue = ctx["redis"]

    async def stop(self, _ctx: dict[str, Any]) -> None:
        await self.registry.aclose()
        await self.booking.aclose()

    @property
    def queue(self) -> ArqRedis:
        assert self._queue is not None, "the worker has not started"
        return self._queue

    # -- event handlers --------------------------------------------------------------------

    async def on_run_requested(self, _session: AsyncSession, event: Event) -> None:
        await self._enqueue_run(str(event.data["run_id"]))

    async def _enqueue_run(self, run_id: str) -> None:
        """The run's `match` job; arq keeps one job per id, so a run already on the queue (or
        running) is not doubled."""
        await self.queue.enqueue_job(
            MATCH_JOB,
            run_id,
            origin_request_id=current_request_id(),
            _job_id=f"match:{run_id}",
            _queue_name=queue_name("lecturers"),
        )

    async def on_offer_closed(self, session: AsyncSession, event: Event) -> None:
        """Give the room back; after a decline or an expiry, ask the next lecturer while the
        request is still open. A cancelled offer is not re-offered at once: the venue (or the
        school) ended it, so the request waits for the month's next run."""
        offer = msgspec.convert(event.data, OfferChanged, strict=False)
        await self.booking.release(offer.booking_id, reason=f"lecture offer {offer.status}")
        if event.type not in REOFFERED:
            return
        request = await store.get_request_row(session, offer.request_id)
        now = datetime.now(UTC)
        if request.status != RequestStatus.OPEN.value or request.month < f"{now:%Y-%m}":
            return
        await store.create_run(
            session,
            run_id=new_id(),
            month=request.month,
            request_ids=[request.id],
            created_by="lecturers",
            now=now,
        )

    async def on_booking_ended(self, session: AsyncSession, event: Event) -> None:
        booking = msgspec.convert(event.data, BookingChanged, strict=False)
        now = datetime.now(UTC)
        await store.release_holds_of_booking(session, booking.id, now=now)
        for row in await store.live_offers_of_booking(session, booking.id):
            reason = f"the venue's booking was {booking.status}"
            await store.move_offer(session, row, OfferStatus.CANCELLED, reason=reason, now=now)

    async def on_venue_changed(self, session: AsyncSession, event: Event) -> None:
        """Keep the copy of a venue this service already knows current; others stay unknown."""
        known = await store.venues_by_id(session, [str(event.data["id"])])
        if not known:
            return
        now = datetime.now(UTC)
        if event.type == "venue.deleted":
            await store.forget_venue(session, str(event.data["id"]), now=now)
        else:
            await store.keep_venue(session, event.data, now=now)

    # -- the matching run ------------------------------------------------------------------

    async def match(self, ctx: dict[str, Any], run_id: str) -> None:
        database: Database = ctx["database"]
        tries = ctx.get("job_try", 1)
        try:
            async with database.write() as session:
                run = await store.start_run(session, run_id, now=datetime.now(UTC))
        except NotFound:  # a job outliving its database (a test's, a bench's): nothing to do
            _log.warning("no matching run %s to run", run_id)
            return
        except Exception as exc:
            if transient(exc):  # nothing started: come back when the database is
                raise Retry(defer=5 * tries) from exc
            raise
        if run is not None:
            try:
                async with self.queue.lock(
                    f"commonroom:lecturers:matching:{run.month}",
                    timeout=LOCK_SECONDS,
                    blocking_timeout=LOCK_SECONDS,
                ):
                    await self._run(database, run_id, run.month, run.request_ids)
            except Exception as exc:
                # The other services, the database or a long run of the same month may be
                # through shortly: the next attempt finishes (or gives back) what this one held.
                passing = transient(exc) or isinstance(exc, RemoteError | LockError)
                if passing and tries < RUN_TRIES:
                    raise Retry(defer=5 * tries) from exc
                if not passing:
                    _log.exception("matching run %s failed", run_id)
                await self._give_up(database, run_id, _failure_code(exc))
                if not passing:
                    raise
                return
        await self._schedule_expiry(database, run_id)

    async def _run(
        self, database: Database, run_id: str, month: str, request_ids: list[str] | None
    ) -> None:
        now = datetime.now(UTC)
        began = monotonic()
        await self._settle_holds(database, run_id, release=False)
        plan = await self.plan(database, month, request_ids, now)
        planned = monotonic()
        _log.info(
            "run %s: %d requests, %d lecturers, %d venues asked about in %.2f s",
            run_id,
            len(plan.problem.requests),
            len(plan.problem.lecturers),
            len(plan.problem.venues),
            planned - began,
        )
        unmatched: list[RunUnmatched] = []
        objective: int | None = None
        optimal: bool | None = None
        if plan.problem.requests:
            outcome = await asyncio.to_thread(
                matching.solve, plan.problem, time_limit_seconds=MATCHING_SECONDS
            )
            objective, optimal = outcome.objective, outcome.optimal
            solved = monotonic()
            _log.info("run %s: solved in %.2f s", run_id, solved - planned)
            unmatched = [
                RunUnmatched(
                    request_id=item.request_id,
                    session_index=plan.open_indices[item.request_id][item.session_index],
                    reason=item.reason.value,
                )
                for item in outcome.unmatched
            ]
            refused = await self._hold(database, run_id, plan, outcome.assignments, now)
            unmatched += refused
            _log.info(
                "run %s: %d rooms held in %.2f s",
                run_id,
                len(outcome.assignments) - len(refused),
                monotonic() - solved,
            )
        async with database.write() as session:
            rows = [row for row in await store.holding_offers(session, run_id) if row.booking_id]
            await store.publish_offered(session, rows, links=self._links, now=datetime.now(UTC))
            await store.finish_run(
                session,
                run_id,
                assignments=[_assignment(row) for row in rows],
                unmatched=sorted(unmatched, key=lambda u: (u.request_id, u.session_index)),
                objective=objective,
                optimal=optimal,
                now=datetime.now(UTC),
            )

    def _links(self, row: store.OfferRow) -> dict[str, str]:
        return answer_links(self.link_key, self.link_pages, row.id, row.sequence, row.expires_at)

    async def plan(
        self, database: Database, month: str, request_ids: list[str] | None, now: datetime
    ) -> Plan:
        """The month's problem as a run would solve it now: its open requests (or those named),
        the corps, and the free time of the venues' rooms."""
        window = month_window(month)
        async with database.read() as session:
            requests = await store.open_requests(session, month, request_ids)
            offers = await store.offers_of_requests(session, [r.id for r in requests])
            held = await store.sessions_held(session, window)
            lecturers = await store.lecturers_teaching(session, {r.topic for r in requests})
            venues = await store.venues_by_id(session, {r.venue_id for r in requests})
        open_indices = {
            r.id: open_sessions(
                r.sessions,
                [o.session_index for o in offers[r.id] if o.status in store.HOLDS_SESSION],
            )
            for r in requests
        }
        requests = [r for r in requests if open_indices[r.id] and not venues[r.venue_id].deleted]
        rooms = await self._rooms(requests, venues, month, now)
        # Requests at one venue share its rooms in the problem, so the solver keeps two of them
        # out of one room at once; only where their lectures suit different rooms (length,
        # attendees) is the venue split, each part with the rooms its lectures suit.
        keys: dict[str, str] = {}
        parts: dict[tuple[str, frozenset[str]], str] = {}
        for request in requests:
            part = (request.venue_id, frozenset(room.id for room, _ in rooms[request.id]))
            if part not in parts:
                split = any(venue_id == request.venue_id for venue_id, _ in parts)
                parts[part] = f"{request.venue_id}#{len(parts)}" if split else request.venue_id
            keys[request.id] = parts[part]
        problem_venues: dict[str, store.VenueRow] = {}
        venue_rooms: dict[str, tuple[matching.Room, ...]] = {}
        for request in requests:
            key = keys[request.id]
            problem_venues[key] = venues[request.venue_id]
            venue_rooms[key] = tuple(
                matching.Room(room.id, tuple(free)) for room, free in rooms[request.id]
            )
        busy: dict[str, list[Interval]] = defaultdict(list)
        this_month: dict[str, int] = defaultdict(int)
        for row in held:
            busy[row.lecturer_id].append(Interval(row.start_at, row.end_at))
            this_month[row.lecturer_id] += _in_month(row, month)
        declined = {
            r.id: frozenset(
                o.lecturer_id
                for o in offers[r.id]
                if o.status in (OfferStatus.DECLINED.value, OfferStatus.EXPIRED.value)
            )
            for r in requests
        }
        problem = matching.Problem(
            month=month_start(month),
            lecturers=tuple(
                matching.Lecturer(
                    id=row.id,
                    topics=frozenset(row.topics),
                    area_id=row.area_id,
                    availability=tuple(span.to_span() for span in row.spans),
                    max_per_month=row.max_per_month,
                    location=row.location,
                    blackout_dates=frozenset(row.blackouts),
                    busy=tuple(busy[row.id]),
                    accepted_this_month=this_month[row.id],
                )
                for row in lecturers
            ),
            requests=tuple(
                matching.Request(
                    id=r.id,
                    venue_id=keys[r.id],
                    topic=r.topic,
                    sessions=len(open_indices[r.id]),
                    minutes=r.minutes,
                    preferred=tuple(span.to_span() for span in r.preferred_spans),
                    declined_by=declined[r.id],
                )
                for r in requests
            ),
            venues=tuple(
                matching.Venue(
                    id=key,
                    area_id=venue.area_id,
                    timezone=venue.timezone,
                    rooms=venue_rooms[key],
                    location=venue.location,
                )
                for key, venue in problem_venues.items()
            ),
        )
        return Plan(
            problem=problem,
            requests={r.id: r for r in requests},
            venues=problem_venues,
            open_indices=open_indices,
        )

    async def _rooms(
        self,
        requests: Sequence[store.RequestRow],
        venues: dict[str, store.VenueRow],
        month: str,
        now: datetime,
    ) -> dict[str, list[tuple[Room, list[Interval]]]]:
        """Per request, the rooms of its venue its lecture suits, each with its free time in
        the month, as far ahead as the room's rules let it be booked."""
        if not requests:
            return {}
        venue_ids = sorted({r.venue_id for r in requests})
        rooms = await self.registry.rooms(venue_ids)
        free = await self.booking.free_rooms(
            venue_ids, month_window(month), minutes=min(r.minutes for r in requests)
        )
        free_time: dict[str, list[Interval]] = {}
        rooms_of: dict[str, list[Room]] = defaultdict(list)
        for room in rooms:
            rooms_of[room.venue_id].append(room)
            window = bookable_window(_local_month(venues[room.venue_id], month), room.rules, now)
            free_time[room.id] = (
                []
                if window is None
                else [piece for part in free.get(room.id, []) if (piece := part.clip(window))]
            )
        return {
            r.id: [
                (room, free_time[room.id])
                for room in rooms_of[r.venue_id]
                if room_suits(room.rules, room.capacity, minutes=r.minutes, attendees=r.attendees)
            ]
            for r in requests
        }

    async def _hold(
        self,
        database: Database,
        run_id: str,
        plan: Plan,
        assignments: Sequence[matching.Assignment],
        now: datetime,
    ) -> list[RunUnmatched]:
        """Journal an offer per assignment, then hold its room; the sessions left unmatched:
        those another run's live offer holds already, and those whose room was refused."""
        rows = [self._offer_row(run_id, plan, assignment, now) for assignment in assignments]
        async with database.write() as session:
            claimed = await store.hold_sessions(session, rows)
        outcompeted = [row for row in rows if row.id not in claimed]
        kept = await self._hold_rooms(database, [r for r in rows if r.id in claimed], plan.requests)
        return [
            RunUnmatched(row.request_id, row.session_index, matching.Reason.OUTCOMPETED.value)
            for row in outcompeted
        ] + [
            RunUnmatched(row.request_id, row.session_index, matching.Reason.NO_FREE_ROOM.value)
            for row in rows
            if row.id in kept and kept[row.id] is None
        ]

    def _offer_row(
        self, run_id: str, plan: Plan, assignment: matching.Assignment, now: datetime
    ) -> store.OfferRow:
        """The journal entry of an assignment's offer, written before its room is held."""
        request = plan.requests[assignment.request_id]
        venue = plan.venues[assignment.venue_id]
        return store.OfferRow(
            id=new_id(),
            run_id=run_id,
            request_id=request.id,
            session_index=plan.open_indices[request.id][assignment.session_index],
            lecturer_id=assignment.lecturer_id,
            venue_id=venue.id,
            venue_org=venue.owner_org,
            room_id=assignment.room_id,
            booking_id=None,
            timezone=venue.timezone,
            start_at=assignment.interval.start,
            end_at=assignment.interval.end,
            status=store.HOLDING,
            sequence=0,
            expires_at=now + timedelta(hours=self.settings.offer_ttl_hours),
            created_at=now,
            updated_at=now,
        )

    async def _hold_room(self, row: store.OfferRow, request: store.RequestRow) -> str | None:
        return await self.booking.hold(
            offer_id=row.id,
            room_id=row.room_id,
            org=row.venue_org,
            interval=Interval(row.start_at, row.end_at),
            purpose=f"讲座 lecture: {request.topic}",
            programme=Programme(request.programme),
            attendees=request.attendees,
        )

    async def _hold_rooms(
        self,
        database: Database,
        rows: Sequence[store.OfferRow],
        requests: dict[str, store.RequestRow],
        *,
        release: bool = False,
    ) -> dict[str, str | None]:
        """Hold the room of each journalled offer: the booking kept, by offer id (None: refused).
        Each is asked for under its own Idempotency-Key, so an offer an earlier attempt asked
        for gets the booking that made. With `release` (a failed run), each booking is given
        back instead of kept.

        What each call got is recorded in one transaction at the end, even when a call fails:
        a booking made and then forgotten would stay held with no offer behind it (a retry
        more than a day later, when the key has expired, would be refused by that very booking).
        """
        kept: dict[str, str | None] = {}

        async def hold(row: store.OfferRow) -> None:
            booking_id = row.booking_id or await self._hold_room(row, requests[row.request_id])
            if release and booking_id is not None:
                await self.booking.release(booking_id, reason="matching run failed")
                booking_id = None
            kept[row.id] = booking_id

        try:
            await _each(rows, hold)
        finally:
            if kept:
                async with database.write() as session:
                    await store.settle_holds(session, kept, now=datetime.now(UTC))
        return kept

    async def _settle_holds(self, database: Database, run_id: str, *, release: bool) -> None:
        """Finish the holds an earlier attempt journalled: kept, or (`release`, for a failed
        run) given back."""
        async with database.read() as session:
            rows = await store.holding_offers(session, run_id)
            requests = await store.requests_by_id(session, {row.request_id for row in rows})
        await self._hold_rooms(database, rows, requests, release=release)

    async def _give_up(self, database: Database, run_id: str, code: str) -> None:
        async with database.write() as session:
            await store.fail_run(session, run_id, code, now=datetime.now(UTC))
        try:
            await self._settle_holds(database, run_id, release=True)
        except ServiceUnavailable:
            _log.warning("run %s failed; its holds are released by the sweep later", run_id)

    async def _schedule_expiry(self, database: Database, run_id: str) -> None:
        """An `expire_offer` job per open offer of the run, due at its answer time; arq keeps
        one job per id, so scheduling again (a retried run) adds nothing."""
        async with database.read() as session:
            rows = await store.offers_of_run(session, run_id, OfferStatus.OFFERED)

        async def schedule(row: store.OfferRow) -> None:
            await self.queue.enqueue_job(
                EXPIRE_JOB,
                row.id,
                origin_request_id=current_request_id(),
                _job_id=f"expire:{row.id}",
                _defer_until=row.expires_at,
                _queue_name=queue_name("lecturers"),
            )

        await _each(rows, schedule)

    # -- expiry and the sweep --------------------------------------------------------------

    async def expire_offer(self, ctx: dict[str, Any], offer_id: str) -> None:
        database: Database = ctx["database"]
        async with database.write() as session:
            row = await store.find_offer_row(session, offer_id)
            if row is None or row.status != OfferStatus.OFFERED.value:
                return
            now = datetime.now(UTC)
            if now < row.expires_at:  # run early (a clock apart): come back when it is due
                raise Retry(defer=row.expires_at - now)
            await store.move_offer(
                session, row, OfferStatus.EXPIRED, reason="not answered in time", now=now
            )

    async def sweep(self, ctx: dict[str, Any]) -> None:
        database: Database = ctx["database"]
        now = datetime.now(UTC)
        async with database.write() as session:
            for row in await store.overdue_offers(session, now):
                if is_due_to_expire(OfferStatus(row.status), now=now, expires_at=row.expires_at):
                    await store.move_offer(
                        session, row, OfferStatus.EXPIRED, reason="not answered in time", now=now
                    )
        async with database.read() as session:
            failed = await store.failed_runs_holding(session)
            stuck = await store.unfinished_runs(session, begun_before=now - STUCK_AFTER)
        for run_id in stuck:  # its job lost with Redis (which keeps nothing on disk here)
            await self._enqueue_run(run_id)
        for run_id in failed:
            try:
                await self._settle_holds(database, run_id, release=True)
            except Exception:  # one run's trouble must not keep the others' rooms held
                _log.exception("the holds of failed run %s are not all given back yet", run_id)


def _failure_code(exc: BaseException) -> str:
    """What a failed run says went wrong, for the office to act on."""
    if isinstance(exc, ServiceError):
        return exc.code
    if database_outage(exc):
        return "database_unavailable"
    return "matching_busy" if isinstance(exc, LockError) else "internal_error"


async def _each(items: Sequence[Item], call: Callable[[Item], Awaitable[T]]) -> list[T]:
    """`call` of each item, `CONCURRENT_CALLS` running at a time, the results in order; the
    first failure cancels the rest (none goes on unwatched) and is raised as itself."""
    gate = asyncio.Semaphore(CONCURRENT_CALLS)

    async def gated(item: Item) -> T:
        async with gate:
            return await call(item)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(gated(item)) for item in items]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


def _assignment(row: store.OfferRow) -> RunAssignment:
    assert row.booking_id is not None
    return RunAssignment(
        offer_id=row.id,
        request_id=row.request_id,
        session_index=row.session_index,
        lecturer_id=row.lecturer_id,
        venue_id=row.venue_id,
        room_id=row.room_id,
        booking_id=row.booking_id,
        start=row.start_at.astimezone(ZoneInfo(row.timezone)),
        end=row.end_at.astimezone(ZoneInfo(row.timezone)),
    )


def create_worker_settings(settings: Settings) -> WorkerSettings:
    jobs = Jobs(settings)
    handlers: dict[str, EventHandler] = {
        "matching.requested": jobs.on_run_requested,
        "booking.cancelled": jobs.on_booking_ended,
        "booking.rejected": jobs.on_booking_ended,
        "venue.created": jobs.on_venue_changed,
        "venue.updated": jobs.on_venue_changed,
        "venue.deleted": jobs.on_venue_changed,
        **dict.fromkeys(CLOSED, jobs.on_offer_closed),
    }
    return worker_settings(
        "lecturers",
        settings,
        tables=store.tables,
        handlers=handlers,
        functions=[
            func(jobs.match, name=MATCH_JOB, timeout=LOCK_SECONDS),
            func(jobs.expire_offer, name=EXPIRE_JOB),
        ],
        cron_jobs=[cron(jobs.sweep, minute=set(range(0, 60, 10)), second={30})],
        startup=jobs.start,
        shutdown=jobs.stop,
    )
