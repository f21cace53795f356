"""Figure 7 — load: executions per minute with 1, 10 and 40 started at once against the local
cloud, whose Lambda concurrency limit (sfn_mlops/local/lambda_runtime.py) throttles the
excess with TooManyRequestsException, retried by the definition's own retrier.

Subject: a cheap fixture state machine (three Lambda Tasks, each the real ValidateInput
function in its warm workers, with the Retry of the rendered ASL's Lambda Tasks), so the
figure is the orchestration and Lambda path under load, not training. Baseline: the same
executions one at a time (1 concurrent). Goal: every execution SUCCEEDS at 40 concurrent.

``python -m benchmarks.load [--quick]`` prints the rows as JSON.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks._common import figure

LEVELS = (1, 10, 40)
TIMEOUT = 600.0


def lambda_retry() -> list[dict[str, Any]]:
    """The Retry of the pipeline's Lambda Tasks, as rendered."""
    from shared import resources

    asl = json.loads(resources.ASL_PATH.read_text())
    return list(asl["States"]["ValidateInput"]["Retry"])


def burst_definition(function_arns: list[str], payload: dict[str, Any]) -> str:
    """A chain of Lambda Tasks (one per ARN) with the pipeline's Lambda retrier."""
    states: dict[str, Any] = {}
    names = [f"Step{i}" for i in range(len(function_arns))]
    for i, (name, arn) in enumerate(zip(names, function_arns, strict=True)):
        states[name] = {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": arn, "Payload": payload},
            "ResultPath": None,
            "TimeoutSeconds": 60,
            "Retry": lambda_retry(),
            **({"Next": names[i + 1]} if i + 1 < len(names) else {"End": True}),
        }
    return json.dumps({"StartAt": names[0], "States": states})


def burst(cloud: Any, machine: str, count: int, tag: str) -> tuple[float, dict[str, int]]:
    """Start `count` executions at once; wall seconds until all ended, and their statuses."""
    sfn = cloud.client("stepfunctions")

    def start(i: int) -> str:
        return str(
            cloud.client("stepfunctions").start_execution(
                stateMachineArn=machine, name=f"{tag}-{i}", input="{}"
            )["executionArn"]
        )

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=min(count, 50)) as pool:
        arns = list(pool.map(start, range(count)))
    deadline = time.monotonic() + TIMEOUT
    while True:
        statuses = [sfn.describe_execution(executionArn=a)["status"] for a in arns]
        if "RUNNING" not in statuses:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{statuses.count('RUNNING')} of {count} still RUNNING")
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    return wall, {s: statuses.count(s) for s in set(statuses)}


def run(quick: bool = False) -> list[dict[str, Any]]:
    from sfn_mlops.local.cloud import LocalCloud
    from sfn_mlops.local.stack import deploy_pipeline
    from shared import resources

    sequential = 3 if quick else 5
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-load-") as tmp,
        LocalCloud(workdir=Path(tmp)) as cloud,
    ):
        from sfn_mlops.local.lambda_runtime import FunctionConfig
        from sfn_mlops.local.stack import local_defaults

        spec = resources.FUNCTIONS_BY_KEY["validate"]
        # ValidateInput reads the data's header (issue 11): one small file under the prefix
        bucket = resources.bucket_name(cloud.account, cloud.region)
        s3 = cloud.client("s3")
        s3.create_bucket(Bucket=bucket)
        s3.put_object(
            Bucket=bucket, Key=f"{resources.DATA_PREFIX}load.csv", Body=b"f0,target\n1.0,0\n"
        )
        env = resources.function_environment(
            spec,
            {
                "PIPELINE_DEFAULTS": json.dumps(local_defaults()),
                "DEFAULT_IMAGE_URI": f"{resources.ECR_REPOSITORY}:latest",
                "ARTIFACT_BUCKET": bucket,
                "DATA_PREFIX": resources.DATA_PREFIX,
            },
        )

        def register(s: resources.FunctionSpec, arn: str, e: dict[str, str]) -> None:
            cloud.register_function(
                FunctionConfig(s.function_name, arn, s.handler, e, s.timeout_seconds, s.memory_mb)
            )

        pipeline = deploy_pipeline(
            cloud.client, environment=lambda s: env if s is spec else {}, on_function=register
        )
        arn = pipeline.function_arns["validate"]
        payload = {"payload": {}, "execution_name.$": "$$.Execution.Name",
                   "execution_arn.$": "$$.Execution.Id"}  # fmt: skip
        machine = cloud.client("stepfunctions").create_state_machine(
            name="load",
            definition=burst_definition([arn] * 3, payload),
            roleArn=pipeline.role_arns["states"],
        )["stateMachineArn"]
        cloud.lambdas.warm(spec.function_name)
        cloud.lambdas.wait_warm()
        burst(cloud, machine, 1, "warmup")
        seq_wall = 0.0
        for i in range(sequential):
            wall, statuses = burst(cloud, machine, 1, f"seq-{i}")
            seq_wall += wall
            if statuses.get("SUCCEEDED") != 1:
                raise RuntimeError(f"a lone execution did not succeed: {statuses}")
        per_minute_1 = sequential / seq_wall * 60
        for level in LEVELS:
            if level == 1:
                rate, statuses = per_minute_1, {"SUCCEEDED": sequential}
            else:
                throttled = cloud.lambdas.throttles
                wall, statuses = burst(cloud, machine, level, f"burst{level}")
                rate = level / wall * 60
            ok = statuses.get("SUCCEEDED", 0) == (sequential if level == 1 else level)
            rows.append(
                figure(
                    "7 load",
                    f"executions/min, {level} started at once (3 Lambda Tasks each)",
                    rate,
                    "1 at a time",
                    per_minute_1,
                    "exec/min",
                    "all SUCCEED" if level == max(LEVELS) else "—",
                    ok if level == max(LEVELS) else None,
                    note=(
                        f"statuses {statuses}; Lambda concurrency limit "
                        f"{cloud.lambdas.concurrency}"
                        + (
                            f", {cloud.lambdas.throttles - throttled} Invoke calls throttled"
                            if level > 1
                            else ""
                        )
                    ),
                )
            )
    return rows


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
