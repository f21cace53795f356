"""The local cloud: moto's server on a loopback port (so the AWS CLI, boto3 and the Lambda
workers reach it), moto's ASL interpreter running the state machine, and the hooks that
make what moto only records actually run (Lambda handlers, SageMaker jobs and endpoints,
EventBridge deliveries, RedriveExecution).

This module is the lifecycle only (start/stop, environment, clients, installing each fake);
each fake owns its patches: Lambda in lambdas.py (the seam) and lambda_runtime.py (warm
workers), Step Functions in sfn.py, EventBridge/S3/ECR events in events.py, SageMaker in
sagemaker/ (see its __init__ for which file does what). All hooks are installed when the
cloud starts and removed when it stops, so nothing leaks into code that uses moto
in-process (unit tests); every process the fakes started is stopped with it (procs.py).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sfn_mlops.local import procs
from sfn_mlops.local.cloudwatch import AlarmEvaluator
from sfn_mlops.local.events import EventRouter
from sfn_mlops.local.iam import Enforcer
from sfn_mlops.local.lambda_runtime import DUMMY_CREDENTIALS, FunctionConfig, LambdaRuntime
from sfn_mlops.local.logs import LocalLogs
from sfn_mlops.local.queues import EventSourcePoller
from sfn_mlops.local.sagemaker import LocalSageMaker
from sfn_mlops.local.sfn import SimulatedClock
from shared import resources

DEFAULT_REGION = resources.LOCAL_REGION
DEFAULT_ACCOUNT = resources.LOCAL_ACCOUNT


class PortInUseError(RuntimeError):
    def __init__(self, host: str, port: int) -> None:
        super().__init__(
            f"port {port} on {host} is already in use (another local cloud running?); "
            "stop it or choose another with --port"
        )
        self.port = port


class _Patches:
    """setattr with undo."""

    def __init__(self) -> None:
        self._undo: list[tuple[Any, str, Any, bool]] = []

    def set(self, owner: Any, name: str, value: Any) -> None:
        had = name in vars(owner)
        self._undo.append((owner, name, vars(owner).get(name), had))
        setattr(owner, name, value)

    def undo(self) -> None:
        while self._undo:
            owner, name, old, had = self._undo.pop()
            if had:
                setattr(owner, name, old)
            else:
                with contextlib.suppress(AttributeError):
                    delattr(owner, name)


class LocalCloud:
    """`with LocalCloud() as cloud:` — a running local cloud; `cloud.endpoint_url` for clients."""

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        workdir: Path | None = None,
        region: str = DEFAULT_REGION,
        fast_waits: bool = True,
        lambda_concurrency: int | None = None,
        alarm_period_scale: float | None = None,
    ) -> None:
        """`fast_waits`: Wait states end when a local job or endpoint operation ends instead
        of sleeping their full seconds (sfn_mlops/local/sfn.py); False waits in real time.
        `lambda_concurrency`: the account's Lambda concurrency quota (lambda_runtime.py;
        default sized from the machine). `alarm_period_scale`: real seconds per second of
        an alarm's Period (cloudwatch.py; default $SFN_MLOPS_ALARM_PERIOD_SCALE or 0.05)."""
        self.alarm_period_scale = alarm_period_scale
        self.lambda_concurrency = lambda_concurrency
        self.host = host
        self.fast_waits = fast_waits
        self.requested_port = port
        self.region = region
        self.account = DEFAULT_ACCOUNT
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sfn-mlops-local-")
            workdir = Path(self._tmp.name)
        # Absolute: jobs and servers run with their own working directory.
        self.workdir = Path(workdir).resolve()
        self.port = 0
        self._server: Any = None
        self._patches = _Patches()
        self._exit = contextlib.ExitStack()
        self._saved_env: dict[str, str | None] = {}
        self._saved_sfn_config: Any = None
        self._clients: dict[tuple[str, int], Any] = {}
        self._client_lock = threading.Lock()
        #: one boto3 session for every client (created under _client_lock): its loader
        #: parses each service model once; a session per client re-read the JSON each time
        #: (measured: about 0.5 s per client vs 0.06 s)
        self._session: Any = None
        self.lambdas: LambdaRuntime
        self.sagemaker: LocalSageMaker
        self.events: EventRouter
        self.queues: EventSourcePoller | None = None
        self.alarms: AlarmEvaluator | None = None
        #: Step Functions' clock for the redrive window (tests advance it: sfn.SimulatedClock)
        self.sfn_clock = SimulatedClock()

    # --- lifecycle -----------------------------------------------------------------------
    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        """What a shell needs to point the AWS CLI and boto3 at this cloud."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            **DUMMY_CREDENTIALS,
        }

    def start(self) -> LocalCloud:
        from sfn_mlops.local import keepalive

        if self.requested_port and procs.port_in_use(self.requested_port, self.host):
            raise PortInUseError(self.host, self.requested_port)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._quiet_logs()
        # moto's own server (werkzeug), with HTTP/1.1 keep-alive: werkzeug as moto runs it
        # closes every connection, which cost each boto3 call a new TCP connection and a
        # server thread (keepalive.py has the measurement and what it keeps safe)
        keepalive.patch_werkzeug(self._patches)
        self._server = keepalive.KeepAliveMotoServer(
            ip_address=self.host, port=self.requested_port, verbose=False
        )
        try:
            self._server.start()
        except OSError as exc:
            self._patches.undo()
            raise PortInUseError(self.host, self.requested_port) from exc
        self.port = int(self._server.get_host_and_port()[1])
        self._reset_backends()
        # moto's ASL interpreter calls Lambda & co. at localhost:$MOTO_PORT (server mode)
        self._set_env("MOTO_PORT", str(self.port))
        self.logs = LocalLogs(self.account, self.region)  # its own CloudWatch Logs
        self.lambdas = LambdaRuntime(
            self.endpoint_url,
            self.region,
            self.workdir / "logs" / "lambda",
            self.logs,
            concurrency=self.lambda_concurrency,
        )
        self.sagemaker = LocalSageMaker(
            lambda: self.client("s3"), self.workdir, self.region, self.logs
        )
        self.sagemaker.endpoints.keep_warm()  # a model server kept ready (sagemaker/standby.py)
        self.events = EventRouter(self._invoke_target)
        self.queues = EventSourcePoller(
            lambda: self.client("sqs"), self._invoke_target, self.region
        )
        self.iam = Enforcer()
        self.sagemaker.role_env = self._role_env
        self._install()
        self._prime()
        #: CloudWatch alarm evaluation (cloudwatch.py): evaluate_now(), state(name)
        self.alarms = AlarmEvaluator(
            self.account, self.region, self.route_event, self.alarm_period_scale
        ).start()
        return self

    def _prime(self) -> None:
        """moto's per-service state made now, beside the deploy, not in a run's first
        request (sfn_mlops.local.speed.prime). Best effort: a service it misses is made by
        its first request, as before."""
        import threading

        from sfn_mlops.local.speed import prime

        def run() -> None:
            with contextlib.suppress(Exception):
                prime(self.account, self.region)

        threading.Thread(target=run, daemon=True, name="moto-prime").start()

    def _role_env(self, role_arn: str) -> dict[str, str]:
        """A job container's AWS environment: its role's credentials (checked by the local
        IAM, sfn_mlops/local/iam.py) and this cloud's endpoint."""
        env = self.iam.credentials(self.client("sts"), role_arn, "job")
        env.update(
            AWS_ENDPOINT_URL=self.endpoint_url, AWS_DEFAULT_REGION=self.region,
            AWS_REGION=self.region,
        )  # fmt: skip
        return env

    def _reset_backends(self) -> None:
        """A fresh cloud: moto's backends are process-wide, so forget an earlier cloud's."""
        import urllib.request

        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()

    def _quiet_logs(self) -> None:
        """moto's request log and interpreter warnings go to <workdir>/logs/cloud.log."""
        import logging

        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.workdir / "logs" / "cloud.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        self._log_handler = handler
        self._saved_loggers = []
        for name in ("werkzeug", "moto"):
            logger = logging.getLogger(name)
            self._saved_loggers.append((logger, logger.propagate, logger.level))
            logger.addHandler(handler)
            logger.propagate = False
            logger.setLevel(logging.WARNING)

    def _restore_logs(self) -> None:
        for logger, propagate, level in getattr(self, "_saved_loggers", []):
            logger.removeHandler(self._log_handler)
            logger.propagate = propagate
            logger.setLevel(level)
        if getattr(self, "_log_handler", None) is not None:
            self._log_handler.close()

    def stop(self) -> None:
        if self.alarms is not None:
            self.alarms.close()
        if self.queues is not None:
            self.queues.stop()
            self.queues = None
        with contextlib.suppress(Exception):
            self.sagemaker.close()
        with contextlib.suppress(Exception):
            self.lambdas.close()
        procs.kill_all()
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.stop()
            self._server = None
        self._exit.close()
        self._patches.undo()
        self._restore()
        self._restore_logs()
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _set_env(self, key: str, value: str) -> None:
        self._saved_env.setdefault(key, os.environ.get(key))
        os.environ[key] = value

    def _restore(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        if self._saved_sfn_config is not None:
            from moto.core.config import default_user_config

            default_user_config["stepfunctions"] = self._saved_sfn_config
            self._saved_sfn_config = None

    # --- clients -------------------------------------------------------------------------
    def client(self, service: str) -> Any:
        """A boto3 client for this cloud (one per service and thread)."""
        import boto3

        key = (service, threading.get_ident())
        with self._client_lock:
            if key not in self._clients:
                if self._session is None:
                    self._session = boto3.session.Session()
                self._clients[key] = self._session.client(
                    service,
                    endpoint_url=self.endpoint_url,
                    region_name=self.region,
                    aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                    aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
                )
            return self._clients[key]

    # --- hooks ---------------------------------------------------------------------------
    def register_function(self, config: FunctionConfig) -> None:
        """Run `config.handler` for Invoke of this function (it must exist in moto too)."""
        self.lambdas.register(config)
        self.dispatcher.register(config.name, self.lambdas.handler(config.name))

    def _invoke_target(self, arn: str, event: dict[str, Any]) -> tuple[Any, str | None]:
        """An EventBridge rule's Lambda target (asynchronous invoke, through the seam)."""
        name = arn.split(":function:", 1)[-1].split(":", maxsplit=1)[0]
        result = self.dispatcher.run_queued(name, event)
        return result.payload, result.function_error

    def _install(self) -> None:
        from moto.core.config import default_user_config

        self._saved_sfn_config = dict(default_user_config.get("stepfunctions", {}))
        default_user_config["stepfunctions"] = {"execute_state_machine": True}
        for install in (
            self._install_speed,
            self._install_strict,
            self._install_iam,
            self._install_lambda,
            self._install_sagemaker,
            self._install_events,
            self._install_sfn,
            self._install_cloudwatch,
        ):
            install()

    def _install_speed(self) -> None:
        """moto's server stops redoing look-ups whose answer cannot change (speed.py)."""
        from sfn_mlops.local import speed

        #: the fast route for the hot invocations routes (speed.py); .served counts its requests
        self.hot_routes = speed.install(self._patches)

    def _install_strict(self) -> None:
        """Every request checked against the service model's constraints, as AWS does."""
        from sfn_mlops.local import strict

        strict.install(self._patches)

    def _install_iam(self) -> None:
        """Requests signed with a function role's credentials are checked (iam.py)."""
        from sfn_mlops.local import iam

        self._exit.enter_context(iam.install(self.iam))

    def _install_lambda(self) -> None:
        """Invoke -> the function's real handler in its warm workers (via the Lambda seam)."""
        from sfn_mlops.local.lambdas import LambdaDispatcher

        self.dispatcher = LambdaDispatcher()
        self._exit.enter_context(self.dispatcher.install())

    def _install_sagemaker(self) -> None:
        from sfn_mlops.local.sagemaker import api

        api.install(self._patches, self.sagemaker)

    def _install_events(self) -> None:
        from sfn_mlops.local import events

        events.install(self._patches, self.events)

    def _install_cloudwatch(self) -> None:
        """New alarms start INSUFFICIENT_DATA (cloudwatch.py evaluates them)."""
        from sfn_mlops.local import cloudwatch

        cloudwatch.install(self._patches)

    def route_event(
        self, event: dict[str, Any], account: str | None = None, region: str | None = None
    ) -> None:
        """Deliver an event (as given: same id, same shape) to every matching rule."""
        from sfn_mlops.local.events import route_event

        route_event(event, account or self.account, region or self.region)

    def fire_schedule(self, rule_name: str) -> list[Any]:
        """One tick of a schedule rule: its Scheduled Event to its targets (events.py)."""
        from sfn_mlops.local.events import fire_schedule

        return fire_schedule(self.events, rule_name, self.account, self.region)

    def _install_sfn(self) -> None:
        from sfn_mlops.local.sfn import install, install_fast_waits, install_task_clients

        # Execution status change events (RUNNING, redrive, SUCCEEDED | FAILED | TIMED_OUT |
        # ABORTED) into the EventBridge rules: notifications, the execution-closed rule.
        install(self._patches, self.sfn_clock, emit=self.route_event)
        # one client per service for the interpreter's Tasks, made before the clock: Lambda
        # and SNS (the definition's service integrations; SNS's first Publish, NotifySuccess,
        # made its client inside the run: ~70 ms)
        install_task_clients(self._patches, warm=((self.region, "lambda"), (self.region, "sns")))
        if self.fast_waits:
            install_fast_waits(self._patches, self.sagemaker.wait_for_change)

    # --- conveniences for the CLI and tests -----------------------------------------------
    def wait_for(self, predicate: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
        """Poll `predicate` until it returns something truthy (bounded); return that."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout:.0f}s")
            time.sleep(interval)


@contextlib.contextmanager
def running(port: int = 0, workdir: Path | None = None) -> Iterator[LocalCloud]:
    cloud = LocalCloud(port=port, workdir=workdir)
    cloud.start()
    try:
        yield cloud
    finally:
        cloud.stop()
