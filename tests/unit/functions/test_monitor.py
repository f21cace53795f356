"""The scheduled drift check: finds the serving model's baseline through its package,
starts one job per scheduled time over the capture hours that hold traffic, or says why not."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fn_support import ACCOUNT, BUCKET, ENV, IMAGE, ROLE

from functions.monitor.handler import lambda_handler
from functions.monitor.logic import drift_job_request, window
from shared import aws
from shared.models import MonitorOutput
from shared.settings import MonitorSettings, load_settings

ENDPOINT = ENV["MONITORED_ENDPOINT"]
BASELINE = f"s3://{BUCKET}/runs/exec/evaluate/evaluation/baseline"


def _serving(capture: bool = True, baseline: bool = True) -> None:
    """The endpoint as the pipeline deploys it: model tagged with its package, capture on."""
    sm = aws.sagemaker()
    aws.s3().create_bucket(Bucket=BUCKET)
    sm.create_model_package_group(ModelPackageGroupName="sfn-mlops-models")
    extra: dict[str, Any] = {}
    if baseline:
        json_at = {"ContentType": "application/json"}
        extra["DriftCheckBaselines"] = {"ModelDataQuality": {
            "Statistics": {**json_at, "S3Uri": f"{BASELINE}/statistics.json"},
            "Constraints": {**json_at, "S3Uri": f"{BASELINE}/constraints.json"},
        }}  # fmt: skip
    package = sm.create_model_package(
        ModelPackageGroupName="sfn-mlops-models",
        InferenceSpecification={"Containers": [{"Image": IMAGE}],
                                "SupportedContentTypes": ["text/csv"],
                                "SupportedResponseMIMETypes": ["text/csv"]},
        **extra,
    )["ModelPackageArn"]  # fmt: skip
    sm.create_model(
        ModelName="m",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz"},
        Tags=[{"Key": "sfn-mlops:model-package", "Value": package}],
    )
    config: dict[str, Any] = {}
    if capture:
        config["DataCaptureConfig"] = {
            "EnableCapture": True, "InitialSamplingPercentage": 100,
            "DestinationS3Uri": f"s3://{BUCKET}/capture",
            "CaptureOptions": [{"CaptureMode": "Input"}],
        }  # fmt: skip
    sm.create_endpoint_config(
        EndpointConfigName="c",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "m",
                             "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
        **config,
    )  # fmt: skip
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="c")


def _captured(hour: str) -> None:
    aws.s3().put_object(
        Bucket=BUCKET, Key=f"capture/{ENDPOINT}/AllTraffic/{hour}/00-00-000-x.jsonl", Body=b"{}\n"
    )


def _scheduled(time: str) -> dict[str, Any]:
    return {"id": "e1", "source": "aws.events", "detail-type": "Scheduled Event", "time": time}


def test_the_check_runs_the_models_image_over_the_windows_capture(moto: None, context: Any) -> None:
    # GIVEN a serving model with a baseline, and traffic captured in the last hour
    _serving()
    _captured("2026/12/01/10")
    _captured("2026/12/01/08")  # outside the window
    # WHEN the schedule fires at 11:00
    out = MonitorOutput.model_validate(lambda_handler(_scheduled("2026-12-01T11:00:00Z"), context))
    # THEN one drift job starts, as the drift role, on the model's image
    assert out.action == "started"
    assert (out.window_start, out.window_end) == ("2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z")
    job = aws.sagemaker().describe_processing_job(ProcessingJobName=out.job_name)
    assert job["RoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/sfn-mlops-drift-job"
    assert job["AppSpecification"]["ImageUri"] == IMAGE
    assert job["AppSpecification"]["ContainerEntrypoint"][-1] == "drift"
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in job["ProcessingInputs"]}
    assert inputs == {
        "capture-0": f"s3://{BUCKET}/capture/{ENDPOINT}/AllTraffic/2026/12/01/10/",
        "baseline": f"{BASELINE}/",
    }
    # (moto does not return a job's Environment: the request is checked as built)
    span = window(datetime(2026, 12, 1, 11, 0, 0, 250_000, tzinfo=UTC), 1)
    built = drift_job_request("n", IMAGE, [], "s3://b/r", load_settings(MonitorSettings), span)
    env = built["Environment"]
    assert (env["WINDOW_START"], env["WINDOW_END"]) == (out.window_start, out.window_end)
    assert env["PSI_THRESHOLD"] == "0.2"  # DRIFT_ENVIRONMENT (config/pipeline.yaml monitoring)
    assert (env["METRICS_NAMESPACE"], env["ENDPOINT_NAME"]) == ("SfnMlops/Monitoring", ENDPOINT)
    # ... and the same scheduled event again starts nothing new
    again = lambda_handler(_scheduled("2026-12-01T11:00:00Z"), context)
    assert (again["action"], again["job_name"]) == ("duplicate", out.job_name)


def test_the_window_ends_at_the_scheduled_second_so_traffic_just_before_is_checked(
    moto: None, context: Any
) -> None:
    # GIVEN traffic captured in the current hour, seconds before the schedule fires
    _serving()
    _captured("2026/12/01/11")
    # WHEN the schedule fires at 11:00:07 (not on a whole minute)
    out = MonitorOutput.model_validate(lambda_handler(_scheduled("2026-12-01T11:00:07Z"), context))
    # THEN the window ends at 11:00:07 itself, and its job reads the 11:00 hour
    assert (out.window_start, out.window_end) == ("2026-12-01T10:00:07Z", "2026-12-01T11:00:07Z")
    job = aws.sagemaker().describe_processing_job(ProcessingJobName=out.job_name)
    uris = sorted(i["S3Input"]["S3Uri"] for i in job["ProcessingInputs"])
    assert f"s3://{BUCKET}/capture/{ENDPOINT}/AllTraffic/2026/12/01/11/" in uris
    # ... a record's inferenceTime (whole seconds) is in [start, end): 11:00:06 is, 11:00:07
    # is the next check's
    start, end = window(datetime(2026, 12, 1, 11, 0, 7, 900_000, tzinfo=UTC), 1)
    assert start <= datetime(2026, 12, 1, 11, 0, 6, tzinfo=UTC) < end
    assert end == datetime(2026, 12, 1, 11, 0, 7, tzinfo=UTC)
    # ... and a check 30 s later, in the same minute, is another job (one per scheduled time)
    later = lambda_handler(_scheduled("2026-12-01T11:00:37Z"), context)
    assert later["action"] == "started"
    assert later["job_name"] != out.job_name


def test_nothing_to_check_is_a_skip_saying_why(moto: None, context: Any) -> None:
    # no endpoint
    out = lambda_handler(_scheduled("2026-12-01T11:00:00Z"), context)
    assert (out["action"], out["reason"]) == ("skipped", f"endpoint {ENDPOINT} is not serving")
    # an endpoint without traffic in the window
    _serving()
    out = lambda_handler(_scheduled("2026-12-01T11:00:00Z"), context)
    assert out["action"] == "skipped"
    assert "no captured traffic" in out["reason"]
    assert aws.sagemaker().list_processing_jobs()["ProcessingJobSummaries"] == []


def test_a_model_without_baseline_is_skipped(moto: None, context: Any) -> None:
    _serving(baseline=False)
    _captured("2026/12/01/10")
    out = lambda_handler(_scheduled("2026-12-01T11:00:00Z"), context)
    assert out["action"] == "skipped"
    assert "has no drift baseline" in out["reason"]
