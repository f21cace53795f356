"""Manual promotion through moto's interpreter (the local cloud's Step Functions): the
WaitForApproval callback is approved, rejected, or times out; the token travels in the SNS
message and `sfn-mlops approve|reject EXECUTION` finds it in the execution's history."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest

from sfn_mlops import promotion
from sfn_mlops.aws import Target, UserError

if TYPE_CHECKING:  # the harness and fakes are fixtures (conftest.py)
    from conftest import FakePipeline, PipelineHarness

MANUAL = {"promotion": "manual", "approval_timeout_seconds": 30}


def _start(pipeline: PipelineHarness, payload: dict[str, Any]) -> str:
    return str(
        pipeline.sfn.start_execution(
            stateMachineArn=pipeline.state_machine_arn, name="run-1", input=json.dumps(payload)
        )["executionArn"]
    )


def _target(pipeline: PipelineHarness) -> Target:
    return Target(region="us-east-1", state_machine_arn=pipeline.state_machine_arn)


def _wait_for_approval(pipeline: PipelineHarness, arn: str) -> str:
    """The token once the run waits at WaitForApproval (bounded poll)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return promotion.task_token(_target(pipeline), arn)
        except UserError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_approval_promotes_to_production(pipeline: PipelineHarness, fake: FakePipeline) -> None:
    # GIVEN a manual-promotion run waiting at WaitForApproval after the staging checks
    arn = _start(pipeline, MANUAL)
    token = _wait_for_approval(pipeline, arn)
    assert [p["stage"] for p in fake.payloads["deploy"]] == ["staging"]
    # ... whose notification carries the token and the command to approve it
    waiting = [p for p in pipeline.published() if p.message["status"] == "WAITING_FOR_APPROVAL"]
    assert waiting[0].message["task_token"] == token
    assert waiting[0].message["approve"] == "sfn-mlops approve run-1"
    # WHEN a person approves it (sfn-mlops approve run-1)
    promotion.decide_execution(_target(pipeline), "run-1", True, "looks good")
    run = pipeline.wait(arn)
    # THEN production is deployed and the approval is in the output
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert [p["stage"] for p in fake.payloads["deploy"]] == ["staging", "production"]
    assert run.output is not None
    assert run.output["approval"]["reason"] == "looks good"


def test_rejection_fails_the_run_at_the_approval_and_production_is_unchanged(
    pipeline: PipelineHarness, fake: FakePipeline
) -> None:
    arn = _start(pipeline, MANUAL)
    _wait_for_approval(pipeline, arn)
    # WHEN a person rejects it
    promotion.decide_execution(_target(pipeline), "run-1", False, "latency too high")
    run = pipeline.wait(arn)
    # THEN the run fails at WaitForApproval saying so; production was never deployed
    assert run.status == "FAILED"
    assert run.error == "PromotionRejected"
    assert run.cause is not None
    assert "latency too high" in run.cause
    assert run.entered()[-1] == "WaitForApproval"
    assert [p["stage"] for p in fake.payloads["deploy"]] == ["staging"]
    # ... and there is nothing left to approve
    with pytest.raises(UserError, match="is FAILED: nothing to approve"):
        promotion.decide_execution(_target(pipeline), "run-1", True, "")


def test_no_answer_times_out_and_production_is_unchanged(
    pipeline: PipelineHarness, fake: FakePipeline
) -> None:
    # GIVEN a one-second approval timeout and nobody answering
    run = pipeline.run({**MANUAL, "approval_timeout_seconds": 1})
    # THEN the run fails at WaitForApproval with States.Timeout, before production
    assert run.status == "FAILED"
    assert run.error == "States.Timeout"
    assert run.entered()[-1] == "WaitForApproval"
    assert [p["stage"] for p in fake.payloads["deploy"]] == ["staging"]


def test_auto_promotion_does_not_wait(pipeline: PipelineHarness, fake: FakePipeline) -> None:
    run = pipeline.run({"promotion": "auto"})
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert "WaitForApproval" not in run.entered()


def test_no_staging_stage_goes_straight_to_production(
    pipeline: PipelineHarness, fake: FakePipeline
) -> None:
    run = pipeline.run({"staging_endpoint_name": None})
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert [p["stage"] for p in fake.payloads["deploy"]] == ["production"]
    assert "LoadCheckStaging" not in run.entered()
