"""The scheduled drift check: EventBridge schedule -> a Processing job of the project's
container (`python -m sfn_container drift`) over the production endpoint's captured traffic
of the last window, against the serving model's baseline.

The serving model is found as the pipeline deploys it: endpoint -> its config's variant ->
the model (its image runs the check, so the check's code is the model's container) -> its
`sfn-mlops:model-package` tag -> the package's DriftCheckBaselines.ModelDataQuality. The
window is the `window_hours` before the scheduled time; the job gets one ProcessingInput per
hour prefix of the capture that holds objects (an empty prefix fails a SageMaker job), and
the records' inferenceTime narrows it to the window. Nothing to check (no endpoint, no
capture, no baseline) is a skip with its reason, not an error: the alarm then sees missing
data. The job's name derives from the endpoint and the scheduled time, so a duplicated
schedule event starts nothing new (ResourceInUse).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.adapters.s3 import S3
from shared.adapters.sagemaker import SageMaker
from shared.jobs import (
    CONTAINER_ENTRYPOINT,
    PROCESSING_INPUT,
    PROCESSING_OUTPUT,
    s3_input,
    s3_output,
)
from shared.models import MonitorOutput
from shared.naming import resource_name
from shared.observability import logger
from shared.resources import MONITORING_NAMESPACE, MONITORING_PREFIX
from shared.settings import MonitorSettings

PACKAGE_TAG = "sfn-mlops:model-package"
STEP = "drift"
MAX_RUNTIME_SECONDS = 3600
INSTANCE = {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}
_TIME = "%Y-%m-%dT%H:%M:%SZ"


def _skip(reason: str) -> MonitorOutput:
    logger.info("drift check skipped", extra={"reason": reason})
    return MonitorOutput(action="skipped", reason=reason)


def window(at: datetime, hours: int) -> tuple[datetime, datetime]:
    """[start, end) of the check at `at`: the `hours` up to the scheduled time itself (to the
    second, the resolution of the schedule event's `time` and of a record's inferenceTime),
    so traffic captured seconds before the check is in it."""
    end = at.astimezone(UTC).replace(microsecond=0)
    return end - timedelta(hours=hours), end


def hour_prefixes(start: datetime, end: datetime) -> list[str]:
    """`yyyy/mm/dd/hh` of every hour that overlaps [start, end)."""
    hour = start.replace(minute=0, second=0, microsecond=0)
    out = []
    while hour < end:
        out.append(f"{hour:%Y/%m/%d/%H}")
        hour += timedelta(hours=1)
    return out


def serving_baseline(sagemaker: SageMaker, endpoint: dict[str, Any]) -> tuple[str, str, str, str]:
    """(model image, baseline statistics URI, capture URI of the variant, variant name) of the
    model the endpoint serves; ValueError saying what is missing."""
    config = sagemaker.describe_endpoint_config(str(endpoint["EndpointConfigName"])) or {}
    capture = config.get("DataCaptureConfig") or {}
    if not capture.get("EnableCapture", False):
        raise ValueError(f"endpoint config {endpoint['EndpointConfigName']} captures no data")
    variant = config["ProductionVariants"][0]
    model = sagemaker.describe_model(str(variant["ModelName"]))
    if model is None:
        raise ValueError(f"model {variant['ModelName']} does not exist")
    package_arn = sagemaker.tags_of(str(model["ModelArn"])).get(PACKAGE_TAG)
    if not package_arn:
        raise ValueError(f"model {variant['ModelName']} has no {PACKAGE_TAG} tag")
    package = sagemaker.describe_model_package(package_arn)
    quality = (package.get("DriftCheckBaselines") or {}).get("ModelDataQuality") or {}
    statistics = (quality.get("Statistics") or {}).get("S3Uri")
    if not statistics:
        raise ValueError(f"model package {package_arn} has no drift baseline")
    image = str((model.get("PrimaryContainer") or {}).get("Image"))
    destination = str(capture["DestinationS3Uri"]).rstrip("/")
    name = str(endpoint["EndpointName"])
    return image, str(statistics), f"{destination}/{name}/{variant['VariantName']}", name


def drift_job_request(
    name: str,
    image: str,
    inputs: list[dict[str, Any]],
    report_uri: str,
    settings: MonitorSettings,
    span: tuple[datetime, datetime],
) -> dict[str, Any]:
    return {
        "ProcessingJobName": name,
        "RoleArn": settings.monitor_role_arn,
        "AppSpecification": {
            "ImageUri": image,
            "ContainerEntrypoint": [*CONTAINER_ENTRYPOINT, STEP],
        },
        "ProcessingResources": {"ClusterConfig": dict(INSTANCE)},
        "StoppingCondition": {"MaxRuntimeInSeconds": MAX_RUNTIME_SECONDS},
        "Environment": {
            **settings.drift_environment,
            "ENDPOINT_NAME": settings.endpoint_name,
            "METRICS_NAMESPACE": MONITORING_NAMESPACE,
            "WINDOW_START": f"{span[0]:{_TIME}}",
            "WINDOW_END": f"{span[1]:{_TIME}}",
        },
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {
            "Outputs": [s3_output("report", report_uri, f"{PROCESSING_OUTPUT}/report")]
        },
        "Tags": [{"Key": "sfn-mlops:endpoint", "Value": settings.endpoint_name}],
    }


def run_check(
    at: datetime, settings: MonitorSettings, sagemaker: SageMaker, s3: S3
) -> MonitorOutput:
    endpoint = sagemaker.describe_endpoint(settings.endpoint_name)
    if endpoint is None or endpoint.get("EndpointStatus") not in ("InService", "Updating"):
        return _skip(f"endpoint {settings.endpoint_name} is not serving")
    try:
        image, statistics, capture, name = serving_baseline(sagemaker, endpoint)
    except ValueError as exc:
        return _skip(str(exc))
    span = window(at, settings.window_hours)
    inputs = [
        s3_input(f"capture-{i}", f"{capture}/{hour}/", f"{PROCESSING_INPUT}/capture/{hour}")
        for i, hour in enumerate(hour_prefixes(*span))
        if s3.list_keys(f"{capture}/{hour}/", max_keys=1)
    ]
    if not inputs:
        return _skip(
            f"no captured traffic of {name} between {span[0]:{_TIME}} and {span[1]:{_TIME}}"
        )
    baseline_dir = statistics.rsplit("/", 1)[0] + "/"
    inputs.append(s3_input("baseline", baseline_dir, f"{PROCESSING_INPUT}/baseline"))
    stamp = f"{span[1]:%Y%m%dT%H%M%SZ}"  # one job (and report) per scheduled time
    job_name = resource_name(f"drift-{name}-{stamp}", STEP)
    report = f"s3://{settings.artifact_bucket}/{MONITORING_PREFIX}{name}/{stamp}"
    # a duplicated schedule event finds its job (and CreateProcessingJob answers
    # ResourceInUse for a name taken meanwhile)
    created = sagemaker.describe_job("processing", job_name) is None and sagemaker.create_job(
        "processing", drift_job_request(job_name, image, inputs, report, settings, span)
    )
    logger.info("drift check", extra={"job_name": job_name, "new_job": created})
    return MonitorOutput(
        action="started" if created else "duplicate",
        reason=f"{len(inputs) - 1} hour(s) of capture of {name} against {baseline_dir}",
        job_name=job_name,
        report_uri=f"{report}/drift.json",
        window_start=f"{span[0]:{_TIME}}",
        window_end=f"{span[1]:{_TIME}}",
    )


def scheduled_time(event: dict[str, Any]) -> datetime:
    """The schedule event's `time` (EventBridge's Scheduled Event); now for a manual call."""
    raw = event.get("time") if isinstance(event, dict) else None
    if not raw:
        return datetime.now(UTC)
    return datetime.strptime(str(raw), _TIME).replace(tzinfo=UTC)
