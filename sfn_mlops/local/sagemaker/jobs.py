"""Processing and Training jobs, for real: the container's entrypoints
(`python -m sfn_container preprocess|train|evaluate`) run as local processes under the
`/opt/ml` contract, remapped into <workdir>/jobs/<name>/opt_ml. S3 inputs/channels are
downloaded first, outputs and `model.tar.gz` uploaded after (in-process: see
common.Workspace.download). Status is real: InProgress while running, then Completed,
Failed (FailureReason from `/opt/ml/output/failure`) or Stopped (StopXJob, or
MaxRuntimeInSeconds passed: MaxRuntimeExceeded). A duplicate job name is ResourceInUse.

Several instances (InstanceCount N): N host processes, algo-1..N, each under
<workdir>/jobs/<name>/<host>/opt_ml with its own resourceconfig.json, on loopback
(sfn_mlops.local.hosts); ShardedByS3Key inputs give each host its share of the objects.
Processing uploads every host's outputs; training uploads the first host's model. A host
that fails fails the job and the others are stopped.

Spot (EnableManagedSpotTraining + CheckpointConfig): each host's /opt/ml/checkpoints (or
CheckpointConfig.LocalPath) starts with the objects under CheckpointConfig.S3Uri and is
uploaded back when the hosts stop (SageMaker syncs while the job runs; here the sync
happens when the processes end, whatever the reason). :meth:`JobRunner.interrupt_spot`
injects a Spot interruption: the hosts are killed, their checkpoints kept in S3, their
local disks wiped, and the job restarts on them (SecondaryStatus Interrupted, then
Training again), as SageMaker restarts an interrupted Spot job.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfn_mlops.local import hosts, procs
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


class _InjectedFailureError(Exception):
    """A job failure SageMaker reports before the container runs (faults.py)."""


@dataclass
class Job:
    kind: str
    name: str
    workdir: Path
    proc: Any = None  # the first host's process
    procs: list[Any] = field(default_factory=list)  # every host's process
    stop_reason: str | None = None  # "user" | "max-runtime"
    done: threading.Event = field(default_factory=threading.Event)
    interrupt: bool = False  # a Spot interruption was injected and not yet handled
    spot: bool = False  # EnableManagedSpotTraining
    interruptions: int = 0


@dataclass(frozen=True)
class Host:
    """One instance of a job: its name, index, working directory and /opt/ml."""

    name: str
    index: int
    count: int
    workdir: Path

    @property
    def opt_ml(self) -> Path:
        return self.workdir / "opt_ml"

    @property
    def shard(self) -> tuple[int, int]:
        return (self.index, self.count)


def _hosts(job: Job, count: int) -> list[Host]:
    """One host keeps the job's own directory (<workdir>/opt_ml); several get one each."""
    names = hosts.host_names(count)
    if len(names) == 1:
        return [Host(names[0], 0, 1, job.workdir)]
    out = []
    for i, name in enumerate(names):
        (job.workdir / name).mkdir(parents=True, exist_ok=True)
        out.append(Host(name, i, len(names), job.workdir / name))
    return out


def _sharded(source: dict[str, Any]) -> bool:
    return source.get("S3DataDistributionType") == hosts.SHARDED


def _max_runtime(params: dict[str, Any]) -> int:
    return int((params.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds", 86400))


class JobRunner:
    """Runs the jobs moto records (see the module docstring)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.jobs: dict[str, Job] = {}
        self.hooks: list[JobHook] = []
        self.faults: Any = None  # faults.Faults, set by LocalSageMaker

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
        runs: list[tuple[Host, list[str], dict[str, str]]],
        max_runtime: float,
        on_tick: Callable[[], None] | None = None,
    ) -> list[int]:
        """Run every host's entrypoint to completion (or kill them); return the exit codes.
        A host that fails, a stop, an interruption or MaxRuntime ends every host. `on_tick`
        is called every METRIC_SCAN_SECONDS while they run, and once at the end."""
        job.procs = []
        for host, argv, env in runs:
            job.procs.append(self.ws.spawn(job.kind, job.name, argv, env, host.workdir))
            job.proc = job.procs[0]
        codes, timed_out = hosts.wait_all(
            job.procs,
            max(max_runtime, 0.0),
            lambda: job.stop_reason is not None or job.interrupt,
            on_tick=on_tick,
            tick_seconds=METRIC_SCAN_SECONDS,
        )
        if timed_out and job.stop_reason is None:
            job.stop_reason = "max-runtime"
        for proc in job.procs:  # their last lines into the log files and streams
            self.ws.drain(proc)
        if on_tick is not None:
            on_tick()  # once more: the lines the log pumps wrote after the last scan
        return codes

    def _host_failure(self, job: Job, group: list[Host], codes: list[int]) -> str:
        """The failure of the first host that failed on its own (not killed after another)."""
        failed = [h for h, c in zip(group, codes, strict=True) if c != 0]
        own = [h for h in failed if (h.opt_ml / "output" / "failure").is_file()] or failed
        host = own[0]
        code = codes[group.index(host)]
        reason = self._failure_reason(host.opt_ml, host.workdir, job.kind, code)
        if len(group) > 1:
            reason = f"{reason.split(': ', 1)[0]}: host {host.name}: {reason.split(': ', 1)[1]}"
        return reason[:1024]

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

    def _injected(self, params: dict[str, Any]) -> None:
        reason = self.faults.take_job_failure(params) if self.faults is not None else None
        if reason:
            raise _InjectedFailureError(reason)

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
        status, reason, message = "Failed", None, None
        try:
            self._injected(params)
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
            cluster = (params.get("ProcessingResources") or {}).get("ClusterConfig") or {}
            group = _hosts(job, int(cluster.get("InstanceCount", 1)))
            names = [h.name for h in group]
            port = procs.free_port()
            outputs = (params.get("ProcessingOutputConfig") or {}).get("Outputs") or []
            runs = []
            for host in group:
                for inp in params.get("ProcessingInputs") or []:
                    s3_input = inp.get("S3Input")
                    if s3_input:
                        self.ws.download(
                            s3_input["S3Uri"],
                            self._remap(host.opt_ml, s3_input["LocalPath"]),
                            host.shard if _sharded(s3_input) else None,
                        )
                for out in outputs:
                    local = self._remap(host.opt_ml, out["S3Output"]["LocalPath"])
                    local.mkdir(parents=True, exist_ok=True)
                config_dir = host.opt_ml / "config"
                config_dir.mkdir(parents=True, exist_ok=True)
                (config_dir / "resourceconfig.json").write_text(
                    json.dumps(hosts.resource_config(host.name, names))
                )
                env = self.ws.base_env()
                env.update(params.get("Environment") or {})
                env.update(hosts.host_env(host.name, names, port))
                env["OPT_ML"] = str(host.opt_ml)
                runs.append((host, [sys.executable, "-m", "sfn_container", entry], env))
            codes = self._run(job, runs, _max_runtime(params))
            if job.stop_reason is not None:
                status = "Stopped"
                if job.stop_reason == "max-runtime":
                    message = "MaxRuntimeExceeded: the job ran longer than MaxRuntimeInSeconds"
            elif not any(codes):
                for host in group:  # each host's files: the container names them per host
                    for out in outputs:
                        s3_out = out["S3Output"]
                        self.ws.upload_dir(
                            self._remap(host.opt_ml, s3_out["LocalPath"]), s3_out["S3Uri"]
                        )
                status = "Completed"
            else:
                reason = self._host_failure(job, group, codes)
                message = reason.removeprefix("AlgorithmError: ")
        except _InjectedFailureError as exc:
            reason = message = str(exc)
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
        job.spot = bool(params.get("EnableManagedSpotTraining"))
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

    def _stage_host(
        self, host: Host, names: list[str], params: dict[str, Any], port: int
    ) -> tuple[Host, list[str], dict[str, str]]:
        """One host's /opt/ml for a training job: channels (its shard when sharded), the
        config files, and the container's environment."""
        opt_ml = host.opt_ml
        channels = {}
        for channel in params.get("InputDataConfig") or []:
            source = channel["DataSource"]["S3DataSource"]
            name = channel["ChannelName"]
            shard = host.shard if _sharded(source) else None
            self.ws.download(source["S3Uri"], opt_ml / "input" / "data" / name, shard)
            channels[name] = {k: v for k, v in channel.items() if k != "DataSource"}
        config_dir = opt_ml / "input" / "config"
        config_dir.mkdir(parents=True, exist_ok=True)
        hps = {k: str(v) for k, v in (params.get("HyperParameters") or {}).items()}
        (config_dir / "hyperparameters.json").write_text(json.dumps(hps))
        (config_dir / "inputdataconfig.json").write_text(json.dumps(channels))
        (config_dir / "resourceconfig.json").write_text(
            json.dumps(hosts.resource_config(host.name, names))
        )
        for sub in ("model", "output/data"):
            (opt_ml / sub).mkdir(parents=True, exist_ok=True)
        env = self.ws.base_env()
        env.update(params.get("Environment") or {})
        env.update(hosts.host_env(host.name, names, port))
        env.update(
            OPT_ML=str(opt_ml),
            SM_MODEL_DIR=str(opt_ml / "model"),
            SM_OUTPUT_DATA_DIR=str(opt_ml / "output" / "data"),
            SM_INPUT_CONFIG_DIR=str(config_dir),
            SM_HPS=json.dumps(hps),
            SM_CHANNELS=json.dumps(sorted(channels)),
        )
        for name in channels:
            env[f"SM_CHANNEL_{name.upper()}"] = str(opt_ml / "input" / "data" / name)
        return host, [sys.executable, "-m", "sfn_container", "train"], env

    def _checkpoint_dir(self, host: Host, params: dict[str, Any]) -> Path | None:
        config = params.get("CheckpointConfig") or {}
        if not config.get("S3Uri"):
            return None
        return self._remap(host.opt_ml, config.get("LocalPath") or "/opt/ml/checkpoints")

    def _restore_checkpoints(self, group: list[Host], params: dict[str, Any]) -> None:
        """Every host's checkpoint directory starts as the CheckpointConfig S3 prefix."""
        for host in group:
            local = self._checkpoint_dir(host, params)
            if local is not None:
                local.mkdir(parents=True, exist_ok=True)
                uri = params["CheckpointConfig"]["S3Uri"]
                self.ws.download(uri, local, required=False)

    def _save_checkpoints(self, group: list[Host], params: dict[str, Any]) -> None:
        for host in group:
            local = self._checkpoint_dir(host, params)
            if local is not None and local.is_dir():
                self.ws.upload_dir(local, params["CheckpointConfig"]["S3Uri"])

    def _training_main(self, job: Job, fake: Any, params: dict[str, Any]) -> None:
        status, reason, secondary = "Failed", None, "Failed"
        try:
            self._injected(params)
            self._transition(fake, "Downloading", "Downloading input data")
            count = int((params.get("ResourceConfig") or {}).get("InstanceCount", 1))
            group = _hosts(job, count)
            names = [h.name for h in group]
            port = procs.free_port()
            runs = [self._stage_host(host, names, params, port) for host in group]
            self._restore_checkpoints(group, params)
            self._transition(
                fake, "Training", "Training image download completed. Training in progress."
            )
            algorithm = params.get("AlgorithmSpecification") or {}
            scanner = MetricScanner(  # the metrics come from the first host's log
                group[0].workdir / f"{job.kind}.log",
                [
                    (str(d["Name"]), re.compile(str(d["Regex"])))
                    for d in algorithm.get("MetricDefinitions") or []
                ],
            )
            deadline = time.monotonic() + _max_runtime(params)
            while True:
                codes = self._run(
                    job, runs, deadline - time.monotonic(), on_tick=lambda: scanner.scan(fake)
                )
                self._save_checkpoints(group, params)  # SageMaker syncs them continuously
                if not (job.interrupt and job.stop_reason is None):
                    break
                job.interrupt = False
                job.interruptions += 1
                self._transition(fake, "Interrupted", "Job interrupted: Spot capacity reclaimed")
                for host in group:  # a new instance: nothing local survives but what S3 holds
                    local = self._checkpoint_dir(host, params)
                    for path in (local, host.opt_ml / "model"):
                        if path is not None and path.is_dir():
                            shutil.rmtree(path)
                    (host.opt_ml / "model").mkdir(parents=True)
                self._restore_checkpoints(group, params)
                port = procs.free_port()  # new instances: the old tracker's port may linger
                for _, _, env in runs:
                    if "SFN_TRACKER_PORT" in env:
                        env["SFN_TRACKER_PORT"] = str(port)
                self._transition(fake, "Training", "Restarting the job after a Spot interruption")
            leader = group[0].opt_ml
            if job.stop_reason is not None:
                status = "Stopped"
                secondary = "MaxRuntimeExceeded" if job.stop_reason == "max-runtime" else "Stopped"
            elif not any(codes):
                self._transition(fake, "Uploading", "Uploading generated training model")
                out_path = params["OutputDataConfig"]["S3OutputPath"].rstrip("/")
                bucket, key = split_s3(f"{out_path}/{job.name}/output/model.tar.gz")
                buf = io.BytesIO()
                with tarfile.open(fileobj=buf, mode="w:gz") as tar:  # the first host's model
                    for path in sorted((leader / "model").rglob("*")):
                        tar.add(path, arcname=path.relative_to(leader / "model").as_posix())
                self.ws.put_bytes(bucket, key, buf.getvalue())
                fake.model_artifacts = {"S3ModelArtifacts": f"s3://{bucket}/{key}"}
                status, secondary = "Completed", "Completed"
            else:
                reason = self._host_failure(job, group, codes)
        except _InjectedFailureError as exc:
            reason = str(exc)
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
        for proc in list(job.procs):
            procs.kill(proc)
        return True

    def interrupt_spot(self, name: str) -> bool:
        """Inject a Spot interruption into a running Spot training job: its hosts are
        killed and the job restarts from its checkpoints. False if there is no such job
        running (or it is not a Spot job)."""
        job = self.jobs.get(name)
        if job is None or job.kind != "training" or job.done.is_set() or not job.procs:
            return False
        if not job.spot:
            return False
        job.interrupt = True
        for proc in list(job.procs):
            procs.kill(proc)
        return True

    def close(self) -> None:
        for name in list(self.jobs):
            self.stop_job(name)
