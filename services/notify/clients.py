"""Identity, as notify asks it who people are: in bulk, one call per event and kind of reader,
never one per message."""

from __future__ import annotations

from collections.abc import Sequence

from shared.config import Settings
from shared.contracts import Person
from shared.http import ServiceClient
from shared.ids import is_uuid


class Directory:
    """Identity's users, read with notify's own service token."""

    def __init__(self, settings: Settings) -> None:
        self.http = ServiceClient(caller="notify", target="identity", settings=settings)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def by_ids(self, ids: Sequence[str]) -> dict[str, Person]:
        """The users of `ids` that exist; a `sub` that is no user's (a service's) is none."""
        wanted = sorted({user_id for user_id in ids if is_uuid(user_id)})
        if not wanted:
            return {}
        people = await self.http.every_of("/v1/users", Person, name="id", ids=wanted)
        return {person.id: person for person in people}

    async def lecturers(self, lecturer_ids: Sequence[str]) -> dict[str, Person]:
        """By lecturer id, the user holding that lecturer's membership, for those with an
        account; an active one before a disabled one."""
        wanted = set(lecturer_ids)
        if not wanted:
            return {}
        people = await self.http.every_of(
            "/v1/users", Person, name="lecturer_id", ids=sorted(wanted)
        )
        found: dict[str, Person] = {}
        for person in sorted(people, key=lambda person: not person.disabled):
            for membership in person.memberships:
                if membership.lecturer_id in wanted:
                    found.setdefault(membership.lecturer_id, person)
        return found

    async def members(self, org: str, role: str) -> list[Person]:
        """The users holding `role` in `org` (a venue's managers)."""
        if not org:
            return []
        return await self.http.every("/v1/users", Person, org=org, role=role)
