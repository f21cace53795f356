"""deploy: model + endpoint config per execution; CreateEndpoint first time, blue/green
UpdateEndpoint with alarm auto-rollback after (moto for create, Stubber for update)."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pytest
from fn_support import BUCKET, ENV, EXECUTION, EXECUTION_ARN, IMAGE, ROLE, make_table, state
from sm_stubs import NOW, endpoint, not_found, stubbed

from functions.deploy.handler import lambda_handler
from functions.deploy.logic import deploy
from shared import aws
from shared.adapters.sagemaker import SageMaker
from shared.errors import (
    DeployLockLostError,
    EndpointFailedError,
    InvalidInputError,
    TransientServiceError,
)
from shared.models import DeployOutput, DeployRequest
from shared.naming import resource_name
from shared.settings import DeploySettings, load_settings

ENDPOINT = "sfn-mlops-endpoint"
ARTIFACT = f"s3://{BUCKET}/runs/{EXECUTION}/train/job/output/model.tar.gz"
MODEL = resource_name(EXECUTION, "model")
CONFIG = resource_name(EXECUTION, "config")
PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/sfn-mlops-models/1"
LOCK = f"lock#endpoint#{ENDPOINT}"


def deploy_state(deploy_ok: bool = True) -> dict[str, Any]:
    done = {"status": "Completed", "attempt": 2, "wait_seconds": 1}
    return state(
        train={
            "job_name": "train-1",
            "reused": False,
            "model_artifact_uri": ARTIFACT,
            "poll": done,
        },
        register={
            "model_package_arn": PACKAGE,
            "model_package_group": "sfn-mlops-models",
            "approval_status": "Approved",
            "reused": False,
        },
        gate={
            "passed": deploy_ok,
            "deploy": deploy_ok,
            "approval_status": "Approved" if deploy_ok else "Rejected",
            "reasons": ["auc 0.93 >= threshold 0.8"],
            "metric": "auc",
            "challenger": 0.93,
            "champion": None,
        },
        candidate={
            "model_package_arn": PACKAGE,
            "model_artifact_uri": ARTIFACT,
            "image_uri": IMAGE,
            "sample_uri": f"s3://{BUCKET}/runs/{EXECUTION}/preprocess/sample/",
            "source": "pipeline",
        },
        lock={
            "acquired": True,
            "lock_key": LOCK,
            "owner": EXECUTION_ARN,
            "attempt": 0,
            "wait_seconds": 1,
        },
        recheck={
            "changed": False,
            "evaluated_champion_uri": None,
            "champion_model_uri": None,
            "job_name": None,
            "reused": False,
            "report_uri": None,
            "poll": {"status": "Completed", "attempt": 0, "wait_seconds": 1},
        },
    )


def lock_owner() -> str | None:
    item = aws.dynamodb().get_item(TableName=ENV["COORDINATION_TABLE"], Key={"pk": {"S": LOCK}})
    return item.get("Item", {}).get("owner", {}).get("S")


def hold_lock(owner: str) -> None:
    aws.dynamodb().put_item(
        TableName=ENV["COORDINATION_TABLE"], Item={"pk": {"S": LOCK}, "owner": {"S": owner}}
    )


@pytest.fixture
def held(moto: None) -> None:
    """The coordination table, with this execution holding the endpoint's deployment lock."""
    make_table()
    hold_lock(EXECUTION_ARN)


def configs() -> list[str]:
    listed = aws.sagemaker().list_endpoint_configs()["EndpointConfigs"]
    return [c["EndpointConfigName"] for c in listed]


def test_first_deployment_creates_the_endpoint(held: None, context: Any) -> None:
    # GIVEN no endpoint yet
    # WHEN UpdateEndpoint runs
    out = DeployOutput.model_validate(lambda_handler(deploy_state(), context))
    # THEN a model, a config and the endpoint exist, and the poll follows the endpoint
    assert out.action == "create"
    assert (out.model_name, out.endpoint_config_name) == (MODEL, CONFIG)
    assert (out.job_name, out.job_type) == (ENDPOINT, "endpoint")
    assert out.poll.status == "InProgress"
    sm = aws.sagemaker()
    model = sm.describe_model(ModelName=MODEL)
    assert model["PrimaryContainer"]["ModelDataUrl"] == ARTIFACT
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["ExecutionRoleArn"] == ROLE
    variant = sm.describe_endpoint_config(EndpointConfigName=CONFIG)["ProductionVariants"][0]
    assert (variant["ModelName"], variant["VariantName"]) == (MODEL, "AllTraffic")
    assert sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == CONFIG
    # ... and the config captures requests and responses for the drift check
    capture = sm.describe_endpoint_config(EndpointConfigName=CONFIG)["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert capture["InitialSamplingPercentage"] == 100  # config/pipeline.yaml monitoring
    assert capture["DestinationS3Uri"] == f"s3://{os.environ['ARTIFACT_BUCKET']}/capture"
    assert {o["CaptureMode"] for o in capture["CaptureOptions"]} == {"Input", "Output"}


def test_reinvoking_deploy_creates_no_second_config(held: None, context: Any) -> None:
    # GIVEN this execution deployed already
    lambda_handler(deploy_state(), context)
    # WHEN UpdateEndpoint runs again with the same input
    out = DeployOutput.model_validate(lambda_handler(deploy_state(), context))
    # THEN nothing new is created and no update is made
    assert out.action == "none"
    assert configs() == [CONFIG]
    assert [m["ModelName"] for m in aws.sagemaker().list_models()["Models"]] == [MODEL]


def test_gate_without_deploy_is_refused(held: None, context: Any) -> None:
    with pytest.raises(InvalidInputError, match="gate did not approve"):
        lambda_handler(deploy_state(deploy_ok=False), context)
    assert configs() == []


def test_redrive_after_the_lock_was_released_takes_it_back(moto: None, context: Any) -> None:
    # GIVEN the FAILED event released this execution's lock, and nobody took it since
    make_table()
    # WHEN the execution is redriven into UpdateEndpoint
    out = DeployOutput.model_validate(lambda_handler(deploy_state(), context))
    # THEN it holds the lock again before it deploys
    assert lock_owner() == EXECUTION_ARN
    assert out.action == "create"


def test_redrive_while_another_execution_holds_the_lock_fails_and_deploys_nothing(
    moto: None, context: Any
) -> None:
    # GIVEN another execution took the lock while this one was failed
    make_table()
    other = EXECUTION_ARN.replace(EXECUTION, "other-execution")
    hold_lock(other)
    # WHEN this one is redriven into UpdateEndpoint
    # THEN it fails naming the holder and what to do, before creating anything
    with pytest.raises(DeployLockLostError, match=f"held by {other}.*Redrive again"):
        lambda_handler(deploy_state(), context)
    assert lock_owner() == other
    assert configs() == []


def test_redrive_after_another_deployment_fails_naming_the_new_champion(
    moto: None, context: Any
) -> None:
    # GIVEN another execution deployed (and released the lock) while this one was failed
    make_table()
    sm = aws.sagemaker()
    newer = f"s3://{BUCKET}/runs/other/train/job/output/model.tar.gz"
    sm.create_model(
        ModelName="other-model",
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": newer},
        ExecutionRoleArn=ROLE,
    )
    sm.create_endpoint_config(
        EndpointConfigName="other-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "other-model",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="other-config")
    # WHEN this one is redriven into UpdateEndpoint
    # THEN it refuses to deploy on a decision made against the old champion
    with pytest.raises(DeployLockLostError, match=f"serves {newer}.*start a new execution"):
        lambda_handler(deploy_state(), context)
    assert configs() == ["other-config"]


def _update_stub(current: dict[str, Any], name: str = ENDPOINT) -> tuple[Any, Any]:
    client, stub = stubbed("sagemaker")
    stub.add_response("describe_endpoint", current, {"EndpointName": name})
    not_found(stub, "describe_model")
    stub.add_response(
        "create_model", {"ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/m"}, None
    )
    not_found(stub, "describe_endpoint_config")
    stub.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/c"},
        None,
    )
    return client, stub


def _serving_config(stub: Any, name: str, seconds_before: int) -> None:
    """The serving config, created `seconds_before` the endpoint last became InService (its
    last update's duration: the prediction of the next one's)."""
    stub.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": name,
            "EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/{name}",
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m"}],
            "CreationTime": NOW - timedelta(seconds=seconds_before),
        },
        {"EndpointConfigName": name},
    )


def test_existing_endpoint_is_updated_blue_green_with_rollback_alarms() -> None:
    # GIVEN the endpoint serves an older config, whose update took 400 s
    client, stub = _update_stub(endpoint(ENDPOINT, "InService", "old-config"))
    _serving_config(stub, "old-config", 400)
    stub.add_response(
        "update_endpoint",
        {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/e"},
        {
            "EndpointName": ENDPOINT,
            "EndpointConfigName": CONFIG,
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {
                    # config/pipeline.yaml deploy_strategy: a 10% canary, 300 s, 300 s baking
                    "TrafficRoutingConfiguration": {
                        "Type": "CANARY",
                        "WaitIntervalInSeconds": 300,
                        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                    },
                    "TerminationWaitInSeconds": 300,
                    "MaximumExecutionTimeoutInSeconds": 3600,
                },
                "AutoRollbackConfiguration": {
                    "Alarms": [
                        {"AlarmName": "sfn-mlops-endpoint-5xx"},
                        {"AlarmName": "sfn-mlops-endpoint-latency"},
                    ]
                },
            },
        },
    )
    # WHEN UpdateEndpoint runs
    with stub:
        out = deploy(
            DeployRequest.model_validate(deploy_state()),
            load_settings(DeploySettings),
            SageMaker(client),
        )
        stub.assert_no_pending_responses()
    # THEN it updated to this execution's config (the old config is left alone)
    assert out.action == "update"
    assert out.endpoint_config_name == CONFIG
    assert out.poll.status == "InProgress"
    # ... and the poll's first look is predicted from the last update (400 s x 0.65)
    assert (out.poll.expected_seconds, out.poll.wait_seconds) == (400, 260)
    assert "endpoint config old-config" in out.poll.reason


def test_no_alarms_means_no_auto_rollback_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENDPOINT_ALARM_NAMES", "")
    client, stub = _update_stub(endpoint(ENDPOINT, "InService", "old-config"))
    _serving_config(stub, "old-config", 400)
    stub.add_response(
        "update_endpoint",
        {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/e"},
        None,
    )
    with stub:
        deploy(
            DeployRequest.model_validate(deploy_state()),
            load_settings(DeploySettings),
            SageMaker(client),
        )
    from functions.deploy.logic import deployment_config

    assert "AutoRollbackConfiguration" not in deployment_config(())
    assert deployment_config(())["BlueGreenUpdatePolicy"]["TerminationWaitInSeconds"] == 0


def test_update_in_flight_to_this_config_is_not_repeated() -> None:
    # GIVEN a retry after UpdateEndpoint was accepted: Updating towards this config
    current = endpoint(ENDPOINT, "Updating", "old-config", pending_config=CONFIG)
    client, stub = _update_stub(current)
    # WHEN deploy runs again (no update_endpoint stubbed: a call would fail the test)
    with stub:
        out = deploy(
            DeployRequest.model_validate(deploy_state()),
            load_settings(DeploySettings),
            SageMaker(client),
        )
    # THEN it follows the update in flight
    assert out.action == "none"
    assert out.poll.status == "InProgress"


def test_failed_endpoint_raises_named_error_and_creates_nothing() -> None:
    client, stub = stubbed("sagemaker")
    stub.add_response("describe_endpoint", endpoint(ENDPOINT, "Failed", "old", reason="boom"))
    with stub, pytest.raises(EndpointFailedError, match="only allows DeleteEndpoint"):
        deploy(
            DeployRequest.model_validate(deploy_state()),
            load_settings(DeploySettings),
            SageMaker(client),
        )
    stub.assert_no_pending_responses()


def test_endpoint_busy_with_another_update_is_transient() -> None:
    client, stub = _update_stub(endpoint(ENDPOINT, "Updating", "other", pending_config="x"))
    with stub, pytest.raises(TransientServiceError, match="Updating"):
        deploy(
            DeployRequest.model_validate(deploy_state()),
            load_settings(DeploySettings),
            SageMaker(client),
        )


def test_staging_stage_deploys_the_staging_endpoint_all_at_once_on_its_alarms() -> None:
    # GIVEN the staging endpoint serves an older config
    staging = "sfn-mlops-staging"
    client, stub = _update_stub(endpoint(staging, "InService", "old-config"), staging)
    _serving_config(stub, "old-config", 400)
    stub.add_response(
        "update_endpoint",
        {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/s"},
        {
            "EndpointName": staging,
            "EndpointConfigName": resource_name(EXECUTION, "staging"),
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "ALL_AT_ONCE",
                        "WaitIntervalInSeconds": 0,
                    },
                    "TerminationWaitInSeconds": 0,
                    "MaximumExecutionTimeoutInSeconds": 3600,
                },
                "AutoRollbackConfiguration": {
                    "Alarms": [
                        {"AlarmName": "sfn-mlops-staging-5xx"},
                        {"AlarmName": "sfn-mlops-staging-latency"},
                    ]
                },
            },
        },
    )
    # WHEN UpdateEndpoint runs for the staging stage
    with stub:
        out = deploy(
            DeployRequest.model_validate({**deploy_state(), "stage": "staging"}),
            load_settings(DeploySettings),
            SageMaker(client),
        )
        stub.assert_no_pending_responses()
    # THEN staging got its own config (the model is shared with the production stage)
    assert (out.endpoint_name, out.model_name) == (staging, MODEL)
    assert out.endpoint_config_name == resource_name(EXECUTION, "staging") != CONFIG


@pytest.mark.parametrize(
    ("strategy", "routing"),
    [
        (
            {"type": "linear", "linear_step_percent": 25, "wait_interval_seconds": 60},
            {
                "Type": "LINEAR",
                "WaitIntervalInSeconds": 60,
                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
            },
        ),
        ({"type": "all_at_once"}, {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}),
    ],
)
def test_production_traffic_routing_follows_the_deploy_strategy(
    strategy: dict[str, Any], routing: dict[str, Any]
) -> None:
    from functions.deploy.logic import deployment_config

    body = deploy_state()
    body["config"] = {
        **body["config"],
        "deploy_strategy": {**body["config"]["deploy_strategy"], **strategy},
    }
    request = DeployRequest.model_validate(body)
    config = deployment_config(("a",), request.config.deploy_strategy)
    assert config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == routing
    assert config["AutoRollbackConfiguration"] == {"Alarms": [{"AlarmName": "a"}]}


def test_a_registry_approval_deploys_without_a_gate_and_a_pipeline_run_needs_one() -> None:
    body = deploy_state()
    del body["gate"], body["recheck"]
    registry = {**body, "candidate": {**body["candidate"], "source": "registry"}}
    client, stub = _update_stub(endpoint(ENDPOINT, "Updating", "old-config", pending_config=CONFIG))
    with stub:
        out = deploy(
            DeployRequest.model_validate(registry), load_settings(DeploySettings), SageMaker(client)
        )
    assert out.action == "none"
    with pytest.raises(InvalidInputError, match="gate did not approve"):
        deploy(DeployRequest.model_validate(body), load_settings(DeploySettings), SageMaker(client))


def test_each_deploy_state_passes_its_stage_and_a_training_run_deploys_its_own_model() -> None:
    # GIVEN a training run's state (no $.candidate: ValidateInput left it null) as the
    # definition passes it to a deploy state: {stage, state}
    state = {**deploy_state(), "candidate": None}
    state["preprocess"] = {"sample_uri": f"s3://{BUCKET}/runs/{EXECUTION}/preprocess/sample/"}
    request = DeployRequest.model_validate({"stage": "staging", "state": state})
    # THEN the stage is the state's, and the candidate is the run's model: its package,
    # artifact, the configured image and the preprocessing's sample rows
    assert request.stage == "staging"
    assert request.candidate.model_dump() == {
        "model_package_arn": PACKAGE,
        "model_artifact_uri": ARTIFACT,
        "image_uri": state["config"]["image_uri"],
        "sample_uri": state["preprocess"]["sample_uri"],
        "source": "pipeline",
    }
    # ... a registry approval's $.candidate is kept as it is
    registry = {**deploy_state()["candidate"], "source": "registry"}
    kept = DeployRequest.model_validate(
        {"stage": "production", "state": {**state, "candidate": registry}}
    )
    assert kept.candidate.source == "registry"
    # ... and a state with neither fails validation naming the candidate
    with pytest.raises(ValueError, match="candidate"):
        DeployRequest.model_validate({"stage": "production", "state": {**state, "train": None}})
