"""The state machine executed by moto's ASL interpreter, its Lambdas faked at the Lambda
boundary (sfn_mlops.local.lambdas).

The fakes of the pipeline's Lambdas:

Each fake parses its payload with the state's request model and answers with the state's
output model (dumped to JSON as the handlers do), so a wrong JSONPath in the definition or
a field the definition forgets to pass fails the scenario. Behaviour is configured per
test: how many polls a job needs, a job failure, the gate's score, the deploy action.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from pydantic import ValidationError

from sfn_mlops.local import sfn as sfn_fixes
from sfn_mlops.local.lambdas import LambdaDispatcher, LambdaServiceError
from shared import errors, job_retry, models, polling
from shared.resources import (
    ECR_REPOSITORY,
    FUNCTIONS_BY_KEY,
    LOCAL_ACCOUNT,
    LOCAL_REGION,
    bucket_name,
    pipeline_defaults,
)

BUCKET = bucket_name(LOCAL_ACCOUNT, LOCAL_REGION)
IMAGE = f"{LOCAL_ACCOUNT}.dkr.ecr.{LOCAL_REGION}.amazonaws.com/{ECR_REPOSITORY}:latest"


def function_name(key: str) -> str:
    return FUNCTIONS_BY_KEY[key].function_name


def _uri(execution: str, step: str, leaf: str) -> str:
    return f"s3://{BUCKET}/runs/{execution}/{step}/{leaf}"


def _sm_name(execution: str, step: str) -> str:
    from shared.naming import resource_name

    return resource_name(execution, step)


def _started(config: models.PipelineInput) -> models.PollState:
    return models.PollState(
        status="InProgress", attempt=0, wait_seconds=config.poll_interval_seconds
    )


@dataclass
class FakePipeline:
    """The nine workflow functions with knobs; `calls` counts invocations per key."""

    polls_needed: dict[str, int] = field(
        default_factory=lambda: {"processing": 2, "training": 3, "endpoint": 2}
    )
    failed_job_type: str | None = None  # this job type's poll raises JobFailedError
    # the cause of failed_job_type's failure is fixed: the failed job stays Failed, its next
    # attempt (started after a redrive) succeeds
    fixed: bool = False
    failure_reason: str = "AlgorithmError: training diverged (loss is NaN)"
    challenger_score: float = 0.91
    deploy_action: Literal["create", "update"] = "create"
    throttle_once: set[str] = field(default_factory=set)  # keys whose first call is throttled
    transient_once: set[str] = field(default_factory=set)  # ... raises TransientServiceError
    lock_busy_for: int = 0  # AcquireDeployLock answers "held by another" this many times
    newer_champion_score: float | None = None  # CheckChampion finds a newer champion (score)
    registry_package: str | None = None  # a payload naming it is a registry approval's run
    calls: Counter[str] = field(default_factory=Counter)
    payloads: dict[str, list[Any]] = field(default_factory=dict)
    _poll_attempts: Counter[str] = field(default_factory=Counter)

    def install(self, dispatcher: LambdaDispatcher) -> None:
        for key in ("validate", "preprocess", "train", "poll", "evaluate", "gate"):
            dispatcher.register(function_name(key), self._wrap(key))
        for key in (
            "register", "deploy", "invoke", "lock-acquire", "recheck", "lock-release", "loadcheck"
        ):  # fmt: skip
            dispatcher.register(function_name(key), self._wrap(key))

    def _wrap(self, key: str) -> Any:
        handler = getattr(self, key.replace("-", "_"))

        def call(payload: Any) -> Any:
            self.calls[key] += 1
            self.payloads.setdefault(key, []).append(payload)
            if key in self.throttle_once and self.calls[key] == 1:
                raise LambdaServiceError("TooManyRequestsException", "Rate exceeded", 429)
            if key in self.transient_once and self.calls[key] == 1:
                raise errors.TransientServiceError("ThrottlingException: slow down")
            result = handler(payload)
            return result.model_dump(mode="json")

        return call

    # --- the functions ----------------------------------------------------------------------

    def validate(self, payload: Any) -> models.ValidateOutput:
        request = models.ValidateRequest.model_validate(payload)
        arn = request.payload.get("model_package_arn")
        if arn is not None and arn == self.registry_package:
            return self._promotion(request, arn)
        merged = {
            **pipeline_defaults(),
            "image_uri": IMAGE,
            "raw_data_uri": f"s3://{BUCKET}/data/",
            **request.payload,
        }
        try:
            config = models.PipelineInput.model_validate(merged)
        except ValidationError as exc:
            fields = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors()
            )
            raise errors.InvalidInputError(f"invalid pipeline input: {fields}") from exc
        return models.ValidateOutput(
            config=config,
            execution_name=request.execution_name,
            execution_arn=request.execution_arn,
        )

    @staticmethod
    def _promotion(request: models.ValidateRequest, arn: str) -> models.ValidateOutput:
        """A registry approval's run as functions/validate/registry.py resolves it."""
        config = models.PipelineInput.model_validate(
            {**pipeline_defaults(), "image_uri": IMAGE, "raw_data_uri": f"s3://{BUCKET}/data/"}
        )
        return models.ValidateOutput(
            config=config,
            execution_name=request.execution_name,
            execution_arn=request.execution_arn,
            candidate=models.Candidate(
                model_package_arn=arn,
                model_artifact_uri=_uri("old", "train", "model.tar.gz"),
                image_uri=IMAGE,
                sample_uri="s3://bucket-of-the-package/runs/old/preprocess/sample",
                source="registry",
            ),
            register=models.RegisterOutput(
                model_package_arn=arn,
                model_package_group=config.model_package_group,
                approval_status="Approved",
                reused=True,
            ),
            gate=models.GateOutput(
                passed=True,
                deploy=True,
                approval_status="Approved",
                reasons=[f"approved in the model registry: {arn} (a person decided)"],
                metric=config.objective.name,
                challenger=0.93,
                champion=None,
            ),
        )

    def preprocess(self, payload: Any) -> models.PreprocessOutput:
        request = models.StepRequest.model_validate(payload)
        name = request.execution_name
        return models.PreprocessOutput(
            job_name=_sm_name(name, "preprocess"),
            reused=False,
            train_uri=_uri(name, "preprocess", "train"),
            validation_uri=_uri(name, "preprocess", "validation"),
            test_uri=_uri(name, "preprocess", "test"),
            profile_uri=_uri(name, "preprocess", "profile"),
            sample_uri=_uri(name, "preprocess", "sample"),
            poll=_started(request.config),
        )

    def train(self, payload: Any) -> models.TrainOutput:
        request = models.TrainRequest.model_validate(payload)
        name = request.execution_name
        return models.TrainOutput(
            job_name=_sm_name(name, "train"),
            reused=False,
            model_artifact_uri=_uri(name, "train", "model.tar.gz"),
            poll=_started(request.config),
        )

    def evaluate(self, payload: Any) -> models.EvaluateOutput:
        request = models.EvaluateRequest.model_validate(payload)
        name = request.execution_name
        return models.EvaluateOutput(
            job_name=_sm_name(name, "evaluate"),
            reused=False,
            report_uri=_uri(name, "evaluate", "evaluation.json"),
            champion_model_uri=None,
            poll=_started(request.config),
        )

    def poll(self, payload: Any) -> models.PollState:
        request = models.PollRequest.model_validate(payload)
        self._poll_attempts[request.job_name] += 1
        if request.job_type == "endpoint" and not request.expected_config_name:
            raise AssertionError("an endpoint poll must name the config the update lands on")
        attempt = request.attempt + 1
        failing = request.job_type == self.failed_job_type
        if failing and (not self.fixed or job_retry.redriven(request)):
            if job_retry.redriven(request):  # the real decision: redriven -> next attempt
                return job_retry.restart_after_redrive(request, "failed before the redrive")
            raise errors.JobFailedError(
                f"{request.job_type} job {request.job_name} failed: {self.failure_reason}"
            )
        if attempt >= self.polls_needed[request.job_type]:
            return models.PollState(status="Completed", attempt=attempt, wait_seconds=1)
        if attempt >= request.max_polls:
            raise errors.PollLimitExceededError(
                f"{request.job_name} still in progress after {attempt} polls"
            )
        wait = polling.wait_seconds(
            attempt, request.poll_interval_seconds, request.max_poll_interval_seconds
        )
        return models.PollState(status="InProgress", attempt=attempt, wait_seconds=wait)

    def lock_acquire(self, payload: Any) -> models.LockState:
        request = models.LockRequest.model_validate(payload)
        attempt = 0 if request.lock is None else request.lock.attempt + 1
        busy = attempt < self.lock_busy_for
        return models.LockState(
            acquired=not busy,
            lock_key=f"lock#endpoint#{request.config.endpoint_name}",
            owner="arn:other" if busy else request.execution_arn,
            attempt=attempt,
            wait_seconds=polling.wait_seconds(
                attempt, request.config.poll_interval_seconds,
                request.config.max_poll_interval_seconds,
            ),
        )  # fmt: skip

    def recheck(self, payload: Any) -> models.RecheckOutput:
        request = models.RecheckRequest.model_validate(payload)
        changed = self.newer_champion_score is not None
        name = request.execution_name
        return models.RecheckOutput(
            changed=changed,
            evaluated_champion_uri=None,
            champion_model_uri=_uri("newer", "train", "model.tar.gz") if changed else None,
            job_name=_sm_name(name, "recheck") if changed else None,
            reused=False,
            report_uri=_uri(name, "recheck", "evaluation.json") if changed else None,
            poll=_started(request.config)
            if changed
            else models.PollState(status="Completed", attempt=0, wait_seconds=1),
        )

    def lock_release(self, payload: Any) -> models.LockReleaseOutput:
        request = models.StepRequest.model_validate(payload)
        return models.LockReleaseOutput(
            lock_key=f"lock#endpoint#{request.config.endpoint_name}", released=True
        )

    def gate(self, payload: Any) -> models.GateOutput:
        request = models.GateRequest.model_validate(payload)
        objective = request.config.objective
        champion = self.newer_champion_score if request.recheck is not None else None
        passed = self.challenger_score >= objective.threshold and (
            champion is None or self.challenger_score > champion
        )
        reasons = [
            f"{objective.name} {self.challenger_score} "
            f"{'meets' if passed else 'is below'} threshold {objective.threshold}",
            "no champion: first model" if champion is None else f"newer champion {champion}",
        ]
        deploy = passed and request.config.deploy_mode == "auto"
        return models.GateOutput(
            passed=passed,
            deploy=deploy,
            approval_status="Approved" if passed else "Rejected",
            reasons=reasons,
            metric=objective.name,
            challenger=self.challenger_score,
            champion=champion,
        )

    def register(self, payload: Any) -> models.RegisterOutput:
        request = models.RegisterRequest.model_validate(payload)
        return models.RegisterOutput(
            model_package_arn=(
                "arn:aws:sagemaker:us-east-1:123456789012:model-package/"
                f"{request.config.model_package_group}/1"
            ),
            model_package_group=request.config.model_package_group,
            approval_status="Approved" if request.gate.passed else "Rejected",
            reused=request.recheck is not None,
        )

    def deploy(self, payload: Any) -> models.DeployOutput:
        request = models.DeployRequest.model_validate(payload)
        if request.gate is None or not request.gate.deploy:
            raise AssertionError("deploy called although the gate said no")
        endpoint = request.endpoint_name  # the stage's
        return models.DeployOutput(
            endpoint_name=endpoint,
            endpoint_config_name=_sm_name(request.execution_name, f"{request.stage}cfg"),
            model_name=_sm_name(request.execution_name, "model"),
            action=self.deploy_action,
            job_name=endpoint,
            poll=_started(request.config),
            model_package_arn=request.candidate.model_package_arn,
            sample_uri=request.candidate.sample_uri,
        )

    def loadcheck(self, payload: Any) -> models.LoadCheckOutput:
        request = models.LoadCheckRequest.model_validate(payload)
        return models.LoadCheckOutput(
            endpoint_name=request.endpoint_name,
            requests=request.load_check.requests,
            errors=0,
            error_rate=0.0,
            p50_latency_ms=1.0,
            p99_latency_ms=2.0,
            passed=True,
        )

    def invoke(self, payload: Any) -> models.InvokeOutput:
        request = models.InvokeRequest.model_validate(payload)
        return models.InvokeOutput(
            endpoint_name=request.endpoint_name, row_count=2, predictions=[0.1, 0.9]
        )


# --- the harness: moto (ASL interpreter on), the rendered definition, the fakes ---------------

ACCOUNT = LOCAL_ACCOUNT
REGION = LOCAL_REGION
EXECUTION_DEADLINE_SECONDS = 60.0


@dataclass
class Execution:
    """A finished execution: status, output or error/cause, and its history events."""

    arn: str
    status: str
    output: dict[str, Any] | None
    error: str | None
    cause: str | None
    history: list[dict[str, Any]]

    def entered(self) -> list[str]:
        """Names of the states entered, in order."""
        return [
            e["stateEnteredEventDetails"]["name"]
            for e in self.history
            if "stateEnteredEventDetails" in e
        ]


@dataclass
class Published:
    subject: str | None
    message: dict[str, Any]


class PipelineHarness:
    """Creates what the rendered ASL needs in moto and runs executions to the end."""

    def __init__(self, fake: FakePipeline, dispatcher: LambdaDispatcher) -> None:
        import boto3

        from sfn_mlops.local.stack import deploy_pipeline
        from state_machine.definition import definition

        self.fake = fake
        self.dispatcher = dispatcher
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        pipeline = deploy_pipeline(
            lambda service: boto3.client(service, region_name=REGION),
            definition=json.dumps(definition()),  # the definition as built, not the file
            only_definition_functions=True,
        )
        self.topic_arn = pipeline.topic_arn
        self.state_machine_arn = pipeline.state_machine_arn

    def run(self, payload: dict[str, Any], name: str = "run-1") -> Execution:
        arn = self.sfn.start_execution(
            stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(payload)
        )["executionArn"]
        return self.wait(arn)

    def redrive(self, run: Execution) -> Execution:
        self.sfn.redrive_execution(executionArn=run.arn)
        return self.wait(run.arn)

    def wait(self, arn: str) -> Execution:
        import time

        deadline = time.monotonic() + EXECUTION_DEADLINE_SECONDS
        while True:  # bounded poll: the interpreter runs the execution on its own thread
            described = self.sfn.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING":
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"execution still RUNNING after {EXECUTION_DEADLINE_SECONDS}s")
            time.sleep(0.01)
        history = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        output = described.get("output")
        return Execution(
            arn=arn,
            status=described["status"],
            output=json.loads(output) if output else None,
            error=described.get("error"),
            cause=described.get("cause"),
            history=history,
        )

    def published(self) -> list[Published]:
        from moto.sns.models import sns_backends

        topic = sns_backends[ACCOUNT][REGION].topics[self.topic_arn]
        return [
            Published(subject, json.loads(message))
            for _, message, subject, *_ in (topic.sent_notifications)
        ]


@dataclass
class Pauses:
    """What the interpreter would have slept: Wait states and retry back-offs."""

    waits: list[int] = field(default_factory=list)
    retries: list[float] = field(default_factory=list)


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> Pauses:
    """Wait states and retry intervals return at once (recorded, not slept)."""
    from types import SimpleNamespace

    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function

    recorded = Pauses()

    def wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        recorded.waits.append(wait_seconds)

    monkeypatch.setattr(wait_function.WaitFunction, "_wait_interval", wait_interval)
    monkeypatch.setattr(retrier_decl, "time", SimpleNamespace(sleep=recorded.retries.append))
    return recorded


@pytest.fixture
def fake() -> FakePipeline:
    return FakePipeline()


@pytest.fixture
def pipeline(
    fake: FakePipeline, pauses: Pauses, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PipelineHarness]:
    from moto import mock_aws

    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    dispatcher = LambdaDispatcher()
    fake.install(dispatcher)
    # the local cloud's Step Functions fixes: $$.Execution.RedriveCount, RedriveExecution
    from types import SimpleNamespace

    def patch(owner: Any, name: str, value: Any) -> None:
        monkeypatch.setattr(owner, name, value, raising=False)

    sfn_fixes.install(SimpleNamespace(set=patch))
    config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    with mock_aws(config=config), dispatcher.install():  # type: ignore[arg-type]
        yield PipelineHarness(fake, dispatcher)
