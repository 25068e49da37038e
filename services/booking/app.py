"""The booking service's Litestar app: bookings, availability and calendars of resources."""

from __future__ import annotations

from litestar import Litestar

from services.booking.api import ROUTES
from services.booking.catalogue.reader import RegistryClient
from services.booking.metadata import tables
from shared.config import Settings
from shared.ratelimit import RateLimit
from shared.web import ServiceState, create_service_app


def create_app(settings: Settings) -> Litestar:
    async def start(held: ServiceState) -> None:
        held.extras["registry"] = RegistryClient(settings, held.database)
        per_minute = settings.booking_rate_per_minute
        held.extras["booking_rate"] = (
            RateLimit(held.redis, name="bookings", limit=per_minute, per_seconds=60)
            if per_minute > 0
            else None
        )

    async def stop(held: ServiceState) -> None:
        await held.extras["registry"].aclose()

    return create_service_app(
        name="booking",
        settings=settings,
        tables=tables,
        route_handlers=ROUTES,
        on_start=start,
        on_stop=stop,
    )
