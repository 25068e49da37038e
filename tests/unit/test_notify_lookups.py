"""Notify's look-ups of readers under load: asks made while one fetch is out go together in the
next, so many event handlers at once cost identity one request, not one each; and what was found
is answered again, for a short while, without asking."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services.notify.clients import Gathered


class Names:
    """A fetch that answers each key but "nobody" with its name, once let go."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []
        self.go = asyncio.Event()
        self.failure: Exception | None = None

    async def __call__(self, keys: Sequence[str]) -> dict[str, str]:
        self.asked.append(sorted(keys))
        await self.go.wait()
        if self.failure is not None:
            raise self.failure
        return {key: key.upper() for key in keys if key != "nobody"}


async def settled() -> None:
    """Every task that can run has run as far as it can."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_asks_made_while_a_fetch_is_out_go_together_in_the_next() -> None:
    names = Names()
    gathered = Gathered(names)
    first = asyncio.create_task(gathered.get(["a"]))
    await settled()  # its fetch is out, alone: an ask never waits for company
    assert names.asked == [["a"]]
    later = [
        asyncio.create_task(gathered.get(keys)) for keys in (["b", "c"], ["c", "nobody"], ["a"])
    ]
    await settled()
    names.go.set()
    assert await first == {"a": "A"}
    # Each asker has what it asked for, and no more; a key found nothing for is left out.
    assert await asyncio.gather(*later) == [{"b": "B", "c": "C"}, {"c": "C"}, {"a": "A"}]
    assert names.asked == [["a"], ["a", "b", "c", "nobody"]]


async def test_a_failed_fetch_reaches_each_of_its_askers_and_the_next_ask_fetches_anew() -> None:
    names = Names()
    gathered = Gathered(names)
    names.failure = ConnectionError("identity is away")
    names.go.set()
    asks = [asyncio.create_task(gathered.get([key])) for key in ("a", "b")]
    for ask in asks:
        with pytest.raises(ConnectionError):
            await ask
    names.failure = None
    assert await gathered.get(["b"]) == {"b": "B"}


async def test_a_cancelled_asker_leaves_the_others_their_answer() -> None:
    names = Names()
    gathered = Gathered(names)
    leaving = asyncio.create_task(gathered.get(["a"]))
    staying = asyncio.create_task(gathered.get(["a", "b"]))
    await settled()
    leaving.cancel()
    names.go.set()
    assert await staying == {"a": "A", "b": "B"}
    assert leaving.cancelled()


async def test_what_was_found_is_answered_again_while_fresh_and_asked_anew_after() -> None:
    names = Names()
    names.go.set()
    gathered = Gathered(names, fresh_seconds=0.2)
    assert await gathered.get(["a", "nobody"]) == {"a": "A"}
    # Fresh: "a" is answered without asking; only what was not found, or never asked, is asked.
    assert await gathered.get(["a", "b", "nobody"]) == {"a": "A", "b": "B"}
    assert await gathered.get(["b", "a"]) == {"a": "A", "b": "B"}
    assert names.asked == [["a", "nobody"], ["b", "nobody"]]
    await asyncio.sleep(0.25)
    assert await gathered.get(["a"]) == {"a": "A"}
    assert names.asked[-1] == ["a"]
