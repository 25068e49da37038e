"""Every page of the web service, signed in as each role, with the demo city loaded.

Starts `commonroom up --demo` in a fresh var directory (SQLite everywhere, the embedded default;
Redis from `--redis`), signs in with each account it prints, and asks each page of that role
`--rounds` times over one keep-alive connection, after a few unmeasured asks. A busy room is made
first: the room of the community manager's first search result booked wall to wall, two hours at
a time, next week, whose week grid is then timed as well.

Times are measured at the client on loopback, so an upper bound of the server's own. Targets
(issue 15): every page under 150 ms at the median, the busy room's week grid under 200 ms.
A page this build lacks answers 404 and is listed as such, not timed.

    .venv/bin/python bench/bench_web.py [--rounds 50] [--redis redis://127.0.0.1:6379/14]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from shared.processes import free_port

SHANGHAI = ZoneInfo("Asia/Shanghai")
UP_TIMEOUT_SECONDS = 120
WARM_ASKS = 3
_ACCOUNT = re.compile(r"^\s+(\S+@\S+)\s+(\S+)\s+\((\w+), org (\S+)\)$")
_OFFICE_TOKEN = re.compile(r"^\s+office\s+(\S+)\s+\(org ")
_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')
_ROOM_LINK = re.compile(r'href="/rooms/([0-9a-f-]{36})')

# API.md § Web: the pages each role opens (a venue's pages are filled in with its first venue).
PAGES = {
    "community_manager": ["/", "/me", "/rooms", "/rooms?type=room", "/bookings"],
    "venue_manager": [
        "/",
        "/rooms",
        "/bookings",
        "/approvals",
        "/venues/{venue}/hours",
        "/venues/{venue}/resources",
        "/requests",
        "/reports",
        "/users",
    ],
    "lecturer": ["/", "/offers"],
    "office": ["/", "/reports", "/lecturers", "/runs", "/users", "/requests", "/approvals"],
}


def next_monday() -> date:
    today = datetime.now(SHANGHAI).date()
    return today + timedelta(days=7 - today.weekday())


def signed_in(web_url: str, email: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=web_url, follow_redirects=False, timeout=30)
    form = client.get("/login")
    token = _CSRF.search(form.text)
    assert token is not None, "the login form carries no CSRF token"
    answer = client.post(
        "/login",
        data={"email": email, "password": password, "_csrf_token": token.group(1)},
        headers={"x-csrftoken": token.group(1)},
    )
    assert answer.status_code == 303, f"sign-in as {email} answered {answer.status_code}"
    return client


def timed(client: httpx.Client, path: str, rounds: int) -> tuple[int, list[float]]:
    status = 0
    for _ in range(WARM_ASKS):
        status = client.get(path).status_code
    if status != 200:
        return status, []
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        answer = client.get(path)
        samples.append((time.perf_counter() - began) * 1000)
        assert answer.status_code == 200, f"{path} answered {answer.status_code}"
    return 200, samples


def busy_week(booking_url: str, office_token: str, room: str) -> int:
    """Book the room two hours at a time through next week, as far as its hours allow."""
    made = 0
    monday = datetime.combine(next_monday(), datetime.min.time(), tzinfo=SHANGHAI)
    with httpx.Client(
        base_url=booking_url, headers={"Authorization": f"Bearer {office_token}"}
    ) as api:
        for day in range(7):
            for hour in range(8, 22, 2):
                start = monday + timedelta(days=day, hours=hour)
                body = {
                    "resource_ids": [room],
                    "start": start.isoformat(),
                    "end": (start + timedelta(hours=2)).isoformat(),
                    "purpose": "排练",
                }
                made += api.post("/v1/bookings", json=body).status_code == 201
    return made


def measure(output: str, urls: dict[str, str], rounds: int) -> None:
    accounts = {}
    office_token = ""
    for line in output.splitlines():
        if found := _ACCOUNT.match(line):
            email, password, role, _ = found.groups()
            accounts[role] = (email, password)
        elif found := _OFFICE_TOKEN.match(line):
            office_token = found.group(1)
    rows: list[tuple[str, str, str]] = []
    for role, paths in PAGES.items():
        client = signed_in(urls["web"], *accounts[role])
        venue = _first_venue(client)
        for pattern in paths:
            path = pattern.format(venue=venue)
            status, samples = timed(client, path, rounds)
            rows.append((role, path, _figure(status, samples, 150)))
        if role == "community_manager":
            room = _ROOM_LINK.search(client.get("/rooms?type=room").text)
            assert room is not None, "the room search found no room"
            booked = busy_week(urls["booking"], office_token, room.group(1))
            path = f"/rooms/{room.group(1)}?week={next_monday().isoformat()}"
            status, samples = timed(client, path, rounds)
            rows.append((role, f"{path} ({booked} bookings)", _figure(status, samples, 200)))
            path = f"/bookings/new?resource_id={room.group(1)}"
            rows.append((role, path, _figure(*timed(client, path, rounds), 150)))
        client.close()
    print(f"| role | page | median (p90) of {rounds} |")
    print("| --- | --- | --- |")
    for role, path, figure in rows:
        print(f"| {role} | `{path}` | {figure} |")


def _first_venue(client: httpx.Client) -> str:
    """The first venue the role's venue list links to (its own, for a venue manager), else none."""
    found = re.search(r'href="/venues/([0-9a-f-]{36})/', client.get("/venues").text)
    return found.group(1) if found else "-"


def _figure(status: int, samples: list[float], target: float) -> str:
    if status != 200:
        return f"answered {status}"
    median = statistics.median(samples)
    p90 = statistics.quantiles(samples, n=10)[8]
    verdict = "PASS" if median < target else "FAIL"
    return f"{median:.1f} ms ({p90:.1f}) {verdict} < {target:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        urls = {
            service: f"http://127.0.0.1:{free_port()}"
            for service in ("web", "registry", "booking", "lecturers", "identity", "notify")
        }
        env = {
            **os.environ,
            "REDIS_URL": args.redis,
            "COMMONROOM_VAR_DIR": str(Path(scratch) / "var"),
            **{f"{service.upper()}_URL": url for service, url in urls.items()},
        }
        log = Path(scratch) / "up.out"
        with log.open("wb") as out:
            up = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "up", "--demo"],
                cwd=scratch,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + UP_TIMEOUT_SECONDS
            while "Ctrl-C stops everything" not in log.read_text():
                if up.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"commonroom up did not come up:\n{log.read_text()}")
                time.sleep(0.5)
            measure(log.read_text(), urls, args.rounds)
        finally:
            up.send_signal(signal.SIGINT)
            try:
                up.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
