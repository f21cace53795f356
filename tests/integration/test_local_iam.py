"""IAM as on AWS in the local cloud: each function's worker runs as its own role, with the
policy built from the CDK app's grants (infra/permissions.py), and moto checks it
(sfn_mlops/local/iam.py): a call the role does not allow is AccessDenied, naming the action."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from infra.permissions import PERMISSIONS, Grant, Scope
from sfn_mlops.history import failure
from sfn_mlops.local.cloud import LocalCloud
from sfn_mlops.local.run import export_dataset
from sfn_mlops.local.stack import Stack, deploy
from sfn_mlops.progress import get_history
from shared import resources

pytestmark = pytest.mark.integration

REMOVED = "sagemaker:CreateProcessingJob"


def _without_create_processing_job(scope: Scope) -> list[Grant]:
    grants = PERMISSIONS["preprocess"](scope)
    return [
        Grant([a for a in g.actions if a != REMOVED], g.resources, g.why_wildcard, g.conditions)
        for g in grants
    ]


def _stack(cloud: LocalCloud, workdir: Path, permissions: Any = PERMISSIONS) -> Stack:
    stack = deploy(cloud, triggers=False, permissions=permissions)
    seed, _ = export_dataset(workdir / "data")
    cloud.client("s3").upload_file(str(seed), stack.bucket, f"{resources.DATA_PREFIX}{seed.name}")
    return stack


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCloud, Stack]]:
    """The stack with the app's grants, except one removed from the preprocess role."""
    workdir = tmp_path_factory.mktemp("iam")
    permissions = {**PERMISSIONS, "preprocess": _without_create_processing_job}
    with LocalCloud(workdir=workdir) as c:
        yield c, _stack(c, workdir, permissions)


def _as_function(cloud: LocalCloud, key: str, service: str) -> Any:
    """A client with the credentials the function's worker gets."""
    config = cloud.lambdas.configs()[resources.FUNCTIONS_BY_KEY[key].function_name]
    assert config.credentials is not None
    return boto3.session.Session().client(
        service,
        endpoint_url=cloud.endpoint_url,
        region_name=cloud.region,
        aws_access_key_id=config.credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=config.credentials["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=config.credentials["AWS_SESSION_TOKEN"],
    )


def test_each_function_has_its_own_role_with_the_apps_grants(
    cloud: tuple[LocalCloud, Stack],
) -> None:
    c, _ = cloud
    iam = c.client("iam")
    spec = resources.FUNCTIONS_BY_KEY["train"]
    role = c.client("lambda").get_function(FunctionName=spec.function_name)["Configuration"]["Role"]
    name = role.rsplit("/", 1)[1]
    doc = iam.get_role_policy(RoleName=name, PolicyName="grants")["PolicyDocument"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    actions = {a for s in doc["Statement"] for a in s["Action"]}
    assert "sagemaker:CreateTrainingJob" in actions
    assert "sagemaker:CreateProcessingJob" not in actions


def test_a_call_the_role_does_not_allow_is_access_denied_naming_the_action(
    cloud: tuple[LocalCloud, Stack],
) -> None:
    c, _ = cloud
    with pytest.raises(ClientError) as err:
        _as_function(c, "invoke", "sagemaker").list_training_jobs()
    assert err.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "sagemaker:ListTrainingJobs" in err.value.response["Error"]["Message"]
    assert "assumed-role/" in err.value.response["Error"]["Message"]
    # allowed: the poll function may describe training jobs (an unknown one: not found)
    with pytest.raises(ClientError) as err:
        _as_function(c, "poll", "sagemaker").describe_training_job(TrainingJobName="nope")
    assert err.value.response["Error"]["Code"] != "AccessDeniedException"


def test_s3_grants_are_checked_on_the_object(cloud: tuple[LocalCloud, Stack]) -> None:
    """The gate may read runs/* only: data/ is denied although the action is granted."""
    c, stack = cloud
    s3 = _as_function(c, "gate", "s3")
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=stack.bucket, Key=f"{resources.ARTIFACTS_PREFIX}nothing.json")
    assert err.value.response["Error"]["Code"] == "NoSuchKey"  # allowed, just absent
    seed = f"{resources.DATA_PREFIX}initial.csv"
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=stack.bucket, Key=seed)
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    assert "s3:GetObject" in err.value.response["Error"]["Message"]


def test_endpoint_grants_are_checked_on_the_endpoint(cloud: tuple[LocalCloud, Stack]) -> None:
    """The invoke and deploy roles may touch the stack's two endpoints only."""
    c, stack = cloud
    other = "someone-elses-endpoint"
    runtime = _as_function(c, "invoke", "sagemaker-runtime")
    with pytest.raises(ClientError) as err:
        runtime.invoke_endpoint(EndpointName=other, Body=b"1,2", ContentType="text/csv")
    assert err.value.response["Error"]["Code"] == "AccessDeniedException"
    message = err.value.response["Error"]["Message"]
    assert "sagemaker:InvokeEndpoint" in message
    assert f":endpoint/{other}" in message
    sagemaker = _as_function(c, "deploy", "sagemaker")
    with pytest.raises(ClientError) as err:
        sagemaker.describe_endpoint(EndpointName=other)
    assert err.value.response["Error"]["Code"] == "AccessDeniedException"
    # the stack's own endpoint (not deployed yet): allowed, just absent
    own = stack.defaults["endpoint_name"]
    with pytest.raises(ClientError) as err:
        sagemaker.describe_endpoint(EndpointName=own)
    assert err.value.response["Error"]["Code"] != "AccessDeniedException"


def test_a_missing_grant_fails_the_run_at_the_state_that_needs_it(
    cloud: tuple[LocalCloud, Stack],
) -> None:
    c, stack = cloud
    sfn = c.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=stack.state_machine_arn, input="{}")["executionArn"]
    deadline = time.monotonic() + 180
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline, "still RUNNING"
        time.sleep(0.2)
    state, error, cause = failure(get_history(sfn, arn)) or ("", "", "")
    assert sfn.describe_execution(executionArn=arn)["status"] == "FAILED"
    assert state == "StartPreprocessing", (state, error, cause)
    assert REMOVED in cause
    assert "AccessDenied" in cause or "AccessDenied" in error
