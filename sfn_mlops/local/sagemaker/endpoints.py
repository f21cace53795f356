"""Endpoints, for real: each runs `python -m sfn_container serve` on a free loopback port
with the model from its endpoint config (Creating -> InService once /ping answers).
UpdateEndpoint (not in moto) is blue/green: the new server must be healthy before traffic
moves, then the old one is stopped; a failed update leaves the endpoint InService on the
old config with FailureReason set. InvokeEndpoint forwards to the endpoint's current
server; DeleteEndpoint stops it.

Traffic shifting as the update's DeploymentConfig says (BlueGreenUpdatePolicy):
ALL_AT_ONCE, CANARY (CanarySize % of requests to the new fleet, then WaitIntervalInSeconds),
LINEAR (LinearStepSize % more per step, each followed by the wait), then
TerminationWaitInSeconds of baking with all traffic on the new fleet before the old one is
stopped; MaximumExecutionTimeoutInSeconds bounds the whole. Requests are split by count
(share% of every 100, spread evenly). During every wait and the baking period the
AutoRollbackConfiguration alarms are watched (their StateValue in the local CloudWatch,
which sfn_mlops/local/cloudwatch.py evaluates from the metrics this endpoint's invocations
publish): one in ALARM rolls the update back - all traffic to the old fleet, the new one
stopped, InService on the old config, FailureReason naming the alarm. The waits are the
config's seconds, really waited (the local cloud's defaults make them short).

Failures come back as SageMaker's: a body over InvokeEndpoint's limit (botocore's model:
6 MiB) is a ValidationError before any byte reaches the model; a server that has exited is
ServiceUnavailable naming the endpoint and the exit code; a connection dropped without an
answer or a timeout is ModelError (status 0), as SageMaker reports a container that did not
answer. A watcher restarts a server that exits on its own (SageMaker replaces an unhealthy
instance): meanwhile DescribeEndpoint shows the variant with CurrentInstanceCount 0 and a
VariantStatus saying why, and both return to normal once the new server passes /ping.
"""

from __future__ import annotations

import http.client
import io
import json
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3

from sfn_mlops.local import procs
from sfn_mlops.local.capture import Capture, CaptureSpec
from sfn_mlops.local.sagemaker.common import Workspace, now, split_s3, tail

HEALTH_TIMEOUT_SECONDS = 60.0
INVOKE_TIMEOUT_SECONDS = 60.0  # InvokeEndpoint's model timeout
WATCH_INTERVAL_SECONDS = 0.2
ALARM_WATCH_SECONDS = 0.1  # how often an update's rollback alarms are read


class RolledBackError(Exception):
    """An update's rollback alarm went to ALARM (the message is the FailureReason)."""


def traffic_steps(policy: dict[str, Any]) -> list[int]:
    """The new fleet's share of traffic (percent) after each step of a BlueGreenUpdatePolicy;
    the last is 100."""
    routing = policy.get("TrafficRoutingConfiguration") or {}
    kind = routing.get("Type", "ALL_AT_ONCE")
    if kind == "CANARY":
        return [int(routing["CanarySize"]["Value"]), 100]
    if kind == "LINEAR":
        step = int(routing["LinearStepSize"]["Value"])
        return [*range(step, 100, step), 100]
    return [100]


RESTART_BACKOFF_SECONDS = 5.0
#: /ping while a server starts: every 10 ms for the first 20 tries (a warm standby answers
#: within ~0.1-0.2 s: a 50 ms pace gave away 25 ms on average), then every 50 ms
PING_FIRST_INTERVAL_SECONDS = 0.01
PING_INTERVAL_SECONDS = 0.05
#: Environment keys acted on at interpreter start or library load (the interpreter, the
#: dynamic loader, the C library, OpenMP/BLAS runtimes): a warm standby has started and
#: loaded those already, so a container Environment with one is started cold
STARTUP_ENV = ("PYTHON", "LD_", "OMP_", "GOMP_", "KMP_", "OPENBLAS_", "MKL_", "MALLOC_",
               "LC_", "LANG", "TZ", "PATH", "HOME", "TMPDIR", "VIRTUAL_ENV")  # fmt: skip
STANDBY_SCRIPT = Path(__file__).with_name("standby.py")
#: standbys kept ready: a pipeline run starts two servers about a second apart (staging,
#: then production's blue/green update), less than one standby's imports take on a loaded
#: machine (the second start found its standby still importing: 0.58 s against 0.17 s)
WARM_SERVERS = 2


def max_body_bytes() -> int:
    """InvokeEndpoint's payload limit, from botocore's model of sagemaker-runtime."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    body = model.operation_model("InvokeEndpoint").input_shape.members["Body"]
    return int(body.metadata["max"])


class EndpointDownError(Exception):
    """The endpoint's model server is not running (SageMaker: ServiceUnavailable)."""


class NoAnswerError(Exception):
    """The model server took the request and gave no answer (SageMaker: ModelError)."""


@dataclass
class Server:
    config_name: str
    port: int
    proc: Any
    workdir: Path
    variant: str = ""
    capture: CaptureSpec | None = None  # the config's DataCaptureConfig
    #: keep-alive connections to the server (urllib3, thread-safe): a new connection per
    #: InvokeEndpoint was about a quarter of the forwarding time
    pool: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.pool = urllib3.HTTPConnectionPool(
            "127.0.0.1",
            self.port,
            maxsize=8,
            retries=False,
            timeout=urllib3.Timeout(connect=5.0, read=INVOKE_TIMEOUT_SECONDS),
        )

    def stop(self) -> None:
        procs.kill(self.proc)
        self.pool.close()

    def exit_cause(self) -> str | None:
        code = self.proc.poll()
        if code is None:
            return None
        return f"the model server exited with code {code}: {tail(self.workdir / 'serve.log', 2)}"


class EndpointManager:
    """The model servers behind moto's endpoints (see the module docstring)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.servers: dict[str, Server] = {}  # endpoint name -> the server taking traffic
        #: endpoint -> (new fleet, its % of requests) while a blue/green update shifts traffic
        self.splits: dict[str, tuple[Server, int]] = {}
        self._requests: dict[str, int] = {}
        self._resources: dict[str, tuple[Any, Any]] = {}  # endpoint -> (moto fake, backend)
        self._watcher: threading.Thread | None = None
        self.capture = Capture(lambda: ws.s3)  # data capture, written off the request path
        #: model server processes with their imports done, waiting for an endpoint
        self._standbys: list[Any] = []
        self._warm = 0  # how many to keep ready
        self._starting = 0

    # --- warm standbys (standby.py) ------------------------------------------------------
    def keep_warm(self, count: int = WARM_SERVERS) -> None:
        """From now on keep `count` model server processes ready (imports done) for the
        next endpoint server starts; a new one is started each time one is taken. Needs
        the cloud's logs (a standby's output goes to its endpoint's log stream)."""
        if self.ws.logs is None:
            return
        self._warm = count
        self._refill()

    def _refill(self) -> None:
        while True:
            with self.ws.lock:
                if len(self._standbys) + self._starting >= self._warm or self.ws.closed:
                    return
                self._starting += 1
            proc = None
            try:
                workdir = self.ws.root / "endpoints" / ".standby"
                workdir.mkdir(parents=True, exist_ok=True)
                proc = self.ws.spawn_standby(
                    [sys.executable, str(STANDBY_SCRIPT)], self.ws.base_env(), workdir
                )
            except Exception:  # (ClosedError: stopping) servers then start cold
                return
            finally:
                with self.ws.lock:
                    self._starting -= 1
                    if proc is not None:
                        self._standbys.append(proc)

    def _take_standby(self, endpoint: str, env: dict[str, str], workdir: Path) -> Any:
        """The standby, turned into this endpoint's server (None: start one cold)."""
        started_with = self.ws.base_env()  # the standby's own environment
        if any(k.startswith(STARTUP_ENV) and started_with.get(k) != v for k, v in env.items()):
            return None
        with self.ws.lock:
            if not self._standbys:
                return None
            proc = self._standbys.pop(0)  # the oldest: the likeliest to be ready
        threading.Thread(target=self._refill, name="serve-standby", daemon=True).start()
        if proc.poll() is not None:  # it died waiting
            procs.forget(proc)
            return None
        try:
            self.ws.attach_logs(proc, "serve", endpoint, env, workdir)
            order = json.dumps({"env": env, "cwd": str(workdir)}).encode() + b"\n"
            stdin: Any = proc.stdin
            stdin.write(order)
            stdin.close()
        except (OSError, ValueError):
            procs.kill(proc)
            return None
        return proc

    def _start_server(self, endpoint: str, config_name: str, backend: Any) -> Server:
        """Start the model server for `config_name` and wait until /ping answers 200."""
        config = backend.endpoint_configs[config_name]
        variant = config.production_variants[0]
        model = backend._models[variant["ModelName"]]
        container = model.primary_container or (model.containers or [{}])[0]
        workdir = self.ws.root / "endpoints" / endpoint / f"{config_name}-{int(time.time() * 1000)}"
        opt_ml = workdir / "opt_ml"
        model_dir = opt_ml / "model"
        model_dir.mkdir(parents=True, exist_ok=True)
        data_url = container.get("ModelDataUrl")
        if data_url:
            bucket, key = split_s3(data_url)
            body = self.ws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            try:
                with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
                    tar.extractall(model_dir, filter="data")
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise RuntimeError(
                    f"Failed to extract model data archive from URL {data_url!r}: {exc}"
                ) from exc
        port = procs.free_port()
        env = self.ws.base_env()
        env.update(container.get("Environment") or {})
        env.update(
            OPT_ML=str(opt_ml), SAGEMAKER_BIND_TO_PORT=str(port), SM_MODEL_DIR=str(model_dir)
        )
        proc = self._take_standby(endpoint, env, workdir)
        if proc is None:
            proc = self.ws.spawn(
                "serve", endpoint, [sys.executable, "-m", "sfn_container", "serve"], env, workdir
            )
        deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
        polls = 0
        while time.monotonic() < deadline and not self.ws.closed:
            if proc.poll() is not None:
                self.ws.drain(proc)
                procs.forget(proc)
                raise RuntimeError(
                    f"The primary container for production variant {variant['VariantName']} "
                    f"exited with code {proc.returncode} before passing the ping health check: "
                    f"{tail(workdir / 'serve.log', 3)}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as r:
                    if r.status == 200:
                        capture = CaptureSpec.of(getattr(config, "data_capture_config", None))
                        return Server(
                            config_name, port, proc, workdir, variant["VariantName"], capture
                        )
            except (urllib.error.URLError, OSError):
                pass
            polls += 1
            time.sleep(PING_FIRST_INTERVAL_SECONDS if polls <= 20 else PING_INTERVAL_SECONDS)
        procs.kill(proc)
        raise RuntimeError(
            f"The primary container for production variant {variant['VariantName']} did not "
            "pass the ping health check. Please check CloudWatch logs for this endpoint."
        )

    def create_endpoint(self, fake: Any, backend: Any) -> None:
        fake.endpoint_status = "Creating"
        fake.failure_reason = None
        self.ws._start_thread(self._create_main, fake, backend)

    def _create_main(self, fake: Any, backend: Any) -> None:
        try:
            server = self._start_server(fake.endpoint_name, fake.endpoint_config_name, backend)
        except Exception as exc:
            fake.failure_reason = str(exc)[:1024]
            fake.endpoint_status = "Failed"
        else:
            self._take_traffic(fake.endpoint_name, server, fake, backend)
            fake.endpoint_status = "InService"
        fake.last_modified_time = now()

    def update_endpoint(
        self, fake: Any, backend: Any, config_name: str, deployment: dict[str, Any] | None = None
    ) -> None:
        fake.endpoint_status = "Updating"
        fake.last_modified_time = now()
        self.ws._start_thread(self._update_main, fake, backend, config_name, deployment or {})

    def _update_main(
        self, fake: Any, backend: Any, config_name: str, deployment: dict[str, Any]
    ) -> None:
        try:
            server = self._start_server(fake.endpoint_name, config_name, backend)
        except Exception as exc:
            # blue/green: the old fleet keeps serving, the endpoint stays InService
            fake.failure_reason = str(exc)[:1024]
            fake.endpoint_status = "InService"
            fake.last_modified_time = now()
            return
        try:
            self._shift_traffic(fake, server, deployment)
        except RolledBackError as exc:
            with self.ws.lock:
                self.splits.pop(fake.endpoint_name, None)
            procs.kill(server.proc)
            fake.failure_reason = str(exc)[:1024]
            fake.endpoint_status = "InService"
            fake.last_modified_time = now()
            return
        with self.ws.lock:
            self.splits.pop(fake.endpoint_name, None)
        self._take_traffic(fake.endpoint_name, server, fake, backend)
        fake.endpoint_config_name = config_name
        fake.production_variants = fake._process_production_variants(
            backend.endpoint_configs[config_name].production_variants
        )
        fake.failure_reason = None
        fake.last_modified_time = now()
        fake.endpoint_status = "InService"

    def _shift_traffic(self, fake: Any, green: Server, deployment: dict[str, Any]) -> None:
        """Move traffic to `green` step by step, watching the rollback alarms during each wait
        and the baking period (raises RolledBackError). All-at-once without alarms: no waits."""
        policy = deployment.get("BlueGreenUpdatePolicy") or {}
        alarms = [
            a["AlarmName"]
            for a in (deployment.get("AutoRollbackConfiguration") or {}).get("Alarms") or []
        ]
        routing = policy.get("TrafficRoutingConfiguration") or {}
        wait = float(routing.get("WaitIntervalInSeconds", 0))
        baking = float(policy.get("TerminationWaitInSeconds", 0))
        deadline = time.monotonic() + float(policy.get("MaximumExecutionTimeoutInSeconds", 3600))
        steps = traffic_steps(policy)
        for share in steps:
            with self.ws.lock:
                self.splits[fake.endpoint_name] = (green, share)
            last = share == 100
            phase = "baking period" if last else f"traffic shift ({share}% on the new fleet)"
            self._watch_alarms(fake, alarms, baking if last else wait, phase, deadline)

    def _watch_alarms(
        self, fake: Any, alarms: list[str], seconds: float, phase: str, deadline: float
    ) -> None:
        end = min(time.monotonic() + seconds, deadline)
        while True:
            firing = [name for name in alarms if self.alarm_state(fake, name) == "ALARM"]
            if firing:
                raise RolledBackError(
                    f"Rolled back during the {phase}: CloudWatch alarm(s) "
                    f"{', '.join(firing)} in ALARM (AutoRollbackConfiguration); the endpoint "
                    "serves the previous endpoint config"
                )
            if time.monotonic() >= end or self.ws.closed:
                break
            time.sleep(ALARM_WATCH_SECONDS)
        if time.monotonic() >= deadline:
            raise RolledBackError(
                "Rolled back: the update exceeded MaximumExecutionTimeoutInSeconds"
            )

    @staticmethod
    def alarm_state(fake: Any, name: str) -> str | None:
        """The alarm's StateValue in the local CloudWatch (moto), None if there is none."""
        from moto.cloudwatch.models import cloudwatch_backends

        _, _, _, region, account, _ = str(fake.arn).split(":", 5)
        alarm = cloudwatch_backends[account][region].alarms.get(name)
        return None if alarm is None else str(alarm.state_value)

    def _take_traffic(self, endpoint: str, server: Server, fake: Any, backend: Any) -> None:
        """Traffic moves to `server` (green); the one it replaces (blue) is stopped."""
        with self.ws.lock:
            old = self.servers.get(endpoint)
            self.servers[endpoint] = server
            self._resources[endpoint] = (fake, backend)
            if self._watcher is None:
                self._watcher = threading.Thread(
                    target=self._watch, name="endpoint-watcher", daemon=True
                )
                self._watcher.start()
        if old is not None:
            old.stop()

    def _watch(self) -> None:
        """Restart a model server that exited on its own (not one stopped by an update or a
        delete: those leave `servers` first). Runs until the local cloud closes."""
        next_try: dict[str, float] = {}
        while not self.ws.closed:
            time.sleep(WATCH_INTERVAL_SECONDS)
            with self.ws.lock:
                crashed = [(e, s) for e, s in self.servers.items() if s.proc.poll() is not None]
            for endpoint, server in crashed:
                if self.ws.closed or time.monotonic() < next_try.get(endpoint, 0.0):
                    continue
                self._replace(endpoint, server)
                next_try[endpoint] = time.monotonic() + RESTART_BACKOFF_SECONDS

    def _replace(self, endpoint: str, crashed: Server) -> None:
        fake, backend = self._resources[endpoint]
        cause = crashed.exit_cause() or "the model server stopped"
        procs.forget(crashed.proc)
        for variant in fake.production_variants:
            variant["CurrentInstanceCount"] = 0
            variant["VariantStatus"] = [
                {
                    "Status": "Creating",
                    "StatusMessage": f"replacing the unhealthy instance: {cause}"[:1024],
                    "StartTime": now().isoformat(),
                }
            ]
        try:
            server = self._start_server(endpoint, crashed.config_name, backend)
        except Exception as exc:  # the watcher tries again after the backoff
            for variant in fake.production_variants:
                variant["VariantStatus"][0]["StatusMessage"] = (
                    f"replacing the unhealthy instance: {cause}; the new one failed: {exc}"
                )[:1024]
            return
        with self.ws.lock:
            current = self.servers.get(endpoint)
            if current is not crashed:  # updated or deleted meanwhile
                server.stop()
                return
            self.servers[endpoint] = server
        for variant in fake.production_variants:
            variant["CurrentInstanceCount"] = variant.get("DesiredInstanceCount", 1)
            variant.pop("VariantStatus", None)

    def delete_endpoint(self, name: str) -> None:
        with self.ws.lock:
            server = self.servers.pop(name, None)
            self._resources.pop(name, None)
        if server is not None:
            server.stop()

    def _route(self, endpoint: str) -> Server | None:
        """The server this request goes to: during a traffic shift, share% of every 100
        requests go to the new fleet (by count, evenly spread: exact, not random)."""
        with self.ws.lock:
            server = self.servers.get(endpoint)
            split = self.splits.get(endpoint)
            if split is None:
                return server
            n = self._requests.get(endpoint, 0)
            self._requests[endpoint] = n + 1
            green, share = split
            # the n-th request goes to green when it crosses a multiple of 100/share: spread
            return green if (n + 1) * share // 100 > n * share // 100 else server

    def invoke(
        self, endpoint: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        server = self._route(endpoint)
        if server is None:
            raise LookupError(endpoint)
        cause = server.exit_cause()
        if cause:
            raise EndpointDownError(cause)
        try:
            r = server.pool.urlopen("POST", "/invocations", body=body, headers=headers)
            if server.capture is not None and r.status < 400:
                self.capture.record(server.capture, endpoint, server.variant, body, headers,
                                    r.data, dict(r.headers))  # fmt: skip
            return r.status, dict(r.headers), r.data
        except urllib3.exceptions.TimeoutError as exc:
            raise NoAnswerError(
                "Your invocation timed out while waiting for a response from container primary."
            ) from exc
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
            # the process may be on its way out: give it a moment to report its exit code
            deadline = time.monotonic() + 1.0
            while server.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            cause = server.exit_cause()
            if cause:
                raise EndpointDownError(cause) from exc
            raise NoAnswerError(
                f"the model server closed the connection without an answer ({exc})"
            ) from exc

    def close(self) -> None:
        with self.ws.lock:
            servers = list(self.servers.values())
            self.servers.clear()
            self._warm = 0
            spare, self._standbys = self._standbys, []
        procs.kill_many([server.proc for server in servers] + spare)  # at once, not in turn
        for server in servers:
            server.pool.close()
        self.capture.close()
