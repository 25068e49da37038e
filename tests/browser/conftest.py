"""The suite as `commonroom up --demo` starts it (its SQLite files in a fresh var directory, Redis
from TEST_REDIS_URL), driven by Debian's Chromium through Playwright. Never `playwright install`:
the browser is the machine's (`.ci/run` and `make install` install it)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1.min.js"
SCREENSHOTS = ROOT / "var" / "screenshots"
UP_TIMEOUT_SECONDS = 120
# Access tokens are used this long by the web before it refreshes them: refreshes happen in
# every test, and two tabs refreshing at once are easy to make.
TOKEN_SECONDS = 3
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVICES = ("web", "registry", "booking", "lecturers", "identity", "notify")
_ACCOUNT = re.compile(r"^\s+(\S+@\S+)\s+(\S+)\s+\((\w+), org (\S+)\)$")


@dataclass(frozen=True)
class Account:
    email: str
    password: str
    role: str
    org: str


@dataclass(frozen=True)
class RunningSuite:
    web_url: str
    accounts: dict[str, Account]
    # Each service's base URL, for tests that set up through an API what no page makes.
    service_urls: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")
def running(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSuite]:
    redis.Redis.from_url(redis_url).flushdb()
    where = tmp_path_factory.mktemp("up")
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "COMMONROOM_VAR_DIR": str(where / "var"),
        "COMMONROOM_WEB_TOKEN_SECONDS": str(TOKEN_SECONDS),
    }
    for service in SERVICES:
        env[f"{service.upper()}_URL"] = f"http://127.0.0.1:{free_port()}"
    output = where / "up.out"
    with output.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up", "--demo"],
            cwd=where,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + UP_TIMEOUT_SECONDS
        while "Ctrl-C stops everything" not in output.read_text():
            if up.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"commonroom up did not come up:\n{output.read_text()}")
            time.sleep(0.5)
        text = output.read_text()
        accounts = {}
        for line in text.splitlines():
            if found := _ACCOUNT.match(line):
                email, password, role, org = found.groups()
                accounts[role] = Account(email, password, role, org)
        urls = {service: env[f"{service.upper()}_URL"] for service in SERVICES}
        yield RunningSuite(web_url=env["WEB_URL"], accounts=accounts, service_urls=urls)
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("no `chromium` on PATH: `make install` (or .ci/run) installs Debian's")
    launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
    yield launched
    launched.close()


@pytest.fixture
def context(browser: Browser, running: RunningSuite) -> Iterator[BrowserContext]:
    made = browser.new_context(base_url=running.web_url, viewport={"width": 1280, "height": 900})
    yield made
    made.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def sign_in(page: Page, account: Account, *, at: str = "/login") -> None:
    page.goto(at)
    page.get_by_label(re.compile("电子邮箱|E-mail address")).fill(account.email)
    page.get_by_label(re.compile("^(密码|Password)$")).fill(account.password)
    page.locator("main form button[type=submit]").first.click()
    page.wait_for_load_state()


def next_monday() -> date:
    """Monday of next week in the city's zone: inside every demo venue's term, never today."""
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    return today + timedelta(days=7 - today.weekday())


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def axe_violations(page: Page) -> list[dict[str, object]]:
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, object]] = page.evaluate(
        """async () => (await axe.run(document, {runOnly: {type: "tag",
            values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}})).violations
            .map(v => ({id: v.id, help: v.help, nodes: v.nodes.map(n => n.html)}))"""
    )
    return found
