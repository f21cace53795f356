"""Processing and Training jobs, for real: the container's entrypoints
(`python -m sfn_container preprocess|train|evaluate`) run as local processes under the
`/opt/ml` contract, remapped into <workdir>/jobs/<name>/opt_ml. S3 inputs/channels are
downloaded first, outputs and `model.tar.gz` uploaded after. Status is real: InProgress
while running, then Completed, Failed (FailureReason from `/opt/ml/output/failure`) or
Stopped (StopXJob, or MaxRuntimeInSeconds passed: MaxRuntimeExceeded). A duplicate job
name is ResourceInUse.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfn_mlops.local import procs
from sfn_mlops.local.sagemaker.common import ENTRYPOINTS, Workspace, now, split_s3, tail

#: Called as hook(kind, job_name, status, request) right before a job's final status is
#: published (kind = "processing" | "training"; request = the Create*Job parameters).
#: Tests use it to inject faults at a precise moment.
JobHook = Callable[[str, str, str, dict[str, Any]], None]
METRIC_SCAN_SECONDS = 1.0  # how often a running training job's log is scanned for metrics


@dataclass
class MetricScanner:
    """SageMaker's metric definitions: each regex is searched in every new line of the
    algorithm's log; the latest match of each is the job's FinalMetricDataList entry (name,
    value, timestamp), visible in DescribeTrainingJob while the job runs."""

    log: Path
    definitions: list[tuple[str, re.Pattern[str]]]
    offset: int = 0
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)

    def scan(self, fake: Any) -> None:
        if not self.definitions or not self.log.is_file():
            return
        with self.log.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            for name, regex in self.definitions:
                match = regex.search(line)
                if match:
                    with contextlib.suppress(ValueError, IndexError):
                        value = float(match.group(1))
                        self.latest[name] = {"MetricName": name, "Value": value, "Timestamp": now()}
        if self.latest:
            fake.final_metric_data_list = list(self.latest.values())


@dataclass
class Job:
    kind: str
    name: str
    workdir: Path
    proc: Any = None
    stop_reason: str | None = None  # "user" | "max-runtime"
    done: threading.Event = field(default_factory=threading.Event)


def _max_runtime(params: dict[str, Any]) -> int:
    return int((params.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds", 86400))


class JobRunner:
    """Runs the jobs moto records (see the module docstring)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.jobs: dict[str, Job] = {}
        self.hooks: list[JobHook] = []

    def new_job(self, kind: str, name: str) -> Job:
        from moto.sagemaker.exceptions import ResourceInUseException

        with self.ws.lock:
            if name in self.jobs:
                arn_kind = "processing-job" if kind == "processing" else "training-job"
                raise ResourceInUseException(
                    message=(
                        "Job name must be unique within an AWS account and region, and a job "
                        f"with this name already exists (arn:aws:sagemaker:{self.ws.region}:"
                        f"{arn_kind}/{name.lower()})"
                    )
                )
            workdir = self.ws.root / "jobs" / name
            workdir.mkdir(parents=True, exist_ok=True)
            job = Job(kind, name, workdir)
            self.jobs[name] = job
            return job

    def _run(
        self,
        job: Job,
        argv: list[str],
        env: dict[str, str],
        max_runtime: int,
        on_tick: Callable[[], None] | None = None,
    ) -> int:
        """Run the entrypoint to completion (or kill it); return its exit code. `on_tick` is
        called every METRIC_SCAN_SECONDS while it runs, and once at its end."""
        job.proc = self.ws.spawn(job.kind, argv, env, job.workdir)
        deadline = time.monotonic() + max_runtime
        try:
            while True:
                left = max(0.0, deadline - time.monotonic())
                try:
                    code = int(job.proc.wait(timeout=min(left, METRIC_SCAN_SECONDS)))
                except subprocess.TimeoutExpired:
                    if on_tick is not None:
                        on_tick()
                    if left <= METRIC_SCAN_SECONDS:
                        raise
                    continue
                if on_tick is not None:
                    on_tick()
                return code
        except subprocess.TimeoutExpired:
            if job.stop_reason is None:
                job.stop_reason = "max-runtime"
            procs.kill(job.proc)
            return int(job.proc.returncode if job.proc.returncode is not None else -9)
        finally:
            procs.forget(job.proc)

    @staticmethod
    def _failure_reason(opt_ml: Path, workdir: Path, kind: str, code: int) -> str:
        for candidate in (opt_ml / "output" / "failure", opt_ml / "output" / "message"):
            if candidate.is_file():
                # the container's own paths as SageMaker shows them (/opt/ml/...), not the
                # local work directory they were remapped into
                text = candidate.read_text(errors="replace").strip().replace(str(opt_ml), "/opt/ml")
                if text:
                    return f"AlgorithmError: {text}"[:1024]
        return f"AlgorithmError: exit code {code}. {tail(workdir / f'{kind}.log')}"[:1024]

    @staticmethod
    def _remap(opt_ml: Path, path: str) -> Path:
        if path.startswith("/opt/ml"):
            return opt_ml / path[len("/opt/ml") :].lstrip("/")
        return opt_ml.parent / "fs" / path.lstrip("/")

    def _finish(self, job: Job, params: dict[str, Any], status: str) -> None:
        for hook in list(self.hooks):
            hook(job.kind, job.name, status, params)
        job.done.set()

    # --- processing jobs -----------------------------------------------------------------
    def start_processing_job(self, fake: Any, params: dict[str, Any]) -> None:
        job = self.jobs[params["ProcessingJobName"]]
        fake.environment = params.get("Environment") or {}
        fake.processing_resources = params.get("ProcessingResources")
        fake.processing_job_status = "InProgress"
        fake.processing_end_time = None
        fake.processing_start_time = now()
        fake.last_modified_time = now()
        self.ws._start_thread(self._processing_main, job, fake, params)

    def _processing_main(self, job: Job, fake: Any, params: dict[str, Any]) -> None:
        opt_ml = job.workdir / "opt_ml"
        status, reason, message = "Failed", None, None
        try:
            app = params.get("AppSpecification") or {}
            tokens = [
                *(app.get("ContainerEntrypoint") or []),
                *(app.get("ContainerArguments") or []),
            ]
            entry = next((t for t in tokens if t in ENTRYPOINTS), None)
            if entry is None:
                raise ValueError(
                    f"ClientError: the container entrypoint {tokens} names none of {ENTRYPOINTS}"
                )
            for inp in params.get("ProcessingInputs") or []:
                s3_input = inp.get("S3Input")
                if s3_input:
                    self.ws.download(s3_input["S3Uri"], self._remap(opt_ml, s3_input["LocalPath"]))
            outputs = (params.get("ProcessingOutputConfig") or {}).get("Outputs") or []
            for out in outputs:
                self._remap(opt_ml, out["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
            env = self.ws.base_env()
            env.update(params.get("Environment") or {})
            env["OPT_ML"] = str(opt_ml)
            argv = [sys.executable, "-m", "sfn_container", entry]
            code = self._run(job, argv, env, _max_runtime(params))
            if job.stop_reason is not None:
                status = "Stopped"
                if job.stop_reason == "max-runtime":
                    message = "MaxRuntimeExceeded: the job ran longer than MaxRuntimeInSeconds"
            elif code == 0:
                for out in outputs:
                    s3_out = out["S3Output"]
                    self.ws.upload_dir(self._remap(opt_ml, s3_out["LocalPath"]), s3_out["S3Uri"])
                status = "Completed"
            else:
                reason = self._failure_reason(opt_ml, job.workdir, job.kind, code)
                message = reason.removeprefix("AlgorithmError: ")
        except Exception as exc:
            reason = (
                f"ClientError: {exc}"[:1024] if not str(exc).startswith("ClientError") else str(exc)
            )
        self._finish(job, params, status)
        fake.failure_reason = reason
        fake.exit_message = message
        fake.processing_end_time = now()
        fake.last_modified_time = now()
        fake.processing_job_status = status

    # --- training jobs -------------------------------------------------------------------
    def start_training_job(self, fake: Any, params: dict[str, Any]) -> None:
        job = self.jobs[params["TrainingJobName"]]
        fake.environment = params.get("Environment") or {}
        # moto overwrites AlgorithmSpecification.MetricDefinitions with a canned one; AWS
        # keeps (and describes) the requested definitions, which the metrics come from
        fake.algorithm_specification = params.get("AlgorithmSpecification") or {}
        fake.training_job_status = "InProgress"
        fake.secondary_status = "Starting"
        fake.training_start_time = now()
        fake.training_end_time = None
        fake.last_modified_time = now()
        fake.model_artifacts = None
        fake.final_metric_data_list = []
        fake.secondary_status_transitions = [
            {
                "Status": "Starting",
                "StartTime": now(),
                "StatusMessage": "Preparing the instances for training",
            }
        ]
        self.ws._start_thread(self._training_main, job, fake, params)

    @staticmethod
    def _transition(fake: Any, status: str, message: str) -> None:
        at = now()
        transitions = list(fake.secondary_status_transitions or [])
        if transitions and "EndTime" not in transitions[-1]:
            transitions[-1] = {**transitions[-1], "EndTime": at}
        transitions.append({"Status": status, "StartTime": at, "StatusMessage": message})
        fake.secondary_status_transitions = transitions
        fake.secondary_status = status
        fake.last_modified_time = at

    def _training_main(self, job: Job, fake: Any, params: dict[str, Any]) -> None:
        opt_ml = job.workdir / "opt_ml"
        status, reason, secondary = "Failed", None, "Failed"
        try:
            self._transition(fake, "Downloading", "Downloading input data")
            channels = {}
            for channel in params.get("InputDataConfig") or []:
                src = channel["DataSource"]["S3DataSource"]["S3Uri"]
                name = channel["ChannelName"]
                self.ws.download(src, opt_ml / "input" / "data" / name)
                channels[name] = {k: v for k, v in channel.items() if k != "DataSource"}
            config_dir = opt_ml / "input" / "config"
            config_dir.mkdir(parents=True, exist_ok=True)
            hps = {k: str(v) for k, v in (params.get("HyperParameters") or {}).items()}
            (config_dir / "hyperparameters.json").write_text(json.dumps(hps))
            (config_dir / "inputdataconfig.json").write_text(json.dumps(channels))
            (config_dir / "resourceconfig.json").write_text(
                json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
            )
            for sub in ("model", "output/data"):
                (opt_ml / sub).mkdir(parents=True, exist_ok=True)
            env = self.ws.base_env()
            env.update(params.get("Environment") or {})
            env.update(
                OPT_ML=str(opt_ml),
                SM_MODEL_DIR=str(opt_ml / "model"),
                SM_OUTPUT_DATA_DIR=str(opt_ml / "output" / "data"),
                SM_INPUT_CONFIG_DIR=str(config_dir),
                SM_HPS=json.dumps(hps),
                SM_CHANNELS=json.dumps(sorted(channels)),
                SM_CURRENT_HOST="algo-1",
                SM_HOSTS='["algo-1"]',
            )
            for name in channels:
                env[f"SM_CHANNEL_{name.upper()}"] = str(opt_ml / "input" / "data" / name)
            self._transition(
                fake, "Training", "Training image download completed. Training in progress."
            )
            argv = [sys.executable, "-m", "sfn_container", "train"]
            algorithm = params.get("AlgorithmSpecification") or {}
            scanner = MetricScanner(
                job.workdir / f"{job.kind}.log",
                [
                    (str(d["Name"]), re.compile(str(d["Regex"])))
                    for d in algorithm.get("MetricDefinitions") or []
                ],
            )
            code = self._run(
                job, argv, env, _max_runtime(params), on_tick=lambda: scanner.scan(fake)
            )
            if job.stop_reason is not None:
                status = "Stopped"
                secondary = "MaxRuntimeExceeded" if job.stop_reason == "max-runtime" else "Stopped"
            elif code == 0:
                self._transition(fake, "Uploading", "Uploading generated training model")
                out_path = params["OutputDataConfig"]["S3OutputPath"].rstrip("/")
                bucket, key = split_s3(f"{out_path}/{job.name}/output/model.tar.gz")
                buf = io.BytesIO()
                with tarfile.open(fileobj=buf, mode="w:gz") as tar:
                    for path in sorted((opt_ml / "model").rglob("*")):
                        tar.add(path, arcname=path.relative_to(opt_ml / "model").as_posix())
                self.ws.s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
                fake.model_artifacts = {"S3ModelArtifacts": f"s3://{bucket}/{key}"}
                status, secondary = "Completed", "Completed"
            else:
                reason = self._failure_reason(opt_ml, job.workdir, job.kind, code)
        except Exception as exc:
            reason = f"ClientError: {exc}"[:1024]
        self._finish(job, params, status)
        if status == "Stopped" and secondary == "MaxRuntimeExceeded":
            reason = None
        self._transition(fake, secondary, reason or f"Training job {status.lower()}")
        fake.failure_reason = reason
        fake.training_end_time = now()
        fake.training_job_status = status

    # --- stopping ------------------------------------------------------------------------
    def stop_job(self, name: str) -> bool:
        job = self.jobs.get(name)
        if job is None:
            return False
        if job.done.is_set():
            return True
        job.stop_reason = job.stop_reason or "user"
        if job.proc is not None:
            procs.kill(job.proc)
        return True

    def close(self) -> None:
        for name in list(self.jobs):
            self.stop_job(name)
