"""`sfn-mlops local run --scenario drift`: model monitoring end to end in the local cloud.

A first run deploys a model (image push -> execution -> the production endpoint, which
captures its traffic). Then traffic whose first SHIFTED_FEATURES features moved by SHIFT_SD
standard deviations goes through InvokeEndpoint, and the data capture writes it to S3. One
tick of the drift check's schedule rule (EventBridge's Scheduled Event) invokes the monitor
function, which starts the drift job (the model's container, `python -m sfn_container
drift`) over the captured window; the job's DriftedFeatures metric puts the drift alarm into
ALARM; the alarm's state change reaches the trigger, which starts one retraining (`drift-…`)
through the same gate. The summary names the drifted features with their PSI and KS values,
and the retraining's name and result.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from sfn_mlops.local.cloud import LocalCloud
from sfn_mlops.local.run import (
    DATASET,
    ExecutionReport,
    exit_code,
    finish,
    keep_sample,
    run_execution,
    save_artifacts,
    start_stack,
    triggered_run,
    wait_new_execution,
)
from sfn_mlops.local.stack import Stack, push_image
from sfn_mlops.progress import make_view
from sfn_mlops.report.page import write_drift_report
from shared import resources

#: the features the traffic shifts (the data set's first ones) and by how much
SHIFTED_FEATURES = 2
SHIFT_SD = 1.0
#: rows sent, as a multiple of the check's min_records (so the window has a verdict)
TRAFFIC_FACTOR = 1.5
ROWS_PER_REQUEST = 10
JOB_TIMEOUT = 300.0
#: the trigger starts the retraining from the alarm's state change (asynchronously)
RETRAINING_START_TIMEOUT = 60.0


def shifted_requests(
    data_csv: Path, target: str, rows: int, seed: int = 0
) -> tuple[list[str], list[str]]:
    """(the shifted features, CSV request bodies with a header row): `rows` rows drawn from
    the data set, its first SHIFTED_FEATURES numeric features moved by SHIFT_SD of their
    standard deviation in the data set, ROWS_PER_REQUEST rows a request."""
    with data_csv.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        records = list(reader)
    features = [name for name in header if name != target]
    columns = [header.index(name) for name in features]

    def numeric(j: int) -> np.ndarray | None:
        try:
            return np.array([float(r[j]) for r in records])
        except ValueError:
            return None

    shifted: dict[int, float] = {}
    for j in columns:
        values = numeric(j)
        if values is not None and values.std() > 0:
            shifted[j] = SHIFT_SD * float(values.std())
        if len(shifted) == SHIFTED_FEATURES:
            break
    if not shifted:
        raise ValueError(f"{data_csv.name} has no numeric feature to shift")
    rng = np.random.default_rng(seed)
    drawn = [records[i] for i in rng.integers(0, len(records), size=rows)]
    bodies = []
    for start in range(0, rows, ROWS_PER_REQUEST):
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(features)
        for record in drawn[start : start + ROWS_PER_REQUEST]:
            writer.writerow(
                [f"{float(record[j]) + shifted[j]:.6g}" if j in shifted else record[j]
                 for j in columns]
            )  # fmt: skip
        bodies.append(out.getvalue())
    return [header[j] for j in shifted], bodies


def send_traffic(cloud: LocalCloud, endpoint: str, bodies: list[str]) -> dt.datetime:
    """Each body through InvokeEndpoint (as an application calls the endpoint); the time of
    the last answer."""
    runtime = cloud.client("sagemaker-runtime")
    for body in bodies:
        runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="text/csv", Accept="text/csv", Body=body
        )
    return dt.datetime.now(dt.UTC)


def captured_requests(cloud: LocalCloud, stack: Stack, endpoint: str) -> int:
    """Capture records in S3 of `endpoint` (after the capture wrote what it buffered)."""
    capture = cloud.sagemaker.endpoints.capture
    cloud.wait_for(lambda: capture.unwritten() == 0, timeout=30, interval=0.05)
    s3 = cloud.client("s3")
    prefix = f"{resources.CAPTURE_PREFIX}{endpoint}/"
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=stack.bucket, Key=item["Key"])["Body"].read()
            count += sum(1 for line in body.splitlines() if line.strip())
    return count


def drift_check(cloud: LocalCloud, stack: Stack) -> dict[str, Any]:
    """One tick of the drift schedule: the monitor function's answer, once its job (if it
    started one) has ended; `job` holds the job's description."""
    (delivery,) = cloud.fire_schedule(resources.DRIFT_SCHEDULE_RULE)
    if not delivery.done.wait(60):
        raise RuntimeError("the monitor function did not answer the schedule within 60s")
    if delivery.error:
        raise RuntimeError(f"the monitor function failed: {delivery.error}")
    answer: dict[str, Any] = dict(delivery.payload or {})
    if answer.get("action") != "started":
        return answer
    sagemaker = cloud.client("sagemaker")

    def ended() -> dict[str, Any] | None:
        job = sagemaker.describe_processing_job(ProcessingJobName=answer["job_name"])
        return job if job["ProcessingJobStatus"] not in ("InProgress", "Stopping") else None

    answer["job"] = cloud.wait_for(ended, timeout=JOB_TIMEOUT, interval=0.5)
    return answer


def read_report(cloud: LocalCloud, uri: str) -> dict[str, Any]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = cloud.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return json.loads(body)  # type: ignore[no-any-return]


def _value(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def drift_lines(
    sent: tuple[int, int, int],
    check: dict[str, Any],
    report: dict[str, Any] | None,
    alarm: str,
    retraining: ExecutionReport | None,
    kept: Path,
) -> list[str]:
    """The scenario's part of the summary (`kept`: the report's local copy)."""
    rows, requests, captured = sent
    lines = [
        f"  drift traffic: {rows} shifted rows in {requests} InvokeEndpoint requests; "
        f"{captured} capture records in S3",
        f"  drift check: {check.get('action')} {check.get('job_name') or ''}  "
        f"window {check.get('window_start')} .. {check.get('window_end')}".rstrip(),
    ]
    if check.get("action") != "started":
        lines.append(f"      - {check.get('reason')}")
    job = check.get("job") or {}
    if job and job.get("ProcessingJobStatus") != "Completed":
        lines.append(f"      job {job.get('ProcessingJobStatus')}: {job.get('FailureReason')}")
    if report is not None:
        thresholds = report["thresholds"]
        lines.append(
            f"  drift report: {report['status']}, {report['records']} rows; a feature drifted "
            f"at PSI >= {thresholds['psi']:g} or a test's p < "
            f"{thresholds['ks_p_value_per_feature']:.2g} (KS numeric, chi-square categorical)"
        )
        for name in report["drifted_features"]:
            entry = report["features"][name]
            if entry["type"] == "categorical":
                test = (f"chi2 {_value(entry.get('chi2_statistic'), '.1f')}  "
                        f"p {_value(entry.get('chi2_p_value'), '.2g')}")  # fmt: skip
            else:
                test = (f"KS D {_value(entry.get('ks_statistic'), '.3f')}  "
                        f"p {_value(entry.get('ks_p_value'), '.2g')}  "
                        f"mean {_value(entry.get('mean'), '.4g')} "
                        f"(baseline {_value(entry.get('baseline_mean'), '.4g')})")  # fmt: skip
            lines.append(f"      drifted {name}: PSI {_value(entry.get('psi'), '.3f')}  {test}")
        undrifted = len(report["features"]) - len(report["drifted_features"])
        lines.append(f"      {undrifted} other features: no drift")
        lines.append(f"      report: {check.get('report_uri')}")
        lines.append(f"      copied to {kept / 'drift.json'}, drawn in {kept / 'drift.html'}")
    lines.append(f"  drift alarm {resources.DRIFT_ALARM_NAME}: {alarm}")
    if retraining is not None:
        gate = retraining.output.get("gate") or {}
        decision = (
            "deployed"
            if gate.get("deploy")
            else "approved, not deployed"
            if gate.get("passed")
            else "rejected by the gate"
            if gate
            else "no gate decision"
        )
        lines.append(
            f"  retraining started by the drift alarm: {retraining.name}  {retraining.status}"
            f"  -> {decision}"
        )
    else:
        lines.append("  no retraining started")
    return lines


def local_drift_run(
    run_dir: Path,
    port: int = 0,
    plain: bool | None = None,
    overrides: dict[str, Any] | None = None,
    dataset: str = DATASET,
) -> int:
    started = time.monotonic()
    run_dir.mkdir(parents=True, exist_ok=True)
    view = make_view(plain)
    reports: list[ExecutionReport] = []
    print(f"sfn-mlops local run --scenario drift -> {run_dir}", flush=True)
    config = resources.monitoring()
    with LocalCloud(port=port, workdir=run_dir / "cloud") as cloud:
        stack, seed, _batch = start_stack(cloud, run_dir, dataset, overrides)
        first = triggered_run(
            cloud, stack, "ECR image push",
            lambda: push_image(cloud, stack, label=f"sfn-mlops {time.time()}"), view, run_dir,
        )  # fmt: skip
        reports.append(first)
        extra: list[str] = []
        if first.status == "SUCCEEDED":
            keep_sample(cloud, first, run_dir)
            extra = _drift(cloud, stack, seed, config, view, run_dir, reports)
        text = finish(reports, cloud, stack, run_dir, started, extra)
    code = exit_code(reports, text, run_dir)
    if code == 0 and not any(r.name.startswith("drift-") for r in reports):
        print("\nFAILED: the drift alarm started no retraining (see the summary)", flush=True)
        return 1
    return code


def _drift(
    cloud: LocalCloud,
    stack: Stack,
    seed: Path,
    config: resources.Monitoring,
    view: Any,
    run_dir: Path,
    reports: list[ExecutionReport],
) -> list[str]:
    """Shifted traffic, one drift check, the alarm, and the retraining it starts."""
    endpoint = str(stack.defaults["endpoint_name"])
    rows = math.ceil(config.min_records * TRAFFIC_FACTOR)
    names, bodies = shifted_requests(seed, str(stack.defaults["target_column"]), rows)
    print(
        f"sending {rows} rows to {endpoint} with {', '.join(names)} shifted by "
        f"{SHIFT_SD:g} sd ({len(bodies)} requests)",
        flush=True,
    )
    last = send_traffic(cloud, endpoint, bodies).replace(microsecond=0)
    captured = captured_requests(cloud, stack, endpoint)
    # a record's inferenceTime is whole seconds and the window [start, end) ends at the
    # schedule's tick: the tick comes in a later second than the last request
    cloud.wait_for(
        lambda: dt.datetime.now(dt.UTC).replace(microsecond=0) > last, timeout=2, interval=0.02
    )
    print(f"schedule {resources.DRIFT_SCHEDULE_RULE} fires: the drift check", flush=True)
    known = {r.name for r in reports}
    check = drift_check(cloud, stack)
    job = check.get("job") or {}
    report = None
    kept = run_dir / "drift"
    if job.get("ProcessingJobStatus") == "Completed":
        report = read_report(cloud, str(check["report_uri"]))
        kept.mkdir(parents=True, exist_ok=True)
        (kept / "drift.json").write_text(json.dumps(report, indent=2) + "\n")
        write_drift_report(report, kept / "drift.html")
    assert cloud.alarms is not None, "the local cloud is not running"
    cloud.alarms.evaluate_now()
    alarm = cloud.alarms.state(resources.DRIFT_ALARM_NAME)
    retraining = None
    if alarm == "ALARM":
        name, arn = wait_new_execution(cloud, stack, known, timeout=RETRAINING_START_TIMEOUT)
        retraining = run_execution(cloud, arn, name, "drift alarm", view)
        save_artifacts(cloud, retraining, run_dir)
        reports.append(retraining)
    sent = (rows, len(bodies), captured)
    return drift_lines(sent, check, report, alarm, retraining, kept)
