"""SageMaker for real, on this machine: moto records jobs and endpoints; this package runs them.

Where each part lives:
- `api.py`: the moto patches (CreateProcessingJob, CreateTrainingJob, Stop*Job,
  CreateEndpoint, UpdateEndpoint, DeleteEndpoint, sagemaker-runtime InvokeEndpoint):
  `install(patches, local)` hands each call to the runner below.
- `jobs.py`: how a Processing or Training job is faked — the container's entrypoint runs as
  a local process under the /opt/ml contract (inputs downloaded, outputs and model.tar.gz
  uploaded, real statuses, MaxRuntimeInSeconds, StopXJob).
- `endpoints.py`: endpoint model servers (`sfn_container serve` on a loopback port),
  blue/green UpdateEndpoint, DeleteEndpoint, InvokeEndpoint forwarding.
- `faults.py`: the cloud's own records of create calls, and fault injection for tests (API
  errors answered by an operation; jobs that fail as SageMaker fails them: capacity, ...).
- `common.py`: what both share — activity tracking (`wait_for_change`, for fast Wait
  states), S3 transfer, the base environment, and tracked spawning: close() kills every
  process they started, replaced blue servers included.

The container's image URI is recorded but not pulled: the local cloud runs the container
code of this checkout (no Docker).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sfn_mlops.local.logs import LocalLogs
from sfn_mlops.local.sagemaker.common import ENTRYPOINTS, Workspace
from sfn_mlops.local.sagemaker.endpoints import HEALTH_TIMEOUT_SECONDS, EndpointManager
from sfn_mlops.local.sagemaker.faults import Faults
from sfn_mlops.local.sagemaker.jobs import JobHook, JobRunner

__all__ = ["ENTRYPOINTS", "HEALTH_TIMEOUT_SECONDS", "JobHook", "LocalSageMaker"]


class LocalSageMaker(Workspace):
    """The job runner and the endpoint manager behind moto's SageMaker API."""

    def __init__(
        self,
        s3_client_factory: Callable[[], Any],
        root: Path,
        region: str,
        logs: LocalLogs | None = None,
    ) -> None:
        super().__init__(s3_client_factory, root, region, logs)
        self.job_runner = JobRunner(self)
        self.endpoints = EndpointManager(self)
        self.jobs = self.job_runner.jobs
        self.hooks: list[JobHook] = self.job_runner.hooks
        self.servers = self.endpoints.servers
        #: create-call records and fault injection (faults.py)
        self.faults = Faults()
        self.job_runner.faults = self.faults

    def close(self) -> None:
        with self.lock:
            self.closed = True
        self.job_runner.close()
        self.endpoints.close()
        super().close()
