"""SageMaker for real, on this machine: moto records jobs and endpoints; these hooks run them.

- Processing and Training jobs run the container's entrypoints (`python -m sfn_container
  preprocess|train|evaluate`) as local processes under the `/opt/ml` contract, remapped
  into a work directory: S3 inputs/channels are downloaded first, outputs and
  `model.tar.gz` uploaded after. Status is real: InProgress while running, then Completed,
  Failed (FailureReason from `/opt/ml/output/failure`) or Stopped (StopXJob, or
  MaxRuntimeInSeconds passed: MaxRuntimeExceeded). A duplicate job name is ResourceInUse.
- Endpoints run `python -m sfn_container serve` on a free loopback port with the model
  from the endpoint config (Creating -> InService once /ping answers). UpdateEndpoint (not
  in moto) is blue/green: the new server must be healthy before traffic moves; a failed
  update leaves the endpoint InService on the old config with FailureReason set.
  InvokeEndpoint (sagemaker-runtime) forwards to the endpoint's current server;
  DeleteEndpoint stops it.

The container's image URI is recorded but not pulled: the local cloud runs the container
code of this checkout (no Docker).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfn_mlops.local import procs

ENTRYPOINTS = ("preprocess", "train", "evaluate", "serve")
HEALTH_TIMEOUT_SECONDS = 60.0
_HOST_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")

#: Called as hook(kind, job_name, status, request) right before a job's final status is
#: published (kind = "processing" | "training"; request = the Create*Job parameters).
#: Tests use it to inject faults at a precise moment.
JobHook = Callable[[str, str, str, dict[str, Any]], None]


def _now() -> dt.datetime:
    return dt.datetime.now(tz=dt.UTC)


def _split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


@dataclass
class _Job:
    kind: str
    name: str
    workdir: Path
    proc: Any = None
    stop_reason: str | None = None  # "user" | "max-runtime"
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Server:
    config_name: str
    port: int
    proc: Any
    workdir: Path


class LocalSageMaker:
    """The job runner and the endpoint manager behind moto's SageMaker API."""

    def __init__(self, s3_client_factory: Callable[[], Any], root: Path, region: str) -> None:
        self._s3_factory = s3_client_factory
        self.root = root.resolve()  # children run in their own cwd: paths must be absolute
        self.region = region
        self.jobs: dict[str, _Job] = {}
        self.servers: dict[str, _Server] = {}  # endpoint name -> the server taking traffic
        # Activity: jobs and endpoint operations under way, and a counter of finished ones,
        # so a Wait state can skip ahead to the next change (see sfn.install fast waits).
        self._activity = threading.Condition()
        self._busy = 0
        self._changes = 0
        self.hooks: list[JobHook] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = False

    # --- helpers -------------------------------------------------------------------------
    @property
    def s3(self) -> Any:
        return self._s3_factory()

    def _base_env(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in _HOST_KEYS if k in os.environ}
        root = str(Path(__file__).resolve().parents[2])
        env.update(PYTHONPATH=os.pathsep.join([root, str(Path(root) / "container")]))
        env["PYTHONUNBUFFERED"] = "1"
        return env

    @staticmethod
    def _whole_objects() -> Any:
        """One GET/PUT per object: moto rereads and copies the whole object for every
        ranged or multipart request, so boto3's default parallel transfer is several
        times slower here (150 MB: 1.75 s ranged vs 0.3-0.5 s in one GET)."""
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(multipart_threshold=5 * 1024**3, use_threads=False)

    def _download(self, uri: str, dest: Path) -> None:
        """An S3 prefix (or one object) into `dest`, keeping relative paths."""
        bucket, prefix = _split_s3(uri)
        dest.mkdir(parents=True, exist_ok=True)
        paginator = self.s3.get_paginator("list_objects_v2")
        found = False
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith("/"):
                    continue
                rel = key[len(prefix) :].lstrip("/") if key != prefix else key.rsplit("/", 1)[-1]
                if not rel:
                    continue
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(bucket, key, str(target), Config=self._whole_objects())
                found = True
        if not found:
            raise FileNotFoundError(f"no S3 objects under {uri}")

    def _upload_dir(self, src: Path, uri: str) -> None:
        bucket, prefix = _split_s3(uri)
        prefix = prefix.rstrip("/")
        for path in sorted(src.rglob("*")):
            if path.is_file():
                rel = path.relative_to(src).as_posix()
                key = f"{prefix}/{rel}" if prefix else rel
                self.s3.upload_file(str(path), bucket, key, Config=self._whole_objects())

    def _spawn(self, kind: str, name: str, argv: list[str], env: dict[str, str], workdir: Path):
        log = open(workdir / f"{kind}.log", "ab")  # noqa: SIM115 - owned by the child
        try:
            return procs.spawn(argv, env=env, cwd=workdir, stdout=log, stderr=log)
        finally:
            log.close()

    def _run(self, job: _Job, argv: list[str], env: dict[str, str], max_runtime: int) -> int:
        """Run the entrypoint to completion (or kill it); return its exit code."""
        job.proc = self._spawn(job.kind, job.name, argv, env, job.workdir)
        try:
            return int(job.proc.wait(timeout=max_runtime))
        except Exception:  # TimeoutExpired
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
                text = candidate.read_text(errors="replace").strip()
                if text:
                    return f"AlgorithmError: {text}"[:1024]
        tail = _tail(workdir / f"{kind}.log")
        return f"AlgorithmError: exit code {code}. {tail}"[:1024]

    def _remap(self, opt_ml: Path, path: str) -> Path:
        if path.startswith("/opt/ml"):
            return opt_ml / path[len("/opt/ml") :].lstrip("/")
        return opt_ml.parent / "fs" / path.lstrip("/")

    def _start_thread(self, target: Callable[..., None], *args: Any) -> None:
        """Run a job or endpoint operation; its end (whatever the outcome) is a change."""

        def run() -> None:
            try:
                target(*args)
            finally:
                with self._activity:
                    self._busy -= 1
                    self._changes += 1
                    self._activity.notify_all()

        with self._activity:
            self._busy += 1
        t = threading.Thread(target=run, daemon=True)
        self._threads.append(t)
        t.start()

    def wait_for_change(self, timeout: float, is_running: Callable[[], bool]) -> None:
        """Block until a job or endpoint operation ends, `timeout` passes, or nothing is
        under way at all (then nothing can change, so there is nothing to wait for)."""
        with self._activity:
            seen = self._changes
            self._activity.wait_for(
                lambda: self._changes != seen or self._busy == 0 or not is_running(),
                timeout=timeout,
            )

    def _new_job(self, kind: str, name: str) -> _Job:
        from moto.sagemaker.exceptions import ResourceInUseException

        with self._lock:
            if name in self.jobs:
                arn_kind = "processing-job" if kind == "processing" else "training-job"
                raise ResourceInUseException(
                    message=(
                        "Job name must be unique within an AWS account and region, and a job "
                        f"with this name already exists (arn:aws:sagemaker:{self.region}:"
                        f"{arn_kind}/{name.lower()})"
                    )
                )
            workdir = self.root / "jobs" / name
            workdir.mkdir(parents=True, exist_ok=True)
            job = _Job(kind, name, workdir)
            self.jobs[name] = job
            return job

    def _finish(self, job: _Job, params: dict[str, Any], status: str) -> None:
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
        fake.processing_start_time = _now()
        fake.last_modified_time = _now()
        self._start_thread(self._processing_main, job, fake, params)

    def _processing_main(self, job: _Job, fake: Any, params: dict[str, Any]) -> None:
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
                    self._download(s3_input["S3Uri"], self._remap(opt_ml, s3_input["LocalPath"]))
            outputs = (params.get("ProcessingOutputConfig") or {}).get("Outputs") or []
            for out in outputs:
                self._remap(opt_ml, out["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
            env = self._base_env()
            env.update(params.get("Environment") or {})
            env["OPT_ML"] = str(opt_ml)
            max_runtime = int(
                (params.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds", 86400)
            )
            code = self._run(job, [sys.executable, "-m", "sfn_container", entry], env, max_runtime)
            if job.stop_reason is not None:
                status = "Stopped"
                if job.stop_reason == "max-runtime":
                    message = "MaxRuntimeExceeded: the job ran longer than MaxRuntimeInSeconds"
            elif code == 0:
                for out in outputs:
                    s3_out = out["S3Output"]
                    self._upload_dir(self._remap(opt_ml, s3_out["LocalPath"]), s3_out["S3Uri"])
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
        fake.processing_end_time = _now()
        fake.last_modified_time = _now()
        fake.processing_job_status = status

    # --- training jobs -------------------------------------------------------------------
    def start_training_job(self, fake: Any, params: dict[str, Any]) -> None:
        job = self.jobs[params["TrainingJobName"]]
        fake.environment = params.get("Environment") or {}
        fake.training_job_status = "InProgress"
        fake.secondary_status = "Starting"
        fake.training_start_time = _now()
        fake.training_end_time = None
        fake.last_modified_time = _now()
        fake.model_artifacts = None
        fake.final_metric_data_list = []
        fake.secondary_status_transitions = [
            {
                "Status": "Starting",
                "StartTime": _now(),
                "StatusMessage": "Preparing the instances for training",
            }
        ]
        self._start_thread(self._training_main, job, fake, params)

    def _transition(self, fake: Any, status: str, message: str) -> None:
        now = _now()
        transitions = list(fake.secondary_status_transitions or [])
        if transitions and "EndTime" not in transitions[-1]:
            transitions[-1] = {**transitions[-1], "EndTime": now}
        transitions.append({"Status": status, "StartTime": now, "StatusMessage": message})
        fake.secondary_status_transitions = transitions
        fake.secondary_status = status
        fake.last_modified_time = now

    def _training_main(self, job: _Job, fake: Any, params: dict[str, Any]) -> None:
        opt_ml = job.workdir / "opt_ml"
        status, reason, secondary = "Failed", None, "Failed"
        try:
            self._transition(fake, "Downloading", "Downloading input data")
            channels = {}
            for channel in params.get("InputDataConfig") or []:
                src = channel["DataSource"]["S3DataSource"]["S3Uri"]
                name = channel["ChannelName"]
                self._download(src, opt_ml / "input" / "data" / name)
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
            env = self._base_env()
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
            max_runtime = int(
                (params.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds", 86400)
            )
            self._transition(
                fake, "Training", "Training image download completed. Training in progress."
            )
            code = self._run(
                job, [sys.executable, "-m", "sfn_container", "train"], env, max_runtime
            )
            if job.stop_reason is not None:
                status = "Stopped"
                secondary = "MaxRuntimeExceeded" if job.stop_reason == "max-runtime" else "Stopped"
            elif code == 0:
                self._transition(fake, "Uploading", "Uploading generated training model")
                out_path = params["OutputDataConfig"]["S3OutputPath"].rstrip("/")
                bucket, key = _split_s3(f"{out_path}/{job.name}/output/model.tar.gz")
                buf = io.BytesIO()
                with tarfile.open(fileobj=buf, mode="w:gz") as tar:
                    for path in sorted((opt_ml / "model").rglob("*")):
                        tar.add(path, arcname=path.relative_to(opt_ml / "model").as_posix())
                self.s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
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
        fake.training_end_time = _now()
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

    # --- endpoints -----------------------------------------------------------------------
    def _start_server(self, endpoint: str, config_name: str, backend: Any) -> _Server:
        """Start the model server for `config_name` and wait until /ping answers 200."""
        config = backend.endpoint_configs[config_name]
        variant = config.production_variants[0]
        model = backend._models[variant["ModelName"]]
        container = model.primary_container or (model.containers or [{}])[0]
        workdir = self.root / "endpoints" / endpoint / f"{config_name}-{int(time.time() * 1000)}"
        opt_ml = workdir / "opt_ml"
        model_dir = opt_ml / "model"
        model_dir.mkdir(parents=True, exist_ok=True)
        data_url = container.get("ModelDataUrl")
        if data_url:
            bucket, key = _split_s3(data_url)
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            try:
                with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
                    tar.extractall(model_dir, filter="data")
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise RuntimeError(
                    f"Failed to extract model data archive from URL {data_url!r}: {exc}"
                ) from exc
        port = procs.free_port()
        env = self._base_env()
        env.update(container.get("Environment") or {})
        env.update(
            OPT_ML=str(opt_ml), SAGEMAKER_BIND_TO_PORT=str(port), SM_MODEL_DIR=str(model_dir)
        )
        proc = self._spawn(
            "serve", endpoint, [sys.executable, "-m", "sfn_container", "serve"], env, workdir
        )
        deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
        while time.monotonic() < deadline and not self._closed:
            if proc.poll() is not None:
                procs.forget(proc)
                raise RuntimeError(
                    f"The primary container for production variant {variant['VariantName']} "
                    f"exited with code {proc.returncode} before passing the ping health check: "
                    f"{_tail(workdir / 'serve.log', 3)}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as r:
                    if r.status == 200:
                        return _Server(config_name, port, proc, workdir)
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        procs.kill(proc)
        raise RuntimeError(
            f"The primary container for production variant {variant['VariantName']} did not "
            "pass the ping health check. Please check CloudWatch logs for this endpoint."
        )

    def create_endpoint(self, fake: Any, backend: Any) -> None:
        fake.endpoint_status = "Creating"
        fake.failure_reason = None
        self._start_thread(self._create_main, fake, backend)

    def _create_main(self, fake: Any, backend: Any) -> None:
        try:
            server = self._start_server(fake.endpoint_name, fake.endpoint_config_name, backend)
        except Exception as exc:
            fake.failure_reason = str(exc)[:1024]
            fake.endpoint_status = "Failed"
        else:
            with self._lock:
                self.servers[fake.endpoint_name] = server
            fake.endpoint_status = "InService"
        fake.last_modified_time = _now()

    def update_endpoint(self, fake: Any, backend: Any, config_name: str) -> None:
        fake.endpoint_status = "Updating"
        fake.last_modified_time = _now()
        self._start_thread(self._update_main, fake, backend, config_name)

    def _update_main(self, fake: Any, backend: Any, config_name: str) -> None:
        try:
            server = self._start_server(fake.endpoint_name, config_name, backend)
        except Exception as exc:
            # blue/green: the old fleet keeps serving, the endpoint stays InService
            fake.failure_reason = str(exc)[:1024]
            fake.endpoint_status = "InService"
            fake.last_modified_time = _now()
            return
        with self._lock:
            old = self.servers.get(fake.endpoint_name)
            self.servers[fake.endpoint_name] = server  # traffic moves to green
        if old is not None:
            procs.kill(old.proc)  # then blue goes
        fake.endpoint_config_name = config_name
        fake.production_variants = fake._process_production_variants(
            backend.endpoint_configs[config_name].production_variants
        )
        fake.failure_reason = None
        fake.last_modified_time = _now()
        fake.endpoint_status = "InService"

    def delete_endpoint(self, name: str) -> None:
        with self._lock:
            server = self.servers.pop(name, None)
        if server is not None:
            procs.kill(server.proc)

    def invoke(
        self, endpoint: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        server = self.servers.get(endpoint)
        if server is None:
            raise LookupError(endpoint)
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.port}/invocations", data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def close(self) -> None:
        self._closed = True
        for name in list(self.jobs):
            self.stop_job(name)
        with self._lock:
            servers = list(self.servers.values())
            self.servers.clear()
        for server in servers:
            with contextlib.suppress(Exception):
                procs.kill(server.proc)
