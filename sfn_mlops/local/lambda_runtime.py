"""Runs Lambda functions for real: each function's handler in warm worker processes
(one execution environment per concurrent invocation, reused while warm), with the
function's configured environment, the local cloud's endpoint and dummy credentials, and
its timeout. Results come back in the shape of the Lambda Invoke API: a payload and, on
error, a FunctionError with `errorType` = the exception class name.

Concurrency is bounded like an account's Lambda concurrency quota: at most `concurrency`
invocations run at once (all functions together); one more synchronous Invoke fails with
TooManyRequestsException (HTTP 429, "Rate Exceeded."), which Step
Functions names Lambda.TooManyRequestsException and the definition retries with backoff.
A cold start belongs to a running invocation, so a burst cannot start more cold starts
than the limit lets run at once, which the machine carries inside a function's timeout.
Idle (warm) environments do not count against it, as on AWS, where concurrency bounds
running invocations, not how many functions keep environments warm: the worker processes
are bounded by `max_workers` (the limit plus one per function), and when a new one needs
room, an idle worker of the function with the most idle ones is retired, so every
function keeps its last warm worker (``warm`` of each function before a run holds).
Default: CONCURRENCY_PER_CPU per CPU, or $SFN_MLOPS_LAMBDA_CONCURRENCY.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sfn_mlops.local import procs
from sfn_mlops.local.logs import LAMBDA_GROUP, LocalLogs, lambda_stream

DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
#: Concurrent invocations per CPU by default: a cold start costs about a CPU-second, so on
#: 2 cores ten of them at once finish well inside the pipeline's shortest timeout.
CONCURRENCY_PER_CPU = 5
CONCURRENCY_ENV = "SFN_MLOPS_LAMBDA_CONCURRENCY"
#: Inherited from the host so that the interpreter and its libraries work; nothing else is.
_HOST_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "VIRTUAL_ENV")


class ThrottledError(Exception):
    """The account's concurrency is used up (Invoke answers TooManyRequestsException)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"Rate Exceeded. (the local cloud's Lambda concurrency limit of {limit} is in use; "
            f"raise it with {CONCURRENCY_ENV} or --lambda-concurrency)"
        )
        self.limit = limit


@dataclass(frozen=True)
class FunctionConfig:
    name: str
    arn: str
    handler: str
    environment: dict[str, str]
    timeout_seconds: int
    memory_mb: int
    code_paths: tuple[str, ...] = ()  # extra import roots (the code package, for tests)
    #: The role's credentials (sfn_mlops/local/iam.py); None: the cloud's dummy ones.
    credentials: dict[str, str] | None = None
    #: boto3 clients (shared.aws.client) the worker creates before it reports ready, so
    #: the first invocation does not pay for them (as module-level clients on Lambda)
    warm_clients: tuple[str, ...] = ()


@dataclass(frozen=True)
class Invocation:
    """What Invoke returns: the payload, and the FunctionError header when it failed."""

    payload: Any
    function_error: str | None = None

    @property
    def error_type(self) -> str | None:
        if self.function_error and isinstance(self.payload, dict):
            return str(self.payload.get("errorType"))
        return None


class _Worker:
    """One execution environment. What the handler logs (stderr) goes to the function's
    log file and, as on Lambda, to its log group: /aws/lambda/<function>, one stream per
    environment, with START/END/REPORT lines around each invocation."""

    def __init__(
        self, config: FunctionConfig, env: dict[str, str], log: IO[Any], logs: LocalLogs | None
    ) -> None:
        self.config = config
        self.proc = procs.spawn(
            [sys.executable, "-m", "sfn_mlops.local.lambda_worker"],
            env=env,
            cwd=env.get("LAMBDA_TASK_ROOT"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if logs else log,
        )
        self._logs = logs
        self._group = LAMBDA_GROUP.format(config.name)
        self._stream = lambda_stream(uuid.uuid4().hex)
        if logs is not None:
            assert self.proc.stderr is not None
            logs.pump(self.proc.stderr, log, self._group, self._stream)
        self._lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = False
        self._init = threading.Lock()  # one reader of the "ready" line
        self.init_failure: bytes | None = None

    def _log(self, *messages: str) -> None:
        if self._logs is not None:
            self._logs.put_many(self._group, self._stream, list(messages))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(b"")  # EOF: the process died

    def _next(self, deadline: float) -> bytes | None:
        try:
            return self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None

    def wait_ready(self, deadline: float) -> bool:
        """Wait (until `deadline`) for the worker's init (imports, clients) to finish."""
        with self._init:
            if not self.ready:
                line = self._next(deadline)
                if not line:
                    self.init_failure = line  # None: timed out; b"": the process died
                    return False
                self.ready = True
            return True

    def invoke(self, event: Any) -> Invocation:
        started = time.monotonic()
        request_id = str(uuid.uuid4())
        self._log(f"START RequestId: {request_id} Version: $LATEST")
        result = self._invoke(event, request_id)
        ms = (time.monotonic() - started) * 1000
        self._log(
            f"END RequestId: {request_id}",
            f"REPORT RequestId: {request_id}\tDuration: {ms:.2f} ms\t"
            f"Memory Size: {self.config.memory_mb} MB",
        )
        return result

    def _invoke(self, event: Any, request_id: str) -> Invocation:
        timeout = self.config.timeout_seconds
        deadline = time.monotonic() + timeout
        if not self.wait_ready(deadline):  # the cold start counts against the timeout
            return self._died_or_timed_out(self.init_failure, request_id, timeout)
        assert self.proc.stdin is not None
        request = {
            "event": event,
            "request_id": request_id,
            "deadline_ms": int((time.time() + max(0.0, deadline - time.monotonic())) * 1000),
        }
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return self._died_or_timed_out(b"", request_id, timeout)
        line = self._next(deadline)
        if not line:
            return self._died_or_timed_out(line, request_id, timeout)
        reply = json.loads(line)
        if "error" in reply:
            return Invocation(reply["error"], "Unhandled")
        return Invocation(reply["result"])

    def _died_or_timed_out(self, line: bytes | None, request_id: str, timeout: int) -> Invocation:
        """Timeouts and crashes are unhandled errors Step Functions reports as Lambda.Unknown."""
        if line is None:
            message = f"{request_id} Task timed out after {timeout:.2f} seconds"
        else:
            self.proc.wait(timeout=5)
            message = (
                f"RequestId: {request_id} Error: Runtime exited with error: "
                f"exit status {self.proc.returncode}"
            )
        self.close()
        return Invocation({"errorType": "Lambda.Unknown", "errorMessage": message}, "Unhandled")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        procs.kill(self.proc, grace_seconds=0.5)


def default_concurrency() -> int:
    """$SFN_MLOPS_LAMBDA_CONCURRENCY, else CONCURRENCY_PER_CPU per CPU the process may use."""
    raw = os.environ.get(CONCURRENCY_ENV)
    if raw:
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"{CONCURRENCY_ENV}={raw!r}: give a whole number of at least 1")
        return value
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return CONCURRENCY_PER_CPU * max(1, cpus or 1)


class LambdaRuntime:
    """The warm pools of every function the local cloud knows."""

    def __init__(
        self,
        endpoint_url: str,
        region: str,
        log_dir: Path,
        logs: LocalLogs | None = None,
        concurrency: int | None = None,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.log_dir = log_dir
        self.logs = logs
        self.concurrency = default_concurrency() if concurrency is None else concurrency
        if self.concurrency < 1:
            raise ValueError(f"concurrency={self.concurrency}: give at least 1")
        self._running = 0  # invocations in flight (all functions)
        self._workers = 0  # live worker processes (busy + idle)
        self.throttles = 0
        self._configs: dict[str, FunctionConfig] = {}
        self._idle: dict[str, list[_Worker]] = {}
        self._logs: dict[str, IO[Any]] = {}
        self._lock = threading.Lock()
        self._faults: dict[str, list[str]] = {}
        self.invocations: dict[str, int] = {}

    def register(self, config: FunctionConfig) -> None:
        """Add or replace a function; its warm workers are retired (new configuration)."""
        with self._lock:
            self._configs[config.name] = config
            old = self._idle.pop(config.name, [])
            self._workers -= len(old)
        for w in old:
            w.close()

    @property
    def in_flight(self) -> int:
        """Invocations running now (all functions)."""
        with self._lock:
            return self._running

    @property
    def worker_count(self) -> int:
        """Live worker processes, busy or idle (never more than `max_workers`)."""
        with self._lock:
            return self._workers

    @property
    def max_workers(self) -> int:
        """The bound on worker processes: the running ones (at most `concurrency`) plus one
        idle warm worker per function."""
        with self._lock:
            return self._max_workers()

    def _max_workers(self) -> int:  # holds _lock
        return self.concurrency + len(self._configs)

    def idle_pids(self, function_name: str) -> list[int]:
        """Process ids of the function's idle (warm) workers (benchmarks read their CPU)."""
        with self._lock:
            return [w.proc.pid for w in self._idle.get(function_name, []) if w.alive]

    def configs(self) -> dict[str, FunctionConfig]:
        return dict(self._configs)

    def inject_service_errors(self, function_name: str, error_codes: list[str]) -> None:
        """Fault injection: the next Invoke calls of `function_name` fail at the Lambda
        service (not in the handler) with these error codes, e.g. ServiceException."""
        with self._lock:
            self._faults.setdefault(function_name, []).extend(error_codes)

    def take_service_error(self, function_name: str) -> str | None:
        with self._lock:
            pending = self._faults.get(function_name)
            return pending.pop(0) if pending else None

    def _env(self, config: FunctionConfig) -> dict[str, str]:
        env = {k: os.environ[k] for k in _HOST_KEYS if k in os.environ}
        env.update(config.environment)
        env.update(config.credentials or DUMMY_CREDENTIALS)
        root = str(Path(__file__).resolve().parents[2])
        env.update(
            _HANDLER=config.handler,
            AWS_ENDPOINT_URL=self.endpoint_url,
            AWS_REGION=self.region,
            AWS_DEFAULT_REGION=self.region,
            AWS_LAMBDA_FUNCTION_NAME=config.name,
            AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(config.memory_mb),
            AWS_LAMBDA_FUNCTION_TIMEOUT=str(config.timeout_seconds),
            AWS_LAMBDA_LOG_GROUP_NAME=f"/aws/lambda/{config.name}",
            AWS_LAMBDA_LOG_STREAM_NAME=f"local/{uuid.uuid4().hex}",
            AWS_EXECUTION_ENV="AWS_Lambda_python3.12",
            LAMBDA_TASK_ROOT=root,
            PYTHONPATH=os.pathsep.join([*config.code_paths, root]),
            PYTHONUNBUFFERED="1",
            SFN_MLOPS_FUNCTION_ARN=config.arn,
            SFN_MLOPS_WARM_CLIENTS=",".join(config.warm_clients),
        )
        return env

    def _log(self, name: str) -> IO[Any]:
        with self._lock:
            if name not in self._logs:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                self._logs[name] = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115
            return self._logs[name]

    def warm(self, function_name: str) -> None:
        """Start one worker ahead of the first invocation (a provisioned environment)."""
        config = self._configs[function_name]
        with self._lock:
            if self._workers >= self._max_workers():
                return  # no room: the first invocation cold-starts instead
            self._workers += 1
        worker = _Worker(config, self._env(config), self._log(function_name), self.logs)
        with self._lock:
            self._idle.setdefault(function_name, []).append(worker)

    def wait_warm(self, timeout: float = 60.0) -> bool:
        """Wait until every idle worker has finished its init (provisioned environments
        ready, as when a stack is up); False if some had not within `timeout`."""
        deadline = time.monotonic() + timeout
        with self._lock:
            workers = [w for ws in self._idle.values() for w in ws]
        return all(w.wait_ready(deadline) for w in workers if w.alive)

    def handler(self, function_name: str) -> Any:
        """What the Lambda seam (lambdas.LambdaDispatcher) calls for an Invoke of the
        function: an injected service error, or the real handler in a warm worker."""
        from sfn_mlops.local.lambdas import THROTTLED, LambdaResult, LambdaServiceError

        def handle(payload: Any) -> LambdaResult:
            fault = self.take_service_error(function_name)
            if fault:
                raise LambdaServiceError(fault, f"injected Lambda service error {fault}", 500)
            try:
                inv = self.invoke(function_name, payload)
            except ThrottledError as exc:
                raise LambdaServiceError(THROTTLED, str(exc), 429) from exc
            return LambdaResult(inv.payload, inv.function_error)

        return handle

    def invoke(self, function_name: str, event: Any) -> Invocation:
        """Run one invocation in a warm (or new) worker; ThrottledError when the account's
        concurrency is used up."""
        config = self._configs.get(function_name)
        if config is None:
            raise KeyError(function_name)
        retire: list[_Worker] = []
        with self._lock:
            if self._running >= self.concurrency:
                self.throttles += 1
                raise ThrottledError(self.concurrency)
            self._running += 1
            self.invocations[function_name] = self.invocations.get(function_name, 0) + 1
            worker = self._take_idle(function_name, retire)
            if worker is None:
                # room for one more process: retire idle workers (of the function with
                # the most idle ones: with fewer than `concurrency` running, one has two)
                while self._workers >= self._max_workers() and self._evict_idle(retire):
                    pass
                self._workers += 1
        try:
            for w in retire:
                w.close()
            if worker is None:
                try:
                    worker = _Worker(config, self._env(config), self._log(function_name), self.logs)
                except BaseException:
                    with self._lock:
                        self._workers -= 1
                    raise
            result = worker.invoke(event)
        except BaseException:
            with self._lock:
                self._running -= 1
            raise
        keep = worker.alive
        with self._lock:
            self._running -= 1
            if keep and self._configs.get(function_name) is config:
                self._idle.setdefault(function_name, []).append(worker)
                worker = None
            else:
                self._workers -= 1
        if worker is not None:
            worker.close()
        return result

    def _take_idle(self, function_name: str, retire: list[_Worker]) -> _Worker | None:
        """A live idle worker of the function (dead ones go to `retire`). Holds _lock."""
        idle = self._idle.get(function_name, [])
        while idle:
            candidate = idle.pop()
            if candidate.alive:
                return candidate
            self._workers -= 1
            retire.append(candidate)
        return None

    def _evict_idle(self, retire: list[_Worker]) -> bool:
        """Retire the idle worker of the function with the most idle ones. Holds _lock."""
        pools = [ws for ws in self._idle.values() if ws]
        if not pools:
            return False
        victim = max(pools, key=len).pop(0)  # the least recently used of that pool
        self._workers -= 1
        retire.append(victim)
        return True

    def close(self) -> None:
        with self._lock:
            workers = [w for ws in self._idle.values() for w in ws]
            self._idle.clear()
            self._workers -= len(workers)
            logs = list(self._logs.values())
            self._logs.clear()
        procs.kill_many([w.proc for w in workers], grace_seconds=0.5)  # at once, not in turn
        for f in logs:
            f.close()
