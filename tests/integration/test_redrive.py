"""Redrive in the local cloud, from real failures: each scenario fails an execution at one
state, fixes the cause, redrives it (same ARN) and checks from the local cloud's own records
(faults.created: the create calls SageMaker accepted) that nothing that had succeeded was
created again; the notification (the rule's notify function, from the execution's history)
is read back from the topic's SQS inbox.

One cloud for the module; each scenario is a manual start (deploy_mode never, except the
endpoint scenario), so the scenarios share the stack and its warm Lambda workers.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError
from executions import wait_closed

from sfn_mlops.history import failure, state_runs
from sfn_mlops.local.cloud import LocalCloud
from sfn_mlops.local.run import export_dataset
from sfn_mlops.local.stack import Stack, deploy, read_notifications
from sfn_mlops.progress import get_history
from shared import resources

pytestmark = [
    pytest.mark.integration,
    # AccessDenied is AWS's common error, not one of SageMaker's modelled error shapes
    pytest.mark.filterwarnings("ignore:Exception\\(InjectedServiceError\\):UserWarning"),
]

TIMEOUT = 240.0
CREATES = (
    "CreateProcessingJob",
    "CreateTrainingJob",
    "CreateModelPackage",
    "CreateModel",
    "CreateEndpointConfig",
)
#: measured create calls per scenario (printed with -s; quoted in the report)
MEASURED: dict[str, dict[str, int]] = {}


@dataclass
class Cloud:
    cloud: LocalCloud
    stack: Stack
    seed_key: str

    @property
    def sfn(self) -> Any:
        return self.cloud.client("stepfunctions")

    @property
    def s3(self) -> Any:
        return self.cloud.client("s3")

    def counts(self) -> dict[str, int]:
        created = self.cloud.sagemaker.faults.counts()
        return {op: created.get(op, 0) for op in CREATES}

    def start(self, payload: dict[str, Any]) -> str:
        return str(
            self.sfn.start_execution(
                stateMachineArn=self.stack.state_machine_arn,
                name=f"redrive-{uuid.uuid4().hex[:10]}",
                input=json.dumps(payload),
            )["executionArn"]
        )

    def wait(self, arn: str) -> dict[str, Any]:
        return wait_closed(self.sfn, arn, TIMEOUT)

    def redrive(self, arn: str) -> dict[str, Any]:
        self.sfn.redrive_execution(executionArn=arn)
        return self.wait(arn)

    def notifications(self, name: str) -> list[dict[str, Any]]:
        """The rule's messages about execution `name` (bounded wait for the first one)."""
        deadline = time.monotonic() + 30
        found: list[dict[str, Any]] = []
        while True:
            found += [
                m
                for m in read_notifications(self.cloud, self.stack, wait_seconds=1)
                if isinstance(m, dict) and m.get("execution_name") == name and "error" in m
            ]
            if found or time.monotonic() > deadline:
                return found


def creates(
    processing: int, training: int, packages: int = 1, models: int = 0, configs: int = 0
) -> dict[str, int]:
    """Expected create calls, in CREATES order."""
    return dict(zip(CREATES, (processing, training, packages, models, configs), strict=True))


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {op: after[op] - before[op] for op in CREATES}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    workdir = tmp_path_factory.mktemp("redrive")
    with LocalCloud(workdir=workdir) as cloud:
        stack = deploy(cloud, triggers=False)
        seed, _ = export_dataset(workdir / "data")
        key = f"{resources.DATA_PREFIX}{seed.name}"
        cloud.client("s3").upload_file(str(seed), stack.bucket, key)
        yield Cloud(cloud, stack, key)
    for scenario, counts in MEASURED.items():
        print(f"create calls, {scenario}: {counts}")


def assert_failed_at(env: Cloud, desc: dict[str, Any], state: str, error: str) -> str:
    assert desc["status"] == "FAILED", desc
    events = get_history(env.sfn, desc["executionArn"])
    where = failure(events)
    assert where is not None
    assert where[:2] == (state, error), where
    # no Catch, no Fail state: the execution ended in the state that failed
    assert state_runs(events)[-1].name == state
    assert desc["redriveStatus"] == "REDRIVABLE"
    # the notification rule's function published the failure: name, status, the state that
    # failed (read from the history: the event does not carry it), error, cause, link
    (message,) = env.notifications(desc["name"])
    assert message["status"] == "FAILED"
    assert message["failed_state"] == state
    assert f"FAILED at {state}: {error}" in message["summary"]
    assert message["error"] == error
    assert message["cause"] == desc["cause"]
    assert message["redrive_count"] == 0
    assert message["console_url"].endswith(f"#/v2/executions/details/{desc['executionArn']}")
    return where[2]


def assert_redriven(env: Cloud, desc: dict[str, Any], from_state: str) -> list[dict[str, Any]]:
    assert desc["status"] == "SUCCEEDED", desc
    assert desc["redriveCount"] == 1
    assert desc["redriveStatus"] == "NOT_REDRIVABLE"
    events = get_history(env.sfn, desc["executionArn"])
    types = [e["type"] for e in events]
    assert types.count("ExecutionStarted") == 1
    assert types.count("ExecutionRedriven") == 1
    after = events[types.index("ExecutionRedriven") + 1 :]
    assert after[0]["stateEnteredEventDetails"]["name"] == from_state
    return events


def test_preprocessing_job_failure_then_data_fixed_then_redrive(env: Cloud) -> None:
    # Given raw data whose header passes ValidateInput but whose binary target holds a 7
    # (a check that needs all the data): the preprocessing job fails for real
    before = env.counts()
    late = f"late-{uuid.uuid4().hex[:6]}/"
    key = f"{late}{env.seed_key.rsplit('/', 1)[-1]}"
    seed = env.s3.get_object(Bucket=env.stack.bucket, Key=env.seed_key)["Body"].read().decode()
    header, first = seed.splitlines()[:2]
    target = header.split(",").index("target")
    row = first.split(",")
    row[target] = "7"
    env.s3.put_object(Bucket=env.stack.bucket, Key=key, Body=f"{header}\n{','.join(row)}\n")
    arn = env.start({"deploy_mode": "never", "raw_data_uri": f"s3://{env.stack.bucket}/{late}"})
    failed = env.wait(arn)
    cause = assert_failed_at(env, failed, "PollPreprocessing", "JobFailedError")
    assert "processing job" in cause
    assert delta(env.counts(), before)["CreateTrainingJob"] == 0
    # When the data is corrected and the execution is redriven
    env.s3.copy_object(
        Bucket=env.stack.bucket,
        Key=key,
        CopySource={"Bucket": env.stack.bucket, "Key": env.seed_key},
    )
    done = env.redrive(arn)
    # Then it succeeds from PollPreprocessing: preprocessing ran again as attempt 2 only
    assert done["executionArn"] == arn
    assert_redriven(env, done, "PollPreprocessing")
    out = json.loads(done["output"])
    assert out["preprocess"]["job_name"].endswith("-2")
    counts = delta(env.counts(), before)
    MEASURED["preprocessing job failed -> redrive"] = counts
    # processing: preprocess attempts 1 (failed) and 2, evaluate once
    assert counts == creates(processing=3, training=1)


def test_a_transient_capacity_failure_is_retried_and_the_execution_succeeds(env: Cloud) -> None:
    # Given training attempt 1 fails for lack of capacity (SageMaker's side, transient)
    before = env.counts()
    env.cloud.sagemaker.faults.inject_job_failures(
        "train", ["CapacityError: Unable to provision requested ML compute capacity."]
    )
    # When a run starts (nobody intervenes)
    arn = env.start({"deploy_mode": "never"})
    done = env.wait(arn)
    # Then the step restarted itself once and the execution SUCCEEDED on attempt 2
    assert done["status"] == "SUCCEEDED", done
    assert done["redriveCount"] == 0
    assert json.loads(done["output"])["train"]["job_name"].endswith("-2")
    runs = [r.name for r in state_runs(get_history(env.sfn, arn))]
    assert runs.count("StartTraining") == 2
    assert runs.count("RestartTraining") == 1
    counts = delta(env.counts(), before)
    MEASURED["capacity failure at training (auto-retried) -> SUCCEEDED"] = counts
    assert counts == creates(processing=2, training=2)  # two training attempts, nothing else
    # ... and nothing was notified: a succeeded execution is not the rule's
    assert not [
        d for d in env.cloud.events.deliveries
        if d.rule == resources.EXECUTION_STATUS_RULE and d.event["detail"]["executionArn"] == arn
    ]  # fmt: skip


def test_capacity_failure_is_retried_then_an_algorithm_error_is_not(env: Cloud) -> None:
    # Given training attempt 1 fails for lack of capacity (retried automatically), and
    # attempt 2 fails for real on a corrupted train split (an algorithm error: not retried)
    before = env.counts()
    env.cloud.sagemaker.faults.inject_job_failures(
        "train", ["CapacityError: Unable to provision requested ML compute capacity."]
    )
    saved: dict[str, bytes] = {}

    def corrupt_train_split(kind: str, job: str, status: str, request: dict[str, Any]) -> None:
        if kind != "processing" or status != "Completed" or "-preprocess-" not in job:
            return
        for out in request["ProcessingOutputConfig"]["Outputs"]:
            if out["OutputName"] == "train":
                bucket, prefix = out["S3Output"]["S3Uri"][5:].split("/", 1)
                for obj in env.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
                    saved[obj["Key"]] = env.s3.get_object(Bucket=bucket, Key=obj["Key"])[
                        "Body"
                    ].read()
                    env.s3.put_object(Bucket=bucket, Key=obj["Key"], Body=b"\x00not,a\ncsv\x00")

    env.cloud.sagemaker.hooks.append(corrupt_train_split)
    try:
        arn = env.start({"deploy_mode": "never"})
        failed = env.wait(arn)
    finally:
        env.cloud.sagemaker.hooks.remove(corrupt_train_split)
    cause = assert_failed_at(env, failed, "PollTraining", "JobFailedError")
    assert "AlgorithmError" in cause
    events = get_history(env.sfn, arn)
    starts = [r for r in state_runs(events) if r.name == "StartTraining"]
    assert len(starts) == 2  # the capacity failure restarted the step once
    assert [r.name for r in state_runs(events)].count("RestartTraining") == 1
    assert delta(env.counts(), before)["CreateTrainingJob"] == 2  # the algorithm error: no 3rd
    # When the train split is restored and the execution is redriven
    bucket = env.stack.bucket
    for key, body in saved.items():
        env.s3.put_object(Bucket=bucket, Key=key, Body=body)
    done = env.redrive(arn)
    # Then training runs once more (attempt 3) and nothing before it is repeated
    assert_redriven(env, done, "PollTraining")
    assert json.loads(done["output"])["train"]["job_name"].endswith("-3")
    counts = delta(env.counts(), before)
    MEASURED["capacity (auto-retried) + algorithm error at training -> redrive"] = counts
    # training: the capacity failure, the algorithm error, the redriven attempt
    assert counts == creates(processing=2, training=3)


def test_register_failure_then_permission_fixed_then_redrive(env: Cloud) -> None:
    # Given CreateModelPackage is refused (a missing IAM permission, fixed afterwards)
    before = env.counts()
    env.cloud.sagemaker.faults.inject_api_error(
        "CreateModelPackage",
        "AccessDeniedException",
        "User is not authorized to perform: sagemaker:CreateModelPackage",
    )
    arn = env.start({"deploy_mode": "never"})
    failed = env.wait(arn)
    cause = assert_failed_at(env, failed, "RegisterModel", "ClientError")
    assert "AccessDeniedException" in cause
    # the redrive window and the definition are checked before anything reruns
    env.cloud.sfn_clock.advance(dt.timedelta(days=15))
    try:
        with pytest.raises(ClientError) as late:
            env.sfn.redrive_execution(executionArn=arn)
    finally:
        env.cloud.sfn_clock.advance(dt.timedelta(days=-15))
    assert late.value.response["Error"]["Code"] == "ExecutionNotRedrivable"
    assert "14 days" in late.value.response["Error"]["Message"]
    machine = env.sfn.describe_state_machine(stateMachineArn=env.stack.state_machine_arn)
    changed = json.loads(machine["definition"])
    changed["Comment"] += " (changed)"
    env.sfn.update_state_machine(
        stateMachineArn=env.stack.state_machine_arn, definition=json.dumps(changed)
    )
    try:
        with pytest.raises(ClientError) as redefined:
            env.sfn.redrive_execution(executionArn=arn)
    finally:
        env.sfn.update_state_machine(
            stateMachineArn=env.stack.state_machine_arn, definition=machine["definition"]
        )
    assert redefined.value.response["Error"]["Code"] == "ExecutionNotRedrivable"
    assert "definition" in redefined.value.response["Error"]["Message"]
    # When redriven after the fix
    done = env.redrive(arn)
    # Then exactly one model package for the execution, and no job ran twice
    assert_redriven(env, done, "RegisterModel")
    counts = delta(env.counts(), before)
    MEASURED["RegisterModel refused -> redrive"] = counts
    assert counts == creates(processing=2, training=1)
    # a SUCCEEDED execution is not redrivable
    with pytest.raises(ClientError) as succeeded:
        env.sfn.redrive_execution(executionArn=arn)
    assert succeeded.value.response["Error"]["Code"] == "ExecutionNotRedrivable"


def test_update_endpoint_failure_then_redrive_deploys_once(env: Cloud) -> None:
    # Given the endpoint config cannot be created (refused once)
    before = env.counts()
    env.cloud.sagemaker.faults.inject_api_error(
        "CreateEndpointConfig",
        "AccessDeniedException",
        "User is not authorized to perform: sagemaker:CreateEndpointConfig",
    )
    # (no staging stage: the refused config is production's, the one UpdateEndpoint creates)
    arn = env.start({"deploy_mode": "auto", "staging_endpoint_name": None})
    failed = env.wait(arn)
    assert_failed_at(env, failed, "UpdateEndpoint", "ClientError")
    # When redriven
    done = env.redrive(arn)
    # Then the model made before the failure is reused; one config, one endpoint
    assert_redriven(env, done, "UpdateEndpoint")
    out = json.loads(done["output"])
    assert out["deploy"]["action"] == "create"
    endpoint = env.cloud.client("sagemaker").describe_endpoint(
        EndpointName=out["deploy"]["endpoint_name"]
    )
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == out["deploy"]["endpoint_config_name"]
    counts = delta(env.counts(), before)
    MEASURED["UpdateEndpoint refused -> redrive"] = counts
    assert counts == creates(processing=2, training=1, models=1, configs=1)


def test_a_stopped_execution_is_notified_with_the_state_it_was_in(env: Cloud) -> None:
    # Given a run stopped by hand while its preprocessing step is under way
    arn = env.start({"deploy_mode": "never"})

    def in_preprocessing() -> str | None:
        runs = state_runs(get_history(env.sfn, arn))
        names = [r.name for r in runs]
        return names[-1] if "StartPreprocessing" in names else None

    env.cloud.wait_for(in_preprocessing, timeout=60)
    env.sfn.stop_execution(executionArn=arn, error="Operator", cause="stopped to fix the data")
    stopped = env.wait(arn)
    assert stopped["status"] == "ABORTED", stopped
    last = state_runs(get_history(env.sfn, arn))[-1].name
    # Then the notification says it was stopped, and where
    (message,) = env.notifications(stopped["name"])
    assert message["status"] == "ABORTED"
    assert message["failed_state"] == last
    assert f"ABORTED (stopped) in {last}" in message["summary"]
    assert "stopped on purpose" in message["next_step"]
