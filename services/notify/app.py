"""Notify's Litestar app: the delivery log. The mail itself is the worker's."""

from __future__ import annotations

from litestar import Litestar

from services.notify.api import ROUTES
from services.notify.store import tables
from shared.config import Settings
from shared.web import create_service_app


def create_app(settings: Settings) -> Litestar:
    return create_service_app(
        name="notify", settings=settings, tables=tables, route_handlers=ROUTES
    )
