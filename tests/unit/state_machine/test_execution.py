"""The rendered definition executed by moto's ASL interpreter, Lambdas faked at the Lambda
boundary (see conftest.py). Wait states and retry back-offs are recorded, not slept."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from sfn_mlops.local.lambdas import LambdaResult
from shared import models, polling
from shared.resources import pipeline_defaults

if TYPE_CHECKING:  # the harness and fakes are fixtures (conftest.py)
    from conftest import Execution, FakePipeline, Pauses, PipelineHarness

REGION = "us-east-1"
DEFAULTS = pipeline_defaults()
REGISTRY_PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/sfn-mlops-models/7"
REGISTRY_SAMPLE = "s3://bucket-of-the-package/runs/old/preprocess/sample"


def _task_errors(run: Execution) -> list[str]:
    return [e["taskFailedEventDetails"]["error"] for e in run.history if e["type"] == "TaskFailed"]


def _assert_notified_success(pipeline: PipelineHarness, *, deployed: bool) -> dict[str, Any]:
    (published,) = pipeline.published()
    assert published.subject == "sfn-mlops OK: run-1"
    assert published.message["status"] == "SUCCEEDED"
    assert published.message["deployed"] is deployed
    return published.message


# --- happy paths --------------------------------------------------------------------------------


def test_first_deployment_creates_the_endpoint(
    pipeline: PipelineHarness, fake: FakePipeline, pauses: Pauses
) -> None:
    # Given a first run: no champion, the deploy function creates the endpoint
    fake.deploy_action = "create"
    # When the pipeline runs with the defaults
    run = pipeline.run({})
    # Then it succeeds through every stage, deploying and smoke-testing
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert run.output is not None
    out = run.output
    assert out["deploy"]["action"] == "create"
    assert out["register"]["approval_status"] == "Approved"
    assert out["smoke_test"] == {
        "endpoint_name": DEFAULTS["endpoint_name"],
        "row_count": 2,
        "predictions": [0.1, 0.9],
    }
    # each stored result is exactly its output model (the JSONPath contract holds)
    models.PreprocessOutput.model_validate(out["preprocess"])
    models.TrainOutput.model_validate(out["train"])
    models.EvaluateOutput.model_validate(out["evaluate"])
    models.GateOutput.model_validate(out["gate"])
    models.DeployOutput.model_validate(out["deploy"])
    assert out["execution_name"] == "run-1"
    assert out["execution_arn"] == run.arn
    # every function ran once, except the poll (one call per poll the jobs needed)
    assert dict(fake.calls) == {
        "validate": 1,
        "preprocess": 1,
        "train": 1,
        "evaluate": 1,
        "gate": 1,
        "register": 1,
        "deploy": 2,  # staging, then production
        "invoke": 2,  # each stage's smoke test
        "loadcheck": 1,  # staging's
        # processing, training, evaluation, staging, production (FakePipeline)
        "poll": 2 + 3 + 2 + 2 + 2,
        # the deployment lock, uncontended, and the unchanged champion: one call each
        "lock-acquire": 1,
        "recheck": 1,
        "lock-release": 1,
    }
    # the smoke test got the sample rows of this execution's preprocessing
    assert fake.payloads["invoke"][0]["sample_uri"] == out["preprocess"]["sample_uri"]
    # waits follow the adaptive schedule from the configured interval
    interval, cap = DEFAULTS["poll_interval_seconds"], DEFAULTS["max_poll_interval_seconds"]

    def schedule(polls: int) -> list[int]:
        return [polling.wait_seconds(a, interval, cap) for a in range(polls)]

    assert pauses.waits == [*schedule(2), *schedule(3), *schedule(2), *schedule(2), *schedule(2)]
    assert pauses.waits[2:5] == [interval, 2 * interval, 4 * interval]  # training: doubling
    assert run.entered()[-3:] == ["SmokeTest", "ReleaseDeployLock", "NotifySuccess"]
    # staging first: deployed, smoke-tested and load-checked before production
    order = run.entered()
    assert order.index("LoadCheckStaging") < order.index("UpdateEndpoint")
    assert [p["stage"] for p in fake.payloads["deploy"]] == ["staging", "production"]
    _assert_notified_success(pipeline, deployed=True)


def test_each_job_loop_starts_at_its_wait_and_polls_the_needed_times(
    pipeline: PipelineHarness, fake: FakePipeline
) -> None:
    # Given jobs that need 2 polls each and no staging stage (the path figure 5 counts)
    fake.polls_needed = {"processing": 2, "training": 2, "endpoint": 2}
    run = pipeline.run({"staging_endpoint_name": None})
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    # Then each loop is Start -> (Wait -> Poll -> Choice) x 2, and the fixed states are these
    loop = ["WaitFor{0}", "Poll{0}", "Is{0}{1}"] * 2
    jobs = [
        [start, *(n.format(label, done) for n in loop)]
        for start, label, done in (
            ("StartPreprocessing", "Preprocessing", "Complete"),
            ("StartTraining", "Training", "Complete"),
            ("StartEvaluation", "Evaluation", "Complete"),
            ("UpdateEndpoint", "Endpoint", "InService"),
        )
    ]
    assert run.entered() == [
        "ValidateInput", "IsTrainingRun", *jobs[0], *jobs[1], *jobs[2],
        "EvaluateModel", "RegisterModel", "ShouldDeploy", "AcquireDeployLock",
        "IsDeployLockHeld", "CheckChampion", "ChampionChanged", *jobs[3],
        "SmokeTest", "ReleaseDeployLock", "NotifySuccess",
    ]  # fmt: skip
    assert len(run.entered()) == 40
    # ... and the deploy got this run's model as its candidate, the smoke test its rows
    (deployed,) = fake.payloads["deploy"]
    assert deployed["stage"] == "production"
    assert run.output is not None
    assert run.output["deploy"]["model_package_arn"] == run.output["register"]["model_package_arn"]
    assert fake.payloads["invoke"][0]["sample_uri"] == run.output["preprocess"]["sample_uri"]
    _assert_notified_success(pipeline, deployed=True)


def test_a_registry_approval_run_deploys_the_package_through_the_stages(
    pipeline: PipelineHarness, fake: FakePipeline
) -> None:
    # Given a run started for an Approved package (the registry-approval trigger's payload)
    fake.registry_package = REGISTRY_PACKAGE
    # When it runs
    run = pipeline.run({"model_package_arn": REGISTRY_PACKAGE})
    # Then it trains nothing, takes the lock, skips the recheck (a person decided) and deploys
    # the package to staging, then production
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    entered = run.entered()
    assert entered[:5] == [
        "ValidateInput", "IsTrainingRun", "AcquireDeployLock", "IsDeployLockHeld", "DeployStaging"
    ]  # fmt: skip
    assert not {"StartPreprocessing", "CheckChampion", "RegisterModel"} & set(entered)
    assert entered[-3:] == ["SmokeTest", "ReleaseDeployLock", "NotifySuccess"]
    assert [p["stage"] for p in fake.payloads["deploy"]] == ["staging", "production"]
    assert {p["state"]["candidate"]["source"] for p in fake.payloads["deploy"]} == {"registry"}
    # ... smoke-testing both stages with the package's rows
    assert {p["sample_uri"] for p in fake.payloads["invoke"]} == {REGISTRY_SAMPLE}
    # ... and the notification names the package and the approval
    message = _assert_notified_success(pipeline, deployed=True)
    assert message["model_package_arn"] == REGISTRY_PACKAGE
    assert message["approval_status"] == "Approved"
    assert message["endpoint_name"] == DEFAULTS["endpoint_name"]
    assert "approved in the model registry" in message["reasons"][0]


def test_update_deployment_polls_for_the_new_config(
    pipeline: PipelineHarness, fake: FakePipeline
) -> None:
    # Given an endpoint already exists: the deploy function updates it (blue/green)
    fake.deploy_action = "update"
    fake.polls_needed["endpoint"] = 3
    # When
    run = pipeline.run({})
    # Then the run succeeds after polling the endpoint until the update landed
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert run.output is not None
    assert run.output["deploy"]["action"] == "update"
    endpoint_polls = [
        p
        for p in fake.payloads["poll"]
        if p["job_type"] == "endpoint" and p["job_name"] == run.output["deploy"]["endpoint_name"]
    ]
    config_name = run.output["deploy"]["endpoint_config_name"]
    assert {p["expected_config_name"] for p in endpoint_polls} == {config_name}
    assert [p["attempt"] for p in endpoint_polls] == [0, 1, 2]
    assert run.entered().count("PollEndpoint") == 3
    assert fake.calls["invoke"] == 2


def test_payload_overrides_reach_every_step(pipeline: PipelineHarness, fake: FakePipeline) -> None:
    # Given a payload that overrides the defaults
    run = pipeline.run({"max_polls": 20, "poll_interval_seconds": 5, "tags": {"git_sha": "abc"}})
    # Then the resolved config carries them into the polls
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert run.output is not None
    assert run.output["config"]["tags"] == {"git_sha": "abc"}
    assert {p["max_polls"] for p in fake.payloads["poll"]} == {20}
    assert {p["poll_interval_seconds"] for p in fake.payloads["poll"]} == {5}
    assert {p["execution_name"] for p in fake.payloads["poll"]} == {"run-1"}


# --- the gate says no ---------------------------------------------------------------------------


def test_gate_fails_registers_rejected_and_succeeds_without_deploying(
    pipeline: PipelineHarness, fake: FakePipeline
) -> None:
    # Given a challenger below the threshold
    fake.challenger_score = 0.55
    # When
    run = pipeline.run({})
    # Then the execution succeeds, the model is registered Rejected and nothing deploys
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert run.output is not None
    assert run.output["register"]["approval_status"] == "Rejected"
    assert fake.payloads["register"][0]["gate"]["passed"] is False
    assert fake.calls["deploy"] == 0
    assert fake.calls["invoke"] == 0
    assert "deploy" not in run.output
    assert "UpdateEndpoint" not in run.entered()
    # ... and says why, in its output and in the notification
    reasons = run.output["gate"]["reasons"]
    assert any("below threshold" in r for r in reasons)
    message = _assert_notified_success(pipeline, deployed=False)
    assert message["reasons"] == reasons
    assert message["approval_status"] == "Rejected"


def test_deploy_mode_never_registers_approved_but_does_not_deploy(
    pipeline: PipelineHarness, fake: FakePipeline
) -> None:
    run = pipeline.run({"deploy_mode": "never"})
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert run.output is not None
    assert run.output["register"]["approval_status"] == "Approved"
    assert run.output["gate"]["deploy"] is False
    assert fake.calls["deploy"] == 0


# --- failures -----------------------------------------------------------------------------------


def test_training_job_failed_fails_at_the_poll_with_the_reason(
    pipeline: PipelineHarness, fake: FakePipeline
) -> None:
    # Given the training job ends Failed with SageMaker's FailureReason
    fake.failed_job_type = "training"
    # When
    run = pipeline.run({})
    # Then the execution fails with the named error, the reason in its cause
    assert run.status == "FAILED"
    assert run.error == "JobFailedError"
    assert run.cause is not None
    assert fake.failure_reason in json.loads(run.cause)["errorMessage"]
    # ... nothing after training ran, and it was not retried
    assert fake.calls["evaluate"] == fake.calls["register"] == fake.calls["deploy"] == 0
    assert _task_errors(run) == ["JobFailedError"]
    # ... and it failed *at* PollTraining (no Catch, no Fail state): Redrive restarts there
    assert run.entered()[-1] == "PollTraining"
    assert run.history[-1]["type"] == "ExecutionFailed"
    assert pipeline.published() == []  # failures are notified by EventBridge, not a state


def test_redrive_continues_from_the_failed_poll_and_starts_the_next_attempt(
    pipeline: PipelineHarness, fake: FakePipeline
) -> None:
    # Given a run that failed at PollTraining (the training job Failed)
    fake.failed_job_type = "training"
    failed = pipeline.run({})
    assert failed.status == "FAILED"
    before = dict(fake.calls)
    # When the cause is fixed and the execution is redriven
    fake.fixed = True
    run = pipeline.redrive(failed)
    # Then the same execution succeeds, continuing where it failed
    assert run.arn == failed.arn
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    described = pipeline.sfn.describe_execution(executionArn=run.arn)
    assert described["redriveCount"] == 1
    assert described["redriveStatus"] == "NOT_REDRIVABLE"  # SUCCEEDED now
    types = [e["type"] for e in run.history]
    assert types.count("ExecutionStarted") == 1
    assert types.count("ExecutionFailed") == 1
    redriven = types.index("ExecutionRedriven")
    assert run.history[redriven]["executionRedrivenEventDetails"] == {"redriveCount": 1}
    assert [e["id"] for e in run.history] == list(range(1, len(run.history) + 1))
    entered_after = [
        e["stateEnteredEventDetails"]["name"]
        for e in run.history[redriven:]
        if "stateEnteredEventDetails" in e
    ]
    # ... the redriven poll restarts training (its next attempt); nothing before it reruns
    assert entered_after[:4] == [
        "PollTraining",
        "IsTrainingComplete",
        "RestartTraining",
        "StartTraining",
    ]
    assert fake.calls["validate"] == before["validate"] == 1
    assert fake.calls["preprocess"] == before["preprocess"] == 1
    assert fake.calls["train"] == before["train"] + 1
    assert fake.calls["register"] == 1
    # ... and the states saw the redrive count in the context object
    assert run.output is not None
    assert run.output["train"]["redrive_count"] == 1
    assert run.output["preprocess"]["redrive_count"] == 0


def test_redrive_of_a_succeeded_execution_is_not_redrivable(pipeline: PipelineHarness) -> None:
    run = pipeline.run({})
    assert run.status == "SUCCEEDED"
    with pytest.raises(ClientError) as caught:
        pipeline.sfn.redrive_execution(executionArn=run.arn)
    assert caught.value.response["Error"]["Code"] == "ExecutionNotRedrivable"


def test_invalid_input_fails_at_validate_and_runs_nothing_else(
    pipeline: PipelineHarness, fake: FakePipeline
) -> None:
    # Given a payload with an unknown key and a bad value
    run = pipeline.run({"problem_type": "multiclass", "bogus": 1})
    # Then it fails at ValidateInput, naming every bad field
    assert run.status == "FAILED"
    assert run.error == "InvalidInputError"
    assert run.cause is not None
    message = json.loads(run.cause)["errorMessage"]
    assert "problem_type" in message
    assert "bogus" in message
    assert dict(fake.calls) == {"validate": 1}
    assert run.entered() == ["ValidateInput"]


def test_poll_limit_bounds_the_loop(pipeline: PipelineHarness, fake: FakePipeline) -> None:
    # Given training needs more polls than the payload allows
    fake.polls_needed["training"] = 10
    run = pipeline.run({"max_polls": 3, "max_runtime_seconds": 120})
    # Then the loop stops at the bound with the named error
    assert run.status == "FAILED"
    assert run.error == "PollLimitExceededError"
    assert run.entered().count("PollTraining") == 3
    assert fake.calls["evaluate"] == 0


def test_a_crashed_function_is_lambda_unknown_and_not_retried(
    pipeline: PipelineHarness, fake: FakePipeline
) -> None:
    # Given the register function crashes (timeout/OOM: no errorType of its own)
    pipeline.dispatcher.register(
        "sfn-mlops-register", lambda _: LambdaResult.unknown("Task timed out after 60.00 seconds")
    )
    run = pipeline.run({})
    assert run.status == "FAILED"
    assert run.error == "Lambda.Unknown"
    assert _task_errors(run) == ["Lambda.Unknown"]
    assert fake.calls["deploy"] == 0


# --- transient errors are retried ---------------------------------------------------------------


def test_throttled_invoke_is_retried_and_the_run_succeeds(
    pipeline: PipelineHarness, fake: FakePipeline, pauses: Pauses
) -> None:
    # Given Lambda throttles the first StartTraining invoke
    fake.throttle_once = {"train"}
    run = pipeline.run({})
    # Then the retrier (2 s, backoff 2) tries again and the run succeeds
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert fake.calls["train"] == 2
    assert _task_errors(run) == ["Lambda.TooManyRequestsException"]
    assert pauses.retries == [2]


def test_transient_service_error_is_retried_and_the_run_succeeds(
    pipeline: PipelineHarness, fake: FakePipeline, pauses: Pauses
) -> None:
    # Given the register function hits a transient AWS error once
    fake.transient_once = {"register"}
    run = pipeline.run({})
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert fake.calls["register"] == 2
    assert _task_errors(run) == ["TransientServiceError"]
    assert len(pauses.retries) == 1


# --- history stays far below the 25,000-event limit ---------------------------------------------


def test_worst_case_history_is_far_below_the_limit(
    pipeline: PipelineHarness, fake: FakePipeline
) -> None:
    # Given two runs that differ only in the number of polls of every loop
    fake.polls_needed = {"processing": 1, "training": 1, "endpoint": 1}
    short = pipeline.run({}, name="short")
    fake.polls_needed = {"processing": 3, "training": 3, "endpoint": 3}
    long = pipeline.run({}, name="long")
    assert short.status == long.status == "SUCCEEDED"
    # When extrapolated to the most polls a payload may allow, in all four loops
    loops, extra_polls = 4, 2
    per_poll = (len(long.history) - len(short.history)) / (loops * extra_polls)
    max_polls = next(
        m.le
        for m in models.PipelineInput.model_fields["max_polls"].metadata
        if getattr(m, "le", None) is not None
    )
    worst = len(short.history) + loops * max_polls * per_poll
    # Then the history stays far below the limit
    assert per_poll > 0
    assert worst < 0.4 * 25_000, f"{worst:.0f} events at max_polls={max_polls}"


# --- the deployment lock and the fresh decision -------------------------------------------------


def test_a_busy_lock_is_waited_for_then_the_deployment_goes_ahead(
    pipeline: PipelineHarness, fake: FakePipeline, pauses: Pauses
) -> None:
    # Given another execution holds the endpoint's lock for two attempts
    fake.lock_busy_for = 2
    # When the run reaches the deployment
    run = pipeline.run({})
    # Then it waits (adaptive, via WaitForDeployLock), deploys, and releases the lock
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert fake.calls["lock-acquire"] == 3
    assert run.entered().count("WaitForDeployLock") == 2
    assert fake.calls["deploy"] == 2  # staging, production
    assert fake.calls["lock-release"] == 1
    order = run.entered()
    assert order.index("CheckChampion") < order.index("UpdateEndpoint")
    assert order.index("SmokeTest") < order.index("ReleaseDeployLock")


def test_a_newer_better_champion_stops_the_deployment_and_the_run_succeeds(
    pipeline: PipelineHarness, fake: FakePipeline, pauses: Pauses
) -> None:
    # Given another execution deployed a better model after this one's evaluation
    fake.newer_champion_score = 0.95  # > the challenger's 0.91
    # When the run takes the lock
    run = pipeline.run({})
    # Then it re-evaluates, does not deploy, re-registers the package, releases, and succeeds
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert fake.calls["deploy"] == 0
    assert fake.calls["register"] == 2
    assert fake.calls["lock-release"] == 1
    assert fake.calls["gate"] == 2
    assert run.output is not None
    assert run.output["gate"]["deploy"] is False
    assert "newer champion 0.95" in run.output["gate"]["reasons"]
    message = _assert_notified_success(pipeline, deployed=False)
    assert message["champion"] == 0.95


def test_a_newer_worse_champion_is_replaced(
    pipeline: PipelineHarness, fake: FakePipeline, pauses: Pauses
) -> None:
    fake.newer_champion_score = 0.5
    run = pipeline.run({})
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert fake.calls["deploy"] == 2  # staging, production
    assert fake.calls["register"] == 1
    assert "FreshGate" in run.entered()
