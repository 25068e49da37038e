"""The lecturer service's Litestar app: the corps, requests, matching runs, offers and feeds."""

from __future__ import annotations

from litestar import Litestar

from services.lecturers.api import ROUTES
from services.lecturers.clients import Booking, Registry
from services.lecturers.domain.links import link_key
from services.lecturers.store import tables
from shared.config import Settings
from shared.web import ServiceState, create_service_app


def create_app(settings: Settings) -> Litestar:
    # Derived as the app is built: without its link secret the service does not start at all.
    key = link_key(settings.link_secret)

    async def start(held: ServiceState) -> None:
        held.extras["link_key"] = key
        held.extras["registry"] = Registry(settings)
        held.extras["booking"] = Booking(settings)

    async def stop(held: ServiceState) -> None:
        await held.extras["registry"].aclose()
        await held.extras["booking"].aclose()

    return create_service_app(
        name="lecturers",
        settings=settings,
        tables=tables,
        route_handlers=ROUTES,
        on_start=start,
        on_stop=stop,
    )
