"""The local cloud's fixes of moto's gaps (README "The local cloud: what is real, what differs
from AWS"), one test each, against real
processes on loopback: Lambda handlers in worker processes, SageMaker jobs and endpoints
running the container's entrypoints, AWS-shaped EventBridge events, process cleanup."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError
from executions import wait_for

from sfn_mlops.local import procs
from sfn_mlops.local.cloud import LocalCloud
from sfn_mlops.local.lambda_runtime import FunctionConfig
from sfn_mlops.local.stack import image_manifest
from shared.schedule import PROGRESS_METRIC

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
BUCKET = "gaps-bucket"
ROLE = "arn:aws:iam::123456789012:role/gaps"


def wait(predicate: Any, timeout: float = 60.0, interval: float = 0.1) -> Any:
    return wait_for(predicate, timeout, interval)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    workdir = tmp_path_factory.mktemp("gaps")
    with LocalCloud(workdir=workdir) as c:
        iam = c.client("iam")
        iam.create_role(RoleName="gaps", AssumeRolePolicyDocument="{}")
        s3 = c.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        data = workdir / "data"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "sfn_container",
                "data",
                "--dataset",
                "breast_cancer",
                "--out",
                str(data),
            ],
            check=True,
            capture_output=True,
        )
        s3.upload_file(str(data / "breast_cancer.csv"), BUCKET, "raw/breast_cancer.csv")
        yield c


def _function(
    cloud: LocalCloud, name: str, handler: str, timeout: int = 10, env: dict[str, str] | None = None
) -> str:
    fn = cloud.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE,
        Handler=handler,
        Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18},
        Timeout=timeout,
        Environment={"Variables": env or {}},
    )
    cloud.register_function(
        FunctionConfig(name, fn["FunctionArn"], handler, env or {}, timeout, 128, (str(HERE),))
    )
    return str(fn["FunctionArn"])


def _invoke(cloud: LocalCloud, name: str, event: Any) -> tuple[str | None, Any]:
    resp = cloud.client("lambda").invoke(FunctionName=name, Payload=json.dumps(event))
    return resp.get("FunctionError"), json.loads(resp["Payload"].read())


# --- Lambda --------------------------------------------------------------------------------


def test_lambda_runs_the_real_handler_warm_with_its_environment(cloud: LocalCloud) -> None:
    _function(cloud, "echo", "fixture_handlers.echo", env={"SFN_TEST_COLOUR": "blue"})

    error, first = _invoke(cloud, "echo", {"n": 1})
    _, second = _invoke(cloud, "echo", {"n": 2})

    assert error is None
    assert first["event"] == {"n": 1}
    assert second["event"] == {"n": 2}
    assert first["env"] == {"SFN_TEST_COLOUR": "blue"}
    assert first["endpoint"] == cloud.endpoint_url  # the function's AWS calls reach the local cloud
    assert first["function_name"] == "echo"
    assert 0 < first["remaining_ms"] <= 10_000
    assert first["pid"] == second["pid"] != os.getpid()  # a warm worker process, reused
    # as the Lambda runtime: a new X-Ray trace header per invocation (not sampled locally)
    assert re.fullmatch(
        r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0", first["trace_id"]
    )
    assert first["trace_id"] != second["trace_id"]


def test_lambda_exception_is_a_function_error_named_after_its_class(cloud: LocalCloud) -> None:
    _function(cloud, "boom", "fixture_handlers.boom")

    error, payload = _invoke(cloud, "boom", {"a": 1})

    assert error == "Unhandled"
    assert payload["errorType"] == "ValueError"
    assert "bad event" in payload["errorMessage"]


def _answer(call: Any) -> tuple[Any, ...]:
    """What a client sees of a call: status, error or payload, headers (without the ones
    that differ on every call)."""
    varying = {"date", "x-amzn-requestid", "x-amz-crc32", "x-amz-log-result"}
    try:
        resp = call()
    except ClientError as exc:
        meta, outcome = exc.response["ResponseMetadata"], exc.response["Error"]
    else:
        meta = resp["ResponseMetadata"]
        outcome = (resp.get("FunctionError"), (resp.get("Payload") or resp.get("Body")).read())
    headers = {k: v for k, v in meta["HTTPHeaders"].items() if k not in varying}
    return meta["HTTPStatusCode"], outcome, headers


def test_invocations_fast_route_answers_as_moto_flask_path(cloud: LocalCloud) -> None:
    """Lambda Invoke and InvokeEndpoint skip Flask (speed.py): the same answers, errors in
    AWS's shapes included, as through moto's Flask app."""
    _function(cloud, "echo-fast", "fixture_handlers.echo")
    lam, runtime = cloud.client("lambda"), cloud.client("sagemaker-runtime")
    calls = [
        lambda: lam.invoke(FunctionName="echo-fast", Payload=b'{"n": 1}'),
        lambda: lam.invoke(FunctionName="boom-absent", Payload=b"{}"),
        lambda: runtime.invoke_endpoint(EndpointName="absent", ContentType="text/csv", Body=b"1"),
        lambda: runtime.invoke_endpoint(EndpointName="bad name!", Body=b"1"),
    ]
    hot = cloud.hot_routes
    try:
        before = hot.served
        fast = [_answer(call) for call in calls]
        served = hot.served - before
        hot.enabled = False
        slow = [_answer(call) for call in calls]
        assert hot.served - before == served
    finally:
        hot.enabled = True
    assert served == len(calls)
    # echo's payload carries its time left and trace id (so its length may differ too):
    # compare the rest
    for answers in (fast, slow):
        status, (error, payload), headers = answers[0]
        echoed = json.loads(payload)
        headers.pop("content-length")
        answers[0] = (status, (error, echoed["event"], echoed["function_name"]), headers)
    assert fast == slow
    assert [a[0] for a in fast] == [200, 404, 400, 400]
    assert fast[1][1]["Code"] == "ResourceNotFoundException"
    assert fast[2][1]["Code"] == "ValidationError"
    assert fast[3][1]["Code"] == "ValidationException"


def test_lambda_timeout_kills_the_worker_and_reports_lambda_unknown(cloud: LocalCloud) -> None:
    _function(cloud, "slow", "fixture_handlers.slow", timeout=1)

    error, payload = _invoke(cloud, "slow", {"seconds": 30})

    assert error == "Unhandled"
    assert payload["errorType"] == "Lambda.Unknown"
    assert "timed out" in payload["errorMessage"]


def test_state_machine_catches_the_handlers_error_class(cloud: LocalCloud) -> None:
    arn = _function(cloud, "boom2", "fixture_handlers.boom")
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": arn, "Payload.$": "$"},
                "Catch": [
                    {"ErrorEquals": ["ValueError"], "ResultPath": "$.error", "Next": "Caught"}
                ],
                "End": True,
            },
            "Caught": {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"},
        },
    }
    sfn = cloud.client("stepfunctions")
    sm = sfn.create_state_machine(name="catch", definition=json.dumps(definition), roleArn=ROLE)
    ex = sfn.start_execution(stateMachineArn=sm["stateMachineArn"], input="{}")["executionArn"]

    desc = wait(lambda: (d := sfn.describe_execution(executionArn=ex))["status"] != "RUNNING" and d)

    assert desc["status"] == "FAILED"
    assert desc["error"] == "ValueError"


def test_wait_states_skip_idle_time_but_keep_the_definition(cloud: LocalCloud) -> None:
    # GIVEN a Wait of an hour with nothing under way in the local cloud
    definition = {
        "StartAt": "Hour",
        "States": {
            "Hour": {"Type": "Wait", "Seconds": 3600, "Next": "Done"},
            "Done": {"Type": "Succeed"},
        },
    }
    sfn = cloud.client("stepfunctions")
    sm = sfn.create_state_machine(name="hour", definition=json.dumps(definition), roleArn=ROLE)
    # WHEN it runs
    ex = sfn.start_execution(stateMachineArn=sm["stateMachineArn"], input="{}")["executionArn"]
    # THEN it ends well within the hour (the poll below gives up after 60 s), and the
    # history still shows the Wait state entered and exited
    desc = wait(lambda: (d := sfn.describe_execution(executionArn=ex))["status"] != "RUNNING" and d)
    assert desc["status"] == "SUCCEEDED"
    events = [e["type"] for e in sfn.get_execution_history(executionArn=ex)["events"]]
    assert {"WaitStateEntered", "WaitStateExited"} <= set(events)


def test_fast_wait_returns_when_an_operation_under_way_ends(tmp_path: Path) -> None:
    import threading

    from sfn_mlops.local.sagemaker import LocalSageMaker

    # GIVEN a job-like operation under way that ends when released
    sagemaker = LocalSageMaker(lambda: None, tmp_path, "us-east-1")
    release, finished = threading.Event(), threading.Event()

    def operation() -> None:
        release.wait(30)
        finished.set()

    sagemaker._start_thread(operation)
    threading.Timer(0.2, release.set).start()
    # WHEN a Wait of ten minutes starts
    sagemaker.wait_for_change(600.0, lambda: True)
    # THEN it returned because the operation ended (not because its ten minutes passed)
    assert finished.is_set()


# --- SageMaker jobs ------------------------------------------------------------------------


def _processing(
    name: str, entry: str, inputs: dict[str, str], outputs: dict[str, str], runtime: int = 120
) -> dict[str, Any]:
    return {
        "ProcessingJobName": name,
        "RoleArn": ROLE,
        "AppSpecification": {
            "ImageUri": "local/sfn-mlops:latest",
            "ContainerEntrypoint": ["python3", "-m", "sfn_container", entry],
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 1,
            }
        },
        "ProcessingInputs": [
            {
                "InputName": k,
                "S3Input": {
                    "S3Uri": v,
                    "LocalPath": f"/opt/ml/processing/input/{k}",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            }
            for k, v in inputs.items()
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": k,
                    "S3Output": {
                        "S3Uri": v,
                        "LocalPath": f"/opt/ml/processing/output/{k}",
                        "S3UploadMode": "EndOfJob",
                    },
                }
                for k, v in outputs.items()
            ]
        },
        "Environment": {"TARGET_COLUMN": "target", "PROBLEM_TYPE": "binary_classification"},
        "StoppingCondition": {"MaxRuntimeInSeconds": runtime},
    }


# the training Lambda's own metric definitions (log regexes), progress:round among them
TRAINING_METRICS = [
    {"Name": f"validation:{m}", "Regex": rf"validation-{m}:\s*([-+]?[0-9]*\.?[0-9]+)"}
    for m in ("auc", "logloss")
] + [{"Name": PROGRESS_METRIC, "Regex": r"^\[([0-9]+)\]\s"}]


def _training(name: str, hyperparameters: dict[str, str], runtime: int = 120) -> dict[str, Any]:
    channels = {c: f"s3://{BUCKET}/pre/{c}/" for c in ("train", "validation")}
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {
            "TrainingImage": "local/sfn-mlops:latest",
            "TrainingInputMode": "File",
            "MetricDefinitions": TRAINING_METRICS,
        },
        "HyperParameters": {
            "target_column": "target",
            "problem_type": "binary_classification",
            **hyperparameters,
        },
        "InputDataConfig": [
            {
                "ChannelName": c,
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
            }
            for c, uri in channels.items()
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/models"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": runtime},
    }


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"ResourceConfig": {"InstanceType": "ml.doesnotexist.huge", "InstanceCount": 1,
                                "VolumeSizeInGB": 1}},
            "Value 'ml.doesnotexist.huge' at 'resourceConfig.instanceType' failed to satisfy "
            "constraint: Member must satisfy enum value set: [",
        ),
        (
            {"TrainingJobName": "n" * 64},
            f"Value '{'n' * 64}' at 'trainingJobName' failed to satisfy constraint: Member must "
            "have length less than or equal to 63",
        ),
        (  # botocore checks a minimum client-side, not a maximum
            {"ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                                "VolumeSizeInGB": 1, "KeepAlivePeriodInSeconds": 99999}},
            "Value '99999' at 'resourceConfig.keepAlivePeriodInSeconds' failed to satisfy "
            "constraint: Member must have value less than or equal to 21600",
        ),
    ],
)  # fmt: skip
def test_requests_breaking_the_service_models_constraints_are_refused(
    cloud: LocalCloud, change: dict[str, Any], expected: str
) -> None:
    # GIVEN a CreateTrainingJob request with one value AWS's API refuses
    sm = cloud.client("sagemaker")
    request = _training("strict-check", {}) | change
    # WHEN it is sent / THEN ValidationException in AWS's words, and no job exists
    with pytest.raises(ClientError) as err:
        sm.create_training_job(**request)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert re.match(r"\d validation errors? detected: ", err.value.response["Error"]["Message"])
    assert expected in err.value.response["Error"]["Message"]
    names = [j["TrainingJobName"] for j in sm.list_training_jobs()["TrainingJobSummaries"]]
    assert request["TrainingJobName"] not in names


def test_metadata_value_with_a_quote_is_refused_like_aws(cloud: LocalCloud) -> None:
    # GIVEN a model package whose CustomerMetadataProperties value holds a quote and a newline
    sm = cloud.client("sagemaker")
    sm.create_model_package_group(ModelPackageGroupName="strict-group")
    package = {
        "ModelPackageGroupName": "strict-group",
        "InferenceSpecification": {
            "Containers": [{"Image": "local/sfn-mlops:latest"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    }
    # WHEN / THEN refused, naming the member and the service model's pattern
    with pytest.raises(ClientError) as err:
        sm.create_model_package(**package, CustomerMetadataProperties={"v": 'a"b\n'})
    message = err.value.response["Error"]["Message"]
    assert "at 'customerMetadataProperties.v' failed to satisfy constraint: Member must " in message
    assert "satisfy regular expression pattern: ([\\p{L}\\p{Z}\\p{N}_.:" in message
    # and letters of any script, spaces and the allowed punctuation pass
    sm.create_model_package(**package, CustomerMetadataProperties={"v": "Grüße 日本 a_b.c:/=+-@"})


@pytest.fixture(scope="module")
def preprocessed(cloud: LocalCloud) -> dict[str, Any]:
    """A real preprocessing job: InProgress at first, then Completed with outputs uploaded."""
    sm = cloud.client("sagemaker")
    outputs = {
        c: f"s3://{BUCKET}/pre/{c}" for c in ("train", "validation", "test", "profile", "sample")
    }
    sm.create_processing_job(
        **_processing("gaps-preprocess", "preprocess", {"raw": f"s3://{BUCKET}/raw/"}, outputs)
    )
    first = sm.describe_processing_job(ProcessingJobName="gaps-preprocess")
    final = wait(
        lambda: (
            (d := sm.describe_processing_job(ProcessingJobName="gaps-preprocess"))[
                "ProcessingJobStatus"
            ]
            not in ("InProgress", "Stopping")
            and d
        )
    )
    return {"first": first, "final": final}


def test_processing_job_runs_for_real_and_uploads_outputs(
    cloud: LocalCloud, preprocessed: dict[str, Any]
) -> None:
    assert preprocessed["first"]["ProcessingJobStatus"] == "InProgress"  # moto: Completed at once
    assert preprocessed["final"]["ProcessingJobStatus"] == "Completed", preprocessed["final"].get(
        "FailureReason"
    )
    listing = cloud.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="pre/train/")
    # the split, as Parquet
    (key,) = [o["Key"] for o in listing["Contents"]]
    assert key.endswith("train.parquet")
    body = cloud.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert "target" in pq.read_schema(io.BytesIO(body)).names


def test_duplicate_job_name_is_resource_in_use(
    cloud: LocalCloud, preprocessed: dict[str, Any]
) -> None:
    sm = cloud.client("sagemaker")
    with pytest.raises(ClientError) as err:
        sm.create_processing_job(
            **_processing("gaps-preprocess", "preprocess", {"raw": f"s3://{BUCKET}/raw/"}, {})
        )
    assert err.value.response["Error"]["Code"] == "ResourceInUse"


def _train(
    cloud: LocalCloud, name: str, hyperparameters: dict[str, str], runtime: int = 120
) -> tuple[dict[str, Any], dict[str, Any]]:
    sm = cloud.client("sagemaker")
    sm.create_training_job(**_training(name, hyperparameters, runtime))
    first = sm.describe_training_job(TrainingJobName=name)
    final = wait(
        lambda: (
            (d := sm.describe_training_job(TrainingJobName=name))["TrainingJobStatus"]
            not in ("InProgress", "Stopping")
            and d
        ),
        timeout=120,
    )
    return first, final


@pytest.fixture(scope="module")
def trained(cloud: LocalCloud, preprocessed: dict[str, Any]) -> dict[str, Any]:
    first, final = _train(cloud, "gaps-train", {"num_round": "10", "max_depth": "3"})
    return {"first": first, "final": final}


def test_training_job_runs_and_uploads_model_tar_gz(
    cloud: LocalCloud, trained: dict[str, Any]
) -> None:
    assert trained["first"]["TrainingJobStatus"] == "InProgress"
    final = trained["final"]
    assert final["TrainingJobStatus"] == "Completed", final.get("FailureReason")
    uri = final["ModelArtifacts"]["S3ModelArtifacts"]
    assert uri == f"s3://{BUCKET}/models/gaps-train/output/model.tar.gz"
    # SageMaker's metric definitions applied to the container's log, as on AWS: the last
    # boosting round (0-based, of num_round=10) and the validation metric, timestamped
    metrics = {m["MetricName"]: m for m in final["FinalMetricDataList"]}
    assert metrics[PROGRESS_METRIC]["Value"] == 9
    assert 0 <= metrics["validation:auc"]["Value"] <= 1
    assert metrics[PROGRESS_METRIC]["Timestamp"] >= final["TrainingStartTime"]
    assert final["AlgorithmSpecification"]["MetricDefinitions"] == TRAINING_METRICS
    head = cloud.client("s3").head_object(Bucket=BUCKET, Key=uri.split("/", 3)[3])
    assert head["ContentLength"] > 100


def test_training_failure_carries_the_containers_reason(
    cloud: LocalCloud, preprocessed: dict[str, Any]
) -> None:
    _, final = _train(cloud, "gaps-train-bad", {"num_round": "0"})

    assert final["TrainingJobStatus"] == "Failed"
    failure_file = Path(
        cloud.workdir, "jobs", "gaps-train-bad", "opt_ml", "output", "failure"
    ).read_text()
    assert final["FailureReason"].startswith("AlgorithmError: ")
    assert failure_file.strip()[:80] in final["FailureReason"]


def test_max_runtime_stops_the_job(cloud: LocalCloud, preprocessed: dict[str, Any]) -> None:
    _, final = _train(
        cloud, "gaps-train-long", {"num_round": "100000000", "max_depth": "12"}, runtime=1
    )

    assert final["TrainingJobStatus"] == "Stopped"
    assert final["SecondaryStatus"] == "MaxRuntimeExceeded"


# --- endpoints -----------------------------------------------------------------------------


def _model(cloud: LocalCloud, name: str, data_url: str) -> None:
    sm = cloud.client("sagemaker")
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "local/sfn-mlops:latest", "ModelDataUrl": data_url},
    )
    sm.create_endpoint_config(
        EndpointConfigName=f"{name}-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )


def _endpoint_settled(cloud: LocalCloud, name: str) -> dict[str, Any]:
    sm = cloud.client("sagemaker")
    return wait(  # type: ignore[no-any-return]
        lambda: (
            (d := sm.describe_endpoint(EndpointName=name))["EndpointStatus"]
            not in ("Creating", "Updating")
            and d
        )
    )


def _predict(cloud: LocalCloud, name: str) -> list[float]:
    rows = cloud.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="pre/sample/")["Contents"]
    text = cloud.client("s3").get_object(Bucket=BUCKET, Key=rows[0]["Key"])["Body"].read().decode()
    body = "\n".join(text.strip().splitlines()[1:3])  # two feature rows, no header
    out = cloud.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=name, ContentType="text/csv", Accept="application/json", Body=body
    )
    data = json.loads(out["Body"].read())
    return list(data["predictions"] if isinstance(data, dict) else data)


def test_endpoint_lifecycle_blue_green(cloud: LocalCloud, trained: dict[str, Any]) -> None:
    sm = cloud.client("sagemaker")
    good = trained["final"]["ModelArtifacts"]["S3ModelArtifacts"]
    cloud.client("s3").put_object(
        Bucket=BUCKET, Key="bad/model.tar.gz", Body=b"this is not a model"
    )
    _model(cloud, "blue", good)
    _model(cloud, "broken", f"s3://{BUCKET}/bad/model.tar.gz")
    _model(cloud, "green", good)

    sm.create_endpoint(EndpointName="ep", EndpointConfigName="blue-config")
    assert sm.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "Creating"
    assert _endpoint_settled(cloud, "ep")["EndpointStatus"] == "InService"
    blue_server = cloud.sagemaker.servers["ep"].proc
    before = _predict(cloud, "ep")
    assert len(before) == 2
    assert all(0.0 <= p <= 1.0 for p in before)

    # an update whose model cannot load: blue keeps serving, InService, FailureReason set
    sm.update_endpoint(EndpointName="ep", EndpointConfigName="broken-config")
    failed = _endpoint_settled(cloud, "ep")
    assert failed["EndpointStatus"] == "InService"
    assert failed["EndpointConfigName"] == "blue-config"
    assert failed["FailureReason"]
    assert _predict(cloud, "ep") == before
    assert blue_server.poll() is None

    # a good update: green first, then traffic moves, then blue stops
    sm.update_endpoint(EndpointName="ep", EndpointConfigName="green-config")
    assert sm.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "Updating"
    done = _endpoint_settled(cloud, "ep")
    assert done["EndpointStatus"] == "InService"
    assert done["EndpointConfigName"] == "green-config"
    assert "FailureReason" not in done
    assert _predict(cloud, "ep") == before  # same artifact, new server
    assert blue_server.poll() is not None
    green_server = cloud.sagemaker.servers["ep"].proc

    sm.delete_endpoint(EndpointName="ep")
    assert green_server.poll() is not None
    with pytest.raises(ClientError):
        cloud.client("sagemaker-runtime").invoke_endpoint(
            EndpointName="ep", ContentType="text/csv", Body=b"1"
        )


def _invoke_error(cloud: LocalCloud, name: str, body: bytes) -> dict[str, Any]:
    with pytest.raises(ClientError) as info:
        cloud.client("sagemaker-runtime").invoke_endpoint(
            EndpointName=name, ContentType="text/csv", Body=body
        )
    return info.value.response  # type: ignore[return-value]


def test_endpoint_fails_as_sagemaker_does(cloud: LocalCloud, trained: dict[str, Any]) -> None:
    sm = cloud.client("sagemaker")
    _model(cloud, "fragile", trained["final"]["ModelArtifacts"]["S3ModelArtifacts"])
    sm.create_endpoint(EndpointName="fragile-ep", EndpointConfigName="fragile-config")
    assert _endpoint_settled(cloud, "fragile-ep")["EndpointStatus"] == "InService"
    server = cloud.sagemaker.servers["fragile-ep"]

    # a model-server 4xx: ModelError (424) with the container's message
    error = _invoke_error(cloud, "fragile-ep", b"1,2,3")
    assert error["Error"]["Code"] == "ModelError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert "expects" in error["Error"]["Message"]

    # a body over InvokeEndpoint's 6 MiB: ValidationError, before it reaches the model
    log_before = (server.workdir / "serve.log").read_bytes()
    error = _invoke_error(cloud, "fragile-ep", b"1," * (5 * 1024 * 1024))
    assert error["Error"]["Code"] == "ValidationError"
    assert "6291456" in error["Error"]["Message"]
    assert (server.workdir / "serve.log").read_bytes() == log_before
    assert len(_predict(cloud, "fragile-ep")) == 2

    # the server crashes: ServiceUnavailable naming the endpoint and the cause ...
    # (the replacement server is held back until the test has seen the unhealthy state:
    # from a warm standby it passes /ping within ~0.1 s, faster than a describe can look)
    manager = cloud.sagemaker.endpoints
    release = threading.Event()
    start_server = manager._start_server

    def held_start(*args: Any) -> Any:
        release.wait(60)
        return start_server(*args)

    manager._start_server = held_start  # type: ignore[method-assign]
    try:
        server.proc.kill()
        server.proc.wait(timeout=10)
        error = _invoke_error(cloud, "fragile-ep", b"1")
        assert error["Error"]["Code"] == "ServiceUnavailable"
        assert "<html" not in json.dumps(error).lower()
        assert "fragile-ep" in error["Error"]["Message"]
        assert "exited with code -9" in error["Error"]["Message"]

        # ... the endpoint's health says so while the instance is replaced ...
        def variant() -> dict[str, Any]:
            described = sm.describe_endpoint(EndpointName="fragile-ep")
            assert described["EndpointStatus"] == "InService"
            return described["ProductionVariants"][0]  # type: ignore[no-any-return]

        unhealthy = wait(lambda: (v := variant()).get("VariantStatus") and v)
        assert unhealthy["CurrentInstanceCount"] == 0
        assert "exited with code -9" in unhealthy["VariantStatus"][0]["StatusMessage"]
    finally:
        release.set()
        del manager._start_server

    # ... and a new server takes over, as SageMaker replaces an unhealthy instance
    healthy = wait(lambda: "VariantStatus" not in (v := variant()) and v)
    assert healthy["CurrentInstanceCount"] == 1
    assert cloud.sagemaker.servers["fragile-ep"].proc is not server.proc
    assert len(_predict(cloud, "fragile-ep")) == 2
    sm.delete_endpoint(EndpointName="fragile-ep")


# --- events --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorder(cloud: LocalCloud) -> str:
    """An echo function as the target of an ECR rule and an S3 rule."""
    arn = _function(cloud, "recorder", "fixture_handlers.echo")
    events = cloud.client("events")
    cloud.client("ecr").create_repository(repositoryName="gaps-repo")
    cloud.client("s3").put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    from shared import resources

    for rule, pattern in (
        ("gaps-ecr", resources.ecr_push_event_pattern("gaps-repo")),
        ("gaps-s3", resources.s3_data_event_pattern(BUCKET)),
    ):
        events.put_rule(Name=rule, EventPattern=json.dumps(pattern), State="ENABLED")
        events.put_targets(Rule=rule, Targets=[{"Id": "t", "Arn": arn}])
    return arn


def _delivered(cloud: LocalCloud, rule: str) -> list[dict[str, Any]]:
    assert cloud.events.wait_idle(30)
    return [d.event for d in cloud.events.deliveries if d.rule == rule]


def test_ecr_push_emits_the_aws_image_action_event(cloud: LocalCloud, recorder: str) -> None:
    out = cloud.client("ecr").put_image(
        repositoryName="gaps-repo", imageManifest=image_manifest("x"), imageTag="v1"
    )
    digest = out["image"]["imageId"]["imageDigest"]

    (event,) = _delivered(cloud, "gaps-ecr")

    assert event["source"] == "aws.ecr"
    assert event["detail-type"] == "ECR Image Action"
    assert event["detail"] == {
        "result": "SUCCESS",
        "repository-name": "gaps-repo",
        "image-digest": digest,
        "action-type": "PUSH",
        "image-tag": "v1",
    }
    served = [c.payload for c in cloud.dispatcher.calls_to("recorder")]
    assert event in served  # the target Lambda received exactly this event


def test_s3_upload_emits_one_aws_shaped_object_created_event(
    cloud: LocalCloud, recorder: str
) -> None:
    s3 = cloud.client("s3")
    put = s3.put_object(Bucket=BUCKET, Key="data/new.csv", Body=b"a,target\n1,0\n")
    s3.put_object(Bucket=BUCKET, Key="elsewhere/other.csv", Body=b"a,target\n1,0\n")

    events = _delivered(cloud, "gaps-s3")

    assert (
        len(events) == 1
    )  # one event, not moto's wrong-shaped one as well; other prefixes ignored
    detail = events[0]["detail"]
    assert events[0]["detail-type"] == "Object Created"
    assert events[0]["source"] == "aws.s3"
    assert detail["reason"] == "PutObject"
    assert detail["object"]["key"] == "data/new.csv"
    assert detail["object"]["etag"] == put["ETag"].strip('"')
    assert detail["object"]["version-id"] == put["VersionId"]
    assert "eTag" not in detail["object"]
    assert detail["bucket"] == {"name": BUCKET}


# --- cleanup (keep last) -------------------------------------------------------------------


_SPAWN_AND_HANG = """
import sys, threading, time
from sfn_mlops.local import procs
out = []
t = threading.Thread(target=lambda: out.append(procs.spawn(
    [sys.executable, "-c", "import time; time.sleep(120)"], env={})))
t.start(); t.join()  # the requesting thread ends; its child must not die with it
print(out[0].pid, flush=True)
time.sleep(120)
"""


def test_children_die_with_a_sigkilled_local_cloud() -> None:
    """SIGKILL runs no handler and no atexit: the kernel kills the children (PDEATHSIG)."""
    root = str(Path(__file__).resolve().parents[2])
    parent = subprocess.Popen(
        [sys.executable, "-c", _SPAWN_AND_HANG],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": root},
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert procs.group_alive(child)  # it outlived the thread that asked for it
        parent.kill()
        parent.wait(timeout=10)
        wait(lambda: not procs.group_alive(child), timeout=10)
    finally:
        parent.kill()
        parent.wait(timeout=10)


def test_data_capture_writes_sagemakers_json_lines_under_the_hour(
    cloud: LocalCloud, trained: dict[str, Any]
) -> None:
    # GIVEN an endpoint whose config captures input and output of every request
    sm = cloud.client("sagemaker")
    _model(cloud, "captured", trained["final"]["ModelArtifacts"]["S3ModelArtifacts"])
    sm.create_endpoint_config(
        EndpointConfigName="captured-capture-config",
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "captured",
             "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
        ],
        DataCaptureConfig={
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": f"s3://{BUCKET}/capture",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"],
                                         "JsonContentTypes": ["application/json"]},
        },
    )  # fmt: skip
    sm.create_endpoint(EndpointName="captured-ep", EndpointConfigName="captured-capture-config")
    assert _endpoint_settled(cloud, "captured-ep")["EndpointStatus"] == "InService"

    # WHEN it answers two requests
    _predict(cloud, "captured-ep")
    _predict(cloud, "captured-ep")

    # THEN the flusher writes them, as SageMaker does, under <prefix>/<endpoint>/<variant>/hour/
    s3 = cloud.client("s3")

    def captured() -> dict[str, list[dict[str, Any]]]:
        found = s3.list_objects_v2(Bucket=BUCKET, Prefix="capture/captured-ep/")
        return {
            o["Key"]: [
                json.loads(line)
                for line in s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read().splitlines()
            ]
            for o in found.get("Contents", [])
        }

    files = wait(lambda: (c := captured()) and sum(map(len, c.values())) >= 2 and c)
    for key, lines in files.items():
        when = time.strptime(lines[0]["eventMetadata"]["inferenceTime"], "%Y-%m-%dT%H:%M:%SZ")
        hour = time.strftime("%Y/%m/%d/%H", when)
        assert key.startswith(f"capture/captured-ep/AllTraffic/{hour}/"), key
        assert key.endswith(".jsonl")
    records = [r for lines in files.values() for r in lines]
    record = records[0]
    assert record["eventVersion"] == "0"
    assert record["captureData"]["endpointInput"]["encoding"] == "CSV"
    assert record["captureData"]["endpointInput"]["mode"] == "INPUT"
    assert record["captureData"]["endpointInput"]["observedContentType"] == "text/csv"
    assert record["captureData"]["endpointOutput"]["encoding"] == "JSON"
    assert "predictions" in json.loads(record["captureData"]["endpointOutput"]["data"])
    sm.delete_endpoint(EndpointName="captured-ep")


def _broken_model(cloud: LocalCloud, good_url: str) -> str:
    """A model that passes /ping and answers 5xx to every real request (broken_model.py)."""
    from broken_model import broken_archive

    s3 = cloud.client("s3")
    bucket, key = good_url[5:].split("/", 1)
    good = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=BUCKET, Key="canary/broken/model.tar.gz", Body=broken_archive(good))
    return f"s3://{BUCKET}/canary/broken/model.tar.gz"


def test_canary_with_a_broken_model_is_rolled_back_on_the_5xx_alarm(
    cloud: LocalCloud, trained: dict[str, Any]
) -> None:
    sm, cw = cloud.client("sagemaker"), cloud.client("cloudwatch")
    good = trained["final"]["ModelArtifacts"]["S3ModelArtifacts"]
    _model(cloud, "canary-blue", good)
    _model(cloud, "canary-broken", _broken_model(cloud, good))
    # GIVEN an endpoint on the good model and a 5xx alarm on it (one period: 3 s locally)
    sm.create_endpoint(EndpointName="canary-ep", EndpointConfigName="canary-blue-config")
    assert _endpoint_settled(cloud, "canary-ep")["EndpointStatus"] == "InService"
    before = _predict(cloud, "canary-ep")
    cw.put_metric_alarm(
        AlarmName="canary-5xx",
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Dimensions=[
            {"Name": "EndpointName", "Value": "canary-ep"},
            {"Name": "VariantName", "Value": "AllTraffic"},
        ],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="notBreaching",
    )
    # WHEN a canary update (50% first, a 60 s bake) moves to a model that passes /ping but
    # answers 5xx on real traffic, while traffic flows
    sm.update_endpoint(
        EndpointName="canary-ep",
        EndpointConfigName="canary-broken-config",
        DeploymentConfig={
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "WaitIntervalInSeconds": 60,
                    "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
                },
                "TerminationWaitInSeconds": 0,
                "MaximumExecutionTimeoutInSeconds": 600,
            },
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "canary-5xx"}]},
        },
    )
    outcomes: list[str] = []

    def traffic_until_settled() -> bool:
        try:
            _predict(cloud, "canary-ep")
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(str(exc.response["Error"].get("Code")))
        status = sm.describe_endpoint(EndpointName="canary-ep")["EndpointStatus"]
        return status != "Updating"

    wait(traffic_until_settled, timeout=60, interval=0.05)
    # THEN the alarm fired during the canary's wait and the update was rolled back: the
    # endpoint is InService on the old config, FailureReason names the alarm
    done = sm.describe_endpoint(EndpointName="canary-ep")
    assert done["EndpointStatus"] == "InService"
    assert done["EndpointConfigName"] == "canary-blue-config"
    assert "canary-5xx" in done["FailureReason"]
    assert "traffic shift (50% on the new fleet)" in done["FailureReason"]
    assert cloud.alarms is not None
    assert cloud.alarms.state("canary-5xx") == "ALARM"
    # ... the canary really took part of the traffic (and failed it), the rest was served
    assert "ModelError" in outcomes
    assert "ok" in outcomes
    # ... and all traffic is back on the good model
    assert [_predict(cloud, "canary-ep") for _ in range(4)] == [before] * 4
    sm.delete_endpoint(EndpointName="canary-ep")


def test_a_healthy_linear_update_shifts_in_steps_and_lands() -> None:
    from sfn_mlops.local.sagemaker.endpoints import traffic_steps

    linear = {"TrafficRoutingConfiguration": {"Type": "LINEAR", "LinearStepSize": {"Value": 30}}}
    assert traffic_steps(linear) == [30, 60, 90, 100]
    canary = {"TrafficRoutingConfiguration": {"Type": "CANARY", "CanarySize": {"Value": 10}}}
    assert traffic_steps(canary) == [10, 100]
    assert traffic_steps({}) == [100]


def test_update_model_package_emits_the_registry_state_change_event(cloud: LocalCloud) -> None:
    from shared.resources import registry_approval_event_pattern

    sm, sqs, events = cloud.client("sagemaker"), cloud.client("sqs"), cloud.client("events")
    sm.create_model_package_group(ModelPackageGroupName="events-models")
    arn = sm.create_model_package(
        ModelPackageGroupName="events-models",
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [{"Image": "local/sfn-mlops:latest"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        CustomerMetadataProperties={"execution_name": "x"},
    )["ModelPackageArn"]
    url = sqs.create_queue(QueueName="registry-events")["QueueUrl"]
    queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    events.put_rule(
        Name="registry-approval",
        EventPattern=json.dumps(registry_approval_event_pattern("events-models")),
    )
    events.put_targets(Rule="registry-approval", Targets=[{"Id": "q", "Arn": queue["QueueArn"]}])

    def received() -> list[dict[str, Any]]:
        out = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        return [json.loads(m["Body"]) for m in out.get("Messages", [])]

    # a rejection matches nothing
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected")
    assert received() == []
    # an approval is the AWS-shaped event, with the package's description as its detail
    sm.update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="ok"
    )
    (approved,) = received()
    assert (approved["source"], approved["detail-type"]) == (
        "aws.sagemaker",
        "SageMaker Model Package State Change",
    )
    assert approved["detail"]["ModelPackageArn"] == arn
    assert approved["detail"]["ModelApprovalStatus"] == "Approved"
    # a metadata-only update keeps the status and the rest (moto cleared them) and, as on
    # AWS, emits the event again with status Approved: the trigger's one-run-per-package
    # name is what makes it start nothing
    sm.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={"note": "n"})
    described = sm.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == "ok"
    assert described["CustomerMetadataProperties"] == {"execution_name": "x", "note": "n"}
    (again,) = received()
    assert again["detail"]["CustomerMetadataProperties"]["note"] == "n"


# Keep this test LAST in the module: it stops the module's cloud (tests after it would find
# the cloud's port closed).
def test_no_process_outlives_the_local_cloud(
    tmp_path: Path, trained: dict[str, Any], cloud: LocalCloud
) -> None:
    """A second cloud with a warm Lambda and an endpoint replaced twice (blue/green), stopped
    while the second update is under way: every process it started is gone, groups too."""
    good = trained["final"]["ModelArtifacts"]["S3ModelArtifacts"]
    model_bytes = (
        cloud.client("s3").get_object(Bucket=BUCKET, Key=good.split("/", 3)[3])["Body"].read()
    )
    cloud.stop()  # this module's cloud ends here (the fixture's stop is then a no-op)
    before = set(procs.started())
    with LocalCloud(workdir=tmp_path) as other:
        sm = other.client("sagemaker")
        other.client("iam").create_role(RoleName="gaps", AssumeRolePolicyDocument="{}")
        other.client("s3").create_bucket(Bucket=BUCKET)
        other.client("s3").put_object(Bucket=BUCKET, Key="m/model.tar.gz", Body=model_bytes)
        _function(other, "echo", "fixture_handlers.echo")
        _invoke(other, "echo", {})
        for name in ("m", "m2", "m3"):
            _model(other, name, f"s3://{BUCKET}/m/model.tar.gz")
        sm.create_endpoint(EndpointName="ep2", EndpointConfigName="m-config")
        assert _endpoint_settled(other, "ep2")["EndpointStatus"] == "InService"
        sm.update_endpoint(EndpointName="ep2", EndpointConfigName="m2-config")
        assert _endpoint_settled(other, "ep2")["EndpointConfigName"] == "m2-config"
        sm.update_endpoint(EndpointName="ep2", EndpointConfigName="m3-config")
        # stop while green is starting: its server must go too
        wait(lambda: len(set(procs.started()) - before) >= 4)
        assert procs.live_count() >= 2
    children = sorted(set(procs.started()) - before)
    assert len(children) >= 4  # the worker, blue, green, and the update under way
    assert procs.live_count() == 0
    wait(lambda: not any(procs.group_alive(pgid) for pgid in children), timeout=10)
    for pid in children:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
