"""The registry and the booking service, as the lecturer service asks them.

Registry: a venue's facts and rooms, and whether an area exists. Booking: when a room is free,
and the pending booking that holds a room for an offered lecture, confirmed on accept and
released otherwise. Holds are sent with the offer's id as Idempotency-Key, so a retry after a
timeout finds the booking the first attempt made instead of making a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from litestar import Request

from shared.config import Settings
from shared.contracts import Programme, ResourceType, Rules
from shared.errors import FieldError, InvalidRequest
from shared.http import RemoteError, ServiceClient
from shared.time import Interval
from shared.web import service_state


class Room(msgspec.Struct, frozen=True):
    """The fields of the registry's resource the matching reads."""

    id: str
    venue_id: str
    type: ResourceType
    capacity: int | None
    rules: Rules


class _FreeRoom(msgspec.Struct, frozen=True):
    resource_id: str
    free: list[Interval]


class _Booking(msgspec.Struct, frozen=True):
    id: str
    status: str


class Registry:
    def __init__(self, settings: Settings) -> None:
        self._http = ServiceClient(caller="lecturers", target="registry", settings=settings)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def venue(self, venue_id: str) -> dict[str, Any]:
        """The registry's venue; 422 `unknown_venue` where there is none."""
        return await self._named("venue", venue_id, f"/v1/venues/{venue_id}")

    async def ensure_area(self, area_id: str) -> None:
        """422 `unknown_area` unless the registry has the area."""
        await self._named("area", area_id, f"/v1/areas/{area_id}")

    async def _named(self, what: str, entity_id: str, path: str) -> dict[str, Any]:
        """What a client named by id, which must exist: a 404 there is the client's 422 here."""
        try:
            return await self._http.get(path, dict[str, Any])
        except RemoteError as exc:
            if exc.remote_status == 404:
                raise InvalidRequest(
                    f"no such {what}",
                    code=f"unknown_{what}",
                    errors=[FieldError(f"{what}_id", f"unknown {what} {entity_id}")],
                ) from None
            raise

    async def rooms(self, venue_ids: Sequence[str]) -> list[Room]:
        """The rooms of the venues."""
        return await self._http.every_of(
            "/v1/resources", Room, name="venue_id", ids=venue_ids, type="room"
        )


class Booking:
    def __init__(self, settings: Settings) -> None:
        self._http = ServiceClient(caller="lecturers", target="booking", settings=settings)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def free_rooms(
        self, venue_ids: Sequence[str], window: Interval, *, minutes: int
    ) -> dict[str, list[Interval]]:
        """The free stretches of at least `minutes` in `window` of the venues' rooms, by room (a
        room with none is left out): the booking service's availability search, a page of
        rooms at a time."""
        found = await self._http.every_of(
            "/v1/availability",
            _FreeRoom,
            name="venue_id",
            ids=venue_ids,
            type="room",
            minutes=minutes,
            **{"from": window.start.isoformat(), "to": window.end.isoformat()},
        )
        return {room.resource_id: room.free for room in found}

    async def hold(
        self,
        *,
        offer_id: str,
        room_id: str,
        org: str,
        interval: Interval,
        purpose: str,
        programme: Programme,
        attendees: int | None,
    ) -> str | None:
        """Hold the room as a pending booking for the venue's org; its id, or None when the
        booking service refuses it (taken meanwhile, or its rules changed)."""
        body = {
            "resource_ids": [room_id],
            "start": interval.start.isoformat(),
            "end": interval.end.isoformat(),
            "purpose": purpose,
            "programme": programme.value,
            "hold": True,
            "org": org,
            **({"attendees": attendees} if attendees is not None else {}),
        }
        try:
            response = await self._http.request(
                "POST", "/v1/bookings", body=body, idempotency_key=f"offer:{offer_id}"
            )
        except RemoteError as exc:
            # Refused by a rule (taken meanwhile, its rules changed): a fact about the room. A
            # reused key is a fault of ours, never to be read as a room refused.
            if exc.remote_status in (409, 422) and exc.code != "idempotency_key_reused":
                return None
            raise
        return msgspec.json.decode(response.content, type=_Booking).id

    async def confirm(self, booking_id: str) -> bool:
        """Confirm a held booking; False when it is no longer there to confirm (cancelled or
        rejected meanwhile). Confirming twice is no error: a retried accept is safe."""
        try:
            await self._http.request("POST", f"/v1/bookings/{booking_id}/approve", body={})
        except RemoteError as exc:
            if exc.remote_status != 409:
                raise
            return await self._status(booking_id) == "confirmed"
        return True

    async def release(self, booking_id: str, reason: str) -> None:
        """Cancel a held booking; one already ended (or gone) is released already."""
        try:
            await self._http.request(
                "POST", f"/v1/bookings/{booking_id}/cancel", body={"reason": reason}
            )
        except RemoteError as exc:
            if exc.remote_status not in (404, 409):
                raise

    async def _status(self, booking_id: str) -> str:
        return (await self._http.get(f"/v1/bookings/{booking_id}", _Booking)).status


def registry_of(request: Request[Any, Any, Any]) -> Registry:
    client: Registry = service_state(request.app.state).extras["registry"]
    return client


def booking_of(request: Request[Any, Any, Any]) -> Booking:
    client: Booking = service_state(request.app.state).extras["booking"]
    return client
