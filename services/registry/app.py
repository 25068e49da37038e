"""The registry's Litestar app: the catalogue of venues, rooms, equipment and opening hours."""

from __future__ import annotations

from litestar import Litestar

from services.registry.api import ROUTES
from services.registry.store import tables
from shared.config import Settings
from shared.web import create_service_app


def create_app(settings: Settings) -> Litestar:
    return create_service_app(
        name="registry", settings=settings, tables=tables, route_handlers=ROUTES
    )
