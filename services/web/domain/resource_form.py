"""A room or an item of equipment as the venue manager fills in its form: name, type, capacity,
features and the booking rules the registry keeps, read into the body the registry takes.
Ranges and contradictions (a minimum above the maximum) are the registry's to refuse; its words
come back beside the fields."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from services.web.clients import ResourceDetail
from services.web.domain.fields import whole_number

TYPES: Final = ("room", "equipment")
RULES: Final = (
    "min_minutes",
    "max_minutes",
    "lead_minutes",
    "horizon_days",
    "buffer_minutes",
    "slot_minutes",
)
LONGEST_NAME: Final = 200


def features_of(text: str) -> list[str]:
    """Features typed as a list: commas (either kind) or new lines between them."""
    for separator in ("\uff0c", "\u3001", "\n"):  # the full-width comma and 、
        text = text.replace(separator, ",")
    return [feature.strip() for feature in text.split(",") if feature.strip()]


def resource_from_form(form: Mapping[str, str]) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The registry's resource body for the form, or the code of what is wrong, per field."""
    errors: dict[str, str] = {}
    text = {key: (value or "").strip() for key, value in form.items()}
    name = text.get("name", "")[:LONGEST_NAME]
    if not name:
        errors["name"] = "required"
    kind = text.get("type", "")
    if kind not in TYPES:
        errors["type"] = "required"
    capacity = None
    if text.get("capacity"):
        capacity = whole_number(text["capacity"])
        if capacity is None:
            errors["capacity"] = "not_a_count"
    rules: dict[str, int] = {}
    for rule in RULES:
        if not text.get(rule):
            continue
        value = whole_number(text[rule])
        if value is None:
            errors[rule] = "not_a_count"
        else:
            rules[rule] = value
    if errors:
        return None, errors
    return {
        "name": name,
        "type": kind,
        "capacity": capacity,
        "features": features_of(text.get("features", "")),
        "requires_approval": text.get("requires_approval") == "true",
        "rules": rules,
        # Empty: a room of its own (null takes it out of a hall); the registry checks the rest.
        "part_of": text.get("part_of") or None,
    }, {}


def form_of(resource: ResourceDetail) -> dict[str, str]:
    """A resource as its edit form shows it."""
    rules = resource.rules
    return {
        "name": resource.name,
        "type": resource.type,
        "capacity": "" if resource.capacity is None else str(resource.capacity),
        "features": ", ".join(resource.features),
        "requires_approval": "true" if resource.requires_approval else "",
        "part_of": resource.part_of or "",
        **{rule: str(getattr(rules, rule)) for rule in RULES},
    }


def halls_for(resource_id: str | None, resources: Iterable[ResourceDetail]) -> list[ResourceDetail]:
    """The rooms of the venue a room may be marked part of: any other room (the registry refuses
    a cycle or a fourth level, in words beside the field)."""
    return sorted(
        (r for r in resources if r.type == "room" and r.id != resource_id), key=lambda r: r.name
    )


def field_of(api_field: str) -> str:
    """The form field an API field path names: `rules.min_minutes` is `min_minutes`."""
    return api_field.removeprefix("rules.")
