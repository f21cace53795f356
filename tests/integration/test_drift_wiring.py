"""The drift wiring in the local cloud: the drift job (the project's container) runs as its
own role and publishes its metrics, the drift alarm goes into ALARM on them, and its state
change starts one retraining through the trigger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from executions import wait_for
from sfn_container import drift, tabular
from sfn_container.data import synthetic_arrays

from functions.monitor.logic import drift_job_request, window
from sfn_mlops.local.cloud import LocalCloud
from sfn_mlops.local.stack import Stack, deploy
from shared import resources
from shared.jobs import PROCESSING_INPUT, s3_input
from shared.settings import MonitorSettings

FEATURES = 6


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCloud, Stack]]:
    with LocalCloud(workdir=tmp_path_factory.mktemp("drift")) as c:
        yield c, deploy(c, triggers=False)


def _rows(x: np.ndarray) -> str:
    return "\n".join(",".join(f"{v:.5f}" for v in row) for row in x)


def test_a_drifted_window_alarms_and_starts_one_retraining(
    cloud: tuple[LocalCloud, Stack], tmp_path: Path
) -> None:
    c, stack = cloud
    s3 = c.client("s3")
    endpoint = str(stack.defaults["endpoint_name"])
    # GIVEN a model's baseline and an hour of captured traffic whose f2 moved by 1 sd
    x, _ = synthetic_arrays(3000, FEATURES, "binary_classification", seed=0)
    table = pa.table({f"f{i}": x[:, i] for i in range(FEATURES)})
    statistics, _ = drift.baseline(table, tabular.learn_schema(table, table.column_names))
    base = "runs/exec/evaluate/evaluation/baseline"
    s3.put_object(Bucket=stack.bucket, Key=f"{base}/statistics.json", Body=json.dumps(statistics))
    now = datetime.now(UTC)
    span = window(now + timedelta(minutes=1), 1)
    hour = f"{now:%Y/%m/%d/%H}"
    shifted, _ = synthetic_arrays(400, FEATURES, "binary_classification", seed=0, start=50_000)
    shifted[:, 2] += 1.0
    lines = [
        json.dumps(
            {
                "captureData": {
                    "endpointInput": {
                        "observedContentType": "text/csv",
                        "mode": "INPUT",
                        "data": _rows(shifted[i : i + 4]),
                        "encoding": "CSV",
                    }
                },
                "eventMetadata": {"eventId": str(i), "inferenceTime": f"{now:%Y-%m-%dT%H:%M:%SZ}"},
                "eventVersion": "0",
            }
        )
        for i in range(0, 400, 4)
    ]
    capture = f"capture/{endpoint}/AllTraffic/{hour}"
    s3.put_object(Bucket=stack.bucket, Key=f"{capture}/00-00-000-a.jsonl", Body="\n".join(lines))

    # WHEN the drift job runs as the monitor function starts it (its role, the model's image)
    env = resources.monitoring().function_values(endpoint, "") | {
        "ARTIFACT_BUCKET": stack.bucket,
        "MONITOR_ROLE_ARN": f"arn:aws:iam::{stack.account}:role/{resources.DRIFT_JOB_ROLE}",
    }
    settings = MonitorSettings.model_validate(env)
    inputs = [
        s3_input(
            "capture-0", f"s3://{stack.bucket}/{capture}/", f"{PROCESSING_INPUT}/capture/{hour}"
        ),
        s3_input("baseline", f"s3://{stack.bucket}/{base}/", f"{PROCESSING_INPUT}/baseline"),
    ]
    report = f"s3://{stack.bucket}/{resources.MONITORING_PREFIX}{endpoint}/now"
    sm = c.client("sagemaker")
    sm.create_processing_job(**drift_job_request("drift-wiring", "local/sfn-mlops:latest",
                                                 inputs, report, settings, span))  # fmt: skip
    done = wait_for(lambda: (d := sm.describe_processing_job(ProcessingJobName="drift-wiring"))[
        "ProcessingJobStatus"] not in ("InProgress", "Stopping") and d)  # fmt: skip
    assert done["ProcessingJobStatus"] == "Completed", done.get("FailureReason")

    # THEN the report names the shifted feature, and its metrics reached CloudWatch
    key = f"{resources.MONITORING_PREFIX}{endpoint}/now/drift.json"
    found = json.loads(s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read())
    assert found["drifted_features"] == ["f2"]
    assert c.iam.denials == []  # PutMetricData was allowed to the drift job's role
    # ... the drift alarm goes into ALARM on them, and its state change starts a retraining
    assert c.alarms is not None
    c.alarms.evaluate_now()
    assert c.alarms.state(resources.DRIFT_ALARM_NAME) == "ALARM"
    sfn = c.client("stepfunctions")

    def drift_runs() -> list[dict[str, Any]]:
        runs = sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
        return [r for r in runs if r["name"].startswith("drift-")]

    (run,) = wait_for(drift_runs)
    payload = json.loads(sfn.describe_execution(executionArn=run["executionArn"])["input"])
    assert payload["tags"]["trigger"] == "drift"
