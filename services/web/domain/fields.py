"""What people type into a form's fields, read as plain values."""

from __future__ import annotations


def whole_number(text: str, *, low: int | None = None, high: int | None = None) -> int | None:
    """`text` as a whole number within [low, high] where they are given; None otherwise."""
    try:
        value = int(text)
    except ValueError:
        return None
    if (low is not None and value < low) or (high is not None and value > high):
        return None
    return value
