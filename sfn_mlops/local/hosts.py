"""Multi-host SageMaker jobs on one machine: one process per host, networking over loopback.

A job with ``InstanceCount`` N runs N container processes, hosts ``algo-1`` .. ``algo-N``,
each with its own ``/opt/ml`` tree and its own ``resourceconfig.json`` (``current_host``,
``hosts``), as SageMaker gives every instance. The host names resolve to 127.0.0.1 through
the container's ``SFN_HOST_ADDRESSES`` override (:mod:`sfn_container.distributed`; on
SageMaker the cluster's DNS resolves them), and ``SFN_TRACKER_PORT`` is a free loopback
port per job, so XGBoost's collective really runs across N processes. ``SM_NUM_CPUS``
shares this machine's cores among the hosts (SageMaker's instances each have their own).

``ShardedByS3Key``: SageMaker gives each instance "approximately 1/N of the objects" and
documents no order. Here host i gets the i-th contiguous run of the keys in sorted order
(:func:`shard_keys`), so a split part's CSV and its binary copy, which sort next to each
other, usually land on the same host (the container parses the CSV when they do not).
"""

from __future__ import annotations

import json
import os
import select
import time
from collections.abc import Callable, Sequence
from typing import Any

from sfn_mlops.local import procs

SHARDED = "ShardedByS3Key"


def host_names(count: int) -> list[str]:
    return [f"algo-{i + 1}" for i in range(max(count, 1))]


def shard_keys(keys: Sequence[str], count: int, index: int) -> list[str]:
    """Host `index`'s share of `keys` (of `count` hosts): a contiguous run of the sorted
    keys, sizes differing by at most one (like numpy.array_split)."""
    ordered = sorted(keys)
    size, extra = divmod(len(ordered), count)
    start = index * size + min(index, extra)
    return ordered[start : start + size + (1 if index < extra else 0)]


def resource_config(host: str, hosts: Sequence[str]) -> dict[str, Any]:
    return {"current_host": host, "hosts": list(hosts), "network_interface_name": "lo"}


def host_env(host: str, hosts: Sequence[str], tracker_port: int) -> dict[str, str]:
    """What every host's container sees about the cluster (SageMaker's SM_* variables plus
    the loopback overrides)."""
    cpus = max(1, (os.cpu_count() or 1) // len(hosts))
    env = {
        "SM_CURRENT_HOST": host,
        "SM_HOSTS": json.dumps(list(hosts)),
        "SM_NUM_CPUS": str(cpus),
    }
    if len(hosts) > 1:
        env["SFN_HOST_ADDRESSES"] = json.dumps(dict.fromkeys(hosts, "127.0.0.1"))
        env["SFN_TRACKER_PORT"] = str(tracker_port)
    return env


class _ExitWatch:
    """Sleep until a process exits or `seconds` pass: a pidfd per process (Linux 5.3+)
    becomes readable when it exits, so a job's end is seen at once rather than up to one
    50 ms poll later (25 ms on average, per job, on the pipeline's critical path). Where
    there is no pidfd it is a plain sleep."""

    def __init__(self, processes: Sequence[Any]) -> None:
        self.fds: dict[int, Any] = {}
        for p in processes:
            try:
                self.fds[os.pidfd_open(p.pid)] = p
            except (AttributeError, OSError):  # no pidfd here, or already exited and reaped
                continue

    def wait(self, seconds: float) -> None:
        for fd, p in list(self.fds.items()):  # an exited one stays readable: watch no more
            if p.returncode is not None:
                del self.fds[fd]
                os.close(fd)
        if not self.fds:
            time.sleep(seconds)
            return
        select.select(list(self.fds), [], [], seconds)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()


def wait_all(
    processes: Sequence[Any],
    timeout: float,
    stopped: Callable[[], bool],
    on_tick: Callable[[], None] | None = None,
    tick_seconds: float = 1.0,
) -> tuple[list[int], bool]:
    """Wait for every host process. A host that fails ends the job (SageMaker stops the
    other instances), so the rest are killed; so are all when `stopped()` turns true or
    `timeout` passes. `on_tick` runs every `tick_seconds` and once at the end. Returns the
    exit codes and whether the timeout ended it."""
    deadline = time.monotonic() + timeout
    next_tick = time.monotonic() + tick_seconds
    timed_out = False
    exits = _ExitWatch(processes)
    try:
        while True:
            if on_tick is not None and time.monotonic() >= next_tick:
                on_tick()
                next_tick = time.monotonic() + tick_seconds
            codes = [p.poll() for p in processes]
            if all(c is not None for c in codes):
                break
            if any(c not in (None, 0) for c in codes) or stopped():
                break
            if time.monotonic() >= deadline:
                timed_out = True
                break
            exits.wait(0.05)
    finally:
        exits.close()
    for p in processes:
        if p.poll() is None:
            procs.kill(p)
        else:
            procs.forget(p)
    if on_tick is not None:
        on_tick()
    return [int(p.returncode if p.returncode is not None else -9) for p in processes], timed_out
