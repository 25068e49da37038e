"""The room search as a person fills it in, checked and turned into the APIs' parameters.

Times are typed as a date and `HH:MM` wall-clock times; they are read in the city's zone
(`Asia/Shanghai`, every venue's default), since one search spans many venues.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

import msgspec

from services.web.domain.fields import whole_number

CITY_ZONE: Final = ZoneInfo("Asia/Shanghai")
TYPES: Final = ("room", "equipment")
LONGEST_QUERY: Final = 200


class RoomQuery(msgspec.Struct, frozen=True):
    q: str = ""
    area_id: str = ""
    type: str = ""
    min_capacity: int | None = None
    feature: str = ""
    day: date | None = None
    start: datetime | None = None
    end: datetime | None = None
    minutes: int = 60

    def resource_params(self) -> dict[str, object]:
        """The filters registry's and booking's searches both take."""
        params: dict[str, object] = {}
        if self.area_id:
            params["area_id"] = self.area_id
        if self.type:
            params["type"] = self.type
        if self.min_capacity is not None:
            params["min_capacity"] = self.min_capacity
        if self.feature:
            params["feature"] = self.feature
        return params


def room_query(form: dict[str, str]) -> tuple[RoomQuery, dict[str, str]]:
    """The query, and for each field that is wrong the code of what is wrong with it."""
    errors: dict[str, str] = {}
    text = {key: (form.get(key) or "").strip()[:LONGEST_QUERY] for key in form}
    kind = text.get("type", "")
    if kind and kind not in TYPES:
        errors["type"] = "invalid_request"
    capacity = None
    if text.get("min_capacity"):
        capacity = whole_number(text["min_capacity"], low=0, high=100_000)
        if capacity is None:
            errors["min_capacity"] = "not_a_count"
    minutes = 60
    if text.get("minutes"):
        minutes = whole_number(text["minutes"], low=15, high=24 * 60) or 0
        if not minutes:
            errors["minutes"] = "not_minutes"
    day = start = end = None
    if text.get("date"):
        try:
            day = date.fromisoformat(text["date"])
        except ValueError:
            errors["date"] = "not_a_date"
    if day is not None:
        start, end = _span(day, text.get("from", ""), text.get("to", ""), errors)
    elif text.get("from") or text.get("to"):
        errors["date"] = "date_for_times"
    query = RoomQuery(
        q=text.get("q", ""),
        area_id=text.get("area_id", ""),
        type=kind if kind in TYPES else "",
        min_capacity=capacity,
        feature=text.get("feature", ""),
        day=day,
        start=start,
        end=end,
        minutes=minutes or 60,
    )
    return query, errors


def _span(
    day: date, start_text: str, end_text: str, errors: dict[str, str]
) -> tuple[datetime | None, datetime | None]:
    """The instants a date and two wall-clock times name; the whole day where no time is."""
    try:
        opens = time.fromisoformat(start_text) if start_text else time(0)
    except ValueError:
        errors["from"] = "not_a_time"
        return None, None
    try:
        closes = time.fromisoformat(end_text) if end_text else None
    except ValueError:
        errors["to"] = "not_a_time"
        return None, None
    start = datetime.combine(day, opens, CITY_ZONE)
    end = (
        datetime.combine(day, closes, CITY_ZONE)
        if closes is not None
        else datetime.combine(day + timedelta(days=1), time(0), CITY_ZONE)
    )
    if end <= start:
        errors["to"] = "end_before_start"
        return None, None
    return start, end
