"""Identity, as notify asks it who people are: in bulk, one call per event and kind of reader,
never one per message; and under load one call for the readers of many events at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Final, Generic, TypeVar

from shared.config import Settings
from shared.contracts import Person
from shared.http import ServiceClient
from shared.ids import is_uuid

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# How long identity's answer about a reader (its address, language, a venue's managers) is used
# again without asking: a venue's managers hear of each of its requests, and a burst of events
# names the same few people over and over. A change at identity reaches mail within this time,
# as a revoked token reaches every service within seconds.
READERS_FRESH_SECONDS: Final = 10.0


class Directory:
    """Identity's users, read with notify's own service token. The worker runs several event
    handlers at once: what they ask while a request is out goes together in the next one, and
    an answer is used again for READERS_FRESH_SECONDS."""

    def __init__(self, settings: Settings) -> None:
        self.http = ServiceClient(caller="notify", target="identity", settings=settings)
        self._users: Gathered[str, Person] = Gathered(self._users_by_id, READERS_FRESH_SECONDS)
        self._members: Gathered[tuple[str, str], list[Person]] = Gathered(
            self._members_of, READERS_FRESH_SECONDS
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def by_ids(self, ids: Sequence[str]) -> dict[str, Person]:
        """The users of `ids` that exist; a `sub` that is no user's (a service's) is none."""
        wanted = {user_id for user_id in ids if is_uuid(user_id)}
        if not wanted:
            return {}
        return await self._users.get(wanted)

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
        return (await self._members.get([(org, role)]))[org, role]

    async def _users_by_id(self, ids: Sequence[str]) -> dict[str, Person]:
        people = await self.http.every_of("/v1/users", Person, name="id", ids=sorted(ids))
        return {person.id: person for person in people}

    async def _members_of(
        self, groups: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], list[Person]]:
        # Identity filters by one org at a time: one request per org and role, all at once.
        found = await asyncio.gather(
            *(self.http.every("/v1/users", Person, org=org, role=role) for org, role in groups)
        )
        return dict(zip(groups, found, strict=True))


class Gathered(Generic[K, V]):
    """Look-ups by key where what is asked while one fetch is out goes together in the next
    (alone an ask goes at once; under load one fetch answers many askers, each key once), and
    what a fetch found is answered again for `fresh_seconds` without asking."""

    def __init__(
        self, fetch: Callable[[Sequence[K]], Awaitable[dict[K, V]]], fresh_seconds: float = 0.0
    ) -> None:
        self._fetch = fetch
        self._fresh_seconds = fresh_seconds
        self._found: dict[K, tuple[float, V]] = {}
        self._waiting: list[tuple[set[K], asyncio.Future[dict[K, V]]]] = []
        self._fetching: asyncio.Task[None] | None = None

    async def get(self, keys: Iterable[K]) -> dict[K, V]:
        """What the fetch found of `keys` (a key it found nothing for is left out)."""
        loop = asyncio.get_running_loop()
        wanted = set(keys)
        now = loop.time()
        known: dict[K, V] = {}
        for key in wanted:
            found = self._found.get(key)
            if found is not None and now - found[0] < self._fresh_seconds:
                known[key] = found[1]
        missing = wanted - known.keys()
        if not missing:
            return known
        answer: asyncio.Future[dict[K, V]] = loop.create_future()
        self._waiting.append((missing, answer))
        if self._fetching is None or self._fetching.done():
            self._fetching = asyncio.create_task(self._fetch_waiting())
        return {**known, **await answer}

    async def _fetch_waiting(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            waiting, self._waiting = self._waiting, []
            wanted = list(set().union(*(keys for keys, _ in waiting)))
            try:
                found = await self._fetch(wanted)
            except Exception as exc:  # each asker hears of it, as of a request of its own
                for _, answer in waiting:
                    if not answer.done():
                        answer.set_exception(exc)
                continue
            if self._fresh_seconds:
                fetched_at = loop.time()
                # Only a burst's worth is kept: what is no longer fresh goes at each fetch.
                self._found = {
                    key: entry
                    for key, entry in self._found.items()
                    if fetched_at - entry[0] < self._fresh_seconds
                }
                self._found.update((key, (fetched_at, value)) for key, value in found.items())
            for keys, answer in waiting:
                if not answer.done():  # its asker may have been cancelled meanwhile
                    answer.set_result({key: found[key] for key in keys if key in found})
