"""The definition's structure: the guarantees every Task and every loop must keep."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from shared import errors, models
from shared.resources import EXECUTION_TIMEOUT_SECONDS, FUNCTIONS, FUNCTIONS_BY_KEY
from state_machine.definition import (
    LAMBDA_INVOKE,
    LAMBDA_TRANSIENT_ERRORS,
    definition,
    placeholders,
    successors,
)

REPO = Path(__file__).resolve().parents[3]
ASL = definition()
STATES: dict[str, dict[str, Any]] = ASL["States"]
TASKS = {name: s for name, s in STATES.items() if s["Type"] == "Task"}
LAMBDA_TASKS = {n: s for n, s in TASKS.items() if s["Resource"] == LAMBDA_INVOKE}
PLACEHOLDER_TO_SPEC = {f"${{{f.asl_placeholder}}}": f for f in FUNCTIONS if f.asl_placeholder}

#: Which output model each Lambda Task's ResultSelector must select, and where it lands.
CONTRACT = {
    "ValidateInput": (models.ValidateOutput, "$"),
    "StartPreprocessing": (models.PreprocessOutput, "$.preprocess"),
    "StartTraining": (models.TrainOutput, "$.train"),
    "StartEvaluation": (models.EvaluateOutput, "$.evaluate"),
    "EvaluateModel": (models.GateOutput, "$.gate"),
    "RegisterModel": (models.RegisterOutput, "$.register"),
    "UpdateEndpoint": (models.DeployOutput, "$.deploy"),
    "PollPreprocessing": (models.PollState, "$.preprocess.poll"),
    "PollTraining": (models.PollState, "$.train.poll"),
    "PollEvaluation": (models.PollState, "$.evaluate.poll"),
    "PollEndpoint": (models.PollState, "$.deploy.poll"),
    "SmokeTest": (models.InvokeOutput, "$.smoke_test"),
    "DeployStaging": (models.DeployOutput, "$.staging"),
    "PollStaging": (models.PollState, "$.staging.poll"),
    "SmokeTestStaging": (models.InvokeOutput, "$.smoke_test_staging"),
    "LoadCheckStaging": (models.LoadCheckOutput, "$.load_check"),
    "AcquireDeployLock": (models.LockState, "$.lock"),
    "CheckChampion": (models.RecheckOutput, "$.recheck"),
    "PollRecheck": (models.PollState, "$.recheck.poll"),
    "FreshGate": (models.GateOutput, "$.gate"),
    "UpdateRegistration": (models.RegisterOutput, "$.register"),
    "ReleaseDeployLock": (models.LockReleaseOutput, "$.lock_release"),
}


def test_the_workflow_has_every_state_the_design_names() -> None:
    # Given the rendered definition / Then the states of the README's "The workflow" are all there
    loops = {
        f"{verb}{job}"
        for job in ("Preprocessing", "Training", "Evaluation", "Recheck", "Staging", "Endpoint")
        for verb in ("WaitFor", "Poll", "Restart")
    }
    assert set(STATES) == loops | {
        "ValidateInput",
        "StartPreprocessing",
        "IsPreprocessingComplete",
        "StartTraining",
        "IsTrainingComplete",
        "StartEvaluation",
        "IsEvaluationComplete",
        "EvaluateModel",
        "RegisterModel",
        "ShouldDeploy",
        "AcquireDeployLock",
        "IsDeployLockHeld",
        "WaitForDeployLock",
        "CheckChampion",
        "ChampionChanged",
        "IsRecheckComplete",
        "FreshGate",
        "StillBetter",
        "UpdateRegistration",
        "DeployStaging",
        "IsStagingInService",
        "SmokeTestStaging",
        "LoadCheckStaging",
        "IsManualPromotion",
        "WaitForApproval",
        "UpdateEndpoint",
        "IsEndpointInService",
        "SmokeTest",
        "ReleaseDeployLock",
        "NotifySuccess",
        # a registry approval's run: ValidateInput -> the lock -> the stages
        "IsTrainingRun",
    }
    assert ASL["StartAt"] == "ValidateInput"


def test_every_state_is_reachable_and_every_transition_exists() -> None:
    seen, todo = set(), [ASL["StartAt"]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for target in successors(STATES[name]):
            assert target in STATES, f"{name} -> {target}: no such state"
            todo.append(target)
    assert seen == set(STATES)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_has_retry_and_timeout_and_fails_the_execution_at_itself(name: str) -> None:
    task = TASKS[name]
    # Then: a timeout (no Task can hang until the execution's limit)
    if name == "WaitForApproval":  # bounded by the validated approval_timeout_seconds
        assert task["TimeoutSecondsPath"] == "$.config.approval_timeout_seconds"
    else:
        assert isinstance(task.get("TimeoutSeconds"), int)
        assert task["TimeoutSeconds"] > 0
    # ... retriers, none of them a catch-all
    assert task["Retry"], f"{name} has no Retry"
    for retrier in task["Retry"]:
        assert "States.ALL" not in retrier["ErrorEquals"]
        assert retrier["MaxAttempts"] >= 1
    # ... and no Catch: an error that is not retried away fails the execution here, so a
    # Redrive restarts this Task (not a Fail state that would only fail again)
    assert "Catch" not in task, f"{name} catches {task['Catch']}"


def test_no_catch_path_reaches_a_fail_state_and_there_is_no_fail_state() -> None:
    fails = {n for n, s in STATES.items() if s["Type"] == "Fail"}
    catches = [(n, c) for n, s in STATES.items() for c in s.get("Catch", ())]
    assert fails == set()
    assert catches == []
    # whatever a Catch could ever reach (none today) must not be a Fail state
    for _, catch in catches:
        seen, todo = set(), [catch["Next"]]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                assert STATES[name]["Type"] != "Fail"
                todo.extend(successors(STATES[name]))


@pytest.mark.parametrize("name", sorted(LAMBDA_TASKS))
def test_lambda_tasks_retry_the_transient_lambda_errors(name: str) -> None:
    retriers = LAMBDA_TASKS[name]["Retry"]
    aws = next(r for r in retriers if "Lambda.ServiceException" in r["ErrorEquals"])
    assert aws["ErrorEquals"] == list(LAMBDA_TRANSIENT_ERRORS)
    assert (aws["IntervalSeconds"], aws["MaxAttempts"], aws["BackoffRate"]) == (2, 6, 2.0)
    retried = {e for r in retriers for e in r["ErrorEquals"]}
    assert {e.__name__ for e in errors.RETRYABLE_ERRORS} <= retried
    # named, permanent errors are not retried: they go straight to the failure path
    assert not retried & {"JobFailedError", "InvalidInputError", "PollLimitExceededError"}


@pytest.mark.parametrize("name", sorted(LAMBDA_TASKS))
def test_lambda_task_timeout_exceeds_the_function_timeout(name: str) -> None:
    spec = PLACEHOLDER_TO_SPEC[LAMBDA_TASKS[name]["Parameters"]["FunctionName"]]
    assert LAMBDA_TASKS[name]["TimeoutSeconds"] > spec.timeout_seconds


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_result_selector_is_exactly_the_output_model(name: str) -> None:
    model, result_path = CONTRACT[name]
    task = LAMBDA_TASKS[name]
    expected = {f"{f}.$": f"$.Payload.{f}" for f in model.model_fields}
    if issubclass(model, models.Restartable):  # from the context object, not the function
        expected["redrive_count.$"] = "$$.Execution.RedriveCount"
    assert task["ResultSelector"] == expected
    assert task["ResultPath"] == result_path


def test_every_lambda_task_is_under_contract() -> None:
    assert set(LAMBDA_TASKS) == set(CONTRACT)


@pytest.mark.parametrize("name", [n for n in LAMBDA_TASKS if n.startswith("Poll")])
def test_poll_payload_is_a_poll_request(name: str) -> None:
    payload = LAMBDA_TASKS[name]["Parameters"]["Payload"]
    keys = {k.removesuffix(".$") for k in payload}
    fields = models.PollRequest.model_fields
    assert keys <= set(fields)
    assert {f for f, info in fields.items() if info.is_required()} <= keys
    assert ("expected_config_name" in keys) == (name in ("PollEndpoint", "PollStaging"))


@pytest.mark.parametrize("loop", ["Preprocessing", "Training", "Evaluation", "Endpoint"])
def test_poll_loops_wait_adaptively_and_close(loop: str) -> None:
    key = {"Preprocessing": "preprocess", "Training": "train", "Evaluation": "evaluate"}.get(
        loop, "deploy"
    )
    check = STATES[f"Is{loop}InService" if loop == "Endpoint" else f"Is{loop}Complete"]
    wait, poll = STATES[f"WaitFor{loop}"], STATES[f"Poll{loop}"]
    assert check["Default"] == f"WaitFor{loop}"
    # entered at the Wait: the start's poll carries the first wait, so no Choice runs before
    # the first poll (a start never answers Restart)
    start = "UpdateEndpoint" if loop == "Endpoint" else f"Start{loop}"
    assert STATES[start]["Next"] == f"WaitFor{loop}"
    assert check["Choices"][0]["Variable"] == f"$.{key}.poll.status"
    assert check["Choices"][0]["StringEquals"] == "Completed"
    assert wait["SecondsPath"] == f"$.{key}.poll.wait_seconds"
    assert wait["Next"] == f"Poll{loop}"
    assert poll["Next"] in (f"Is{loop}Complete", f"Is{loop}InService")
    # a restart (transient SageMaker failure, redrive after a failed job) waits its backoff
    # and goes back to the start state, which starts the next attempt
    restart = STATES[f"Restart{loop}"]
    assert check["Choices"][1] == {
        "Variable": f"$.{key}.poll.status",
        "StringEquals": "Restart",
        "Next": f"Restart{loop}",
    }
    assert restart["SecondsPath"] == f"$.{key}.poll.wait_seconds"
    assert restart["Next"] == start
    # the start records the redrive count; the poll compares it with the current one
    assert STATES[start]["ResultSelector"]["redrive_count.$"] == "$$.Execution.RedriveCount"
    payload = poll["Parameters"]["Payload"]
    assert payload["redrive_count.$"] == "$$.Execution.RedriveCount"
    assert payload["started_redrive_count.$"] == f"$.{key}.redrive_count"


def test_deploy_only_when_the_gate_says_so() -> None:
    choice = STATES["ShouldDeploy"]
    assert choice["Choices"] == [
        {"Variable": "$.gate.deploy", "BooleanEquals": True, "Next": "AcquireDeployLock"}
    ]
    assert choice["Default"] == "NotifySuccess"
    assert STATES["RegisterModel"]["Next"] == "ShouldDeploy"


def _stage_rules(*conditions: dict[str, Any]) -> list[dict[str, Any]]:
    """What Stages.route adds: no staging endpoint -> production, else staging."""
    no_staging = {"Variable": "$.config.staging_endpoint_name", "IsNull": True}
    both = [*conditions, no_staging]
    return [
        {"And": both, "Next": "UpdateEndpoint"},
        {**conditions[0], "Next": "DeployStaging"}
        if len(conditions) == 1
        else {"And": list(conditions), "Next": "DeployStaging"},
    ]


def test_every_way_to_the_endpoint_holds_the_lock_and_releases_it() -> None:
    # Given the states that lead to UpdateEndpoint
    preds = {n for n, s in STATES.items() if "UpdateEndpoint" in successors(s, catches=False)}
    # Then: the decisions to deploy without a staging stage (all after the lock was taken),
    # the promotion after staging, and the endpoint poll's restart (under the lock too; a
    # redrive that lost it is UpdateEndpoint's to check)
    assert preds == {
        "IsDeployLockHeld", "ChampionChanged", "StillBetter", "IsManualPromotion",
        "WaitForApproval", "RestartEndpoint",
    }  # fmt: skip
    staging = {n for n, s in STATES.items() if "DeployStaging" in successors(s, catches=False)}
    assert staging == {"IsDeployLockHeld", "ChampionChanged", "StillBetter", "RestartStaging"}
    # ... the stages start at the two fresh decisions, both after the lock was taken, or (a
    # registry approval's run) right after the lock; each goes to staging when there is one
    held = STATES["IsDeployLockHeld"]
    assert held["Choices"][0] == {
        "Variable": "$.lock.acquired", "BooleanEquals": False, "Next": "WaitForDeployLock"
    }  # fmt: skip
    registry = {"Variable": "$.candidate", "IsNull": False}
    assert held["Choices"][1:] == _stage_rules(registry)
    assert held["Default"] == "CheckChampion"
    unchanged = {"Variable": "$.recheck.changed", "BooleanEquals": False}
    assert STATES["ChampionChanged"]["Choices"] == _stage_rules(unchanged)
    assert STATES["ChampionChanged"]["Default"] == "WaitForRecheck"
    still = {"Variable": "$.gate.deploy", "BooleanEquals": True}
    assert STATES["StillBetter"]["Choices"] == _stage_rules(still)
    assert STATES["StillBetter"]["Default"] == "UpdateRegistration"
    assert STATES["IsTrainingRun"]["Default"] == "AcquireDeployLock"
    assert STATES["RestartRecheck"]["Next"] == "CheckChampion"
    assert STATES["WaitForDeployLock"]["SecondsPath"] == "$.lock.wait_seconds"
    assert STATES["WaitForDeployLock"]["Next"] == "AcquireDeployLock"
    # ... and both success paths (deployed, or no longer better) release it, then notify,
    # which ends the execution
    assert STATES["SmokeTest"]["Next"] == "ReleaseDeployLock"
    assert STATES["UpdateRegistration"]["Next"] == "ReleaseDeployLock"
    assert STATES["ReleaseDeployLock"]["Next"] == "NotifySuccess"
    assert STATES["NotifySuccess"]["End"] is True
    assert [n for n, s in STATES.items() if s.get("End") or s["Type"] == "Succeed"] == [
        "NotifySuccess"
    ]


def test_each_deploy_state_names_its_stage() -> None:
    # the payload is {stage, state}: no Pass state sets the stage in the data
    for name, stage in (("DeployStaging", "staging"), ("UpdateEndpoint", "production")):
        assert STATES[name]["Parameters"]["Payload"] == {"stage": stage, "state.$": "$"}


def test_execution_timeout_and_placeholders() -> None:
    assert ASL["TimeoutSeconds"] == EXECUTION_TIMEOUT_SECONDS
    workflow_functions = {f.asl_placeholder for f in FUNCTIONS if f.asl_placeholder}
    assert set(placeholders(ASL)) == workflow_functions | {"NotificationTopicArn"}
    assert FUNCTIONS_BY_KEY["trigger"].asl_placeholder is None


def test_lambda_code_does_not_import_the_sdk() -> None:
    # Given every module the Lambdas ship with (shared/ and functions/)
    forbidden = {"stepfunctions", "sagemaker", "state_machine", "moto", "sfn_mlops", "infra"}
    offenders = []
    for path in sorted([*(REPO / "shared").rglob("*.py"), *(REPO / "functions").rglob("*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in forbidden
            ]
    # Then none of them imports the SDKs, this package, moto or the local cloud
    assert offenders == []


def test_manual_promotion_waits_for_a_task_token_with_a_bounded_wait() -> None:
    # GIVEN the rendered definition
    state = STATES["WaitForApproval"]
    # THEN it is SNS's callback pattern: the message carries the token, the wait is bounded
    assert state["Resource"] == "arn:aws:states:::sns:publish.waitForTaskToken"
    assert state["Parameters"]["Message"]["task_token.$"] == "$$.Task.Token"
    assert state["TimeoutSecondsPath"] == "$.config.approval_timeout_seconds"
    assert "Catch" not in state  # a rejection or a timeout fails the run here
    # ... and only promotion: manual goes there; auto goes straight to production
    choice = STATES["IsManualPromotion"]
    assert choice["Choices"] == [
        {"Variable": "$.config.promotion", "StringEquals": "manual", "Next": "WaitForApproval"}
    ]
    assert choice["Default"] == "UpdateEndpoint"


def test_production_comes_only_after_the_staging_checks() -> None:
    # THEN staging: deploy, poll, smoke test, load check, then the promotion decision
    assert STATES["SmokeTestStaging"]["Next"] == "LoadCheckStaging"
    assert STATES["LoadCheckStaging"]["Next"] == "IsManualPromotion"
    assert STATES["WaitForApproval"]["Next"] == "UpdateEndpoint"
    assert STATES["LoadCheckStaging"]["Parameters"]["Payload"]["endpoint_name.$"] == (
        "$.staging.endpoint_name"
    )
