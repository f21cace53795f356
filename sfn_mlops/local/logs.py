"""The local cloud writes what its Lambda workers, SageMaker jobs and endpoints print into
its own CloudWatch Logs (moto's backend, in this process), under the group and stream
names AWS uses, so `sfn-mlops logs`, `aws logs filter-log-events` (and AWS CLI v2's
`aws logs tail`) read them from a `local up` as they do on AWS:

    /aws/lambda/<function>            stream YYYY/MM/DD/[$LATEST]<worker id>
    /aws/sagemaker/ProcessingJobs     stream <job name>/algo-<n>-<epoch>
    /aws/sagemaker/TrainingJobs       stream <job name>/algo-<n>-<epoch>
    /aws/sagemaker/Endpoints/<name>   stream AllTraffic/<instance id>

Each line also still goes to its file under the work dir (kept after the cloud stops).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import IO, Any

LAMBDA_GROUP = "/aws/lambda/{}"
PROCESSING_GROUP = "/aws/sagemaker/ProcessingJobs"
TRAINING_GROUP = "/aws/sagemaker/TrainingJobs"
ENDPOINT_GROUP = "/aws/sagemaker/Endpoints/{}"


class LocalLogs:
    """put(group, stream, line): one log event, now, creating the group and stream first."""

    def __init__(self, account: str, region: str) -> None:
        self.account, self.region = account, region
        self._lock = threading.Lock()

    def _backend(self) -> Any:
        from moto.logs.models import logs_backends

        # moto's BackendDict[account] scans its list of every BackendDict in use (comparing
        # them with __eq__) on each access, to register itself: about a quarter of a put
        # (py-spy, warm Invokes of the inference Lambda, which logs four lines each). An
        # account's backends exist only while it is registered (moto's reset clears both),
        # so an existing one is read directly; otherwise moto's own path creates it.
        accounts = dict.get(logs_backends, self.account) or logs_backends[self.account]
        return accounts[self.region]

    def put(self, group: str, stream: str, message: str, timestamp_ms: int | None = None) -> None:
        self.put_many(group, stream, [message], timestamp_ms)

    def put_many(
        self, group: str, stream: str, messages: list[str], timestamp_ms: int | None = None
    ) -> None:
        """Log events in this order, one PutLogEvents (moto's costs as much per call as
        per event)."""
        stamp = timestamp_ms or int(time.time() * 1000)
        events = [{"timestamp": stamp, "message": message} for message in messages]
        with self._lock:
            backend = self._backend()
            if group not in backend.groups:
                backend.create_log_group(group, {})
            if stream not in backend.groups[group].streams:
                backend.create_log_stream(group, stream)
            backend.put_log_events(group, stream, events)

    def pump(
        self, pipe: IO[bytes], file: IO[bytes], group: str, stream: str, close: bool = False
    ) -> threading.Thread:
        """Copy a child's output, line by line, into `file` and into the log stream, until
        the pipe closes (the child exited); `close`: then close `file` too."""

        def run() -> None:
            for raw in iter(pipe.readline, b""):
                try:
                    file.write(raw)
                    file.flush()
                except ValueError:  # the file was closed: the cloud is stopping
                    pass
                text = raw.decode(errors="replace").rstrip("\r\n")
                if text:
                    self.put(group, stream, text)
            pipe.close()
            if close:
                file.close()

        thread = threading.Thread(target=run, daemon=True, name=f"logs {group} {stream}")
        thread.start()
        return thread


def lambda_stream(worker_id: str) -> str:
    return time.strftime("%Y/%m/%d", time.gmtime()) + f"/[$LATEST]{worker_id}"


def log_stream_of(kind: str, name: str, host: str = "algo-1") -> tuple[str, str]:
    """(group, stream) of a SageMaker job (kind processing | training) or model server
    (kind serve, `name` the endpoint), as SageMaker names them."""
    epoch = int(time.time())
    if kind == "serve":
        return ENDPOINT_GROUP.format(name), f"AllTraffic/i-{uuid.uuid4().hex[:17]}"
    group = TRAINING_GROUP if kind == "training" else PROCESSING_GROUP
    return group, f"{name}/{host}-{epoch}"


Sink = Callable[[str, str, str], None]
