"""Figure 5 — detection lag, state transitions and cost per execution, for training jobs
lasting 1×, 10× and 100× a base duration (36 s, 6 min, 1 h), without waiting in real time.

How: the committed definition (state_machine/asl.json, placeholders substituted) runs in
moto's ASL interpreter (in-process ``mock_aws``). Every SageMaker job and the endpoint live on
a *simulated clock*: a job started at t finishes at t + its duration. The Wait states advance
that clock by their SecondsPath value instead of sleeping (moto's
``WaitFunction._wait_interval`` is patched for the run of this module only). The polls are
the real poll logic (``functions.poll.logic.poll``) against a SageMaker client whose
Describe*/List* answers follow the clock (training jobs report SecondaryStatus,
TrainingStartTime and the ``progress:round`` metric as SageMaker does), and ValidateInput is
the real validation logic on the real pipeline defaults (config/pipeline.yaml). The other
Lambdas are fakes that start a job on the clock and answer their output models; their
``poll`` is the real start-state schedule (``shared.schedule.job_first_poll`` with its history
lookup; the deploy fake's ``endpoint_history`` + ``first_poll``).

Scenario, per training duration and per schedule: a first run on a fresh account (no history;
the endpoint is created), then a second run that finds the first run's jobs and endpoint (the
endpoint is updated). Every job's duration (preprocessing, training, evaluation, the endpoint
create/update) is its nominal duration ×(1 ± 30%), uniform, seeded; the same draws for every
schedule. Processing jobs and the endpoint are nominally the base duration each.

Detection lag = from a job's (or endpoint update's) end to the poll that saw it Completed,
which is when the next state starts on the simulated clock.

A state transition = a history event whose type ends in ``StateEntered`` (what Step
Functions Standard bills: every state entered, Choice/Wait/Succeed included).

Schedules compared in one run: the predictive schedule (the defaults), today's adaptive
schedule (``poll_schedule: adaptive``: doubling from poll_interval_seconds to
max_poll_interval_seconds) and a fixed-interval baseline (adaptive with
max_poll_interval_seconds = poll_interval_seconds, and max_polls raised so the loop can wait
out the job).

Prices (us-east-1, on-demand, free tier ignored; SageMaker compute not included):
Step Functions Standard $0.025 per 1,000 state transitions
(https://aws.amazon.com/step-functions/pricing/); Lambda $0.20 per 1M requests +
$0.0000166667 per GB-second, x86 (https://aws.amazon.com/lambda/pricing/). Lambda GB-seconds
use each function's configured memory (shared.resources) and an assumed billed duration of
LAMBDA_BILLED_MS per invocation (one or two AWS API calls from a warm function).

``python -m benchmarks.transitions [--quick]`` prints the rows as JSON.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks._common import figure
from shared import resources

BASE_SECONDS = 36
MULTIPLES = (1, 10, 100)
OTHER_JOB_SECONDS = BASE_SECONDS  # preprocessing, evaluation, endpoint creation
SFN_USD_PER_TRANSITION = 0.025 / 1000
LAMBDA_USD_PER_REQUEST = 0.20 / 1_000_000
LAMBDA_USD_PER_GB_SECOND = 0.0000166667
LAMBDA_BILLED_MS = 200
GOAL_TRANSITIONS = 40  # per execution, second run, at every duration
GOAL_MEDIAN_LAG = 60  # seconds from a job's end to the next state's start, second run
GOAL_WORST_LAG = 120
NOISE = 0.30  # every job's duration is nominal x uniform(1 - NOISE, 1 + NOISE)
SEED = 18
PRICES_NOTE = (
    "prices: Step Functions Standard $0.025/1,000 transitions "
    "(https://aws.amazon.com/step-functions/pricing/); Lambda $0.20/1M requests + "
    "$0.0000166667/GB-s x86 (https://aws.amazon.com/lambda/pricing/), "
    f"{LAMBDA_BILLED_MS} ms billed per invoke assumed; SageMaker compute not included"
)

ACCOUNT = resources.LOCAL_ACCOUNT
REGION = resources.LOCAL_REGION
BUCKET = resources.bucket_name(ACCOUNT, REGION)
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{resources.ECR_REPOSITORY}:latest"
EXECUTION_DEADLINE_SECONDS = 120.0


# --- the simulated clock and the SageMaker it drives ------------------------------------------


#: Figure 5 compares poll schedules of the jobs and the production endpoint: its executions
#: skip the staging stage (issue 12), whose states are the same for every schedule.
RUNS_WITHOUT_STAGING: dict[str, Any] = {"staging_endpoint_name": None}


@dataclass
class SimClock:
    now: float = 0.0
    waits: list[int] = field(default_factory=list)

    def advance(self, seconds: int) -> None:
        self.waits.append(seconds)
        self.now += seconds


def _not_found(operation: str, what: str) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError(
        {"Error": {"Code": "ValidationException", "Message": f"Could not find {what}"}},
        operation,
    )


@dataclass
class SimJob:
    created: float  # absolute simulated seconds (the run's offset + its clock)
    seconds: float
    noticed: float | None = None  # when a Describe first answered Completed

    @property
    def end(self) -> float:
        return self.created + self.seconds


EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
PROVISIONING_FRACTION = 0.1  # a training job's Starting + Downloading, before round 1
NUM_ROUND = 100  # boosting rounds, spread evenly over the rest of the training job


@dataclass
class ClockedSageMakerClient:
    """The SageMaker calls the poll and start logic make; everything follows the clock.

    Training jobs report progress as SageMaker does for a metric definition: the latest
    `progress:round` value (the container's 0-based round index) with its timestamp in
    FinalMetricDataList, after TrainingStartTime and SecondaryStatus Training. Jobs and
    endpoints outlive an execution (`offset` moves each run a day on), so a second run finds
    the first one's as history (ListTrainingJobs/ListProcessingJobs, DescribeEndpointConfig).
    """

    clock: SimClock
    offset: float = 0.0
    jobs: dict[str, SimJob] = field(default_factory=dict)
    endpoints: dict[str, tuple[str, SimJob]] = field(default_factory=dict)  # -> (config, update)
    configs: dict[str, float] = field(default_factory=dict)  # config -> created

    @property
    def now(self) -> float:
        return self.offset + self.clock.now

    @staticmethod
    def at(seconds: float) -> datetime:
        return EPOCH + timedelta(seconds=seconds)

    def start_job(self, name: str, seconds: float) -> None:
        self.jobs.setdefault(name, SimJob(self.now, seconds))

    def start_endpoint(self, name: str, config: str, seconds: float) -> None:
        self.configs.setdefault(config, self.now)
        self.endpoints[name] = (config, SimJob(self.now, seconds))

    def _job(self, name: str, operation: str) -> tuple[SimJob, str]:
        if name not in self.jobs:
            raise _not_found(operation, f"job {name}")
        job = self.jobs[name]
        done = self.now >= job.end
        if done and job.noticed is None:
            job.noticed = self.now
        return job, "Completed" if done else "InProgress"

    def describe_training_job(self, TrainingJobName: str) -> dict[str, Any]:  # noqa: N803
        job, status = self._job(TrainingJobName, "DescribeTrainingJob")
        answer: dict[str, Any] = {
            "TrainingJobName": TrainingJobName,
            "TrainingJobStatus": status,
            "CreationTime": self.at(job.created),
            "HyperParameters": {"num_round": str(NUM_ROUND)},
            "SecondaryStatus": "Completed" if status == "Completed" else "Starting",
        }
        start = job.created + PROVISIONING_FRACTION * job.seconds
        if self.now >= start:
            per_round = (job.end - start) / NUM_ROUND
            rounds = min(NUM_ROUND, int((self.now - start) / per_round))
            answer["TrainingStartTime"] = self.at(start)
            if status == "InProgress":
                answer["SecondaryStatus"] = "Training"
            if rounds >= 1:
                answer["FinalMetricDataList"] = [
                    {
                        "MetricName": "progress:round",
                        "Value": float(rounds - 1),
                        "Timestamp": self.at(start + rounds * per_round),
                    }
                ]
        if status == "Completed":
            answer["TrainingEndTime"] = self.at(job.end)
        return answer

    def describe_processing_job(self, ProcessingJobName: str) -> dict[str, Any]:  # noqa: N803
        job, status = self._job(ProcessingJobName, "DescribeProcessingJob")
        return {
            "ProcessingJobName": ProcessingJobName,
            "ProcessingJobStatus": status,
            "CreationTime": self.at(job.created),
        }

    def _summaries(self, kind: str, name_contains: str, limit: int) -> dict[str, Any]:
        """List<kind>Jobs(StatusEquals=Completed, newest first): names and times."""
        training = kind == "Training"
        found = sorted(
            (
                (name, job)
                for name, job in self.jobs.items()
                if ("-train-" in name) == training and name_contains in name and self.now >= job.end
            ),
            key=lambda item: item[1].created,
            reverse=True,
        )
        return {
            f"{kind}JobSummaries": [
                {
                    f"{kind}JobName": name,
                    f"{kind}JobStatus": "Completed",
                    "CreationTime": self.at(job.created),
                    f"{kind}EndTime": self.at(job.end),
                }
                for name, job in found[:limit]
            ]
        }

    def list_training_jobs(self, NameContains: str, MaxResults: int, **_: Any) -> dict[str, Any]:  # noqa: N803
        return self._summaries("Training", NameContains, MaxResults)

    def list_processing_jobs(self, NameContains: str, MaxResults: int, **_: Any) -> dict[str, Any]:  # noqa: N803
        return self._summaries("Processing", NameContains, MaxResults)

    def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:  # noqa: N803
        if EndpointName not in self.endpoints:
            raise _not_found("DescribeEndpoint", f"endpoint {EndpointName}")
        config, update = self.endpoints[EndpointName]
        done = self.now >= update.end
        if done and update.noticed is None:
            update.noticed = self.now
        return {
            "EndpointName": EndpointName,
            "EndpointStatus": "InService" if done else "Updating",
            "EndpointConfigName": config,
            "LastModifiedTime": self.at(update.end if done else update.created),
        }

    def describe_endpoint_config(self, EndpointConfigName: str) -> dict[str, Any]:  # noqa: N803
        if EndpointConfigName not in self.configs:
            raise _not_found("DescribeEndpointConfig", f"config {EndpointConfigName}")
        return {
            "EndpointConfigName": EndpointConfigName,
            "CreationTime": self.at(self.configs[EndpointConfigName]),
        }

    def lags(self, since: float) -> dict[str, float]:
        """Seconds from each job's (and endpoint update's) end to its detection, for what
        started at or after `since`."""
        found = {
            name: job.noticed - job.end
            for name, job in self.jobs.items()
            if job.created >= since and job.noticed is not None
        }
        for name, (_, update) in self.endpoints.items():
            if update.created >= since and update.noticed is not None:
                found[name] = update.noticed - update.end
        return found


# --- the pipeline's Lambdas: real validate and poll logic, clocked fakes for the rest ----------


@dataclass
class ClockedPipeline:
    clock: SimClock
    sagemaker: ClockedSageMakerClient
    durations: dict[str, float]  # step (preprocess, train, evaluate, endpoint) -> seconds
    defaults: dict[str, Any]

    def handlers(self) -> dict[str, Any]:
        return {
            "validate": self.validate,
            "preprocess": self.preprocess,
            "train": self.train,
            "poll": self.poll,
            "evaluate": self.evaluate,
            "gate": self.gate,
            "register": self.register,
            "deploy": self.deploy,
            "invoke": self.invoke,
            "lock-acquire": self.lock_acquire,
            "recheck": self.recheck,
            "lock-release": self.lock_release,
            "loadcheck": self.loadcheck,
        }

    @staticmethod
    def loadcheck(payload: Any) -> Any:
        # Figure 5 runs without the staging stage (RUNS_WITHOUT_STAGING): never called
        raise RuntimeError("figure 5 runs without the staging stage: no load check")

    # The deployment lock's states run their real logic: the lock item in moto's DynamoDB,
    # the holder's status from moto's Step Functions, the champion from the clocked endpoint.
    @staticmethod
    def _table() -> Any:
        import boto3

        from shared.adapters.dynamodb import CoordinationTable

        return CoordinationTable(
            boto3.client("dynamodb", region_name=REGION), resources.COORDINATION_TABLE
        )

    def lock_acquire(self, payload: Any) -> Any:
        import boto3

        from functions.lock.logic import acquire
        from shared.adapters.stepfunctions import StepFunctions
        from shared.models import LockRequest

        sfn = StepFunctions(boto3.client("stepfunctions", region_name=REGION))
        return acquire(LockRequest.model_validate(payload), self._table(), sfn)

    def recheck(self, payload: Any) -> Any:
        from functions.evaluate.logic import recheck
        from shared.adapters.sagemaker import SageMaker
        from shared.models import RecheckRequest
        from shared.settings import JobSettings

        settings = JobSettings.model_validate(
            {
                "ARTIFACT_BUCKET": BUCKET,
                "ARTIFACTS_PREFIX": resources.ARTIFACTS_PREFIX,
                "SAGEMAKER_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/sagemaker",
            }
        )
        request = RecheckRequest.model_validate(payload)
        return recheck(request, settings, SageMaker(self.sagemaker))  # type: ignore[arg-type]

    def lock_release(self, payload: Any) -> Any:
        from functions.lock.logic import release
        from shared.models import StepRequest

        return release(StepRequest.model_validate(payload), self._table())

    def validate(self, payload: Any) -> Any:
        from functions.validate.logic import validate
        from shared.adapters.s3 import S3
        from shared.models import ValidateRequest
        from shared.settings import ValidateSettings

        settings = ValidateSettings.model_validate(
            {
                "PIPELINE_DEFAULTS": self.defaults,
                "DEFAULT_IMAGE_URI": IMAGE,
                "ARTIFACT_BUCKET": BUCKET,
                "DATA_PREFIX": "data/",
            }
        )
        # ValidateInput reads the data's header (issue 11): a small file under the data
        # prefix in moto's S3 (Simulator.__enter__) is what it finds
        return validate(ValidateRequest.model_validate(payload), settings, S3(self._s3()))

    @staticmethod
    def _s3() -> Any:
        import boto3

        return boto3.client("s3", region_name=REGION)

    def poll(self, payload: Any) -> Any:
        from functions.poll.logic import poll
        from shared.adapters.sagemaker import SageMaker
        from shared.models import PollRequest

        return poll(PollRequest.model_validate(payload), SageMaker(self.sagemaker))  # type: ignore[arg-type]

    def _started(self, kind: Any, step: str, config: Any) -> Any:
        """The real start-state poll: the step's history looked up as the Lambdas do."""
        from shared.adapters.sagemaker import SageMaker
        from shared.schedule import job_first_poll

        adapter = SageMaker(self.sagemaker)  # type: ignore[arg-type]
        return job_first_poll(adapter, kind, step, "InProgress", config)

    @staticmethod
    def _uri(execution: str, step: str, leaf: str) -> str:
        return f"s3://{BUCKET}/runs/{execution}/{step}/{leaf}"

    def preprocess(self, payload: Any) -> Any:
        from shared.models import PreprocessOutput, StepRequest
        from shared.naming import resource_name

        request = StepRequest.model_validate(payload)
        name = request.execution_name
        job = resource_name(name, "preprocess")
        self.sagemaker.start_job(job, self.durations["preprocess"])
        return PreprocessOutput(
            job_name=job,
            reused=False,
            **{
                f"{split}_uri": self._uri(name, "preprocess", split)
                for split in ("train", "validation", "test", "profile", "sample")
            },
            poll=self._started("processing", "preprocess", request.config),
        )

    def train(self, payload: Any) -> Any:
        from shared.models import TrainOutput, TrainRequest
        from shared.naming import resource_name

        request = TrainRequest.model_validate(payload)
        job = resource_name(request.execution_name, "train")
        self.sagemaker.start_job(job, self.durations["train"])
        return TrainOutput(
            job_name=job,
            reused=False,
            model_artifact_uri=self._uri(request.execution_name, "train", "model.tar.gz"),
            poll=self._started("training", "train", request.config),
        )

    def evaluate(self, payload: Any) -> Any:
        from shared.models import EvaluateOutput, EvaluateRequest
        from shared.naming import resource_name

        request = EvaluateRequest.model_validate(payload)
        job = resource_name(request.execution_name, "evaluate")
        self.sagemaker.start_job(job, self.durations["evaluate"])
        return EvaluateOutput(
            job_name=job,
            reused=False,
            report_uri=self._uri(request.execution_name, "evaluate", "evaluation.json"),
            champion_model_uri=None,
            poll=self._started("processing", "evaluate", request.config),
        )

    def gate(self, payload: Any) -> Any:
        from shared.models import GateOutput, GateRequest

        request = GateRequest.model_validate(payload)
        objective = request.config.objective
        return GateOutput(
            passed=True,
            deploy=request.config.deploy_mode == "auto",
            approval_status="Approved",
            reasons=["first model: no champion"],
            metric=objective.name,
            challenger=max(objective.threshold, 0.9),
            champion=None,
        )

    def register(self, payload: Any) -> Any:
        from shared.models import RegisterOutput, RegisterRequest

        request = RegisterRequest.model_validate(payload)
        group = request.config.model_package_group
        return RegisterOutput(
            model_package_arn=f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{group}/1",
            model_package_group=group,
            approval_status="Approved",
            reused=False,
        )

    def deploy(self, payload: Any) -> Any:
        from shared.adapters.sagemaker import SageMaker
        from shared.models import DeployOutput, DeployRequest
        from shared.naming import resource_name
        from shared.schedule import endpoint_history, first_poll

        request = DeployRequest.model_validate(payload)
        endpoint = request.config.endpoint_name
        config_name = resource_name(request.execution_name, "endpointcfg")
        existing = SageMaker(self.sagemaker).describe_endpoint(endpoint)  # type: ignore[arg-type]
        history = (
            endpoint_history(SageMaker(self.sagemaker), existing)  # type: ignore[arg-type]
            if request.config.poll_schedule == "predictive"
            else None
        )
        self.sagemaker.start_endpoint(endpoint, config_name, self.durations["endpoint"])
        return DeployOutput(
            endpoint_name=endpoint,
            endpoint_config_name=config_name,
            model_name=resource_name(request.execution_name, "model"),
            action="create" if existing is None else "update",
            job_name=endpoint,
            poll=first_poll("InProgress", request.config, history),
            model_package_arn=request.candidate.model_package_arn,
            sample_uri=request.candidate.sample_uri,
        )

    def invoke(self, payload: Any) -> Any:
        from shared.models import InvokeOutput, InvokeRequest

        request = InvokeRequest.model_validate(payload)
        return InvokeOutput(
            endpoint_name=request.endpoint_name, row_count=2, predictions=[0.1, 0.9]
        )


# --- the harness -------------------------------------------------------------------------------


@dataclass
class ExecutionCount:
    status: str
    transitions: int
    lambda_invokes: dict[str, int]  # function name -> invocations
    loop_transitions: dict[str, int]  # step -> states entered in its Start/Choice/Wait/Poll loop
    polls: dict[str, int]  # step -> polls (Poll states entered)
    simulated_seconds: float
    lags: dict[str, float] = field(default_factory=dict)  # job/endpoint -> end to detection
    error: str | None = None
    entered: list[str] = field(default_factory=list)  # state names, in order

    def median_lag(self) -> float:
        return statistics.median(self.lags.values())

    def worst_lag(self) -> float:
        return max(self.lags.values())

    def lag(self, step: str) -> float:
        return next(v for k, v in self.lags.items() if f"-{step}-" in k or k == step)

    def usd(self) -> dict[str, float]:
        from shared.resources import FUNCTIONS

        memory = {spec.function_name: spec.memory_mb for spec in FUNCTIONS}
        requests = sum(self.lambda_invokes.values())
        gb_seconds = sum(
            n * memory.get(fn, 128) / 1024 * LAMBDA_BILLED_MS / 1000
            for fn, n in self.lambda_invokes.items()
        )
        sfn = self.transitions * SFN_USD_PER_TRANSITION
        lam = requests * LAMBDA_USD_PER_REQUEST + gb_seconds * LAMBDA_USD_PER_GB_SECOND
        return {"sfn": sfn, "lambda": lam, "total": sfn + lam}


#: Each job's loop (state_machine/definition.py poll_loop): Start -> (Wait -> Poll -> Choice)
#: per poll. The last name is the poll.
LOOP_STATES = {
    "preprocess": (
        "StartPreprocessing",
        "WaitForPreprocessing",
        "IsPreprocessingComplete",
        "PollPreprocessing",
    ),
    "train": ("StartTraining", "WaitForTraining", "IsTrainingComplete", "PollTraining"),
    "evaluate": ("StartEvaluation", "WaitForEvaluation", "IsEvaluationComplete", "PollEvaluation"),
    "endpoint": ("UpdateEndpoint", "WaitForEndpoint", "IsEndpointInService", "PollEndpoint"),
}


def count(
    history: list[dict[str, Any]],
) -> tuple[int, dict[str, int], dict[str, int], dict[str, int]]:
    """(transitions, Lambda invocations per function, transitions per loop, polls per loop)."""
    entered = [e for e in history if e["type"].endswith("StateEntered")]
    names = [e["stateEnteredEventDetails"]["name"] for e in entered]
    invokes: dict[str, int] = {}
    for event in history:
        details = event.get("taskScheduledEventDetails")
        if (
            event["type"] != "TaskScheduled"
            or not details
            or details.get("resourceType") != "lambda"
        ):
            continue
        fn = str(json.loads(details["parameters"]).get("FunctionName", "?"))
        fn = fn.split(":function:", 1)[-1].split(":", 1)[0]
        invokes[fn] = invokes.get(fn, 0) + 1
    loops = {step: sum(names.count(s) for s in states) for step, states in LOOP_STATES.items()}
    polls = {step: names.count(states[-1]) for step, states in LOOP_STATES.items()}
    return len(entered), invokes, loops, polls


@contextlib.contextmanager
def _simulated_aws(clock: SimClock) -> Iterator[None]:
    """moto in-process with its ASL interpreter on; Wait states advance `clock`; no real
    AWS credentials or endpoints reachable; everything restored on exit."""
    from moto import mock_aws
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function

    saved_env = {k: os.environ.get(k) for k in _ENV}
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        saved_env.setdefault(key, os.environ.get(key))
        os.environ.pop(key, None)
    os.environ.update(_ENV)
    original_wait = wait_function.WaitFunction.__dict__["_wait_interval"]
    original_time = vars(retrier_decl)["time"]

    def wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        clock.advance(wait_seconds)

    class _RetryTime:  # retry back-offs advance the clock too
        @staticmethod
        def sleep(seconds: float) -> None:
            clock.now += seconds

    from shared.observability import logger

    level = logger.log_level
    logger.setLevel("WARNING")  # the real lock logic's INFO lines would flood the output
    config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    wait_function.WaitFunction._wait_interval = wait_interval  # type: ignore[method-assign]
    setattr(retrier_decl, "time", _RetryTime)  # noqa: B010 - not re-exported by moto
    undo: list[tuple[Any, str, Any]] = []

    class _Patches:  # $$.Execution.RedriveCount in the context object, as on AWS
        @staticmethod
        def set(owner: Any, name: str, value: Any) -> None:
            undo.append((owner, name, vars(owner)[name]))
            setattr(owner, name, value)

    from sfn_mlops.local.sfn import install_context

    install_context(_Patches)
    try:
        with mock_aws(config=config):  # type: ignore[call-overload]
            yield
    finally:
        logger.setLevel(level)
        for owner, name, old in reversed(undo):
            setattr(owner, name, old)
        wait_function.WaitFunction._wait_interval = original_wait  # type: ignore[method-assign]
        setattr(retrier_decl, "time", original_time)  # noqa: B010
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


def _deploy(dispatcher: Any, handlers: dict[str, Any]) -> str:
    """The stack's one deploy into moto (sfn_mlops.local.stack.deploy_pipeline), with the
    clocked handlers registered in-process; returns the state machine's ARN."""
    import boto3

    from sfn_mlops.local.stack import deploy_pipeline

    def register(spec: Any, _arn: str, _env: dict[str, str]) -> None:
        dispatcher.register(spec.function_name, _dumped(handlers[spec.key]))

    pipeline = deploy_pipeline(
        lambda service: boto3.client(service, region_name=REGION),
        on_function=register,
        only_definition_functions=True,
    )
    return pipeline.state_machine_arn


def _dumped(handler: Any) -> Any:
    def call(payload: Any) -> Any:
        return handler(payload).model_dump(mode="json")

    return call


class Simulator:
    """The stack deployed once in moto; `execute()` runs one execution on a fresh clock."""

    def __init__(self) -> None:
        from shared.resources import pipeline_defaults

        self.defaults = pipeline_defaults()
        self.clock = SimClock()
        self.sagemaker = ClockedSageMakerClient(self.clock)
        self.pipeline = ClockedPipeline(self.clock, self.sagemaker, {}, self.defaults)
        self._stack = contextlib.ExitStack()
        self._runs = 0

    def __enter__(self) -> Simulator:
        import boto3

        from sfn_mlops.local.lambdas import LambdaDispatcher

        dispatcher = LambdaDispatcher()
        self._stack.enter_context(_simulated_aws(self.clock))
        self._stack.enter_context(dispatcher.install())
        boto3.client("dynamodb", region_name=REGION).create_table(
            **resources.coordination_table_request()
        )
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="data/bench.csv", Body=b"f0,target\n1.0,0\n2.0,1\n")
        self.machine = _deploy(dispatcher, self.pipeline.handlers())
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def forget(self) -> None:
        """A fresh account: no earlier jobs or endpoint (the next run is a first run)."""
        self.sagemaker.jobs.clear()
        self.sagemaker.endpoints.clear()
        self.sagemaker.configs.clear()

    def execute(self, durations: dict[str, float], payload: dict[str, Any]) -> ExecutionCount:
        """One execution whose jobs take `durations` (step -> seconds); `payload` = its input.
        What earlier executions left (jobs, the endpoint) stays, a simulated day earlier."""
        self.sagemaker.offset += 86_400 + self.clock.now
        self.clock.now, self.clock.waits = 0.0, []
        since = self.sagemaker.now
        self.pipeline.durations = durations
        self._runs += 1
        sfn = self.sfn
        arn = sfn.start_execution(
            stateMachineArn=self.machine, name=f"bench-{self._runs}", input=json.dumps(payload)
        )["executionArn"]
        deadline = time.monotonic() + EXECUTION_DEADLINE_SECONDS
        while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            if time.monotonic() > deadline:
                sfn.stop_execution(executionArn=arn)
                raise TimeoutError(
                    f"simulated execution still RUNNING after {EXECUTION_DEADLINE_SECONDS}s"
                )
            time.sleep(0.01)
        history: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
        while True:
            page = sfn.get_execution_history(**kwargs)
            history.extend(dict(e) for e in page["events"])
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
        transitions, invokes, loops, polls = count(history)
        return ExecutionCount(
            status=described["status"],
            transitions=transitions,
            lambda_invokes=invokes,
            loop_transitions=loops,
            polls=polls,
            simulated_seconds=self.clock.now,
            lags=self.sagemaker.lags(since),
            entered=[
                e["stateEnteredEventDetails"]["name"]
                for e in history
                if e["type"].endswith("StateEntered")
            ],
            error=None
            if described["status"] == "SUCCEEDED"
            else f"{described.get('error')}: {described.get('cause')}",
        )


def fixed_interval_overrides(defaults: dict[str, Any], longest_seconds: float) -> dict[str, Any]:
    """The baseline: poll every poll_interval_seconds, enough polls to outlast the job."""
    interval = int(defaults["poll_interval_seconds"])
    return {
        "max_poll_interval_seconds": interval,
        "max_polls": min(
            500, max(int(defaults["max_polls"]), math.ceil(longest_seconds / interval) + 2)
        ),
    }


def noisy_durations(training_seconds: float, run: int) -> dict[str, float]:
    """Run `run`'s job durations: the nominal ones times a seeded uniform ±NOISE factor each
    (the same draw for every schedule, so they face the same jobs)."""
    rng = random.Random(f"{SEED}-{training_seconds}-{run}")
    nominal = {
        "preprocess": OTHER_JOB_SECONDS,
        "train": training_seconds,
        "evaluate": OTHER_JOB_SECONDS,
        "endpoint": OTHER_JOB_SECONDS,
    }
    return {step: s * rng.uniform(1 - NOISE, 1 + NOISE) for step, s in nominal.items()}


def run(quick: bool = False) -> list[dict[str, Any]]:
    from shared.resources import pipeline_defaults

    defaults = pipeline_defaults()
    durations = [BASE_SECONDS * m for m in MULTIPLES]
    longest = max(*durations, defaults["max_runtime_seconds"]) * (1 + NOISE)
    fixed = fixed_interval_overrides(defaults, longest)
    schedules: dict[str, dict[str, Any]] = {
        "predictive": {**RUNS_WITHOUT_STAGING},
        "adaptive": {"poll_schedule": "adaptive", **RUNS_WITHOUT_STAGING},
        "fixed": {"poll_schedule": "adaptive", **fixed, **RUNS_WITHOUT_STAGING},
    }
    settings = (
        f"defaults: poll_schedule={defaults['poll_schedule']}, "
        f"end_poll_interval_seconds={defaults['end_poll_interval_seconds']}, "
        f"prediction_margin={defaults['prediction_margin']}, "
        f"poll_interval_seconds={defaults['poll_interval_seconds']}, "
        f"max_poll_interval_seconds={defaults['max_poll_interval_seconds']}, "
        f"max_polls={defaults['max_polls']}; adaptive = today's doubling schedule; "
        f"fixed: {defaults['poll_interval_seconds']} s, max_polls={fixed['max_polls']}; "
        f"processing jobs and endpoint {OTHER_JOB_SECONDS} s nominal; every job ±{NOISE:.0%} "
        f"(uniform, seed {SEED}); second run = the first run's jobs and endpoint as history"
    )
    results: dict[tuple[int, str], tuple[ExecutionCount, ExecutionCount]] = {}
    with Simulator() as sim:
        for multiple, seconds in zip(MULTIPLES, durations, strict=True):
            jobs = (noisy_durations(seconds, 1), noisy_durations(seconds, 2))
            for name, overrides in schedules.items():
                sim.forget()
                if name == "fixed":  # uses no history: one run (the second run's jobs) is it
                    only = sim.execute(jobs[1], overrides)
                    pair = (only, only)
                else:
                    pair = (sim.execute(jobs[0], overrides), sim.execute(jobs[1], overrides))
                for label, result in zip(("first", "second"), pair, strict=True):
                    if result.status != "SUCCEEDED":
                        raise RuntimeError(
                            f"{name} {label} run, {seconds}s training: {result.error}"
                        )
                results[multiple, name] = pair
    rows: list[dict[str, Any]] = []
    for multiple, seconds in zip(MULTIPLES, durations, strict=True):
        duration = _human(seconds)
        (p1, p2), (a1, a2), (_, f2) = (results[multiple, n] for n in schedules)
        first = multiple == MULTIPLES[0]
        rows.append(
            figure(
                "5 lag",
                f"detection lag, median of the 4 waits, training {duration}, second run",
                p2.median_lag(),
                "adaptive schedule",
                a2.median_lag(),
                "s",
                f"≤ {GOAL_MEDIAN_LAG} s",
                p2.median_lag() <= GOAL_MEDIAN_LAG,
                note=(
                    f"training wait {p2.lag('train'):.0f} s vs {a2.lag('train'):.0f} s "
                    f"(fixed {f2.lag('train'):.0f} s); first run (no history) median "
                    f"{p1.median_lag():.0f} s vs {a1.median_lag():.0f} s; fixed 60 s median "
                    f"{f2.median_lag():.0f} s" + (f"; {settings}" if first else "")
                ),
            )
        )
        rows.append(
            figure(
                "5 lag",
                f"detection lag, worst of the 4 waits, training {duration}, second run",
                p2.worst_lag(),
                "adaptive schedule",
                a2.worst_lag(),
                "s",
                f"≤ {GOAL_WORST_LAG} s",
                p2.worst_lag() <= GOAL_WORST_LAG,
                note=(
                    f"first run worst {p1.worst_lag():.0f} s vs {a1.worst_lag():.0f} s; fixed 60 s "
                    f"worst {f2.worst_lag():.0f} s; simulated execution "
                    f"{_human(p2.simulated_seconds)} vs {_human(a2.simulated_seconds)} adaptive, "
                    f"{_human(f2.simulated_seconds)} fixed, jobs "
                    + "/".join(f"{v:.0f}" for v in noisy_durations(seconds, 2).values())
                    + " s"
                ),
            )
        )
        rows.append(
            figure(
                "5 transitions",
                f"per execution, training {duration} ({multiple}×), second run",
                float(p2.transitions),
                "adaptive schedule",
                float(a2.transitions),
                "transitions",
                f"≤ {GOAL_TRANSITIONS}",
                p2.transitions <= GOAL_TRANSITIONS,
                note=(
                    f"first run {p1.transitions} vs {a1.transitions}; fixed 60 s "
                    f"{f2.transitions}; training loop {p2.loop_transitions['train']} vs "
                    f"{a2.loop_transitions['train']}; Lambda invokes "
                    f"{sum(p2.lambda_invokes.values())} vs {sum(a2.lambda_invokes.values())}"
                ),
            )
        )
        p_cost, a_cost, f_cost = p2.usd(), a2.usd(), f2.usd()
        rows.append(
            figure(
                "5 cost",
                f"USD per execution, training {duration} ({multiple}×), second run",
                p_cost["total"],
                "adaptive schedule",
                a_cost["total"],
                "USD",
                "—",
                None,
                note=(
                    f"fixed 60 s ${f_cost['total']:.6f}; Step Functions ${p_cost['sfn']:.6f} "
                    f"+ Lambda ${p_cost['lambda']:.6f}; first run ${p1.usd()['total']:.6f}"
                    + (f"; {PRICES_NOTE}" if multiple == MULTIPLES[-1] else "")
                ),
            )
        )
    rows += lock_rows(results[MULTIPLES[0], "predictive"][1])
    # Growth: on the second run the schedule aims at the predicted end, so the polls of the
    # training job should not grow with its duration (adaptive: log2(10) = 3.3 per decade).
    decades = math.log10(MULTIPLES[-1] / MULTIPLES[0])
    polls = {name: [results[m, name][1].polls["train"] for m in MULTIPLES] for name in schedules}
    per_decade = {name: (p[-1] - p[0]) / decades for name, p in polls.items()}
    rows.append(
        figure(
            "5 transitions",
            "training polls added per 10× job duration, second run",
            per_decade["predictive"],
            "adaptive schedule",
            per_decade["adaptive"],
            "polls/decade",
            "≤ 1 (flat)",
            per_decade["predictive"] <= 1,
            note=(
                "polls of the training job at 1×/10×/100×: "
                + "; ".join(f"{n} " + "/".join(map(str, p)) for n, p in polls.items())
                + " (a poll = Wait + Poll + Choice = 3 transitions)"
            ),
        )
    )
    return rows


#: The states the deployment lock and the fresh decision add between ShouldDeploy and
#: UpdateEndpoint, and after SmokeTest (state_machine/definition.py deploy_lock_steps).
LOCK_STATES = (
    "AcquireDeployLock",
    "IsDeployLockHeld",
    "WaitForDeployLock",
    "CheckChampion",
    "ChampionChanged",
    "WaitForRecheck",
    "PollRecheck",
    "IsRecheckComplete",
    "FreshGate",
    "StillBetter",
    "UpdateRegistration",
    "ReleaseDeployLock",
)
LOCK_FUNCTIONS = ("lock-acquire", "recheck", "lock-release")
#: DynamoDB on-demand, us-east-1 (https://aws.amazon.com/dynamodb/pricing/on-demand/).
DYNAMODB_USD_PER_WRITE = 0.625 / 1_000_000
#: Uncontended: AcquireDeployLock's conditional PutItem and ReleaseDeployLock's DeleteItem
#: (1 write request unit each, items < 1 KB); no read (GetItem only when the lock is held).
LOCK_WRITES = 2


def lock_rows(uncontended: ExecutionCount) -> list[dict[str, Any]]:
    """What the deployment lock adds to an uncontended execution (issue 10): its states'
    transitions and their cost (Step Functions, the three Lambda invokes, DynamoDB writes)."""
    added = sum(1 for name in uncontended.entered if name in LOCK_STATES)
    passed = [name for name in LOCK_STATES if name in uncontended.entered]
    names = {resources.FUNCTIONS_BY_KEY[k].function_name: k for k in LOCK_FUNCTIONS}
    invokes = {fn: n for fn, n in uncontended.lambda_invokes.items() if fn in names}
    memory = {resources.FUNCTIONS_BY_KEY[k].function_name: resources.FUNCTIONS_BY_KEY[k].memory_mb
              for k in LOCK_FUNCTIONS}  # fmt: skip
    lam = sum(
        n * (LAMBDA_USD_PER_REQUEST + memory[fn] / 1024 * LAMBDA_BILLED_MS / 1000
             * LAMBDA_USD_PER_GB_SECOND)
        for fn, n in invokes.items()
    )  # fmt: skip
    sfn = added * SFN_USD_PER_TRANSITION
    ddb = LOCK_WRITES * DYNAMODB_USD_PER_WRITE
    total = uncontended.usd()["total"] + ddb
    return [
        figure(
            "5 transitions",
            "added by the deployment lock, uncontended (training 36 s)",
            float(added),
            "the whole execution",
            float(uncontended.transitions),
            "transitions",
            "—",
            None,
            note=(
                f"{', '.join(passed)}; {sum(invokes.values())} Lambda invokes "
                f"({', '.join(LOCK_FUNCTIONS)}); a waiting execution adds 3 per wait "
                "(Wait + Acquire + Choice), bounded by max_polls"
            ),
        ),
        figure(
            "5 cost",
            "USD added by the deployment lock, uncontended",
            sfn + lam + ddb,
            "the whole execution",
            total,
            "USD",
            "—",
            None,
            note=(
                f"Step Functions ${sfn:.6f} + Lambda ${lam:.7f} + DynamoDB ${ddb:.7f} "
                f"({LOCK_WRITES} on-demand writes at $0.625/M, "
                "https://aws.amazon.com/dynamodb/pricing/on-demand/)"
            ),
        ),
    ]


def _human(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv[1:]), indent=2))
