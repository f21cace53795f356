"""Child processes of the local cloud: every one in its own process group, all of them
killed when the local cloud stops, when the interpreter exits (atexit) or on SIGTERM/SIGHUP
(the CLI turns those into SystemExit). No process outlives the local cloud.

Even a SIGKILL of the local cloud (no handler runs): on Linux each child is started with
PR_SET_PDEATHSIG=SIGKILL (set by ``setpriv`` before it execs the command, see _setpriv;
a preexec_fn where there is none), so the kernel kills it when its parent dies. The
"parent" is the thread that forked, so every child is forked by one long-lived spawner
thread (a thread serving a request would end and take its children with it). What a child
itself starts (a model server's workers, say) is not covered by this; those die when the
child's process group is killed in kill().
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import ctypes
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

_lock = threading.Lock()
_children: dict[int, subprocess.Popen[Any]] = {}
#: Every child started (pid = its process group), newest last: what tests check is gone.
_started: collections.deque[int] = collections.deque(maxlen=10_000)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> Any:
    """The preexec_fn that makes the child die when the spawner thread (its parent) dies,
    or None where prctl does not exist. Resolved here, before any fork: the child only
    calls an already-loaded function (what is safe between fork and exec)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody would kill us
            os._exit(1)

    return preexec


def _setpriv() -> list[str] | None:
    """``setpriv --pdeathsig KILL --`` (util-linux, in every Debian and most Linux systems)
    when this machine has it: the child sets its parent-death signal itself and execs the
    command, so no preexec_fn runs in the child, and CPython can start it with vfork instead
    of fork. Measured from a process the local cloud's size (360 MB resident, moto, numpy):
    35-86 ms per spawn with fork + preexec_fn, 0.5-2 ms with setpriv. What it gives up: the
    preexec_fn's check that the parent was still alive at the prctl (a cloud SIGKILLed in
    the ~1 ms between the spawn and setpriv's prctl leaves that one child orphaned)."""
    if not sys.platform.startswith("linux"):
        return None
    import shutil

    path = shutil.which("setpriv")
    if path is None:
        return None
    prefix = [path, "--pdeathsig", "KILL", "--"]
    try:  # an old setpriv without --pdeathsig (before util-linux 2.33) fails here
        probe = subprocess.run([*prefix, "true"], check=False, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return prefix if probe.returncode == 0 else None


class _Spawner:
    """One long-lived daemon thread that forks every child (see the module doc)."""

    def __init__(self) -> None:
        self._requests: queue.Queue[tuple[dict[str, Any], queue.Queue[Any]]] = queue.Queue()
        self._prefix = _setpriv()
        self._preexec = None if self._prefix else _die_with_parent()
        self._pid = os.getpid()
        threading.Thread(target=self._serve, name="procs-spawner", daemon=True).start()

    def _serve(self) -> None:
        while True:
            kwargs, reply = self._requests.get()
            try:
                # preexec_fn is unsafe with threads when it takes locks or allocates; this
                # one only calls prctl (resolved before any fork) and getppid.
                if self._prefix:
                    kwargs["args"] = [*self._prefix, *kwargs["args"]]
                reply.put(subprocess.Popen(**kwargs, preexec_fn=self._preexec))  # noqa: PLW1509
            except BaseException as exc:  # handed to the caller, raised there
                reply.put(exc)

    def popen(self, **kwargs: Any) -> subprocess.Popen[Any]:
        reply: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._requests.put((kwargs, reply))
        result = reply.get()
        if isinstance(result, BaseException):
            raise result
        return result  # type: ignore[no-any-return]


_spawners: dict[int, _Spawner] = {}  # by pid (a forked interpreter starts its own)


def _get_spawner() -> _Spawner:
    with _lock:
        pid = os.getpid()
        if pid not in _spawners:
            _spawners[pid] = _Spawner()
        return _spawners[pid]


def spawn(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: str | Path | None = None,
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
) -> subprocess.Popen[Any]:
    """Start a tracked child in a new session (its own process group) that dies with us."""
    proc = _get_spawner().popen(
        args=list(argv),
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
    kill_many([proc], grace_seconds)


def kill_many(procs: Sequence[subprocess.Popen[Any]], grace_seconds: float = 2.0) -> None:
    """kill() for several children at once: every group gets SIGTERM first, then they share
    one grace period (stopping N servers one after the other took N grace periods)."""
    import time

    with _lock:
        for proc in procs:
            _children.pop(proc.pid, None)
    running = [p for p in procs if p.poll() is None]
    for proc in procs:
        # running: ask it to stop; exited leader: nothing it started may linger in its group
        sig = signal.SIGTERM if proc in running else signal.SIGKILL
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
    deadline = time.monotonic() + grace_seconds
    for proc in running:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
    for proc in running:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    for proc in procs:
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
    kill_many(procs, grace_seconds=1.0)


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
