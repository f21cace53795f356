"""Figure 2 — orchestration overhead: one pipeline execution in the local cloud against the
same work done by running the container entrypoints directly in sequence.

Subject (timed from the trigger to the first prediction): ECR PutImage -> EventBridge rule ->
trigger Lambda -> StartExecution -> ValidateInput -> preprocess / train / evaluate jobs (each
with its Wait/Poll loop) -> gate -> register -> UpdateEndpoint (create) -> endpoint InService
-> SmokeTest -> NotifySuccess -> SUCCEEDED, then one client ``InvokeEndpoint`` of one row.
The local cloud is the one ``sfn-mlops local run`` uses (sfn_mlops.local: LocalCloud,
stack.deploy with its LOCAL_OVERRIDES, warm Lambda workers); starting it, deploying the
stack and uploading the data happen before the clock starts, as on AWS.

Baseline: the same work without orchestration: ``python -m sfn_container preprocess``, then
``train`` (same hyperparameters), ``tar`` the model, ``evaluate`` (with the train split, as
the pipeline's, so it writes the drift baseline too), ``serve`` until ``/ping``
answers, and one ``POST /invocations`` of the same row — each entrypoint a fresh process on a
local /opt/ml tree, one after the other.

Sizes: the default data set (breast cancer, the seed rows ``sfn-mlops local run`` uploads;
goal ≤ 1.5×) and a synthetic 1M rows × 20 features (goal ≤ 1.1×: the work should dominate).
Quick runs use 100k rows instead of 1M (the 1M goal is then reported for 100k, marked so).

``python -m benchmarks.orchestration [--quick]`` prints the rows as JSON.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._common import figure, summarize

REPO = Path(__file__).resolve().parents[1]
FEATURES = 20
EXECUTION_TIMEOUT = 900.0
PING_TIMEOUT = 60.0


# --- the subject: one execution in the local cloud --------------------------------------------


class _StatusEvents:
    """The state machine's execution status changes, as a client on AWS waits for them: an
    EventBridge rule ("Step Functions Execution Status Change") into an SQS queue, read
    with long polls. The clock sees each change when its event arrives, and waiting costs
    no CPU: the earlier DescribeExecution poll every 20 ms took ~10% of a core from the
    jobs it timed (py-spy on the benchmark process, 1M rows on 2 cores)."""

    def __init__(self, cloud: Any, machine: str) -> None:
        self.sqs = cloud.client("sqs")
        self.url = self.sqs.create_queue(QueueName="bench-execution-status")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events = cloud.client("events")
        pattern = {
            "source": ["aws.states"],
            "detail-type": ["Step Functions Execution Status Change"],
            "detail": {"stateMachineArn": [machine]},
        }
        events.put_rule(Name="bench-execution-status", EventPattern=json.dumps(pattern))
        events.put_targets(
            Rule="bench-execution-status", Targets=[{"Id": "queue", "Arn": queue_arn}]
        )

    def wait(self, status: str | None, timeout: float, arn: str | None = None) -> dict[str, Any]:
        """The detail of the next event with `status` (None: any but RUNNING), of
        execution `arn` (None: any); the others are dropped."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            wait = max(1, min(20, int(deadline - time.monotonic())))
            answer = self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=wait
            )
            for message in answer.get("Messages", []):
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
                detail = json.loads(message["Body"])["detail"]
                if arn is not None and detail["executionArn"] != arn:
                    continue
                if (detail["status"] == status) if status else detail["status"] != "RUNNING":
                    return detail  # type: ignore[no-any-return]
        raise TimeoutError(f"no {status or 'closing'} status event within {timeout:.0f} s")


def _wait(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done within {timeout:.0f} s")
        time.sleep(interval)


def _breakdown(history: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds spent in Wait states, poll Tasks, other Tasks and the rest (Choice etc.)."""
    spent = {"wait": 0.0, "poll": 0.0, "task": 0.0}
    entered: dict[str, tuple[str, dt.datetime]] = {}
    for event in history:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            name = event["stateEnteredEventDetails"]["name"]
            entered[name] = (kind.removesuffix("StateEntered"), event["timestamp"])
        elif kind.endswith("StateExited"):
            name = event["stateExitedEventDetails"]["name"]
            if name not in entered:
                continue
            state_type, start = entered.pop(name)
            seconds = (event["timestamp"] - start).total_seconds()
            if state_type == "Wait":
                spent["wait"] += seconds
            elif state_type == "Task" and name.startswith("Poll"):
                spent["poll"] += seconds
            elif state_type == "Task":
                spent["task"] += seconds
    return spent


def _job_seconds(sm: Any, output: dict[str, Any]) -> dict[str, float]:
    """Each SageMaker job's own run time (start to end, as the local SageMaker reports it)."""
    seconds: dict[str, float] = {}
    for step in ("preprocess", "evaluate"):
        d = sm.describe_processing_job(ProcessingJobName=output[step]["job_name"])
        seconds[step] = (d["ProcessingEndTime"] - d["ProcessingStartTime"]).total_seconds()
    d = sm.describe_training_job(TrainingJobName=output["train"]["job_name"])
    seconds["train"] = (d["TrainingEndTime"] - d["TrainingStartTime"]).total_seconds()
    for t in d.get("SecondaryStatusTransitions", []):  # Downloading / Training / Uploading
        if t.get("EndTime") and t["Status"] in ("Downloading", "Training", "Uploading"):
            seconds[f"train.{t['Status'].lower()}"] = (
                t["EndTime"] - t["StartTime"]
            ).total_seconds()
    return seconds


def pipeline_once(csv_path: Path, row: str, workdir: Path) -> tuple[float, dict[str, Any]]:
    """Wall seconds from the image push to the first prediction, and where they went."""
    from sfn_mlops.local.cloud import LocalCloud
    from sfn_mlops.local.stack import deploy, enable_triggers, push_image
    from shared import resources

    with LocalCloud(workdir=workdir / "cloud") as cloud:
        stack = deploy(cloud, triggers=False)
        for spec in resources.FUNCTIONS:  # as `sfn-mlops local run`: warm workers first
            cloud.lambdas.warm(spec.function_name)
        cloud.client("s3").upload_file(
            str(csv_path), stack.bucket, f"{resources.DATA_PREFIX}{csv_path.name}"
        )
        enable_triggers(cloud, stack)
        cloud.lambdas.wait_warm()  # the stack is up: its provisioned workers initialised
        sfn, sm = cloud.client("stepfunctions"), cloud.client("sagemaker")
        runtime = cloud.client("sagemaker-runtime")
        status_events = _StatusEvents(cloud, stack.state_machine_arn)
        # Warm the client connections used while timing (not the pipeline's own work).
        sfn.describe_state_machine(stateMachineArn=stack.state_machine_arn)

        started = time.perf_counter()
        push_image(cloud, stack, label=f"bench {time.time()}")
        arn = status_events.wait("RUNNING", 60.0)["executionArn"]
        name = arn.rsplit(":", 1)[-1]
        t_started = time.perf_counter()
        status_events.wait(None, EXECUTION_TIMEOUT, arn)  # its end: any status but RUNNING
        t_finished = time.perf_counter()
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "SUCCEEDED":
            raise RuntimeError(
                f"execution {name} {described['status']}: {described.get('error')}: "
                f"{str(described.get('cause'))[:800]}"
            )
        output = json.loads(described["output"])
        endpoint = output["deploy"]["endpoint_name"]
        answer = runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="text/csv", Accept="text/csv", Body=row.encode()
        )["Body"].read()
        wall = time.perf_counter() - started
        if not answer.strip():
            raise RuntimeError("the first prediction came back empty")
        history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        detail: dict[str, Any] = {
            "trigger_to_start": t_started - started,
            "execution": t_finished - t_started,
            "first_prediction": wall - (t_finished - started),
            **_breakdown(history),
            "jobs": _job_seconds(sm, output),
            "transitions": sum(1 for e in history if e["type"].endswith("StateEntered")),
        }
        return wall, detail


# --- the baseline: the entrypoints, one after the other ---------------------------------------


def _env(opt_ml: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SM_", "OPT_ML"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(REPO / "container"), str(REPO)]),
        PYTHONUNBUFFERED="1",
        OPT_ML=str(opt_ml),
        **extra,
    )
    return env


def _entry(step: str, env: dict[str, str], log: Path) -> None:
    with log.open("ab") as sink:
        code = subprocess.call(
            [sys.executable, "-m", "sfn_container", step], env=env, stdout=sink, stderr=sink
        )
    if code != 0:
        raise RuntimeError(f"{step} exited {code}: {log.read_text()[-1500:]}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def direct_once(
    csv_path: Path, row: str, hyperparameters: dict[str, str], config: dict[str, str], root: Path
) -> tuple[float, dict[str, float]]:
    """Wall seconds of preprocess -> train -> tar -> evaluate -> serve -> one request."""
    log = root / "direct.log"
    pre, tr, ev, sv = (root / n for n in ("preprocess", "train", "evaluate", "serve"))
    raw = pre / "processing" / "input" / "raw"
    raw.mkdir(parents=True)
    try:  # the raw data in place before the clock starts (a hard link when possible)
        os.link(csv_path, raw / csv_path.name)
    except OSError:
        shutil.copy2(csv_path, raw / csv_path.name)
    marks: dict[str, float] = {}
    started = time.perf_counter()
    _entry("preprocess", _env(pre, **config), log)
    marks["preprocess"] = time.perf_counter()
    out = pre / "processing" / "output"
    (tr / "input" / "data").mkdir(parents=True)
    for channel in ("train", "validation"):
        (out / channel).rename(tr / "input" / "data" / channel)
    (tr / "input" / "config").mkdir(parents=True)
    (tr / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (tr / "model").mkdir()
    _entry("train", _env(tr), log)
    buf = io.BytesIO()  # the model archive, as SageMaker (and the local cloud) makes it
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted((tr / "model").rglob("*")):
            tar.add(path, arcname=path.relative_to(tr / "model").as_posix())
    marks["train"] = time.perf_counter()
    ev_in = ev / "processing" / "input"
    (ev_in / "challenger").mkdir(parents=True)
    (ev_in / "challenger" / "model.tar.gz").write_bytes(buf.getvalue())
    (out / "test").rename(ev_in / "test")
    # the train split too, as the pipeline's evaluation gets it: the challenger's drift
    # baseline is written from it (functions/evaluate/logic.py processing_request)
    shutil.copytree(tr / "input" / "data" / "train", ev_in / "train", copy_function=os.link)
    (ev / "processing" / "output" / "evaluation").mkdir(parents=True)
    _entry("evaluate", _env(ev, **config), log)
    marks["evaluate"] = time.perf_counter()
    (sv / "model").mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue()), mode="r:gz") as tar:
        tar.extractall(sv / "model", filter="data")
    port = _free_port()
    with log.open("ab") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "sfn_container", "serve"],
            env=_env(sv, SAGEMAKER_BIND_TO_PORT=str(port), SM_MODEL_DIR=str(sv / "model")),
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            if server.poll() is not None:
                raise RuntimeError(f"serve exited {server.returncode}: {log.read_text()[-800:]}")
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=1) as r:
                    return bool(r.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        _wait(healthy, PING_TIMEOUT, interval=0.05)  # the local SageMaker's health-check pace
        marks["serve"] = time.perf_counter()
        request = urllib.request.Request(
            f"{base}/invocations",
            data=row.encode(),
            headers={"Content-Type": "text/csv", "Accept": "text/csv"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as r:
            answer = r.read()
        wall = time.perf_counter() - started
    finally:  # the whole process group: Granian's forked workers outlive a killed main
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
    if not answer.strip():
        raise RuntimeError("the direct prediction came back empty")
    steps, last = {}, started
    for step, mark in marks.items():
        steps[step] = mark - last
        last = mark
    return wall, steps


# --- data and the figure ----------------------------------------------------------------------


def _first_feature_row(csv_path: Path, target: str) -> str:
    with csv_path.open() as f:
        header = f.readline().strip().split(",")
        values = f.readline().strip().split(",")
    return ",".join(v for h, v in zip(header, values, strict=True) if h != target)


def _settings() -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
    from sfn_mlops.local.stack import local_defaults

    defaults = local_defaults()
    hps = {k: str(v) for k, v in defaults["hyperparameters"].items()}
    hps.update(target_column=defaults["target_column"], problem_type=defaults["problem_type"])
    config = {"TARGET_COLUMN": defaults["target_column"], "PROBLEM_TYPE": defaults["problem_type"]}
    return hps, config, defaults


def measure_size(label: str, csv_path: Path, reps: int, root: Path) -> dict[str, Any]:
    hps, config, defaults = _settings()
    row = _first_feature_row(csv_path, defaults["target_column"])
    subject, baseline, details, steps = [], [], [], []
    for rep in range(reps):  # interleaved: drift in machine load hits both alike
        wall, detail = pipeline_once(csv_path, row, root / f"{label}-pipeline-{rep}")
        subject.append(wall)
        details.append(detail)
        wall, step = direct_once(csv_path, row, hps, config, root / f"{label}-direct-{rep}")
        baseline.append(wall)
        steps.append(step)
    return {
        "subject": summarize(subject),
        "baseline": summarize(baseline),
        "details": details,
        "steps": steps,
        "defaults": defaults,
    }


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


def _note(result: dict[str, Any], size_note: str) -> str:
    d, s = result["details"], result["steps"]
    jobs = {k: _median([x["jobs"].get(k, 0.0) for x in d]) for k in d[0]["jobs"]}
    med = {
        k: _median([x[k] for x in d])
        for k in ("trigger_to_start", "execution", "wait", "poll", "task", "first_prediction")
    }
    direct = {k: _median([x[k] for x in s]) for k in ("preprocess", "train", "evaluate", "serve")}
    defaults = result["defaults"]
    return (
        f"{size_note}; pipeline (medians): trigger->execution start "
        f"{med['trigger_to_start']:.2f} s, "
        f"execution {med['execution']:.1f} s, of which Wait states {med['wait']:.1f} s, poll "
        f"Tasks {med['poll']:.1f} s, other Tasks {med['task']:.1f} s; jobs ran preprocess "
        f"{jobs['preprocess']:.1f} s, train {jobs['train']:.1f} s (download "
        f"{jobs.get('train.downloading', 0):.1f} s, fit {jobs.get('train.training', 0):.1f} s, "
        f"upload {jobs.get('train.uploading', 0):.1f} s), evaluate "
        f"{jobs['evaluate']:.1f} s; client prediction {med['first_prediction'] * 1e3:.0f} ms; "
        f"{d[0]['transitions']} transitions. Direct: preprocess {direct['preprocess']:.1f} s, "
        f"train+tar {direct['train']:.1f} s, evaluate {direct['evaluate']:.1f} s, serve to "
        f"/ping {direct['serve']:.1f} s. Local poll settings: poll_interval_seconds="
        f"{defaults['poll_interval_seconds']}, max_poll_interval_seconds="
        f"{defaults['max_poll_interval_seconds']}; num_round="
        f"{defaults['hyperparameters'].get('num_round')}"
    )


def run(quick: bool = False) -> list[dict[str, Any]]:
    from sfn_container.data import write_synthetic

    from sfn_mlops.local.run import export_dataset

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-orchestration-") as tmp:
        root = Path(tmp)
        seed, _ = export_dataset(root / "data")
        default = measure_size("default", seed, 1 if quick else 3, root)
        n_seed = sum(1 for _ in seed.open()) - 1
        rows.append(
            figure(
                "2 orchestration",
                f"local-cloud execution, trigger -> first prediction (default data, {n_seed} rows)",
                default["subject"],
                "entrypoints in sequence",
                default["baseline"],
                "s",
                "≤ 1.5×",
                default["subject"]["median"] <= 1.5 * default["baseline"]["median"],
                note=_note(default, f"breast_cancer seed rows ({n_seed})"),
            )
        )
        big_rows = 100_000 if quick else 1_000_000
        big_csv = write_synthetic(
            root / "big", big_rows, FEATURES, "binary_classification", seed=0, filename="big.csv"
        )
        big = measure_size("big", big_csv, 1 if quick else 2, root)
        label = f"{big_rows // 1000}k" if big_rows < 1_000_000 else f"{big_rows // 1_000_000}M"
        mb = big_csv.stat().st_size / 1e6
        rows.append(
            figure(
                "2 orchestration",
                f"local-cloud execution, trigger -> first prediction ({label} rows × {FEATURES})",
                big["subject"],
                "entrypoints in sequence",
                big["baseline"],
                "s",
                "≤ 1.1× (at 1M rows)" + (" — quick run: 100k" if quick else ""),
                big["subject"]["median"] <= 1.1 * big["baseline"]["median"],
                note=_note(big, f"synthetic {label} x {FEATURES} ({mb:.0f} MB CSV)"),
            )
        )
    return rows


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv[1:]), indent=2, default=str))
