"""The registry over HTTP, as booking reads it: the shapes of its answers and the raw calls, with
nothing kept (booking's replica of the catalogue is `catalogue`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Mapping, Sequence
from datetime import timedelta
from typing import TypeVar

import msgspec

from shared.config import Settings
from shared.contracts import ResourceType, Rules
from shared.http import RemoteError, ServiceClient
from shared.time import Interval, merge
from shared.web import MAX_IDS

T = TypeVar("T")
# The longest window the registry resolves open intervals over in one call.
MAX_PIECE = timedelta(days=365)


class RegistryResource(msgspec.Struct, frozen=True):
    """The fields of the registry's resource that booking reads."""

    id: str
    venue_id: str
    name: str
    type: ResourceType
    capacity: int | None
    requires_approval: bool
    rules: Rules
    part_of: str | None = None
    parts: list[str] = []


class RegistryVenue(msgspec.Struct, frozen=True):
    id: str
    name: str
    owner_org: str
    timezone: str
    area_id: str
    kind: str


class RegistryArea(msgspec.Struct, frozen=True):
    id: str
    name: str
    parent_id: str | None


class ResourceIntervals(msgspec.Struct, frozen=True):
    resource_id: str
    items: list[Interval]


class ManyIntervals(msgspec.Struct, frozen=True):
    items: list[ResourceIntervals]


def registry_http(settings: Settings) -> ServiceClient:
    return ServiceClient(caller="booking", target="registry", settings=settings)


async def fetch_open_intervals(
    http: ServiceClient, resource_ids: Sequence[str], window: Interval
) -> dict[str, list[Interval]]:
    """Straight from the registry, over any window: `MAX_IDS` resources and a year
    (what the registry resolves at once) a call. A resource the registry has not is left out."""
    found: dict[str, list[Interval]] = defaultdict(list)
    start = window.start
    while start < window.end:
        piece = Interval(start, min(start + MAX_PIECE, window.end))
        bounds = {"from": piece.start.isoformat(), "to": piece.end.isoformat()}
        for first in range(0, len(resource_ids), MAX_IDS):
            chunk = list(resource_ids[first : first + MAX_IDS])
            answer = await http.get(
                "/v1/open-intervals", ManyIntervals, resource_id=chunk, **bounds
            )
            for item in answer.items:
                found[item.resource_id] += item.items
        start = piece.end
    # An interval open across a year's edge came in two pieces.
    return {resource_id: merge(intervals) for resource_id, intervals in found.items()}


async def fetch_open_intervals_over(
    http: ServiceClient, windows: Mapping[str, Sequence[Interval]]
) -> dict[str, list[Interval]]:
    """Each resource's open intervals over its own windows: resources that share a window (most
    of a venue's) are asked about in one call. A resource the registry has not is left out."""
    sharing: dict[Interval, list[str]] = defaultdict(list)
    for resource_id, asked in windows.items():
        for window in asked:
            sharing[window].append(resource_id)
    found: dict[str, list[Interval]] = defaultdict(list)
    for window, resource_ids in sharing.items():
        for resource_id, intervals in (
            await fetch_open_intervals(http, resource_ids, window)
        ).items():
            found[resource_id] += intervals
    return {resource_id: merge(intervals) for resource_id, intervals in found.items()}


async def fetched_or_none(answer: Awaitable[T]) -> T | None:
    """The registry's answer, or None where it has no such thing (404)."""
    try:
        return await answer
    except RemoteError as exc:
        if exc.remote_status == 404:
            return None
        raise


async def fetch_resource(http: ServiceClient, resource_id: str) -> RegistryResource | None:
    """The resource, or None where the registry has none."""
    return await fetched_or_none(http.get(f"/v1/resources/{resource_id}", RegistryResource))


async def fetch_venue(http: ServiceClient, venue_id: str) -> RegistryVenue:
    return await http.get(f"/v1/venues/{venue_id}", RegistryVenue)


async def fetch_venues(http: ServiceClient, venue_ids: Sequence[str]) -> dict[str, RegistryVenue]:
    """The venues the registry has of `venue_ids`, by id, asked for in one go."""
    venues = await http.every_of("/v1/venues", RegistryVenue, name="id", ids=list(venue_ids))
    return {venue.id: venue for venue in venues}
