"""The booking service's worker: relays its outbox and keeps its replica of the catalogue current
with the registry's events (`catalogue.sync`)."""

from __future__ import annotations

from services.booking.catalogue.sync import (
    RESOURCE_EVENTS,
    VENUE_EVENTS,
    catalogue_changed,
    hours_changed,
)
from services.booking.clients import registry_http
from services.booking.metadata import tables
from shared.config import Settings
from shared.outbox import EventHandler
from shared.worker import WorkerSettings, worker_settings


def create_worker_settings(settings: Settings) -> WorkerSettings:
    registry = registry_http(settings)
    handlers: dict[str, EventHandler] = dict.fromkeys(
        (*VENUE_EVENTS, *RESOURCE_EVENTS), catalogue_changed(registry)
    )
    handlers["opening_hours.changed"] = hours_changed(registry)
    return worker_settings("booking", settings, tables=tables, handlers=handlers)
