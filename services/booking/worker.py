"""The booking service's worker: relays its outbox and keeps its replica of the catalogue current
with the registry's events (`catalogue.sync`)."""

from __future__ import annotations

from services.booking.catalogue import sync
from services.booking.clients import registry_http
from services.booking.metadata import tables
from shared.config import Settings
from shared.worker import WorkerSettings, worker_settings


def create_worker_settings(settings: Settings) -> WorkerSettings:
    handlers = sync.handlers(registry_http(settings))
    return worker_settings("booking", settings, tables=tables, handlers=handlers)
