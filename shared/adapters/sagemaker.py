"""SageMaker: jobs, models, endpoint configs, endpoints and the Model Registry.

Describe calls answer None when the resource does not exist. SageMaker reports a missing
job/model/endpoint as `ValidationException` (some operations as `ResourceNotFound`), so both
codes mean "not found" on a describe of a well-formed name. Create calls answer False when the
resource already exists (`ResourceInUse` for jobs; for models, configs and endpoints a
re-describe after the error decides), so callers can reuse instead of failing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from shared.adapters._errors import ClientError, code_of, transient_errors
from shared.aws import error_message
from shared.errors import ResourceLimitError

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

NOT_FOUND_CODES = frozenset({"ValidationException", "ResourceNotFound"})
ALREADY_EXISTS_CODES = frozenset({"ResourceInUse", "ValidationException", "ConflictException"})

JobKind = Literal["processing", "training"]


@dataclass(frozen=True)
class JobStatus:
    name: str
    kind: JobKind
    status: str  # InProgress | Completed | Failed | Stopping | Stopped
    failure_reason: str | None
    description: dict[str, Any]


class SageMaker:
    def __init__(self, client: SageMakerClient) -> None:
        self._client = client

    # --- jobs -------------------------------------------------------------------------------

    def describe_job(self, kind: JobKind, name: str) -> JobStatus | None:
        with transient_errors(f"Describe{kind.title()}Job"):
            try:
                if kind == "processing":
                    desc: dict[str, Any] = dict(
                        self._client.describe_processing_job(ProcessingJobName=name)
                    )
                    status = str(desc["ProcessingJobStatus"])
                else:
                    desc = dict(self._client.describe_training_job(TrainingJobName=name))
                    status = str(desc["TrainingJobStatus"])
            except ClientError as exc:
                if code_of(exc) in NOT_FOUND_CODES:
                    return None
                raise
        reason = desc.get("FailureReason") or desc.get("ExitMessage")
        return JobStatus(name, kind, status, str(reason) if reason else None, desc)

    def create_job(self, kind: JobKind, request: dict[str, Any]) -> bool:
        """Start a job; False if a job of that name already exists (ResourceInUse).

        ResourceLimitExceeded (a quota) raises ResourceLimitError, retried with backoff."""
        operation = f"Create{kind.title()}Job"
        with transient_errors(operation):
            try:
                if kind == "processing":
                    self._client.create_processing_job(**request)
                else:
                    self._client.create_training_job(**request)
            except ClientError as exc:
                if code_of(exc) == "ResourceInUse":
                    return False
                if code_of(exc) == "ResourceLimitExceeded":
                    raise ResourceLimitError(
                        f"{operation}: ResourceLimitExceeded: {error_message(exc)}"
                    ) from exc
                raise
        return True

    def recent_completed_jobs(
        self, kind: JobKind, name_contains: str, max_results: int = 10
    ) -> list[dict[str, Any]]:
        """The newest Completed jobs whose name contains `name_contains` (one List call):
        summaries with CreationTime and TrainingEndTime / ProcessingEndTime."""
        with transient_errors(f"List{kind.title()}Jobs"):
            args: dict[str, Any] = {
                "NameContains": name_contains,
                "StatusEquals": "Completed",
                "SortBy": "CreationTime",
                "SortOrder": "Descending",
                "MaxResults": max_results,
            }
            if kind == "processing":
                return [
                    dict(s)
                    for s in self._client.list_processing_jobs(**args)["ProcessingJobSummaries"]
                ]
            return [
                dict(s) for s in self._client.list_training_jobs(**args)["TrainingJobSummaries"]
            ]

    # --- models, endpoint configs, endpoints ------------------------------------------------

    def describe_endpoint(self, name: str) -> dict[str, Any] | None:
        with transient_errors("DescribeEndpoint"):
            try:
                return dict(self._client.describe_endpoint(EndpointName=name))
            except ClientError as exc:
                if code_of(exc) in NOT_FOUND_CODES:
                    return None
                raise

    def describe_endpoint_config(self, name: str) -> dict[str, Any] | None:
        with transient_errors("DescribeEndpointConfig"):
            try:
                return dict(self._client.describe_endpoint_config(EndpointConfigName=name))
            except ClientError as exc:
                if code_of(exc) in NOT_FOUND_CODES:
                    return None
                raise

    def describe_model(self, name: str) -> dict[str, Any] | None:
        with transient_errors("DescribeModel"):
            try:
                return dict(self._client.describe_model(ModelName=name))
            except ClientError as exc:
                if code_of(exc) in NOT_FOUND_CODES:
                    return None
                raise

    def tags_of(self, arn: str) -> dict[str, str]:
        """A resource's tags (DescribeModel does not return them)."""
        with transient_errors("ListTags"):
            tags = self._client.list_tags(ResourceArn=arn, MaxResults=100).get("Tags", [])
        return {str(t["Key"]): str(t["Value"]) for t in tags}

    def create_model(self, request: dict[str, Any]) -> bool:
        """CreateModel unless it exists; True if this call created it."""
        name = str(request["ModelName"])
        if self.describe_model(name) is not None:
            return False
        with transient_errors("CreateModel"):
            try:
                self._client.create_model(**request)
            except ClientError as exc:
                if code_of(exc) in ALREADY_EXISTS_CODES and self.describe_model(name):
                    return False  # created concurrently (a retry racing its first attempt)
                raise
        return True

    def create_endpoint_config(self, request: dict[str, Any]) -> bool:
        """CreateEndpointConfig unless it exists; True if this call created it."""
        name = str(request["EndpointConfigName"])
        if self.describe_endpoint_config(name) is not None:
            return False
        with transient_errors("CreateEndpointConfig"):
            try:
                self._client.create_endpoint_config(**request)
            except ClientError as exc:
                if code_of(exc) in ALREADY_EXISTS_CODES and self.describe_endpoint_config(name):
                    return False
                raise
        return True

    def create_endpoint(self, name: str, config_name: str, tags: list[dict[str, str]]) -> None:
        with transient_errors("CreateEndpoint"):
            self._client.create_endpoint(
                EndpointName=name,
                EndpointConfigName=config_name,
                Tags=tags,  # type: ignore[arg-type]
            )

    def update_endpoint(
        self, name: str, config_name: str, deployment_config: dict[str, Any]
    ) -> None:
        with transient_errors("UpdateEndpoint"):
            self._client.update_endpoint(
                EndpointName=name,
                EndpointConfigName=config_name,
                DeploymentConfig=deployment_config,  # type: ignore[arg-type]
            )

    # --- Model Registry ---------------------------------------------------------------------

    def describe_model_package_group(self, name: str) -> dict[str, Any] | None:
        with transient_errors("DescribeModelPackageGroup"):
            try:
                return dict(self._client.describe_model_package_group(ModelPackageGroupName=name))
            except ClientError as exc:
                if code_of(exc) in NOT_FOUND_CODES:
                    return None
                raise

    def ensure_model_package_group(self, name: str, description: str) -> bool:
        """Create the group if missing; True if this call created it."""
        if self.describe_model_package_group(name) is not None:
            return False
        with transient_errors("CreateModelPackageGroup"):
            try:
                self._client.create_model_package_group(
                    ModelPackageGroupName=name, ModelPackageGroupDescription=description
                )
            except ClientError as exc:
                if code_of(exc) in ALREADY_EXISTS_CODES and self.describe_model_package_group(name):
                    return False
                raise
        return True

    def model_packages(
        self, group: str, created_after: datetime | None = None
    ) -> Iterator[dict[str, Any]]:
        """Summaries of the group's packages, newest first (paginated lazily)."""
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "ModelPackageGroupName": group,
                "SortBy": "CreationTime",
                "SortOrder": "Descending",
                "MaxResults": 100,
            }
            if created_after is not None:
                kwargs["CreationTimeAfter"] = created_after
            if token:
                kwargs["NextToken"] = token
            with transient_errors("ListModelPackages"):
                page = self._client.list_model_packages(**kwargs)
            for summary in page.get("ModelPackageSummaryList", []):
                yield dict(summary)
            token = page.get("NextToken")
            if not token:
                return

    def describe_model_package(self, arn: str) -> dict[str, Any]:
        with transient_errors("DescribeModelPackage"):
            return dict(self._client.describe_model_package(ModelPackageName=arn))

    def update_model_package_status(self, arn: str, status: str, description: str) -> None:
        with transient_errors("UpdateModelPackage"):
            self._client.update_model_package(
                ModelPackageArn=arn,
                ModelApprovalStatus=status,  # type: ignore[arg-type]
                ApprovalDescription=description[:1000],
            )

    def create_model_package(self, request: dict[str, Any]) -> str:
        with transient_errors("CreateModelPackage"):
            return str(self._client.create_model_package(**request)["ModelPackageArn"])
