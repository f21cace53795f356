"""Figure 5 — state transitions and cost per execution, for training jobs lasting 1×, 10× and
100× a base duration (36 s, 6 min, 1 h), without waiting in real time.

How: the committed definition (state_machine/asl.json, placeholders substituted) runs in
moto's ASL interpreter (in-process ``mock_aws``). Every SageMaker job and the endpoint live on
a *simulated clock*: a job started at t finishes at t + its duration. The Wait states advance
that clock by their SecondsPath value instead of sleeping (moto's
``WaitFunction._wait_interval`` is patched for the run of this module only). The polls are
the real poll logic (``functions.poll.logic.poll``) against a SageMaker client whose
Describe* answers follow the clock, and ValidateInput is the real validation logic on the
real pipeline defaults (config/pipeline.yaml: poll_interval_seconds, max_poll_interval_seconds,
max_polls). The other Lambdas are fakes that start a job on the clock and answer their
output models (the job-starting ones with the real ``shared.jobs.initial_poll``).

Scenario: a first deployment (the gate passes, the endpoint is created). Processing jobs and
the endpoint take the base duration each; only the training job's duration varies.

A state transition = a history event whose type ends in ``StateEntered`` (what Step
Functions Standard bills: every state entered, Choice/Wait/Succeed included).

Baseline: the same execution with a fixed-interval poll (the first poll interval with no
backoff: max_poll_interval_seconds = poll_interval_seconds, and max_polls raised so the loop
can wait out the job) — so the ratio shows what adaptive polling saves.

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
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
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
GOAL_ONE_HOUR = 60
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
class ClockedSageMakerClient:
    """The few SageMaker client calls the poll logic makes; status follows the clock."""

    clock: SimClock
    jobs: dict[str, float] = field(default_factory=dict)  # job name -> end time
    endpoints: dict[str, tuple[str, float]] = field(default_factory=dict)  # -> (config, end)

    def start_job(self, name: str, seconds: float) -> None:
        self.jobs.setdefault(name, self.clock.now + seconds)

    def start_endpoint(self, name: str, config: str, seconds: float) -> None:
        self.endpoints[name] = (config, self.clock.now + seconds)

    def _job(self, name: str, operation: str) -> str:
        if name not in self.jobs:
            raise _not_found(operation, f"job {name}")
        return "Completed" if self.clock.now >= self.jobs[name] else "InProgress"

    def describe_training_job(self, TrainingJobName: str) -> dict[str, Any]:  # noqa: N803
        status = self._job(TrainingJobName, "DescribeTrainingJob")
        return {"TrainingJobName": TrainingJobName, "TrainingJobStatus": status}

    def describe_processing_job(self, ProcessingJobName: str) -> dict[str, Any]:  # noqa: N803
        status = self._job(ProcessingJobName, "DescribeProcessingJob")
        return {"ProcessingJobName": ProcessingJobName, "ProcessingJobStatus": status}

    def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:  # noqa: N803
        if EndpointName not in self.endpoints:
            raise _not_found("DescribeEndpoint", f"endpoint {EndpointName}")
        config, end = self.endpoints[EndpointName]
        status = "InService" if self.clock.now >= end else "Creating"
        return {
            "EndpointName": EndpointName,
            "EndpointStatus": status,
            "EndpointConfigName": config,
        }


# --- the pipeline's Lambdas: real validate and poll logic, clocked fakes for the rest ----------


@dataclass
class ClockedPipeline:
    clock: SimClock
    sagemaker: ClockedSageMakerClient
    training_seconds: float
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
        }

    def validate(self, payload: Any) -> Any:
        from functions.validate.logic import validate
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
        return validate(ValidateRequest.model_validate(payload), settings)

    def poll(self, payload: Any) -> Any:
        from functions.poll.logic import poll
        from shared.adapters.sagemaker import SageMaker
        from shared.models import PollRequest

        return poll(PollRequest.model_validate(payload), SageMaker(self.sagemaker))  # type: ignore[arg-type]

    def _started(self, config: Any) -> Any:
        from shared.jobs import initial_poll

        return initial_poll(
            "InProgress", config.poll_interval_seconds, config.max_poll_interval_seconds
        )

    @staticmethod
    def _uri(execution: str, step: str, leaf: str) -> str:
        return f"s3://{BUCKET}/runs/{execution}/{step}/{leaf}"

    def preprocess(self, payload: Any) -> Any:
        from shared.models import PreprocessOutput, StepRequest
        from shared.naming import resource_name

        request = StepRequest.model_validate(payload)
        name = request.execution_name
        job = resource_name(name, "preprocess")
        self.sagemaker.start_job(job, OTHER_JOB_SECONDS)
        return PreprocessOutput(
            job_name=job,
            reused=False,
            **{
                f"{split}_uri": self._uri(name, "preprocess", split)
                for split in ("train", "validation", "test", "profile", "sample")
            },
            poll=self._started(request.config),
        )

    def train(self, payload: Any) -> Any:
        from shared.models import TrainOutput, TrainRequest
        from shared.naming import resource_name

        request = TrainRequest.model_validate(payload)
        job = resource_name(request.execution_name, "train")
        self.sagemaker.start_job(job, self.training_seconds)
        return TrainOutput(
            job_name=job,
            reused=False,
            model_artifact_uri=self._uri(request.execution_name, "train", "model.tar.gz"),
            poll=self._started(request.config),
        )

    def evaluate(self, payload: Any) -> Any:
        from shared.models import EvaluateOutput, EvaluateRequest
        from shared.naming import resource_name

        request = EvaluateRequest.model_validate(payload)
        job = resource_name(request.execution_name, "evaluate")
        self.sagemaker.start_job(job, OTHER_JOB_SECONDS)
        return EvaluateOutput(
            job_name=job,
            reused=False,
            report_uri=self._uri(request.execution_name, "evaluate", "evaluation.json"),
            champion_model_uri=None,
            poll=self._started(request.config),
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
        from shared.models import DeployOutput, DeployRequest
        from shared.naming import resource_name

        request = DeployRequest.model_validate(payload)
        endpoint = request.config.endpoint_name
        config_name = resource_name(request.execution_name, "endpointcfg")
        self.sagemaker.start_endpoint(endpoint, config_name, OTHER_JOB_SECONDS)
        return DeployOutput(
            endpoint_name=endpoint,
            endpoint_config_name=config_name,
            model_name=resource_name(request.execution_name, "model"),
            action="create",
            job_name=endpoint,
            poll=self._started(request.config),
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
    error: str | None = None

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


LOOP_STATES = {
    "preprocess": (
        "StartPreprocessing",
        "IsPreprocessingComplete",
        "WaitForPreprocessing",
        "PollPreprocessing",
    ),
    "train": ("StartTraining", "IsTrainingComplete", "WaitForTraining", "PollTraining"),
    "evaluate": ("StartEvaluation", "IsEvaluationComplete", "WaitForEvaluation", "PollEvaluation"),
    "endpoint": ("UpdateEndpoint", "IsEndpointInService", "WaitForEndpoint", "PollEndpoint"),
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

    config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    wait_function.WaitFunction._wait_interval = wait_interval  # type: ignore[method-assign]
    setattr(retrier_decl, "time", _RetryTime)  # noqa: B010 - not re-exported by moto
    try:
        with mock_aws(config=config):  # type: ignore[call-overload]
            yield
    finally:
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
        self.pipeline = ClockedPipeline(self.clock, self.sagemaker, BASE_SECONDS, self.defaults)
        self._stack = contextlib.ExitStack()
        self._runs = 0

    def __enter__(self) -> Simulator:
        import boto3

        from sfn_mlops.local.lambdas import LambdaDispatcher

        dispatcher = LambdaDispatcher()
        self._stack.enter_context(_simulated_aws(self.clock))
        self._stack.enter_context(dispatcher.install())
        self.machine = _deploy(dispatcher, self.pipeline.handlers())
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def execute(self, training_seconds: float, payload: dict[str, Any]) -> ExecutionCount:
        """One execution with a training job of `training_seconds`; `payload` = its input."""
        self.clock.now, self.clock.waits = 0.0, []
        self.sagemaker.jobs.clear()
        self.sagemaker.endpoints.clear()
        self.pipeline.training_seconds = training_seconds
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


def run(quick: bool = False) -> list[dict[str, Any]]:
    from shared.resources import pipeline_defaults

    defaults = pipeline_defaults()
    durations = [BASE_SECONDS * m for m in MULTIPLES]
    fixed = fixed_interval_overrides(defaults, max(*durations, defaults["max_runtime_seconds"]))
    settings = (
        f"defaults: poll_interval_seconds={defaults['poll_interval_seconds']}, "
        f"max_poll_interval_seconds={defaults['max_poll_interval_seconds']}, "
        f"max_polls={defaults['max_polls']}; "
        f"baseline: fixed {defaults['poll_interval_seconds']} s, "
        f"max_polls={fixed['max_polls']}; processing jobs and endpoint {OTHER_JOB_SECONDS} s each"
    )
    rows: list[dict[str, Any]] = []
    results: dict[int, tuple[ExecutionCount, ExecutionCount]] = {}
    with Simulator() as sim:
        runs = {
            m: (sim.execute(seconds, {}), sim.execute(seconds, fixed))
            for m, seconds in zip(MULTIPLES, durations, strict=True)
        }
    for multiple, seconds in zip(MULTIPLES, durations, strict=True):
        adaptive, baseline = runs[multiple]
        for label, result in (("adaptive", adaptive), ("fixed", baseline)):
            if result.status != "SUCCEEDED":
                raise RuntimeError(f"{label} execution for {seconds}s training: {result.error}")
        results[multiple] = (adaptive, baseline)
        duration = _human(seconds)
        one_hour = seconds >= 3600
        a_cost, b_cost = adaptive.usd(), baseline.usd()
        rows.append(
            figure(
                "5 transitions",
                f"per execution, training {duration} ({multiple}×)",
                float(adaptive.transitions),
                "fixed-interval poll",
                float(baseline.transitions),
                "transitions",
                f"≤ {GOAL_ONE_HOUR} (1 h job)" if one_hour else "~log growth",
                adaptive.transitions <= GOAL_ONE_HOUR if one_hour else None,
                note=(
                    f"training loop {adaptive.loop_transitions['train']} vs "
                    f"{baseline.loop_transitions['train']}; Lambda invokes "
                    f"{sum(adaptive.lambda_invokes.values())} vs "
                    f"{sum(baseline.lambda_invokes.values())}; simulated "
                    f"{_human(adaptive.simulated_seconds)} vs {_human(baseline.simulated_seconds)}"
                    + (f"; {settings}" if multiple == 1 else "")
                ),
            )
        )
        rows.append(
            figure(
                "5 cost",
                f"USD per execution, training {duration} ({multiple}×)",
                a_cost["total"],
                "fixed-interval poll",
                b_cost["total"],
                "USD",
                "—",
                None,
                note=(
                    f"Step Functions ${a_cost['sfn']:.6f} + Lambda ${a_cost['lambda']:.6f} "
                    f"(baseline ${b_cost['sfn']:.6f} + ${b_cost['lambda']:.6f})"
                    + (f"; {PRICES_NOTE}" if multiple == MULTIPLES[-1] else "")
                ),
            )
        )
    # Growth: logarithmic growth adds a constant number of polls per 10x of duration; pure
    # doubling adds log2(10) = 3.3 polls per decade (allow +1 for rounding and the cap).
    decades = math.log10(MULTIPLES[-1] / MULTIPLES[0])
    polls = {m: tuple(r.polls["train"] for r in pair) for m, pair in results.items()}
    per_decade = (polls[MULTIPLES[-1]][0] - polls[MULTIPLES[0]][0]) / decades
    per_decade_fixed = (polls[MULTIPLES[-1]][1] - polls[MULTIPLES[0]][1]) / decades
    goal = math.log2(10) + 1
    rows.append(
        figure(
            "5 transitions",
            "training polls added per 10× job duration",
            per_decade,
            "fixed-interval poll",
            per_decade_fixed,
            "polls/decade",
            f"≤ {goal:.1f} (log: log2(10)+1)",
            per_decade <= goal,
            note=(
                "polls of the training job at 1×/10×/100×: "
                + "/".join(str(polls[m][0]) for m in MULTIPLES)
                + " adaptive vs "
                + "/".join(str(polls[m][1]) for m in MULTIPLES)
                + " fixed (a poll = Wait + Poll + Choice = 3 transitions)"
            ),
        )
    )
    return rows


def _human(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv[1:]), indent=2))
