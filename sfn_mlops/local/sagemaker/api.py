"""The moto patches of the SageMaker fake: moto records the resource, then the call is
handed to the local runner (jobs.py, endpoints.py). Calls moto lacks (UpdateEndpoint,
StopTrainingJob) or gets wrong (duplicate endpoint names, InvokeEndpoint) are answered
here the way SageMaker answers them.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from sfn_mlops.local import cloudwatch
from shared import resources


def install(patches: Any, local: Any) -> None:
    """Patch moto's SageMaker responses (undone with `patches`); `local`: LocalSageMaker."""
    from moto.core.exceptions import ServiceException
    from moto.core.responses import ActionResult, EmptyResult
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.models import sagemaker_backends
    from moto.sagemaker.responses import SageMakerResponse
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

    jobs, endpoints = local.job_runner, local.endpoints
    orig_processing = SageMakerResponse.create_processing_job
    orig_training = SageMakerResponse.create_training_job
    orig_create_endpoint = SageMakerResponse.create_endpoint
    orig_delete_endpoint = SageMakerResponse.delete_endpoint
    orig_stop_processing = SageMakerResponse.stop_processing_job

    def create_job(kind: str, orig: Any, start: Any) -> Any:
        """Create<Kind>Job: the name is claimed first (ResourceInUse), moto records the
        job, then the local runner starts it."""
        param = f"{kind.capitalize()}JobName"

        def create(resp: Any) -> Any:
            name = resp._get_param(param)
            jobs.new_job(kind, name)
            params = copy.deepcopy(dict(resp.params))  # moto edits the request in place
            result = orig(resp)
            recorded = getattr(resp.sagemaker_backend, f"{kind}_jobs")[name]
            start(recorded, params)
            return result

        return create

    create_processing_job = create_job("processing", orig_processing, jobs.start_processing_job)
    create_training_job = create_job("training", orig_training, jobs.start_training_job)

    def stop_processing_job(resp: Any) -> Any:
        name = resp._get_param("ProcessingJobName")
        fake = resp.sagemaker_backend.processing_jobs.get(name)
        if fake is None or not jobs.stop_job(name):
            return orig_stop_processing(resp)
        if fake.processing_job_status == "InProgress":
            fake.processing_job_status = "Stopping"
        return EmptyResult()

    def stop_training_job(resp: Any) -> Any:
        name = resp._get_param("TrainingJobName")
        fake = resp.sagemaker_backend.training_jobs.get(name)
        if fake is None:
            raise ValidationError(message=f"Requested resource not found: training job {name}")
        if fake.training_job_status == "InProgress":
            fake.training_job_status = "Stopping"
            fake.secondary_status = "Stopping"
        jobs.stop_job(name)
        return EmptyResult()

    def create_endpoint(resp: Any) -> Any:
        name = resp._get_param("EndpointName")
        backend = resp.sagemaker_backend
        if name in backend.endpoints:
            raise ValidationError(
                message=f'Cannot create already existing endpoint "{backend.endpoints[name].arn}".'
            )
        result = orig_create_endpoint(resp)
        endpoints.create_endpoint(backend.endpoints[name], backend)
        return result

    def update_endpoint(resp: Any) -> Any:
        name = resp._get_param("EndpointName")
        config_name = resp._get_param("EndpointConfigName")
        backend = resp.sagemaker_backend
        fake = backend.endpoints.get(name)
        if fake is None:
            raise ValidationError(message=f'Could not find endpoint "{name}".')
        if config_name not in backend.endpoint_configs:
            raise ValidationError(message=f'Could not find endpoint configuration "{config_name}".')
        if fake.endpoint_status != "InService":
            raise ValidationError(
                message=f'Cannot update in-progress endpoint "{fake.arn}".'
                if fake.endpoint_status in ("Creating", "Updating")
                else f'Cannot update endpoint "{fake.arn}" in status {fake.endpoint_status}.'
            )
        endpoints.update_endpoint(
            fake, backend, config_name, resp._get_param("DeploymentConfig") or {}
        )
        return ActionResult({"EndpointArn": fake.arn})

    def delete_endpoint(resp: Any) -> Any:
        endpoints.delete_endpoint(resp._get_param("EndpointName"))
        return orig_delete_endpoint(resp)

    class ModelError(ServiceException):
        code = "ModelError"

    class ServiceUnavailable(ServiceException):
        code = "ServiceUnavailable"

    class InternalFailure(ServiceException):
        code = "InternalFailure"

    class RuntimeValidationError(ServiceException):
        code = "ValidationError"  # sagemaker-runtime's (the control plane's is ...Exception)

    from sfn_mlops.local.sagemaker.endpoints import (
        EndpointDownError,
        NoAnswerError,
        max_body_bytes,
    )

    max_body = max_body_bytes()

    def invoke_endpoint(resp: Any) -> Any:
        """InvokeEndpoint; any error is one of the operation's modelled errors (never moto's
        generic HTML 500)."""
        try:
            return forward(resp)
        except ServiceException:
            raise
        except Exception as exc:
            raise InternalFailure(
                f"InvokeEndpoint failed in the local cloud: {type(exc).__name__}: {exc}"
            ) from exc

    def forward(resp: Any) -> Any:
        received = time.perf_counter()
        name = resp.path.strip("/").split("/")[1]
        fake = sagemaker_backends[resp.current_account][resp.region].endpoints.get(name)
        if fake is None:
            raise RuntimeValidationError(
                f"Endpoint {name} of account {resp.current_account} not found."
            )
        headers = {
            k: v
            for k, v in (
                ("Content-Type", resp.headers.get("Content-Type")),
                ("Accept", resp.headers.get("Accept")),
            )
            if v
        }
        body = resp.body if isinstance(resp.body, bytes) else (resp.body or "").encode()
        if len(body) > max_body:  # before anything reaches the model, as SageMaker does
            raise RuntimeValidationError(
                "1 validation error detected: Value at 'body' failed to satisfy "
                f"constraint: Member must have length less than or equal to {max_body}"
            )
        try:
            # the AWS/SageMaker invocation metrics, in-process (cloudwatch.py)
            status, out_headers, out = cloudwatch.timed_invoke(
                endpoints.invoke, resp.current_account, resp.region, received, name, body, headers
            )
        except LookupError as exc:
            raise RuntimeValidationError(
                f"Endpoint {name} of account {resp.current_account} is not InService."
            ) from exc
        except EndpointDownError as exc:
            raise ServiceUnavailable(
                f"Endpoint {name}: the primary container is not running ({exc}); the instance "
                "is being replaced, try your call again."
            ) from exc
        except NoAnswerError as exc:
            err = ModelError(
                f'Received server error (0) from primary with message "{exc}". '
                f"Endpoint {name}. See CloudWatch logs."
            )
            err.OriginalStatusCode = 0  # type: ignore[attr-defined]
            err.OriginalMessage = str(exc)  # type: ignore[attr-defined]
            raise err from exc
        if status >= 400:
            text = out.decode(errors="replace")[:500]
            err = ModelError(
                f"Received {'client' if status < 500 else 'server'} error ({status}) "
                f'from primary with message "{text}". See CloudWatch logs.'
            )
            err.OriginalStatusCode = status  # type: ignore[attr-defined]
            err.OriginalMessage = text  # type: ignore[attr-defined]
            raise err
        ctype = next((v for k, v in out_headers.items() if k.lower() == "content-type"), "text/csv")
        variant_header = {"x-Amzn-Invoked-Production-Variant": resources.ENDPOINT_VARIANT_NAME}
        return 200, {"Content-Type": ctype, **variant_header}, out

    patches.set(SageMakerResponse, "create_processing_job", create_processing_job)
    patches.set(SageMakerResponse, "create_training_job", create_training_job)
    patches.set(SageMakerResponse, "stop_processing_job", stop_processing_job)
    patches.set(SageMakerResponse, "stop_training_job", stop_training_job)
    patches.set(SageMakerResponse, "create_endpoint", create_endpoint)
    patches.set(SageMakerResponse, "update_endpoint", update_endpoint)
    patches.set(SageMakerResponse, "delete_endpoint", delete_endpoint)
    patches.set(SageMakerRuntimeResponse, "invoke_endpoint", invoke_endpoint)
    _record_and_inject(patches, SageMakerResponse, local.faults)


#: Operations whose accepted calls the local cloud records (faults.py), by response method,
#: with the parameter that names what they create.
RECORDED = {
    "create_processing_job": "ProcessingJobName",
    "create_training_job": "TrainingJobName",
    "create_model": "ModelName",
    "create_endpoint_config": "EndpointConfigName",
    "create_endpoint": "EndpointName",
    "update_endpoint": "EndpointName",
    "create_model_package": "ModelPackageGroupName",
}


def _record_and_inject(patches: Any, responses: Any, faults: Any) -> None:
    """Wrap each RECORDED call: an injected error answers first; an accepted call is recorded."""
    from moto.core.exceptions import ServiceException

    class InjectedServiceError(ServiceException):
        """Defined here, not in moto: moto would look the code up in a 'core' model."""

    def wrap(method: str, param: str, inner: Any) -> Any:
        operation = "".join(part.title() for part in method.split("_"))

        def call(resp: Any) -> Any:
            fault = faults.take_api_error(operation)
            if fault is not None:
                raise InjectedServiceError(*fault)
            result = inner(resp)
            faults.record(operation, str(resp._get_param(param)))
            return result

        return call

    for method, param in RECORDED.items():
        patches.set(responses, method, wrap(method, param, getattr(responses, method)))
