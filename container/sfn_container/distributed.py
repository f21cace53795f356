"""Multi-host jobs: which hosts take part, how they reach each other, and XGBoost's collective.

SageMaker tells every host of a job who it is and who the others are in
``resourceconfig.json`` (training: ``$OPT_ML/input/config/resourceconfig.json``;
processing: ``$OPT_ML/config/resourceconfig.json``)::

    {"current_host": "algo-2", "hosts": ["algo-1", "algo-2"], "network_interface_name": "eth0"}

No file, or one host, is a single-host job and everything runs as before.

Reaching the other hosts: on SageMaker the host names (``algo-1``, ...) resolve through the
cluster's DNS. A job whose hosts are processes on one machine (the local cloud) maps the
names to addresses with the environment variable ``SFN_HOST_ADDRESSES``, a JSON object
(``{"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"}``); a host it names is never looked up
in DNS. The tracker's port is ``SFN_TRACKER_PORT`` (default 9099: SageMaker's training
cluster allows any traffic between its instances; the local cloud picks a free port per job
so two jobs on one machine do not collide).

Distributed training uses XGBoost's own collective (Rabit): the first host of ``hosts``
runs the tracker (:class:`xgboost.tracker.RabitTracker`), every host (the first one too)
runs a worker inside :class:`xgboost.collective.CommunicatorContext`. Ranks follow the
order of ``hosts`` (task ids are the zero-padded host index and the tracker sorts by task),
so rank 0 is the first host. Workers started before the tracker retry the connection.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfn_container.errors import ConfigError

HOST_ADDRESSES_ENV = "SFN_HOST_ADDRESSES"
TRACKER_PORT_ENV = "SFN_TRACKER_PORT"
TRACKER_TIMEOUT_ENV = "SFN_TRACKER_TIMEOUT"
DEFAULT_TRACKER_PORT = 9099
#: How long the tracker waits for every worker to join (and the workers for each other). It
#: must cover the other hosts' start-up: they boot and download their data in parallel.
DEFAULT_TRACKER_TIMEOUT = 900
#: Connection retries of a worker that started before the tracker (about 2 s apart).
WORKER_RETRIES = 60


@dataclass(frozen=True)
class Cluster:
    current_host: str = "algo-1"
    hosts: tuple[str, ...] = ("algo-1",)
    addresses: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ConfigError("resourceconfig.json: 'hosts' is empty")
        if len(set(self.hosts)) != len(self.hosts):
            raise ConfigError(f"resourceconfig.json: duplicate host names in {list(self.hosts)}")
        if self.current_host not in self.hosts:
            raise ConfigError(
                f"resourceconfig.json: current_host {self.current_host!r} is not one of "
                f"hosts {list(self.hosts)}"
            )

    @property
    def size(self) -> int:
        return len(self.hosts)

    @property
    def rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def leader(self) -> str:
        return self.hosts[0]

    @property
    def is_leader(self) -> bool:
        return self.current_host == self.leader

    def address(self, host: str) -> str:
        """The IP address of `host`: from SFN_HOST_ADDRESSES, else the cluster's DNS."""
        if host in self.addresses:
            return self.addresses[host]
        try:
            return socket.gethostbyname(host)
        except OSError as exc:
            raise ConfigError(
                f"cannot resolve host {host!r} of resourceconfig.json ({exc}); on one machine "
                f"map host names to addresses with {HOST_ADDRESSES_ENV}"
            ) from exc

    @classmethod
    def from_file(cls, path: Path, env: dict[str, str] | None = None) -> Cluster:
        """The cluster `path` describes (a single host when there is no file)."""
        env = dict(os.environ if env is None else env)
        addresses = _addresses(env)
        if not path.is_file():
            return cls(addresses=addresses)
        try:
            raw: Any = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("hosts"), list):
            raise ConfigError(f"{path}: expected an object with 'current_host' and 'hosts'")
        hosts = tuple(str(h) for h in raw["hosts"])
        return cls(str(raw.get("current_host", hosts[0] if hosts else "")), hosts, addresses)


def _addresses(env: dict[str, str]) -> dict[str, str]:
    text = env.get(HOST_ADDRESSES_ENV, "").strip()
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{HOST_ADDRESSES_ENV} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{HOST_ADDRESSES_ENV} must be a JSON object host -> address")
    return {str(k): str(v) for k, v in raw.items()}


def _int_env(env: dict[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {text!r}") from exc
    if value < 1:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


@contextmanager
def collective(cluster: Cluster, env: dict[str, str] | None = None) -> Iterator[None]:
    """Join XGBoost's collective for the body (nothing to join on a single host).

    Build the DMatrix objects inside the body: in a distributed run their construction
    already talks to the other workers (the feature count is agreed by allreduce)."""
    if cluster.size == 1:
        yield
        return
    import xgboost as xgb
    from xgboost.tracker import RabitTracker

    env = dict(os.environ if env is None else env)
    port = _int_env(env, TRACKER_PORT_ENV, DEFAULT_TRACKER_PORT)
    timeout = _int_env(env, TRACKER_TIMEOUT_ENV, DEFAULT_TRACKER_TIMEOUT)
    leader = cluster.address(cluster.leader)
    tracker = None
    if cluster.is_leader:
        tracker = RabitTracker(
            n_workers=cluster.size, host_ip=leader, port=port, sortby="task", timeout=timeout
        )
        tracker.start()
    args: dict[str, str | int] = {
        "dmlc_communicator": "rabit",
        "dmlc_tracker_uri": leader,
        "dmlc_tracker_port": port,
        "dmlc_task_id": f"{cluster.rank:05d}",
        "dmlc_retry": WORKER_RETRIES,
        "dmlc_timeout": timeout,
    }
    print(
        f"collective: host {cluster.current_host} (rank {cluster.rank} of {cluster.size}) "
        f"joins the tracker on {cluster.leader} {leader}:{port}",
        flush=True,
    )
    with xgb.collective.CommunicatorContext(**args):
        if xgb.collective.get_rank() != cluster.rank:  # sortby="task" guarantees it
            raise ConfigError(
                f"host {cluster.current_host} got rank {xgb.collective.get_rank()}, "
                f"expected {cluster.rank}"
            )
        yield
    if tracker is not None:
        tracker.wait_for(timeout)
