"""The real handlers chained as the state machine chains them (ValidateInput replaces the
state; each later result goes to its ResultPath), against moto in-process: the output models'
field names are the contract the next state reads."""

from __future__ import annotations

import json
from typing import Any

from fn_support import BUCKET, EXECUTION, EXECUTION_ARN, make_bucket, make_table, upload_data

from functions.deploy.handler import lambda_handler as deploy
from functions.evaluate.handler import lambda_handler as evaluate
from functions.evaluate.handler import recheck_handler as recheck
from functions.gate.handler import lambda_handler as gate
from functions.lock.handler import acquire_handler as acquire_lock
from functions.lock.handler import release_handler as release_lock
from functions.poll.handler import lambda_handler as poll
from functions.preprocess.handler import lambda_handler as preprocess
from functions.register.handler import lambda_handler as register
from functions.train.handler import lambda_handler as train
from functions.validate.handler import lambda_handler as validate
from shared import aws
from shared.naming import resource_name


def poll_request(step: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """What the definition's Poll state passes (built from $.<step> and $.config)."""
    request = {
        "job_name": step["job_name"],
        "job_type": step["job_type"],
        "attempt": step["poll"]["attempt"],
        "poll_interval_seconds": config["poll_interval_seconds"],
        "max_poll_interval_seconds": config["max_poll_interval_seconds"],
        "max_polls": config["max_polls"],
    }
    if step["job_type"] == "endpoint":
        request["expected_config_name"] = step["endpoint_config_name"]
    return request


def test_handlers_compose_from_payload_to_endpoint(moto: None, context: Any) -> None:
    # GIVEN a manual start with a partial payload
    make_bucket()
    upload_data()
    make_table()
    payload = {"hyperparameters": {"eta": 0.1}, "tags": {"git_sha": "abc123"}}
    # WHEN each state's Lambda runs on the state the definition would hand it
    state = validate(
        {"payload": payload, "execution_name": EXECUTION, "execution_arn": EXECUTION_ARN}, context
    )
    for key, handler in (("preprocess", preprocess), ("train", train), ("evaluate", evaluate)):
        state[key] = handler(state, context)
        state[key]["poll"] = poll(poll_request(state[key], state["config"]), context)
        assert state[key]["poll"]["status"] == "Completed"  # moto: jobs complete at once
    report = {
        "problem_type": "binary_classification",
        "challenger": {"metrics": {"auc": 0.97}},
        "champion": None,
    }
    bucket, key = state["evaluate"]["report_uri"][5:].split("/", 1)
    aws.s3().put_object(Bucket=bucket, Key=key, Body=json.dumps(report).encode())
    state["gate"] = gate(state, context)
    state["register"] = register(state, context)
    assert state["gate"]["deploy"] is True
    state["lock"] = acquire_lock(state, context)
    assert state["lock"]["acquired"] is True
    state["recheck"] = recheck(state, context)
    assert state["recheck"]["changed"] is False  # no deployment since the evaluation
    assert state["candidate"] is None  # a training run: the deploy takes the run's own model
    state["deploy"] = deploy({"stage": "production", "state": state}, context)  # UpdateEndpoint
    assert state["deploy"]["model_package_arn"] == state["register"]["model_package_arn"]
    assert state["deploy"]["sample_uri"] == state["preprocess"]["sample_uri"]
    state["deploy"]["poll"] = poll(poll_request(state["deploy"], state["config"]), context)
    state["lock_release"] = release_lock(state, context)
    assert state["lock_release"]["released"] is True
    # THEN the run ends with the endpoint on this execution's config and an Approved package
    assert state["deploy"]["poll"]["status"] == "Completed"
    assert state["register"]["approval_status"] == "Approved"
    endpoint = aws.sagemaker().describe_endpoint(EndpointName=state["config"]["endpoint_name"])
    assert endpoint["EndpointConfigName"] == resource_name(EXECUTION, "config")
    assert state["train"]["model_artifact_uri"].startswith(f"s3://{BUCKET}/runs/{EXECUTION}/")
    # and the whole state stays small (Step Functions caps it at 256 KiB)
    assert len(json.dumps(state)) < 16 * 1024
