"""What `commonroom up` starts never outlives it, and its stop is bounded.

The process trees here are built with up's own helpers (`spawn`, `stop_children`, `private_redis`
from services/up.py), with small Python children in place of the services: a child that ignores
SIGTERM, and an arq worker in the middle of a job whose thread cannot be cancelled. No server is
needed; the private Redis is the bundled redis-server, as up starts it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from services.up import private_redis, spawn, stop_children

STOP_DEADLINE = 10.0  # seconds: the promise for Ctrl-C
DEAF = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('deaf', flush=True); time.sleep(60)"
)
# `up` in small: the private Redis and two children (one deaf to SIGTERM), then it waits.
UP_IN_SMALL = f"""
import os, sys, time
from pathlib import Path
from services.up import private_redis, spawn

directory = Path(sys.argv[1])
with private_redis(directory, directory / "redis.log"):
    for name, code in (("sleeper", "import time; time.sleep(60)"), ("deaf", {DEAF!r})):
        spawn([sys.executable, "-c", code], os.environ, directory / f"{{name}}.log")
    (directory / "started").touch()
    time.sleep(60)
"""
# A worker as `commonroom worker` runs one (shared.worker.run), busy with a job whose thread goes
# on after the job is cancelled, as a matching run's solver does.
BUSY_WORKER = """
import asyncio, sys, time
from arq.connections import RedisSettings
from arq.worker import func
from shared.worker import run

async def solve(ctx):
    print("job started", flush=True)
    await asyncio.to_thread(time.sleep, 60)

async def startup(ctx):
    await ctx["redis"].enqueue_job("solve", _queue_name="stop-test")

run({
    "functions": [func(solve, name="solve")],
    "queue_name": "stop-test",
    "redis_settings": RedisSettings.from_dsn(sys.argv[1]),
    "on_startup": startup,
    "poll_delay": 0.1,
})
"""


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None where there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, parent = stat.rsplit(")", 1)[1].split()[:2]
    return state, int(parent)


def alive(pids: Iterable[int]) -> set[int]:
    """Those of `pids` that still run (a zombie has stopped: only its exit status is left)."""
    return {pid for pid in pids if (stat := _stat(pid)) is not None and stat[0] != "Z"}


def children_of(parent: int) -> set[int]:
    pids = (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return {pid for pid in pids if (stat := _stat(pid)) is not None and stat[1] == parent}


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def wait_for(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f}s"
        time.sleep(0.05)


def test_children_and_private_redis_die_with_a_killed_up(tmp_path: Path) -> None:
    up = subprocess.Popen([sys.executable, "-c", UP_IN_SMALL, str(tmp_path)])
    tree: set[int] = set()
    try:
        wait_for(lambda: (tmp_path / "started").exists() or up.poll() is not None, "start")
        assert up.poll() is None, "the small up stopped while starting"
        tree = children_of(up.pid)
        assert len(tree) == 3, [command_line(pid) for pid in tree]
        assert any("redis-server" in command_line(pid) for pid in tree)
        assert alive(tree) == tree

        os.kill(up.pid, signal.SIGKILL)  # no chance to clean up
        up.wait()
        killed = time.monotonic()
        wait_for(lambda: not alive(tree), "end of the children", timeout=5)
        print(f"\nchildren and Redis gone {time.monotonic() - killed:.2f}s after up was killed")
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        for pid in alive(tree):  # only where the test failed: leave nothing behind
            os.kill(pid, signal.SIGKILL)


def test_a_child_ignoring_sigterm_is_gone_within_ten_seconds_of_stop_children(
    tmp_path: Path,
) -> None:
    log = tmp_path / "deaf.log"
    child = spawn([sys.executable, "-c", DEAF], os.environ, log)
    wait_for(lambda: b"deaf" in log.read_bytes(), "SIGTERM ignored")

    started = time.monotonic()
    stop_children([child])
    took = time.monotonic() - started
    print(f"\na child deaf to SIGTERM stopped in {took:.2f}s")

    assert took < STOP_DEADLINE
    assert child.returncode == -signal.SIGKILL
    assert not alive({child.pid})


def test_a_worker_mid_job_stops_by_itself_at_once(tmp_path: Path) -> None:
    """The job's thread runs on after the job is cancelled; the worker does not wait for it."""
    with private_redis(tmp_path, tmp_path / "redis.log") as redis_url:
        log = tmp_path / "worker.log"
        worker = spawn([sys.executable, "-c", BUSY_WORKER, redis_url], os.environ, log)
        try:
            wait_for(lambda: b"job started" in log.read_bytes() or worker.poll() is not None, "job")
            assert worker.poll() is None, log.read_text()
            started = time.monotonic()
            stop_children([worker])
            took = time.monotonic() - started
        finally:
            stop_children([worker], grace=0)
    print(f"\na worker mid-job stopped in {took:.2f}s")

    assert worker.returncode == 0, log.read_text()  # it stopped itself: no SIGKILL was needed
    assert took < 3.0
