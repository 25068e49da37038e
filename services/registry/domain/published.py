"""Opening hours as a school publishes them: the JSON document of `PUT .../opening-hours`.

Wall-clock times travel as `HH:MM`; `to_hours` turns the document into the rules `hours.resolve`
works on, after checking what the types alone cannot.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from services.registry.domain.hours import (
    MAX_PERIODS,
    MAX_SPANS,
    OpeningHours,
    Period,
    validate_opening_hours,
)
from shared.time import SpanDoc


class PeriodDoc(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    start_date: date
    end_date: date | None = None
    spans: Annotated[list[SpanDoc], Meta(max_length=MAX_SPANS)] = []
    closed: bool = False


class OpeningHoursDoc(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    periods: Annotated[list[PeriodDoc], Meta(max_length=MAX_PERIODS)]
    public_holidays: Literal["closed", "open"] = "closed"


def to_hours(doc: OpeningHoursDoc) -> OpeningHours:
    """The resolvable rules a published document stands for; refuses contradictions (422)."""
    hours = OpeningHours(
        periods=tuple(
            Period(
                name=period.name,
                start_date=period.start_date,
                end_date=period.end_date,
                spans=tuple(span.to_span() for span in period.spans),
                closed=period.closed,
            )
            for period in doc.periods
        ),
        public_holidays=doc.public_holidays,
    )
    validate_opening_hours(hours)
    return hours
