"""The lecturer service's database: the corps, the schools' requests, offers, matching runs, and
its copy of the venues it sends lecturers to.

An offer row exists from the moment its room is being held: status `holding` (never shown to
anyone) until the booking service has the pending booking, then `offered`. A partial unique index
lets a request's session have one live offer at most, whoever writes it, so two runs that overlap
cannot both offer the same session.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.lecturers.domain.corps import (
    LIVE_OFFERS,
    Announced,
    Lecturer,
    LecturerCreate,
    LectureRequest,
    LecturerUpdate,
    Offer,
    OfferScope,
    OfferStatus,
    RequestCreate,
    RequestStatus,
    announcement,
    normal_topic,
    normalise_topics,
    request_status,
)
from services.lecturers.domain.runs import Run, RunAssignment, RunStatus, RunUnmatched
from shared.config import ServiceName
from shared.contracts import Location, Programme
from shared.db import UTCDateTime, new_metadata, one_or_404
from shared.errors import NotFound
from shared.outbox import insert_ignoring_duplicates, outbox_tables, publish, publish_all
from shared.time import Interval, SpanDoc


class Base(DeclarativeBase):
    metadata = new_metadata()


tables = outbox_tables(Base.metadata)
SOURCE: ServiceName = "lecturers"
# Offers in the making, never shown: `holding` while its room is being held at the booking
# service, `released` when its run failed and the hold was given back.
HOLDING = "holding"
RELEASED = "released"
INTERNAL = (HOLDING, RELEASED)
# Statuses that hold a request's session: a live offer, or one whose room is being held.
HOLDS_SESSION = sorted({HOLDING, *(status.value for status in LIVE_OFFERS)})
# How long a closed offer stays in the lecturer's feed, shown cancelled, before it is left out.
CLOSED_OFFERS_SHOWN = timedelta(days=30)


def _location(lat: float | None, lon: float | None) -> Location | None:
    return None if lat is None or lon is None else Location(lat=lat, lon=lon)


class LecturerRow(Base):
    __tablename__ = "lecturers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    topics: Mapped[list[str]] = mapped_column(JSON)
    languages: Mapped[list[str]] = mapped_column(JSON)
    area_id: Mapped[str] = mapped_column(String(36), index=True)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    max_per_month: Mapped[int] = mapped_column(Integer)
    availability: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    blackout_dates: Mapped[list[str]] = mapped_column(JSON)
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    feed_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def location(self) -> Location | None:
        return _location(self.lat, self.lon)

    @property
    def spans(self) -> list[SpanDoc]:
        return msgspec.convert(self.availability, list[SpanDoc])

    @property
    def blackouts(self) -> list[date]:
        return [date.fromisoformat(day) for day in self.blackout_dates]

    def to_domain(self, feed_url: str | None) -> Lecturer:
        return Lecturer(
            id=self.id,
            name=self.name,
            topics=list(self.topics),
            languages=list(self.languages),
            area_id=self.area_id,
            location=self.location,
            max_per_month=self.max_per_month,
            availability=self.spans,
            blackout_dates=self.blackouts,
            email=self.email,
            phone=self.phone,
            feed_url=feed_url,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


class LecturerTopicRow(Base):
    """One row per topic a lecturer teaches: what `?topic=` and the matching look up."""

    __tablename__ = "lecturer_topics"

    lecturer_id: Mapped[str] = mapped_column(
        ForeignKey("lecturers.id", ondelete="CASCADE"), primary_key=True
    )
    topic: Mapped[str] = mapped_column(String(60), primary_key=True, index=True)


class VenueRow(Base):
    """The facts of a venue this service needs (feeds, matching, rights), copied from the
    registry when a request names the venue and kept current by `venue.*` events."""

    __tablename__ = "venues"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(String(64))
    area_id: Mapped[str] = mapped_column(String(36))
    owner_org: Mapped[str] = mapped_column(String(100))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def location(self) -> Location | None:
        return _location(self.lat, self.lon)


class RequestRow(Base):
    __tablename__ = "requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    venue_id: Mapped[str] = mapped_column(ForeignKey("venues.id"))
    org: Mapped[str] = mapped_column(String(100))
    topic: Mapped[str] = mapped_column(String(60))
    programme: Mapped[str] = mapped_column(String(20))
    month: Mapped[str] = mapped_column(String(7))
    sessions: Mapped[int] = mapped_column(Integer)
    minutes: Mapped[int] = mapped_column(Integer)
    audience: Mapped[str | None] = mapped_column(String(200))
    attendees: Mapped[int | None] = mapped_column(Integer)
    preferred: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # Derived from the live offers (`refresh_request_status`, on every move of one), and kept
    # so that lists filter and matching picks open requests in SQL.
    status: Mapped[str] = mapped_column(String(20))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_requests_month_status", "month", "status"),
        Index("ix_requests_org", "org", "id"),
    )

    @property
    def preferred_spans(self) -> list[SpanDoc]:
        return msgspec.convert(self.preferred, list[SpanDoc])

    def to_domain(self) -> LectureRequest:
        return LectureRequest(
            id=self.id,
            venue_id=self.venue_id,
            org=self.org,
            topic=self.topic,
            programme=Programme(self.programme),
            month=self.month,
            sessions=self.sessions,
            minutes=self.minutes,
            audience=self.audience,
            attendees=self.attendees,
            preferred=self.preferred_spans,
            status=RequestStatus(self.status),
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


class OfferRow(Base):
    __tablename__ = "offers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(36), index=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"))
    session_index: Mapped[int] = mapped_column(Integer)
    lecturer_id: Mapped[str] = mapped_column(ForeignKey("lecturers.id"))
    venue_id: Mapped[str] = mapped_column(String(36))
    venue_org: Mapped[str] = mapped_column(String(100))
    room_id: Mapped[str] = mapped_column(String(36))
    booking_id: Mapped[str | None] = mapped_column(String(36), index=True)
    timezone: Mapped[str] = mapped_column(String(64))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20))
    sequence: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index(
            "uq_offers_live_session",
            "request_id",
            "session_index",
            unique=True,
            postgresql_where=text("status IN ('holding', 'offered', 'accepted')"),
            sqlite_where=text("status IN ('holding', 'offered', 'accepted')"),
        ),
        Index("ix_offers_lecturer_start", "lecturer_id", "start_at"),
        Index("ix_offers_request", "request_id", "status"),
    )

    def to_domain(self, topic: str) -> Offer:
        tz = ZoneInfo(self.timezone)
        assert self.booking_id is not None, "an offer shown always has its booking"
        return Offer(
            id=self.id,
            request_id=self.request_id,
            lecturer_id=self.lecturer_id,
            venue_id=self.venue_id,
            booking_id=self.booking_id,
            start=self.start_at.astimezone(tz),
            end=self.end_at.astimezone(tz),
            status=OfferStatus(self.status),
            expires_at=self.expires_at.astimezone(tz),
            session_index=self.session_index,
            topic=topic,
            sequence=self.sequence,
            reason=self.reason,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    month: Mapped[str] = mapped_column(String(7))
    request_ids: Mapped[list[str] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))
    assignments: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    unmatched: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # Weighted so that one more session outweighs all travel: it outgrows 32 bits.
    objective: Mapped[int | None] = mapped_column(BigInteger)
    optimal: Mapped[bool | None] = mapped_column(Boolean)
    failure: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def to_domain(self) -> Run:
        return Run(
            id=self.id,
            month=self.month,
            status=RunStatus(self.status),
            request_ids=self.request_ids,
            assignments=msgspec.convert(self.assignments, list[RunAssignment]),
            unmatched=msgspec.convert(self.unmatched, list[RunUnmatched]),
            objective=self.objective,
            optimal=self.optimal,
            failure=self.failure,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
        )


# ---------------------------------------------------------------------------------------------
# Lecturers


def _lecturer_values(data: LecturerCreate | LecturerUpdate) -> dict[str, Any]:
    """Column values for the fields `data` carries (all of a create, the sent ones of a patch)."""
    sent = {
        name: value
        for name, value in msgspec.structs.asdict(data).items()
        if value is not msgspec.UNSET
    }
    values: dict[str, Any] = {}
    for name, value in sent.items():
        if name == "topics":
            values[name] = normalise_topics(value)
        elif name == "location":
            values["lat"], values["lon"] = (None, None) if value is None else (value.lat, value.lon)
        elif name == "availability":
            values[name] = msgspec.to_builtins(value)
        elif name == "blackout_dates":
            values[name] = sorted({day.isoformat() for day in value})
        else:
            values[name] = value
    return values


async def _set_topics(session: AsyncSession, lecturer_id: str, topics: Sequence[str]) -> None:
    await session.execute(
        delete(LecturerTopicRow).where(LecturerTopicRow.lecturer_id == lecturer_id)
    )
    session.add_all(LecturerTopicRow(lecturer_id=lecturer_id, topic=topic) for topic in topics)


async def create_lecturer(
    session: AsyncSession, *, lecturer_id: str, data: LecturerCreate, feed_token: str, now: datetime
) -> LecturerRow:
    row = LecturerRow(
        id=lecturer_id,
        feed_token=feed_token,
        created_at=now,
        updated_at=now,
        **_lecturer_values(data),
    )
    session.add(row)
    await session.flush()
    await _set_topics(session, lecturer_id, row.topics)
    await publish(
        session, tables, source=SOURCE, type="lecturer.created", data={"id": lecturer_id}, now=now
    )
    return row


async def update_lecturer(
    session: AsyncSession, row: LecturerRow, data: LecturerUpdate, *, now: datetime
) -> LecturerRow:
    values = _lecturer_values(data)
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at = now
    if "topics" in values:
        await _set_topics(session, row.id, row.topics)
    await publish(
        session, tables, source=SOURCE, type="lecturer.updated", data={"id": row.id}, now=now
    )
    return row


async def get_lecturer_row(session: AsyncSession, lecturer_id: str) -> LecturerRow:
    query = select(LecturerRow).where(LecturerRow.id == lecturer_id)
    return await one_or_404(session, query, "lecturer")


async def list_lecturers(
    session: AsyncSession,
    *,
    topic: str | None,
    area_id: str | None,
    only: str | None,
    after: str | None,
    limit: int,
) -> list[LecturerRow]:
    query = select(LecturerRow).order_by(LecturerRow.id).limit(limit + 1)
    if topic is not None:
        teaches = select(LecturerTopicRow.lecturer_id).where(
            LecturerTopicRow.topic == normal_topic(topic)
        )
        query = query.where(LecturerRow.id.in_(teaches))
    if area_id is not None:
        query = query.where(LecturerRow.area_id == area_id)
    if only is not None:
        query = query.where(LecturerRow.id == only)
    if after is not None:
        query = query.where(LecturerRow.id > after)
    return list((await session.scalars(query)).all())


async def lecturers_teaching(session: AsyncSession, topics: Iterable[str]) -> list[LecturerRow]:
    teaches = select(LecturerTopicRow.lecturer_id).where(LecturerTopicRow.topic.in_(set(topics)))
    query = select(LecturerRow).where(LecturerRow.id.in_(teaches)).order_by(LecturerRow.id)
    return list((await session.scalars(query)).all())


# ---------------------------------------------------------------------------------------------
# Venues


async def keep_venue(session: AsyncSession, venue: dict[str, Any], *, now: datetime) -> VenueRow:
    """Store (or refresh) the registry's facts of a venue."""
    location = venue.get("location") or {}
    values = {
        "name": venue["name"],
        "address": venue.get("address"),
        "timezone": venue["timezone"],
        "area_id": venue["area_id"],
        "owner_org": venue["owner_org"],
        "lat": location.get("lat"),
        "lon": location.get("lon"),
        "deleted": False,
        "updated_at": now,
    }
    row = await session.get(VenueRow, venue["id"])
    if row is None:
        row = VenueRow(id=venue["id"], **values)
        session.add(row)
    else:
        for name, value in values.items():
            setattr(row, name, value)
    await session.flush()
    return row


async def forget_venue(session: AsyncSession, venue_id: str, *, now: datetime) -> None:
    await session.execute(
        update(VenueRow).where(VenueRow.id == venue_id).values(deleted=True, updated_at=now)
    )


async def venues_by_id(session: AsyncSession, venue_ids: Iterable[str]) -> dict[str, VenueRow]:
    rows = await session.scalars(select(VenueRow).where(VenueRow.id.in_(set(venue_ids))))
    return {row.id: row for row in rows}


# ---------------------------------------------------------------------------------------------
# Requests


async def create_request(
    session: AsyncSession,
    *,
    request_id: str,
    data: RequestCreate,
    venue: VenueRow,
    created_by: str,
    now: datetime,
) -> LectureRequest:
    row = RequestRow(
        id=request_id,
        venue_id=venue.id,
        org=venue.owner_org,
        topic=normal_topic(data.topic),
        programme=data.programme.value,
        month=data.month,
        sessions=data.sessions,
        minutes=data.minutes,
        audience=data.audience,
        attendees=data.attendees,
        preferred=msgspec.to_builtins(data.preferred),
        status=RequestStatus.OPEN.value,
        created_by=created_by,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    created = row.to_domain()
    await publish(session, tables, source=SOURCE, type="request.created", data=created, now=now)
    return created


async def get_request_row(
    session: AsyncSession, request_id: str, *, lock: bool = False
) -> RequestRow:
    query = select(RequestRow).where(RequestRow.id == request_id)
    return await one_or_404(session, query, "request", lock=lock)


async def list_requests(
    session: AsyncSession,
    *,
    org: str | None,
    month: str | None,
    venue_id: str | None,
    status: RequestStatus | None,
    after: str | None,
    limit: int,
) -> list[LectureRequest]:
    query = select(RequestRow).order_by(RequestRow.id).limit(limit + 1)
    for column, value in (
        (RequestRow.org, org),
        (RequestRow.month, month),
        (RequestRow.venue_id, venue_id),
        (RequestRow.status, status.value if status else None),
    ):
        if value is not None:
            query = query.where(column == value)
    if after is not None:
        query = query.where(RequestRow.id > after)
    return [row.to_domain() for row in (await session.scalars(query)).all()]


async def refresh_request_status(session: AsyncSession, request_id: str, *, now: datetime) -> None:
    """Derive the request's status again from its live offers, after one of them moved."""
    await refresh_request_statuses(session, [await get_request_row(session, request_id)], now=now)


async def refresh_request_statuses(
    session: AsyncSession, rows: Sequence[RequestRow], *, now: datetime
) -> None:
    """`refresh_request_status` for many requests, their live offers read in one query."""
    live: dict[str, list[OfferStatus]] = defaultdict(list)
    found = await session.execute(
        select(OfferRow.request_id, OfferRow.status).where(
            OfferRow.request_id.in_([row.id for row in rows]),
            OfferRow.status.in_([status.value for status in LIVE_OFFERS]),
        )
    )
    for request_id, status in found:
        live[request_id].append(OfferStatus(status))
    for row in rows:
        status = request_status(
            row.sessions, live[row.id], cancelled=row.status == RequestStatus.CANCELLED.value
        )
        if status.value != row.status:
            row.status = status.value
            row.updated_at = now


async def cancel_request(session: AsyncSession, row: RequestRow, *, now: datetime) -> None:
    row.status = RequestStatus.CANCELLED.value
    row.updated_at = now
    await publish(
        session, tables, source=SOURCE, type="request.cancelled", data=row.to_domain(), now=now
    )


async def open_requests(
    session: AsyncSession, month: str, request_ids: Sequence[str] | None
) -> list[RequestRow]:
    """The month's requests that still lack a lecturer for a session (limited to `request_ids`)."""
    query = (
        select(RequestRow)
        .where(RequestRow.month == month, RequestRow.status == RequestStatus.OPEN.value)
        .order_by(RequestRow.id)
    )
    if request_ids is not None:
        query = query.where(RequestRow.id.in_(request_ids))
    return list((await session.scalars(query)).all())


# ---------------------------------------------------------------------------------------------
# Offers


async def offers_of_requests(
    session: AsyncSession, request_ids: Sequence[str]
) -> dict[str, list[OfferRow]]:
    rows = await session.scalars(select(OfferRow).where(OfferRow.request_id.in_(request_ids)))
    found: dict[str, list[OfferRow]] = defaultdict(list)
    for row in rows:
        found[row.request_id].append(row)
    return found


async def sessions_held(session: AsyncSession, window: Interval) -> list[OfferRow]:
    """Every offer holding a lecturer's time near `window`: live or still being held."""
    query = select(OfferRow).where(
        OfferRow.status.in_(HOLDS_SESSION),
        OfferRow.start_at < window.end,
        OfferRow.end_at > window.start,
    )
    return list((await session.scalars(query)).all())


async def hold_sessions(session: AsyncSession, rows: Sequence[OfferRow]) -> set[str]:
    """Journal offers about to hold their rooms (status `holding`), each claiming its request's
    session; the ids of those that did (a live offer of another run may hold a session)."""
    columns = [column.key for column in OfferRow.__table__.columns]
    claimed: set[str] = set()
    # A statement's parameters are bounded (32,767 on both databases): some hundreds of rows each.
    for first in range(0, len(rows), 500):
        values = [{key: getattr(row, key) for key in columns} for row in rows[first : first + 500]]
        statement = (
            insert_ignoring_duplicates(session, OfferRow)
            .values(values)
            .on_conflict_do_nothing()
            .returning(OfferRow.id)
        )
        claimed.update((await session.scalars(statement)).all())
    return claimed


async def holding_offers(session: AsyncSession, run_id: str) -> list[OfferRow]:
    query = select(OfferRow).where(OfferRow.run_id == run_id, OfferRow.status == HOLDING)
    return list((await session.scalars(query.order_by(OfferRow.start_at))).all())


async def settle_holds(
    session: AsyncSession, kept: Mapping[str, str | None], *, now: datetime
) -> None:
    """Record, by offer id, the booking that holds each offer's room, or (None) that none does."""
    held = [
        {"id": offer_id, "booking_id": booking_id, "updated_at": now}
        for offer_id, booking_id in kept.items()
        if booking_id is not None
    ]
    released = [
        {"id": offer_id, "status": RELEASED, "updated_at": now}
        for offer_id, booking_id in kept.items()
        if booking_id is None
    ]
    for values in (held, released):
        if values:
            await session.execute(update(OfferRow), values)


async def offers_of_run(session: AsyncSession, run_id: str, status: OfferStatus) -> list[OfferRow]:
    query = select(OfferRow).where(OfferRow.run_id == run_id, OfferRow.status == status.value)
    return list((await session.scalars(query)).all())


async def failed_runs_holding(session: AsyncSession) -> list[str]:
    """Runs that failed with rooms still held for them: their holds are to be given back."""
    query = (
        select(RunRow.id)
        .where(RunRow.status == RunStatus.FAILED.value)
        .where(RunRow.id.in_(select(OfferRow.run_id).where(OfferRow.status == HOLDING)))
    )
    return list((await session.scalars(query)).all())


async def unfinished_runs(session: AsyncSession, *, begun_before: datetime) -> list[str]:
    """Runs queued or running since before `begun_before`, far longer than any run takes."""
    begun = func.coalesce(RunRow.started_at, RunRow.created_at)
    query = select(RunRow.id).where(
        RunRow.status.in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value]), begun < begun_before
    )
    return list((await session.scalars(query)).all())


async def release_holds_of_booking(
    session: AsyncSession, booking_id: str, *, now: datetime
) -> None:
    """A run's hold whose booking the venue ended before the offer was shown: never shown."""
    await session.execute(
        update(OfferRow)
        .where(OfferRow.booking_id == booking_id, OfferRow.status == HOLDING)
        .values(status=RELEASED, reason="the venue ended the booking", updated_at=now)
    )


async def find_offer_row(session: AsyncSession, offer_id: str) -> OfferRow | None:
    """The offer, locked, if it exists and is shown (a job's view: absence is no error)."""
    try:
        return await get_offer_row(session, offer_id, lock=True)
    except NotFound:
        return None


async def get_offer_row(session: AsyncSession, offer_id: str, *, lock: bool = False) -> OfferRow:
    query = select(OfferRow).where(OfferRow.id == offer_id, OfferRow.status.not_in(INTERNAL))
    return await one_or_404(session, query, "offer", lock=lock)


async def offer_of(session: AsyncSession, row: OfferRow) -> Offer:
    return row.to_domain((await get_request_row(session, row.request_id)).topic)


async def requests_by_id(
    session: AsyncSession, request_ids: Iterable[str]
) -> dict[str, RequestRow]:
    rows = await session.scalars(select(RequestRow).where(RequestRow.id.in_(set(request_ids))))
    return {row.id: row for row in rows}


async def move_offer(
    session: AsyncSession,
    row: OfferRow,
    status: OfferStatus,
    *,
    reason: str | None = None,
    now: datetime,
) -> Offer:
    """Move an offer on: its sequence raised, its request's status derived again, its event."""
    row.status = status.value
    row.sequence += 1
    row.updated_at = now
    if reason is not None:
        row.reason = reason
    await refresh_request_status(session, row.request_id, now=now)
    offer = await offer_of(session, row)
    told = (await _told_of(session, [row]))[row.id]
    await publish(
        session,
        tables,
        source=SOURCE,
        type=f"offer.{status.value}",
        data=announcement(offer, told),
        now=now,
    )
    return offer


async def publish_offered(
    session: AsyncSession,
    rows: Sequence[OfferRow],
    *,
    links: Callable[[OfferRow], dict[str, str]],
    now: datetime,
) -> None:
    """The held offers of a run become offers: shown, and announced with their one-click
    `links` (`accept_url`, `decline_url`)."""
    for row in rows:
        row.status = OfferStatus.OFFERED.value
        row.updated_at = now
    requests = await requests_by_id(session, {row.request_id for row in rows})
    await refresh_request_statuses(session, list(requests.values()), now=now)
    told = await _told_of(session, rows)
    await publish_all(
        session,
        tables,
        source=SOURCE,
        events=[
            (
                "offer.created",
                announcement(
                    row.to_domain(requests[row.request_id].topic), told[row.id], links(row)
                ),
            )
            for row in rows
        ],
        now=now,
    )


async def _told_of(session: AsyncSession, rows: Sequence[OfferRow]) -> dict[str, Announced]:
    """By offer id, what its event tells beyond the offer: its venue, zone and lecturer."""
    venues = await venues_by_id(session, {row.venue_id for row in rows})
    lecturers = {
        lecturer.id: lecturer
        for lecturer in await session.scalars(
            select(LecturerRow).where(LecturerRow.id.in_({row.lecturer_id for row in rows}))
        )
    }
    told = {}
    for row in rows:
        venue, lecturer = venues.get(row.venue_id), lecturers.get(row.lecturer_id)
        told[row.id] = Announced(
            timezone=row.timezone,
            venue_name=venue.name if venue else "",
            venue_address=(venue.address or "") if venue else "",
            lecturer_name=lecturer.name if lecturer else "",
            lecturer_email=lecturer.email if lecturer else None,
        )
    return told


async def list_offers(
    session: AsyncSession,
    scope: OfferScope,
    *,
    status: OfferStatus | None,
    after: str | None,
    limit: int,
) -> list[Offer]:
    query = (
        select(OfferRow, RequestRow.topic)
        .join(RequestRow, RequestRow.id == OfferRow.request_id)
        .where(OfferRow.status.not_in(INTERNAL))
        .order_by(OfferRow.id)
        .limit(limit + 1)
    )
    if scope.lecturer_id is not None:
        query = query.where(OfferRow.lecturer_id == scope.lecturer_id)
    if scope.venue_org is not None:
        query = query.where(OfferRow.venue_org == scope.venue_org)
    if status is not None:
        query = query.where(OfferRow.status == status.value)
    if after is not None:
        query = query.where(OfferRow.id > after)
    return [row.to_domain(topic) for row, topic in (await session.execute(query)).all()]


async def live_offers_of_booking(session: AsyncSession, booking_id: str) -> list[OfferRow]:
    query = select(OfferRow).where(
        OfferRow.booking_id == booking_id,
        OfferRow.status.in_([status.value for status in LIVE_OFFERS]),
    )
    return list((await session.scalars(query)).all())


async def overdue_offers(session: AsyncSession, now: datetime) -> list[OfferRow]:
    query = select(OfferRow).where(
        OfferRow.status == OfferStatus.OFFERED.value, OfferRow.expires_at <= now
    )
    return list((await session.scalars(query)).all())


async def live_offers_of_request(session: AsyncSession, request_id: str) -> list[OfferRow]:
    query = select(OfferRow).where(
        OfferRow.request_id == request_id,
        OfferRow.status.in_([status.value for status in LIVE_OFFERS]),
    )
    return list((await session.scalars(query)).all())


class FeedRow(msgspec.Struct, frozen=True):
    offer: OfferRow
    topic: str
    venue_name: str
    venue_address: str | None


async def feed_rows(session: AsyncSession, lecturer_id: str, *, now: datetime) -> list[FeedRow]:
    """What the lecturer's feed shows: every offer still open or accepted, and those closed in
    the last `CLOSED_OFFERS_SHOWN`, so calendars that hold them see them cancelled."""
    query = (
        select(OfferRow, RequestRow.topic, VenueRow.name, VenueRow.address)
        .join(RequestRow, RequestRow.id == OfferRow.request_id)
        .join(VenueRow, VenueRow.id == OfferRow.venue_id)
        .where(
            OfferRow.lecturer_id == lecturer_id,
            OfferRow.status.not_in(INTERNAL),
            or_(
                OfferRow.status.in_([status.value for status in LIVE_OFFERS]),
                OfferRow.updated_at > now - CLOSED_OFFERS_SHOWN,
            ),
        )
    )
    return [
        FeedRow(offer=row, topic=topic, venue_name=name, venue_address=address)
        for row, topic, name, address in (await session.execute(query)).all()
    ]


# ---------------------------------------------------------------------------------------------
# Runs


async def create_run(
    session: AsyncSession,
    *,
    run_id: str,
    month: str,
    request_ids: list[str] | None,
    created_by: str,
    now: datetime,
) -> Run:
    row = RunRow(
        id=run_id,
        month=month,
        request_ids=request_ids,
        status=RunStatus.QUEUED.value,
        assignments=[],
        unmatched=[],
        created_by=created_by,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    # The worker takes the run from this event: it reaches the queue even if Redis is away now.
    await publish(
        session, tables, source=SOURCE, type="matching.requested", data={"run_id": run_id}, now=now
    )
    return row.to_domain()


async def get_run_row(session: AsyncSession, run_id: str, *, lock: bool = False) -> RunRow:
    query = select(RunRow).where(RunRow.id == run_id)
    return await one_or_404(session, query, "matching run", lock=lock)


async def list_runs(
    session: AsyncSession, *, month: str | None, after: str | None, limit: int
) -> list[RunRow]:
    """Runs in id order (creation order: ids are UUIDv7), optionally of one month."""
    query = select(RunRow).order_by(RunRow.id).limit(limit + 1)
    if month is not None:
        query = query.where(RunRow.month == month)
    if after is not None:
        query = query.where(RunRow.id > after)
    return list((await session.scalars(query)).all())


async def start_run(session: AsyncSession, run_id: str, *, now: datetime) -> RunRow | None:
    """Mark a queued (or interrupted) run running; None when it has already finished."""
    row = await get_run_row(session, run_id, lock=True)
    if row.status in (RunStatus.DONE.value, RunStatus.FAILED.value):
        return None
    row.status = RunStatus.RUNNING.value
    row.started_at = row.started_at or now
    return row


async def finish_run(
    session: AsyncSession,
    run_id: str,
    *,
    assignments: Sequence[RunAssignment],
    unmatched: Sequence[RunUnmatched],
    objective: int | None,
    optimal: bool | None,
    now: datetime,
) -> None:
    row = await get_run_row(session, run_id, lock=True)
    row.status = RunStatus.DONE.value
    row.assignments = msgspec.to_builtins(list(assignments))
    row.unmatched = msgspec.to_builtins(list(unmatched))
    row.objective = objective
    row.optimal = optimal
    row.finished_at = now
    await publish(
        session, tables, source=SOURCE, type="matching.finished", data=row.to_domain(), now=now
    )


async def fail_run(session: AsyncSession, run_id: str, failure: str, *, now: datetime) -> None:
    row = await get_run_row(session, run_id, lock=True)
    row.status = RunStatus.FAILED.value
    row.failure = failure
    row.finished_at = now
    await publish(
        session, tables, source=SOURCE, type="matching.failed", data=row.to_domain(), now=now
    )
