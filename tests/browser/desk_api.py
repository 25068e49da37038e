"""The suite's own APIs, for what the venue manager's browser tests set up around the pages:
a venue of their own (so the demo city's venues stay as other tests expect them), its hours,
bookings waiting for approval. The addresses and the venue manager's token are the ones
`commonroom up --demo` printed, read from its output."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx

_URL = re.compile(r"^\s+(registry|booking|lecturers|identity)\s+(http://\S+)", re.MULTILINE)
_TOKEN = re.compile(r"^\s+(venue_manager|office)\s+(\S+)\s+\(org (\S+)\)$", re.MULTILINE)


@dataclass
class DeskApi:
    urls: dict[str, str]
    tokens: dict[str, tuple[str, str]]  # role → (token, org)

    @classmethod
    def from_up_output(cls, output: Path) -> DeskApi:
        text = output.read_text()
        urls = dict(_URL.findall(text))
        tokens = {role: (token, org) for role, token, org in _TOKEN.findall(text)}
        return cls(urls=urls, tokens=tokens)

    def call(
        self, method: str, service: str, path: str, *, role: str = "venue_manager", **kwargs: Any
    ) -> Any:
        token = self.tokens[role][0]
        response = httpx.request(
            method,
            self.urls[service] + path,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            **kwargs,
        )
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def org(self, role: str = "venue_manager") -> str:
        return self.tokens[role][1]

    def new_venue(self, name: str) -> dict[str, Any]:
        """A school of the venue manager's own organisation, with no hours yet."""
        area = self.call("GET", "registry", "/v1/areas", params={"limit": 1})["items"][0]
        venue: dict[str, Any] = self.call(
            "POST",
            "registry",
            "/v1/venues",
            json={"name": name, "kind": "school", "area_id": area["id"], "owner_org": self.org()},
        )
        return venue

    def term(self, venue_id: str, first: str, last: str) -> None:
        """Open every day of [first, last] from 08:00 to 22:00."""
        self.call(
            "PUT",
            "registry",
            f"/v1/venues/{venue_id}/opening-hours",
            json={
                "periods": [
                    {
                        "name": "term",
                        "start_date": first,
                        "end_date": last,
                        "spans": [
                            {"weekdays": [1, 2, 3, 4, 5, 6, 7], "start": "08:00", "end": "22:00"}
                        ],
                    }
                ]
            },
        )

    def book(self, resource_id: str, start: datetime, purpose: str) -> dict[str, Any]:
        booked: dict[str, Any] = self.call(
            "POST",
            "booking",
            "/v1/bookings",
            json={
                "resource_ids": [resource_id],
                "start": start.isoformat(),
                "end": (start + timedelta(hours=1)).isoformat(),
                "purpose": purpose,
                "programme": "citizen",
                "attendees": 12,
            },
        )
        return booked

    def booking(self, booking_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.call("GET", "booking", f"/v1/bookings/{booking_id}")
        return found

    def other_orgs_venue(self) -> dict[str, Any]:
        venues = self.call("GET", "registry", "/v1/venues", params={"limit": 500})["items"]
        return next(v for v in venues if v["owner_org"] != self.org())


def unique(label: str) -> str:
    return f"{label} {uuid4().hex[:6]}"
