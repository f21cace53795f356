"""Child processes of the local cloud: every one in its own process group, all of them
killed when the local cloud stops, when the interpreter exits (atexit) or on SIGTERM/SIGHUP
(the CLI turns those into SystemExit). No process outlives the local cloud.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

_lock = threading.Lock()
_children: dict[int, subprocess.Popen[Any]] = {}
#: Every child started (pid = its process group), newest last: what tests check is gone.
_started: collections.deque[int] = collections.deque(maxlen=10_000)


def spawn(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: str | Path | None = None,
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
) -> subprocess.Popen[Any]:
    """Start a tracked child in a new session (its own process group)."""
    proc = subprocess.Popen(
        list(argv),
        env=env,
        cwd=cwd,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )
    with _lock:
        _children[proc.pid] = proc
        _started.append(proc.pid)
    return proc


def kill(proc: subprocess.Popen[Any], grace_seconds: float = 2.0) -> None:
    """SIGTERM the child's process group, then SIGKILL it if it has not gone."""
    with _lock:
        _children.pop(proc.pid, None)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    else:
        # the leader exited; make sure nothing it started lingers in its group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def forget(proc: subprocess.Popen[Any]) -> None:
    """Stop tracking a child that has exited on its own."""
    with _lock:
        _children.pop(proc.pid, None)


def kill_all() -> None:
    with _lock:
        procs = list(_children.values())
    for proc in procs:
        kill(proc, grace_seconds=1.0)


def started() -> list[int]:
    """The pids (= process group ids) of the children started so far."""
    with _lock:
        return list(_started)


def group_alive(pgid: int) -> bool:
    """Whether any process is left in the process group `pgid` (zombies excepted)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields after "(comm)": state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def live_count() -> int:
    with _lock:
        return sum(1 for p in _children.values() if p.poll() is None)


atexit.register(kill_all)


def _raise_system_exit(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP -> SystemExit, so context managers and atexit clean up children.
    (SIGINT already raises KeyboardInterrupt.) Only possible from the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_system_exit)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on the port. SO_REUSEADDR as the servers themselves bind
    (werkzeug's, like http.server's, sets allow_reuse_address): without it the probe fails
    for the ~60 s (TCP TIME_WAIT) that a stopped server's closed connections linger, and a
    restart on the same port was refused although nothing listened any more."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
        return False
