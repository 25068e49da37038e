"""The booking service's app for granian, built from the environment as `commonroom serve`
builds it: for `bench_booking.py --booking-on granian`, which measures the service itself on the
other server stack.
"""

from __future__ import annotations

from litestar import Litestar

from services.booking.app import create_app
from shared.config import Settings
from shared.observability import configure_logging


def create() -> Litestar:
    configure_logging("booking")
    return create_app(Settings.from_env())
