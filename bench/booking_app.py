"""The booking service's app, built from the environment as `commonroom serve` builds it, for a
server other than the one it ships on: `bench_booking.py --booking-on granian` (or `uvicorn-h11`)
measures the service itself on the other server stacks.
"""

from __future__ import annotations

from litestar import Litestar

from services.booking.app import create_app
from shared.config import Settings
from shared.observability import configure_logging


def create() -> Litestar:
    configure_logging("booking")
    return create_app(Settings.from_env())
