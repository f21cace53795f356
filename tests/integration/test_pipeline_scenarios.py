"""The real pipeline (rendered ASL + the nine Lambdas + the container) in one local cloud,
and its fault scenarios, each asserting what was and was not created.

One cloud for the module: the image push makes the champion (with a duplicated ECR event
and a transient Lambda service error on the way), then each scenario is a manual start.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from executions import wait_closed

from sfn_mlops.history import failure, state_runs
from sfn_mlops.local.cloud import LocalCloud
from sfn_mlops.local.run import export_dataset
from sfn_mlops.local.stack import Stack, deploy, enable_triggers, push_image
from sfn_mlops.progress import get_history
from shared import naming, resources

pytestmark = pytest.mark.integration

TIMEOUT = 180.0
#: A challenger that beats the champion (30 rounds locally) on the test split's logloss.
BETTER_BY_LOGLOSS = {
    "hyperparameters": {"num_round": 100},
    "objective": {"name": "logloss", "goal": "minimize", "threshold": 0.5, "min_improvement": 0},
}


@dataclass
class Pipeline:
    cloud: LocalCloud
    stack: Stack
    champion: dict[str, Any]  # describe_execution of the image-push execution
    champion_events: list[dict[str, Any]]

    @property
    def sfn(self) -> Any:
        return self.cloud.client("stepfunctions")

    @property
    def sagemaker(self) -> Any:
        return self.cloud.client("sagemaker")

    @property
    def endpoint(self) -> str:
        return str(self.stack.defaults["endpoint_name"])

    def wait(self, arn: str) -> dict[str, Any]:
        return wait_closed(self.sfn, arn, TIMEOUT)

    def start(self, payload: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        arn = self.sfn.start_execution(
            stateMachineArn=self.stack.state_machine_arn,
            name=f"test-{uuid.uuid4().hex[:12]}",
            input=json.dumps(payload),
        )["executionArn"]
        desc = self.wait(arn)
        return desc, get_history(self.sfn, arn)

    def job_counts(self) -> tuple[int, int]:
        return (
            len(self.sagemaker.list_processing_jobs(MaxResults=100)["ProcessingJobSummaries"]),
            len(self.sagemaker.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]),
        )

    def packages(self) -> list[dict[str, Any]]:
        group = self.stack.defaults["model_package_group"]
        out = self.sagemaker.list_model_packages(ModelPackageGroupName=group, MaxResults=100)
        return list(out["ModelPackageSummaryList"])

    def predict(self) -> list[float]:
        sample = self.champion_output["preprocess"]["sample_uri"]
        out = self.cloud.client("lambda").invoke(
            FunctionName=resources.FUNCTIONS_BY_KEY["invoke"].function_name,
            Payload=json.dumps({"endpoint_name": self.endpoint, "sample_uri": sample}),
        )
        assert "FunctionError" not in out, out["Payload"].read()
        return list(json.loads(out["Payload"].read())["predictions"])

    @property
    def champion_output(self) -> dict[str, Any]:
        return json.loads(self.champion["output"])  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    workdir = tmp_path_factory.mktemp("pipeline")
    with LocalCloud(workdir=workdir) as cloud:
        stack = deploy(cloud, triggers=False)
        seed, _ = export_dataset(workdir / "data")
        cloud.client("s3").upload_file(
            str(seed), stack.bucket, f"{resources.DATA_PREFIX}{seed.name}"
        )
        enable_triggers(cloud, stack)
        # a transient Lambda service error on the first StartTraining invoke
        cloud.lambdas.inject_service_errors(
            resources.FUNCTIONS_BY_KEY["train"].function_name, ["ServiceException"]
        )

        digest = push_image(cloud, stack, label="pipeline-tests")
        assert cloud.events.wait_idle(30)
        # EventBridge delivers at least once: the very same event again
        (push_event,) = [
            d.event for d in cloud.events.deliveries if d.rule == resources.ECR_PUSH_RULE
        ]
        cloud.route_event(push_event)
        assert cloud.events.wait_idle(30)

        name = naming.execution_name_for_image(stack.repository, digest)
        arn = stack.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
        p = Pipeline(cloud, stack, {}, [])
        p.champion = p.wait(arn)
        p.champion_events = get_history(p.sfn, arn)
        yield p


def test_image_push_runs_the_pipeline_once_even_when_the_event_is_delivered_twice(
    pipeline: Pipeline,
) -> None:
    deliveries = [d for d in pipeline.cloud.events.deliveries if d.rule == resources.ECR_PUSH_RULE]
    executions = pipeline.sfn.list_executions(stateMachineArn=pipeline.stack.state_machine_arn)[
        "executions"
    ]

    assert len(deliveries) == 2
    assert all(d.error is None for d in deliveries)
    assert [e["name"] for e in executions if e["name"].startswith("img-")] == [
        pipeline.champion["name"]
    ]
    assert pipeline.champion["status"] == "SUCCEEDED", failure(pipeline.champion_events)


def test_transient_lambda_error_is_retried(pipeline: Pipeline) -> None:
    (train,) = [r for r in state_runs(pipeline.champion_events) if r.name == "StartTraining"]

    assert train.attempts == 2
    assert train.errors[0][0] == "Lambda.ServiceException"
    assert train.status == "succeeded"


def test_first_model_is_deployed_and_answers(pipeline: Pipeline) -> None:
    out = pipeline.champion_output
    endpoint = pipeline.sagemaker.describe_endpoint(EndpointName=pipeline.endpoint)

    assert out["gate"]["deploy"] is True
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == out["deploy"]["endpoint_config_name"]
    predictions = pipeline.predict()
    assert predictions
    assert all(0.0 <= p <= 1.0 for p in predictions)
    assert out["smoke_test"]["row_count"] == len(out["smoke_test"]["predictions"]) > 0


def test_training_script_failure_fails_the_execution_with_the_containers_reason(
    pipeline: Pipeline,
) -> None:
    config_before = pipeline.sagemaker.describe_endpoint(EndpointName=pipeline.endpoint)[
        "EndpointConfigName"
    ]
    packages_before = len(pipeline.packages())

    # a value only XGBoost itself can judge (ValidateInput refuses what it can, e.g. num_round 0)
    desc, events = pipeline.start({"hyperparameters": {"objective": "binary:nonsense"}})

    assert desc["status"] == "FAILED"
    _, error, cause = failure(events) or ("", "", "")
    assert error == "JobFailedError"
    training = [
        e
        for e in pipeline.sagemaker.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
        if e["TrainingJobStatus"] == "Failed"
    ]
    assert training, "the training job should have failed for real"
    reason = pipeline.sagemaker.describe_training_job(
        TrainingJobName=training[0]["TrainingJobName"]
    )["FailureReason"]
    assert "binary:nonsense" in reason
    assert "binary:nonsense" in cause
    assert len(pipeline.packages()) == packages_before  # nothing registered
    assert (
        pipeline.sagemaker.describe_endpoint(EndpointName=pipeline.endpoint)["EndpointConfigName"]
        == config_before
    )
    assert {r.name for r in state_runs(events)}.isdisjoint({"RegisterModel", "UpdateEndpoint"})


def test_challenger_below_threshold_is_rejected_and_the_champion_keeps_serving(
    pipeline: Pipeline,
) -> None:
    before = pipeline.sagemaker.describe_endpoint(EndpointName=pipeline.endpoint)
    predictions_before = pipeline.predict()

    desc, _ = pipeline.start({"objective": {"threshold": 0.99999}})  # an impossible AUC

    assert desc["status"] == "SUCCEEDED"
    out = json.loads(desc["output"])
    assert out["gate"]["passed"] is False
    assert out["gate"]["deploy"] is False
    assert any("threshold" in r for r in out["gate"]["reasons"])
    package = pipeline.sagemaker.describe_model_package(
        ModelPackageName=out["register"]["model_package_arn"]
    )
    assert package["ModelApprovalStatus"] == "Rejected"
    after = pipeline.sagemaker.describe_endpoint(EndpointName=pipeline.endpoint)
    assert after["EndpointConfigName"] == before["EndpointConfigName"]
    assert pipeline.predict() == predictions_before


def test_endpoint_update_that_fails_health_keeps_the_old_model_serving(pipeline: Pipeline) -> None:
    before = pipeline.sagemaker.describe_endpoint(EndpointName=pipeline.endpoint)
    predictions_before = pipeline.predict()
    s3 = pipeline.cloud.client("s3")

    def corrupt_challenger(kind: str, job: str, status: str, request: dict[str, Any]) -> None:
        """Right after evaluation read the model: replace it by one the server cannot load."""
        for item in request.get("ProcessingInputs", []):
            if item["InputName"] == "challenger":
                bucket, key = item["S3Input"]["S3Uri"][5:].split("/", 1)
                s3.put_object(Bucket=bucket, Key=key, Body=b"not a model archive")

    pipeline.cloud.sagemaker.hooks.append(corrupt_challenger)
    try:
        # more boosting rounds than the champion: a lower test logloss, so the gate deploys
        # (an equal challenger would not: min_improvement 0 means strictly better)
        desc, events = pipeline.start(BETTER_BY_LOGLOSS)
    finally:
        pipeline.cloud.sagemaker.hooks.remove(corrupt_challenger)

    assert desc["status"] == "FAILED"
    state, error, cause = failure(events) or ("", "", "")
    # the staging stage stops it: its update fails health, staging keeps its old model
    assert (state, error) == ("PollStaging", "EndpointUpdateFailedError"), cause
    staging = pipeline.sagemaker.describe_endpoint(
        EndpointName=str(pipeline.stack.defaults["staging_endpoint_name"])
    )
    assert staging["EndpointStatus"] == "InService"
    assert staging.get("FailureReason")
    # ... and production was never touched
    after = pipeline.sagemaker.describe_endpoint(EndpointName=pipeline.endpoint)
    assert after["EndpointStatus"] == "InService"
    assert after["EndpointConfigName"] == before["EndpointConfigName"]
    assert pipeline.predict() == predictions_before


def test_invalid_manual_payload_fails_at_validation_without_sagemaker_jobs(
    pipeline: Pipeline,
) -> None:
    jobs_before = pipeline.job_counts()

    desc, events = pipeline.start(
        {
            "problem_type": "multiclass",
            "max_polls": 0,
            "objective": {"name": "rmse"},
            "colour": "red",
        }
    )

    assert desc["status"] == "FAILED"
    state, error, cause = failure(events) or ("", "", "")
    assert (state, error) == ("ValidateInput", "InvalidInputError")
    for field in ("problem_type", "max_polls", "colour"):
        assert field in cause
    assert pipeline.job_counts() == jobs_before


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {
                "hyperparameters": {"num_round": -5, "max_depth": 1e9},
                "training": {"instance_type": "ml.doesnotexist.huge"},
                "tags": {"note": 'say "hi"\n'},
                "max_runtime_seconds": 432000,
                "max_polls": 200,
                "poll_interval_seconds": 600,
                "max_poll_interval_seconds": 600,
            },
            [
                "hyperparameters.num_round: -5 is out of range; XGBoost needs an integer in",
                "hyperparameters.max_depth: 1000000000.0 is out of range",
                "training.instance_type: 'ml.doesnotexist.huge' is not a SageMaker "
                "TrainingInstanceType",
                "tags.note: holds",
                "more than the execution timeout of 21600s; set max_runtime_seconds <= 7200",
            ],
        ),
        (
            {"raw_data_uri": "s3://sfn-mlops-no-such-bucket/data/"},
            ["raw_data_uri: bucket 'sfn-mlops-no-such-bucket' does not exist"],
        ),
        ({"raw_data_uri": "s3://{bucket}/nothing-here/"}, ["raw_data_uri: no objects under"]),
        ({"target_column": "label"}, ["target_column: 'label' is not a column of s3://"]),
    ],
)
def test_values_that_can_never_work_fail_at_validate_input_with_zero_jobs(
    pipeline: Pipeline, payload: dict[str, Any], expected: list[str]
) -> None:
    # GIVEN a payload with values that would otherwise fail only after jobs were created
    jobs_before = pipeline.job_counts()
    payload = json.loads(json.dumps(payload).replace("{bucket}", pipeline.stack.bucket))
    # WHEN it is started
    desc, events = pipeline.start(payload)
    # THEN it FAILED at ValidateInput, the cause names each field and its fix, and no
    # SageMaker job was created
    assert desc["status"] == "FAILED"
    state, error, cause = failure(events) or ("", "", "")
    assert (state, error) == ("ValidateInput", "InvalidInputError")
    for fragment in expected:
        assert fragment in cause
    assert pipeline.job_counts() == jobs_before


def test_upload_with_an_awkward_name_trains_and_registers(pipeline: Pipeline) -> None:
    # GIVEN an ordinary upload whose name holds spaces, parentheses, a comma, #, & and %
    # (the same rows as the seed data, so the data set's columns stay the same)
    key = f"{resources.DATA_PREFIX}batch (3), v2 #1 & 50%.csv"
    seed, _ = export_dataset(pipeline.cloud.workdir / "awkward")
    pipeline.cloud.client("s3").upload_file(str(seed), pipeline.stack.bucket, key)
    assert pipeline.cloud.events.wait_idle(30)
    # WHEN the trigger's execution runs (strict requests: RegisterModel is checked against
    # the model package metadata's constraints, as on AWS)
    # (the upload reaches the trigger through the debounce queue: a batch of this one object)
    head = pipeline.cloud.client("s3").head_object(Bucket=pipeline.stack.bucket, Key=key)
    version = head.get("VersionId") or head["ETag"].strip('"')
    name = naming.execution_name_for_object(pipeline.stack.bucket, key, version)
    arn = pipeline.stack.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
    started = pipeline.cloud.wait_for(
        lambda: any(
            e["executionArn"] == arn
            for e in pipeline.sfn.list_executions(stateMachineArn=pipeline.stack.state_machine_arn)[
                "executions"
            ]
        ),
        timeout=120,
    )
    assert started, f"no execution {name} for the upload"
    desc = pipeline.wait(arn)
    # THEN it succeeded, and the package's data_version is the key with the characters AWS
    # refuses replaced
    assert desc["status"] == "SUCCEEDED", failure(get_history(pipeline.sfn, arn))
    package_arn = json.loads(desc["output"])["register"]["model_package_arn"]
    package = pipeline.sagemaker.describe_model_package(ModelPackageName=package_arn)
    expected = f"data/batch _3__ v2 _1 _ 50_.csv@{version}"
    assert package["CustomerMetadataProperties"]["data_version"] == expected[:256]


def test_scaled_out_spot_run_trains_on_two_hosts_and_evaluates_on_one(pipeline: Pipeline) -> None:
    # GIVEN a run asking for 2 Spot training instances (and no deployment)
    # (the local poll loop covers the runtime, so the Spot max wait is set to it)
    runtime = pipeline.stack.defaults["max_runtime_seconds"]
    desc, events = pipeline.start(
        {
            "training": {"instance_count": 2, "use_spot": True, "max_wait_seconds": runtime},
            "deploy_mode": "never",
        }
    )
    # THEN it succeeds through evaluation and registration
    assert desc["status"] == "SUCCEEDED", failure(events)
    output = json.loads(desc["output"])
    job = pipeline.sagemaker.describe_training_job(TrainingJobName=output["train"]["job_name"])
    # AND training ran on 2 hosts, each on its shard, as Spot with a checkpoint prefix
    assert job["ResourceConfig"]["InstanceCount"] == 2
    assert {
        c["DataSource"]["S3DataSource"]["S3DataDistributionType"] for c in job["InputDataConfig"]
    } == {"ShardedByS3Key"}
    record = pipeline.cloud.sagemaker.jobs[job["TrainingJobName"]]
    assert [h.name for h in sorted(record.workdir.iterdir()) if h.is_dir()] == ["algo-1", "algo-2"]
    # AND evaluation ran on one instance and wrote the merged profile next to its report
    evaluation = pipeline.sagemaker.describe_processing_job(
        ProcessingJobName=output["evaluate"]["job_name"]
    )
    assert evaluation["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    report = output["evaluate"]["report_uri"]
    bucket, _, key = report.removeprefix("s3://").partition("/")
    profile_key = key.rsplit("/", 1)[0] + "/profile.json"
    profile = json.loads(
        pipeline.cloud.client("s3").get_object(Bucket=bucket, Key=profile_key)["Body"].read()
    )
    assert profile["rows"]["train"] > 0
    # AND the Spot job's checkpoints were synced under the execution's checkpoint prefix
    prefix = f"{resources.CHECKPOINTS_PREFIX}{desc['name']}/train/"
    listed = pipeline.cloud.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    assert [o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith(".ubj")]


def test_a_canary_of_a_model_failing_on_traffic_is_rolled_back_naming_the_alarm(
    pipeline: Pipeline,
) -> None:
    """Last in the module: its alarm stays in ALARM for a few periods after the rollback."""
    import threading

    from broken_model import broken_archive

    before = pipeline.sagemaker.describe_endpoint(EndpointName=pipeline.endpoint)
    predictions_before = pipeline.predict()
    s3, runtime = pipeline.cloud.client("s3"), pipeline.cloud.client("sagemaker-runtime")

    def break_challenger(kind: str, job: str, status: str, request: dict[str, Any]) -> None:
        """After evaluation read the model: one that passes /ping but fails real requests."""
        for item in request.get("ProcessingInputs", []):
            if item["InputName"] == "challenger":
                bucket, key = item["S3Input"]["S3Uri"][5:].split("/", 1)
                good = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                s3.put_object(Bucket=bucket, Key=key, Body=broken_archive(good))

    sample = pipeline.champion_output["preprocess"]["sample_uri"]
    bucket, prefix = sample[5:].split("/", 1)
    key = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"][0]["Key"]
    rows = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()
    body = "\n".join(rows[:3])  # header and two rows
    stop, outcomes = threading.Event(), []

    def traffic() -> None:  # production traffic while the run deploys
        while not stop.is_set():
            try:
                runtime.invoke_endpoint(
                    EndpointName=pipeline.endpoint, ContentType="text/csv", Body=body
                )
                outcomes.append("ok")
            except Exception as exc:
                outcomes.append(type(exc).__name__)
            stop.wait(0.05)

    sender = threading.Thread(target=traffic, daemon=True)
    pipeline.cloud.sagemaker.hooks.append(break_challenger)
    sender.start()
    try:
        desc, events = pipeline.start(
            {
                **BETTER_BY_LOGLOSS,
                "hyperparameters": {"num_round": 200},
                "staging_endpoint_name": None,  # its smoke test would stop it first
                "deploy_strategy": {
                    "type": "canary",
                    "canary_size_percent": 50,
                    "wait_interval_seconds": 60,
                    "termination_wait_seconds": 0,
                },
            }
        )
    finally:
        stop.set()
        sender.join(10)
        pipeline.cloud.sagemaker.hooks.remove(break_challenger)
    # THEN the run failed at the production poll, saying it was rolled back and on which alarm
    assert desc["status"] == "FAILED"
    state, error, cause = failure(events) or ("", "", "")
    assert (state, error) == ("PollEndpoint", "EndpointUpdateFailedError"), cause
    assert "rolled back" in cause
    assert resources.ENDPOINT_ALARM_NAMES[0] in cause  # the 5xx alarm
    # ... production is still on the old model, serving as before
    after = pipeline.sagemaker.describe_endpoint(EndpointName=pipeline.endpoint)
    assert after["EndpointConfigName"] == before["EndpointConfigName"]
    assert pipeline.predict() == predictions_before
    assert "ok" in outcomes
