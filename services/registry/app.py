"""The registry's Litestar app: the catalogue of venues, rooms, equipment and opening hours."""

from __future__ import annotations

from litestar import Litestar

from services.registry.api import ROUTES
from services.registry.store import tables
from shared.config import Settings
from shared.problems import document_problems
from shared.web import create_service_app


def create_app(settings: Settings) -> Litestar:
    # Every route's problem answers in the OpenAPI document (the app factory may do this for
    # every service one day; doing it twice changes nothing).
    document_problems(ROUTES)
    return create_service_app(
        name="registry", settings=settings, tables=tables, route_handlers=ROUTES
    )
