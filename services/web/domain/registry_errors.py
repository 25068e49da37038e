"""The registry's refusals, field by field, as the codes of the words a page shows beside the
field. The registry names a field by its path in the JSON it was sent (`periods[3].end_date`,
`rules.min_minutes`, sometimes behind `$.` or `data.`) and says what is wrong in English; the
page needs the form's field and a message of its own catalogue in the reader's language."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

_LEAD: Final = re.compile(r"^(\$\.|data\.|body\.)")
# What the registry says, by a phrase of its message, to a code of the catalogue.
_PHRASES: Final = (
    ("must not be before", "end_date_before_start"),
    ("needs spans", "spans_required"),
    ("closed period has no spans", "closed_has_spans"),
    ("must not start where it ends", "span_empty"),
    ("must not be empty", "weekdays_required"),
    ("must not repeat", "weekdays_repeated"),
    ("must not exceed max_minutes", "min_over_max"),
    ("another room of the same venue", "hall_elsewhere"),
    ("must name a room, not equipment", "hall_not_room"),
    ("only rooms are divided", "hall_not_room"),
    ("levels deep", "hall_too_deep"),
    ("part of itself or of its own parts", "hall_cycle"),
    ("whole number of slots", "not_whole_slots"),
    (">=", "too_small"),
    ("<=", "too_large"),
    ("length", "too_long"),
)


def code_of(message: str) -> str:
    for phrase, code in _PHRASES:
        if phrase in message:
            return code
    return "invalid_request"


def field_codes(errors: Iterable[Any], *, within: str = "") -> dict[str, str]:
    """Form field → message code, for the errors under `within` (a path such as `periods[2].`,
    taken off the field's name); the first error of a field wins."""
    found: dict[str, str] = {}
    for error in errors:
        field = getattr(error, "field", None)
        message = getattr(error, "message", None)
        if isinstance(error, dict):
            field, message = error.get("field"), error.get("message")
        if not isinstance(field, str):
            continue
        field = _LEAD.sub("", field)
        if within:
            if not field.startswith(within):
                continue
            field = field[len(within) :]
        found.setdefault(field, code_of(str(message or "")))
    return found
