"""The pipeline as a Step Functions Standard workflow, composed from small step factories.

Data flow (JSONPath; the Lambdas in functions/ and this module agree on it):

- ValidateInput receives the raw payload plus the execution's name and ARN and *replaces*
  the state with its ValidateOutput: ``{config, execution_name, execution_arn}``.
- Every other Lambda gets the whole state as its payload and its result lands under its
  own key (``$.preprocess``, ``$.train``, ``$.evaluate``, ``$.gate``, ``$.register``,
  ``$.deploy``, ``$.smoke_test``). A ResultSelector picks exactly the fields of the step's
  output model from ``$.Payload``, so the pydantic output model *is* the JSONPath contract.
- A job (or endpoint) start returns a ``poll`` object whose ``wait_seconds`` is the first
  wait: ``WaitFor<Step>`` (SecondsPath) then ``Poll<Step>`` refresh it, and
  ``Is<Step>Complete`` branches on its status (again, Completed, or Restart).
  The poll Lambda raises PollLimitExceededError after ``config.max_polls``, so a loop
  adds at most ``max_polls`` iterations to the history.
- Redrive-first failure handling: a Task retries its transient errors, and any other error
  fails the execution *at that Task* (no Catch, no Fail state), so a console Redrive
  continues from it. A poll that restarts its step (``poll.status == "Restart"``: a transient
  SageMaker failure, or a redrive after a failed job) goes through ``Restart<Step>`` (Wait)
  back to the start state, which starts the job's next attempt (shared/job_retry.py). Each
  start state records ``$$.Execution.RedriveCount`` in its result, so the poll can tell.
- Failure notifications come from EventBridge (execution status change -> SNS, infra/), not
  from states; NotifySuccess publishes the decision ($.gate) and the package ($.register) as
  the last state of every successful run (a registry approval's run gets both from
  ValidateInput). Every execution passes through few fixed states: figure 5 counts them.

Rendering is pure: no AWS region, credentials or calls. Lambda ARNs and the topic ARN
are ``${...}`` placeholders filled by CDK's definition substitutions (and the local cloud).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from stepfunctions.steps import Choice, ChoiceRule, Graph, Retry, Task, Wait
from stepfunctions.steps.states import State

from shared import errors, models
from shared.resources import (
    EXECUTION_TIMEOUT_SECONDS,
    FUNCTIONS_BY_KEY,
    PROJECT,
    TOPIC_PLACEHOLDER,
)

# Written out rather than taken from the SDK's LambdaStep/SnsPublishStep, whose ARNs depend
# on the region of the boto3 session in the environment (rendering must not).
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
SNS_PUBLISH = "arn:aws:states:::sns:publish"
#: The callback pattern: the publish's message carries $$.Task.Token; the state waits for
#: SendTaskSuccess/SendTaskFailure with it (or its TimeoutSecondsPath).
SNS_PUBLISH_CALLBACK = f"{SNS_PUBLISH}.waitForTaskToken"

#: AWS's recommended retrier for Lambda service errors, plus throttling (the Lambda docs'
#: "Handling errors" page; tests/unit/state_machine/test_lambda_seam.py reproduces each).
LAMBDA_TRANSIENT_ERRORS = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.TooManyRequestsException",
)
#: Transient SNS errors as the optimised integration names them ("SNS.<Code>Exception").
SNS_TRANSIENT_ERRORS = (
    "SNS.ThrottledException",
    "SNS.InternalErrorException",
    "SNS.KMSThrottlingException",
)
ALL_ERRORS = "States.ALL"

#: Seconds a Lambda Task waits beyond the function's own timeout (invoke overhead, cold start).
LAMBDA_TASK_TIMEOUT_MARGIN_SECONDS = 30
SNS_TASK_TIMEOUT_SECONDS = 30


def retry_policy(
    errors: Iterable[str], *, interval: int, max_attempts: int, backoff: float
) -> dict[str, Any]:
    """One retrier's settings, in the SDK's `Retry(**policy)` keywords."""
    return {
        "error_equals": list(errors),
        "interval_seconds": interval,
        "max_attempts": max_attempts,
        "backoff_rate": backoff,
    }


LAMBDA_RETRIES = (
    retry_policy(LAMBDA_TRANSIENT_ERRORS, interval=2, max_attempts=6, backoff=2.0),
    # the pipeline's own transient errors (throttled AWS calls inside a function)
    retry_policy(
        [e.__name__ for e in errors.RETRYABLE_ERRORS], interval=5, max_attempts=4, backoff=2.0
    ),
)
#: A job start refused by a quota (ResourceLimitExceeded): minutes, not seconds, free it up.
JOB_START_RETRIES = (
    retry_policy(
        [e.__name__ for e in errors.CAPACITY_ERRORS], interval=60, max_attempts=3, backoff=2.0
    ),
)
SNS_RETRIES = (retry_policy(SNS_TRANSIENT_ERRORS, interval=2, max_attempts=3, backoff=2.0),)
#: The context object's redrive count, recorded by each start state (models.Restartable).
REDRIVE_COUNT = "$$.Execution.RedriveCount"


# --- SDK extensions: ASL fields the SDK (2.3) does not know -----------------------------------


class _ExtraField(enum.Enum):
    """Snake-case names the SDK pascal-cases on output, like its own `Field` enum."""

    ResultSelector = "result_selector"


class SelectingTask(Task):  # type: ignore[misc]
    """A Task with `ResultSelector` (reshape the raw result before ResultPath)."""

    def allowed_fields(self) -> list[Any]:
        return [*super().allowed_fields(), _ExtraField.ResultSelector]


# --- the one Retry/Catch helper ---------------------------------------------------------------


def with_error_handling(task: Task, *, retries: Iterable[Mapping[str, Any]]) -> Task:
    """Give `task` its retriers, and no Catch: an error that is not retried away fails the
    execution at `task`, so Redrive restarts there (a catch-all into a Fail state would make
    the Fail state the one a Redrive reruns). No error in this workflow is part of its logic:
    restarts are poll results (``status: Restart``), not caught errors."""
    for policy in retries:
        if ALL_ERRORS in policy["error_equals"]:
            raise ValueError("States.ALL would retry permanent errors too: name the errors")
        task.add_retry(Retry(**policy))
    return task


# --- step factories ---------------------------------------------------------------------------


def result_selector(model: type[BaseModel]) -> dict[str, str]:
    """``{"<field>.$": "$.Payload.<field>"}`` for every field of a Lambda's output model."""
    return {f"{name}.$": f"$.Payload.{name}" for name in model.model_fields}


def lambda_step(
    state_id: str,
    function_key: str,
    *,
    payload: Mapping[str, Any] | str,
    output_model: type[BaseModel],
    result_path: str,
    comment: str,
    retries: Iterable[Mapping[str, Any]] = LAMBDA_RETRIES,
) -> Task:
    """Invoke one of the pipeline's functions (shared.resources.FUNCTIONS) and keep exactly
    the fields of its output model. `payload` is a Parameters object, or a JSONPath that
    becomes the whole payload. A `Restartable` output's redrive_count comes from the
    context object, not from the function."""
    spec = FUNCTIONS_BY_KEY[function_key]
    if spec.asl_placeholder is None:
        raise ValueError(f"function {function_key!r} has no ASL placeholder")
    parameters: dict[str, Any] = {"FunctionName": f"${{{spec.asl_placeholder}}}"}
    if isinstance(payload, str):
        parameters["Payload.$"] = payload
    else:
        parameters["Payload"] = dict(payload)
    selector = result_selector(output_model)
    if issubclass(output_model, models.Restartable):
        selector["redrive_count.$"] = REDRIVE_COUNT
    task = SelectingTask(
        state_id,
        comment=comment,
        resource=LAMBDA_INVOKE,
        parameters=parameters,
        result_selector=selector,
        result_path=result_path,
        timeout_seconds=spec.timeout_seconds + LAMBDA_TASK_TIMEOUT_MARGIN_SECONDS,
    )
    return with_error_handling(task, retries=retries)


def validate_step() -> Task:
    return lambda_step(
        "ValidateInput",
        "validate",
        payload={
            "payload.$": "$",
            "execution_name.$": "$$.Execution.Name",
            "execution_arn.$": "$$.Execution.Id",
        },
        output_model=models.ValidateOutput,
        result_path="$",
        comment="Payload over config/pipeline.yaml defaults; a bad field fails the run here",
    )


def start_step(
    state_id: str,
    function_key: str,
    output_model: type[BaseModel],
    result_key: str,
    comment: str,
) -> Task:
    """A Lambda that gets the whole state and answers at $.<key> (a job start: its retries)."""
    return lambda_step(
        state_id,
        function_key,
        payload="$",
        output_model=output_model,
        result_path=f"$.{result_key}",
        comment=comment,
        retries=(*LAMBDA_RETRIES, *JOB_START_RETRIES)
        if issubclass(output_model, models.Restartable)
        else LAMBDA_RETRIES,
    )


def poll_payload(result_key: str, *, endpoint: bool = False) -> dict[str, str]:
    """The PollRequest for the job (or endpoint) recorded at $.<result_key>."""
    payload = {
        "job_name.$": f"$.{result_key}.job_name",
        "job_type.$": f"$.{result_key}.job_type",
        "attempt.$": f"$.{result_key}.poll.attempt",
        "poll_interval_seconds.$": "$.config.poll_interval_seconds",
        "max_poll_interval_seconds.$": "$.config.max_poll_interval_seconds",
        "max_polls.$": "$.config.max_polls",
        "poll_schedule.$": "$.config.poll_schedule",
        "end_poll_interval_seconds.$": "$.config.end_poll_interval_seconds",
        "prediction_margin.$": "$.config.prediction_margin",
        "elapsed_seconds.$": f"$.{result_key}.poll.elapsed_seconds",
        "expected_seconds.$": f"$.{result_key}.poll.expected_seconds",
        "execution_name.$": "$.execution_name",
        "redrive_count.$": REDRIVE_COUNT,
        "started_redrive_count.$": f"$.{result_key}.redrive_count",
    }
    if endpoint:
        payload["expected_config_name.$"] = f"$.{result_key}.endpoint_config_name"
    return payload


def poll_loop(
    label: str, result_key: str, *, then: State, restart: State, endpoint: bool = False
) -> Wait:
    """``WaitFor<label> -> Poll<label> -> Is<label>Complete? -> WaitFor<label>``, and
    ``Is<label>Complete? -> Restart<label> -> restart`` when the poll restarts the step.
    Returns the Wait: the start state goes straight to it.

    Entered at the Wait: the start state's `poll.wait_seconds` is the schedule's first wait
    (1 s for a reused job that already completed: one poll then sees it), so no Choice runs
    before the first poll. A start never answers Restart; only a poll does. The loop is bounded
    by the poll Lambda's max_polls, the restarts by shared/job_retry.py.
    """
    done = "InService" if endpoint else "Complete"
    check = Choice(
        f"Is{label}{done}",
        comment="Completed -> continue; still in progress -> wait and poll again",
    )
    wait = Wait(
        f"WaitFor{label}",
        seconds_path=f"$.{result_key}.poll.wait_seconds",
        comment="the poll's wait_seconds: predicted from history/progress, else adaptive",
    )
    poll = lambda_step(
        f"Poll{label}",
        "poll",
        payload=poll_payload(result_key, endpoint=endpoint),
        output_model=models.PollState,
        result_path=f"$.{result_key}.poll",
        comment=(
            "Status of the job/endpoint; raises on Failed/Stopped or after max_polls, "
            "or restarts the step (transient SageMaker failure; redrive)"
        ),
    )
    backoff = Wait(
        f"Restart{label}",
        seconds_path=f"$.{result_key}.poll.wait_seconds",
        comment="Backoff before the next attempt of the job (or endpoint update)",
    )
    backoff.next(restart)
    check.add_choice(ChoiceRule.StringEquals(f"$.{result_key}.poll.status", "Completed"), then)
    check.add_choice(ChoiceRule.StringEquals(f"$.{result_key}.poll.status", "Restart"), backoff)
    check.default_choice(wait)
    wait.next(poll)
    poll.next(check)
    return wait


def smoke_test_step(state_id: str = "SmokeTest", result_key: str = "deploy") -> Task:
    return lambda_step(
        state_id,
        "invoke",
        payload={
            "endpoint_name.$": f"$.{result_key}.endpoint_name",
            "sample_uri.$": f"$.{result_key}.sample_uri",
            "execution_name.$": "$.execution_name",
        },
        output_model=models.InvokeOutput,
        result_path=f"$.smoke_test{'' if result_key == 'deploy' else '_' + result_key}",
        comment="Sample rows (feature-only) through the endpoint that was just deployed",
    )


def load_check_step() -> Task:
    return lambda_step(
        "LoadCheckStaging",
        "loadcheck",
        payload={
            "endpoint_name.$": "$.staging.endpoint_name",
            "sample_uri.$": "$.staging.sample_uri",
            "load_check.$": "$.config.load_check",
            "execution_name.$": "$.execution_name",
        },
        output_model=models.LoadCheckOutput,
        result_path="$.load_check",
        comment="A short concurrent load on staging: p99 latency and error rate under the "
        "config's thresholds, else the run fails here (production unchanged)",
    )


def approval_step() -> Task:
    """Manual promotion: the notification carries the task token (and the CLI command); the
    state waits for SendTaskSuccess (`sfn-mlops approve EXECUTION`) or SendTaskFailure
    (`sfn-mlops reject`: PromotionRejected) at most config.approval_timeout_seconds
    (States.Timeout). Both fail the run here, so production is unchanged."""
    task = SelectingTask(
        "WaitForApproval",
        comment="Promote to production? Waits for the task token (sfn-mlops approve/reject), "
        "bounded by approval_timeout_seconds",
        resource=SNS_PUBLISH_CALLBACK,
        parameters={
            "TopicArn": _topic(),
            "Subject.$": f"States.Format('{PROJECT} approval needed: {{}}', $$.Execution.Name)",
            "Message": {
                "status": "WAITING_FOR_APPROVAL",
                "execution_name.$": "$$.Execution.Name",
                "execution_arn.$": "$$.Execution.Id",
                "task_token.$": "$$.Task.Token",
                "model_package_arn.$": "$.staging.model_package_arn",
                "staging_endpoint.$": "$.staging.endpoint_name",
                "load_check.$": "$.load_check",
                "approve.$": "States.Format('sfn-mlops approve {}', $$.Execution.Name)",
                "reject.$": "States.Format('sfn-mlops reject {} --reason ...', $$.Execution.Name)",
                "console_url.$": _console_url(),
            },
        },
        result_selector=result_selector_of(models.ApprovalOutput, prefix="$"),
        result_path="$.approval",
        timeout_seconds_path="$.config.approval_timeout_seconds",
    )
    return with_error_handling(task, retries=SNS_RETRIES)


def result_selector_of(model: type[BaseModel], *, prefix: str) -> dict[str, str]:
    return {f"{name}.$": f"{prefix}.{name}" for name in model.model_fields}


def deploy_step(state_id: str, stage: models.Stage, result_key: str, comment: str) -> Task:
    """The deploy function for one stage: its payload is ``{stage, state}`` (the stage it
    deploys to, and the whole state), so no state sets the stage in the data. The candidate is
    $.candidate (a registry approval's run) or this run's model (models.DeployRequest)."""
    return lambda_step(
        state_id,
        "deploy",
        payload={"stage": stage, "state.$": "$"},
        output_model=models.DeployOutput,
        result_path=f"$.{result_key}",
        comment=comment,
        retries=(*LAMBDA_RETRIES, *JOB_START_RETRIES),
    )


@dataclass(frozen=True)
class Stages:
    """Where a deployment starts: staging when the config names a staging endpoint, else
    production. Every Choice that decides to deploy routes with `route` (no Choice of its own
    for the staging question: one state less on every deployment)."""

    staging: State
    production: State

    def route(self, choice: Choice, *conditions: ChoiceRule) -> None:
        """Two rules on `choice`: `conditions` and no staging endpoint -> production;
        `conditions` -> staging. Add them before the rules they must win over."""
        no_staging = ChoiceRule.IsNull("$.config.staging_endpoint_name", True)
        choice.add_choice(_all(*conditions, no_staging), self.production)
        choice.add_choice(_all(*conditions), self.staging)


def _all(*rules: ChoiceRule) -> ChoiceRule:
    return rules[0] if len(rules) == 1 else ChoiceRule.And(list(rules))


def stages(*, then: State) -> Stages:
    """The deployment (under the lock): ``DeployStaging -> (poll) -> SmokeTestStaging ->
    LoadCheckStaging -> IsManualPromotion? [-> WaitForApproval] -> UpdateEndpoint -> (poll) ->
    SmokeTest -> then``, entered at DeployStaging or, without a staging endpoint, at
    UpdateEndpoint (Stages.route)."""
    production = deploy_step(
        "UpdateEndpoint",
        "production",
        "deploy",
        "Production: new model and endpoint config; CreateEndpoint, or blue/green "
        "UpdateEndpoint shifting traffic as deploy_strategy says, rolled back on the alarms",
    )
    smoke = smoke_test_step()
    smoke.next(then)
    production.next(poll_loop("Endpoint", "deploy", then=smoke, restart=production, endpoint=True))

    manual = Choice("IsManualPromotion", comment="promotion: manual -> wait for a person")
    approval = approval_step()
    approval.next(production)
    manual.add_choice(ChoiceRule.StringEquals("$.config.promotion", "manual"), approval)
    manual.default_choice(production)

    load = load_check_step()
    load.next(manual)
    smoke_staging = smoke_test_step("SmokeTestStaging", "staging")
    smoke_staging.next(load)
    staging = deploy_step(
        "DeployStaging",
        "staging",
        "staging",
        "The candidate on the staging endpoint (blue/green, all at once)",
    )
    staging.next(
        poll_loop("Staging", "staging", then=smoke_staging, restart=staging, endpoint=True)
    )
    return Stages(staging=staging, production=production)


def deploy_lock_steps(*, deployment: Stages, release: State) -> State:
    """Between ShouldDeploy and the stages: one deployment per endpoint at a time, decided
    against the champion that serves when it happens.

    ``AcquireDeployLock -> IsDeployLockHeld``: not held -> ``WaitForDeployLock ->
    AcquireDeployLock`` (adaptive wait, bounded by max_polls); held by a registry approval's
    run -> the stages (a person decided: no recheck); held -> ``CheckChampion``: unchanged ->
    the stages; changed -> the re-evaluation job's poll loop -> ``FreshGate`` ->
    ``StillBetter``: the stages, or ``UpdateRegistration`` (Rejected / PendingManualApproval)
    -> `release`. The lock is released by `release` on these paths, and by the
    execution-closed rule on every other way out (failure, timeout, StopExecution).
    """
    acquire = lambda_step(
        "AcquireDeployLock",
        "lock-acquire",
        payload="$",
        output_model=models.LockState,
        result_path="$.lock",
        comment="Conditional write of the endpoint's lock item (owner = this execution)",
    )
    held = Choice(
        "IsDeployLockHeld",
        comment="Not held -> wait; held by a registry approval's run (a person decided) -> "
        "deploy; held -> compare with today's champion",
    )
    wait = Wait(
        "WaitForDeployLock",
        seconds_path="$.lock.wait_seconds",
        comment="Another RUNNING execution deploys to this endpoint: adaptive, bounded wait",
    )
    check = start_step(
        "CheckChampion",
        "recheck",
        models.RecheckOutput,
        "recheck",
        "Champion changed since evaluation? Then re-evaluate both on the same test split",
    )
    changed = Choice("ChampionChanged", comment="Unchanged -> the gate's decision stands")
    fresh_gate = start_step(
        "FreshGate",
        "gate",
        models.GateOutput,
        "gate",
        "The gate again, on the re-evaluation against the champion serving now",
    )
    still = Choice("StillBetter", comment="Deploy only if it still beats the newer champion")
    update_registration = start_step(
        "UpdateRegistration",
        "register",
        models.RegisterOutput,
        "register",
        "The model package's approval status from the fresh decision (Rejected or pending)",
    )
    acquire.next(held)
    held.add_choice(ChoiceRule.BooleanEquals("$.lock.acquired", False), wait)
    deployment.route(held, ChoiceRule.IsNull("$.candidate", False))
    held.default_choice(check)
    wait.next(acquire)
    check.next(changed)
    deployment.route(changed, ChoiceRule.BooleanEquals("$.recheck.changed", False))
    changed.default_choice(poll_loop("Recheck", "recheck", then=fresh_gate, restart=check))
    fresh_gate.next(still)
    deployment.route(still, ChoiceRule.BooleanEquals("$.gate.deploy", True))
    still.default_choice(update_registration)
    update_registration.next(release)
    return acquire


def release_lock_step() -> Task:
    return start_step(
        "ReleaseDeployLock",
        "lock-release",
        models.LockReleaseOutput,
        "lock_release",
        "Deletes the endpoint's lock item if this execution holds it",
    )


def _topic() -> str:
    return f"${{{TOPIC_PLACEHOLDER}}}"


def _console_url() -> str:
    """The execution's page in the console; region taken from the execution ARN."""
    region = "States.ArrayGetItem(States.StringSplit($$.Execution.Id, ':'), 3)"
    return (
        "States.Format('https://{}.console.aws.amazon.com/states/home?region={}"
        f"#/v2/executions/details/{{}}', {region}, {region}, $$.Execution.Id)"
    )


def notify_success_step() -> Task:
    """SNS publish of a successful run's outcome, its last state: what was registered, whether
    it deployed and why. A registry approval's run reads the same fields: ValidateInput gave it
    the package as $.register and the approval as $.gate (models.ValidateOutput)."""
    task = SelectingTask(
        "NotifySuccess",
        comment="Publishes the outcome (deployed or not, and why) to the notification topic",
        resource=SNS_PUBLISH,
        parameters={
            "TopicArn": _topic(),
            "Subject.$": f"States.Format('{PROJECT} OK: {{}}', $$.Execution.Name)",
            "Message": {
                "status": "SUCCEEDED",
                "execution_name.$": "$$.Execution.Name",
                "execution_arn.$": "$$.Execution.Id",
                "deployed.$": "$.gate.deploy",
                "reasons.$": "$.gate.reasons",
                "metric.$": "$.gate.metric",
                "challenger.$": "$.gate.challenger",
                "champion.$": "$.gate.champion",
                "model_package_arn.$": "$.register.model_package_arn",
                "approval_status.$": "$.register.approval_status",
                "endpoint_name.$": "$.config.endpoint_name",
                "console_url.$": _console_url(),
            },
        },
        result_selector={"message_id.$": "$.MessageId"},
        result_path="$.notification",
        timeout_seconds=SNS_TASK_TIMEOUT_SECONDS,
    )
    return with_error_handling(task, retries=SNS_RETRIES)  # no Next: it ends the execution


# --- the workflow -----------------------------------------------------------------------------


def build() -> Graph:
    """The whole workflow as an SDK Graph (see the module docstring for the data flow)."""
    notify = notify_success_step()
    release_lock = release_lock_step()
    release_lock.next(notify)

    deployment = stages(then=release_lock)
    take_lock = deploy_lock_steps(deployment=deployment, release=release_lock)
    should_deploy = Choice("ShouldDeploy", comment="Only when the gate approved a better model")
    should_deploy.add_choice(ChoiceRule.BooleanEquals("$.gate.deploy", True), take_lock)
    should_deploy.default_choice(notify)

    register = start_step(
        "RegisterModel",
        "register",
        models.RegisterOutput,
        "register",
        "Model package with metrics and lineage; Approved if the gate passed, else Rejected",
    )
    register.next(should_deploy)

    gate = start_step(
        "EvaluateModel",
        "gate",
        models.GateOutput,
        "gate",
        "Gate: threshold met and champion beaten by min_improvement? Reasons either way",
    )
    gate.next(register)

    jobs = (
        ("Preprocessing", "preprocess", models.PreprocessOutput, "Split, profile, sample"),
        ("Training", "train", models.TrainOutput, "Training job on the train/validation split"),
        ("Evaluation", "evaluate", models.EvaluateOutput, "Challenger and champion, same test"),
    )
    then: State = gate
    for label, key, output_model, what in reversed(jobs):
        start = start_step(
            f"Start{label}", key, output_model, key, f"Processing/Training job: {what}"
        )
        start.next(poll_loop(label, key, then=then, restart=start))
        then = start

    validate = validate_step()
    entry = Choice(
        "IsTrainingRun",
        comment="A registry approval's run (its package in $.candidate) goes to the lock",
    )
    entry.add_choice(ChoiceRule.IsNull("$.candidate", True), then)
    entry.default_choice(take_lock)
    validate.next(entry)

    return Graph(
        validate,
        comment=(
            f"{PROJECT}: validate, preprocess, train, evaluate, gate, register and - only when "
            "the new model is better - deploy to staging (smoke test, load check), then "
            "(automatically or once approved) to production with traffic shifting; a failure "
            "fails the run where it happened, so Redrive continues from there"
        ),
        timeout_seconds=EXECUTION_TIMEOUT_SECONDS,
    )


_KEY_ORDER = (
    "Type",
    "Comment",
    "Resource",
    "Parameters",
    "ResultSelector",
    "ResultPath",
    "Seconds",
    "SecondsPath",
    "Choices",
    "Default",
    "TimeoutSeconds",
    "TimeoutSecondsPath",
    "Retry",
    "Catch",
    "Next",
    "End",
    "ErrorPath",
    "CausePath",
)


def _ordered(state: Mapping[str, Any]) -> dict[str, Any]:
    """ASL keys in a fixed, readable order (Type first), whatever order the SDK used."""
    rank = {k: i for i, k in enumerate(_KEY_ORDER)}
    return {k: state[k] for k in sorted(state, key=lambda k: (rank.get(k, len(rank)), k))}


def successors(state: Mapping[str, Any], *, catches: bool = True) -> list[str]:
    """Names a state can transition to: Next, Choices, Default and (optionally) Catch."""
    names = [c["Next"] for c in state.get("Choices", ())]
    names += [state[k] for k in ("Next", "Default") if k in state]
    if catches:
        names += [c["Next"] for c in state.get("Catch", ())]
    return names


def _reachable(states: Mapping[str, Any], start: str, *, catches: bool) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(successors(states[name], catches=catches))
    return seen


def definition() -> dict[str, Any]:
    """The ASL definition as a dict, with `${...}` placeholders; deterministic.

    States appear in the order the SDK visits them, except that the failure path (reached
    only through Catch) comes last.
    """
    graph = build().to_dict()
    states: dict[str, Any] = graph["States"]
    happy = _reachable(states, graph["StartAt"], catches=False)
    order = [n for n in states if n in happy] + [n for n in states if n not in happy]
    return {
        "Comment": graph["Comment"],
        "StartAt": graph["StartAt"],
        "TimeoutSeconds": graph["TimeoutSeconds"],
        "States": {name: _ordered(states[name]) for name in order},
    }


_PLACEHOLDER = re.compile(r"\$\{([A-Za-z][A-Za-z0-9]*)\}")


def placeholders(asl: Mapping[str, Any]) -> list[str]:
    """The `${...}` names an ASL definition needs substituted (function ARNs, topic ARN)."""
    return sorted(set(_PLACEHOLDER.findall(json.dumps(asl))))
