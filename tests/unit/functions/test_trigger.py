"""trigger: EventBridge events -> StartExecution, named from the event (moto Step Functions)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fn_support import ACCOUNT, BUCKET, ENV, REGION, REPOSITORY, event, make_table, upload_data

from functions.trigger.handler import lambda_handler
from shared import aws
from shared.errors import InvalidEventError
from shared.models import PipelineInput, TriggerOutput
from shared.naming import (
    execution_name_for_image,
    execution_name_for_object,
    execution_name_for_package,
)

DIGEST = "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd12345678"


@pytest.fixture
def state_machine(moto: None) -> str:
    sfn = aws.stepfunctions()
    arn = sfn.create_state_machine(
        name="sfn-mlops-pipeline",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn",
    )["stateMachineArn"]
    assert arn == ENV["STATE_MACHINE_ARN"]
    make_table()
    return arn


def executions(arn: str) -> list[dict[str, Any]]:
    return list(aws.stepfunctions().list_executions(stateMachineArn=arn)["executions"])


def test_ecr_push_starts_one_execution_named_by_digest(state_machine: str, context: Any) -> None:
    # GIVEN an ECR PUSH SUCCESS for the configured repository
    # WHEN the trigger handles it
    out = TriggerOutput.model_validate(lambda_handler(event("ecr_push_success"), context))
    # THEN one execution runs, named from the digest, with the image pinned by digest
    assert out.action == "started"
    assert out.execution_name == execution_name_for_image(REPOSITORY, DIGEST)
    runs = executions(state_machine)
    assert [r["name"] for r in runs] == [out.execution_name]
    described = aws.stepfunctions().describe_execution(executionArn=runs[0]["executionArn"])
    payload = json.loads(described["input"])
    registry = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
    assert payload == {
        "image_uri": f"{registry}/{REPOSITORY}@{DIGEST}",
        "tags": {"image_digest": DIGEST, "image_tag": "v1.2.0"},
    }


def test_duplicate_event_while_running_starts_nothing_new(state_machine: str, context: Any) -> None:
    # GIVEN an ECR push whose execution is still RUNNING
    first = lambda_handler(event("ecr_push_success"), context)
    # WHEN EventBridge delivers the same event again
    second = lambda_handler(event("ecr_push_success"), context)
    # THEN AWS answers the original ARN (same name + input while RUNNING): still one execution,
    # and the reply says which delivery was the duplicate
    assert second["execution_arn"] == first["execution_arn"]
    assert (first["action"], second["action"]) == ("started", "duplicate")
    assert len(executions(state_machine)) == 1


def test_duplicate_event_after_close_is_success_named_duplicate(
    state_machine: str, context: Any
) -> None:
    # GIVEN the event's execution already closed
    first = lambda_handler(event("ecr_push_success"), context)
    aws.stepfunctions().stop_execution(executionArn=first["execution_arn"])
    # WHEN the event is delivered again (ExecutionAlreadyExists from Step Functions)
    second = TriggerOutput.model_validate(lambda_handler(event("ecr_push_success"), context))
    # THEN it is a success reported as a duplicate, and nothing new started
    assert second.action == "duplicate"
    assert second.execution_name == first["execution_name"]
    assert len(executions(state_machine)) == 1


def test_s3_object_created_under_prefix_starts_data_run(state_machine: str, context: Any) -> None:
    # GIVEN a versioned object created under data/
    raw = event("s3_object_created")
    # WHEN the trigger handles it
    out = TriggerOutput.model_validate(lambda_handler(raw, context))
    # THEN the execution is named from key + version id and retrains on the data prefix
    version = raw["detail"]["object"]["version-id"]
    key = raw["detail"]["object"]["key"]
    assert out.action == "started"
    assert out.execution_name == execution_name_for_object(ENV["ARTIFACT_BUCKET"], key, version)
    assert out.payload == {
        "raw_data_uri": f"s3://{ENV['ARTIFACT_BUCKET']}/data/",
        "tags": {"data_version": f"{key}@{version}"},
    }
    assert len(executions(state_machine)) == 1


def test_s3_unversioned_object_uses_etag(state_machine: str, context: Any) -> None:
    # GIVEN an Object Created event without version-id (unversioned bucket)
    raw = event("s3_object_created_unversioned")
    # WHEN / THEN the ETag names the data version
    out = TriggerOutput.model_validate(lambda_handler(raw, context))
    etag = raw["detail"]["object"]["etag"]
    assert out.payload is not None
    assert out.payload["tags"]["data_version"].endswith(f"@{etag}")


def test_trigger_payload_passes_validation_with_defaults(state_machine: str, context: Any) -> None:
    # GIVEN the payloads the trigger starts executions with
    from functions.validate.logic import validate
    from shared.adapters.s3 import S3
    from shared.models import ValidateRequest
    from shared.settings import ValidateSettings, load_settings

    aws.s3().create_bucket(Bucket=BUCKET)
    upload_data()
    for name in ("ecr_push_success", "s3_object_created", "drift_alarm"):
        payload = lambda_handler(event(name), context)["payload"]
        # WHEN validate resolves them over the defaults
        out = validate(
            ValidateRequest(payload=payload, execution_name="x", execution_arn="arn"),
            load_settings(ValidateSettings),
            S3(aws.s3()),
        )
        # THEN they are complete PipelineInputs
        assert isinstance(out.config, PipelineInput)


@pytest.mark.parametrize(
    ("fixture", "why"),
    [
        ("ecr_push_failure", "FAILURE"),
        ("ecr_delete", "DELETE"),
        ("ecr_push_other_repo", "someone-else"),
        ("s3_object_created_outside_prefix", "not under data/"),
    ],
)
def test_other_events_are_ignored_with_a_reason(
    state_machine: str, context: Any, fixture: str, why: str
) -> None:
    # GIVEN an event the pipeline does not act on
    # WHEN the trigger handles it
    out = TriggerOutput.model_validate(lambda_handler(event(fixture), context))
    # THEN nothing starts and the reason says why
    assert out.action == "ignored"
    assert why in out.reason
    assert executions(state_machine) == []


def test_ignored_event_is_logged(
    state_machine: str, context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN / WHEN an ECR DELETE event
    lambda_handler(event("ecr_delete"), context)
    # THEN a structured log line says it was ignored, and why (a key, not an f-string)
    ignored = [r for r in caplog.records if r.getMessage() == "event ignored"]
    assert ignored
    assert "DELETE" in ignored[0].__dict__["reason"]


@pytest.mark.parametrize(
    ("fixture", "field"),
    [
        ("ecr_push_malformed_no_digest", "detail.image-digest"),
        ("s3_object_created_malformed_no_version", "detail.object.etag"),
        ("malformed_envelope", "event.detail-type"),
    ],
)
def test_malformed_event_is_rejected_naming_the_field(
    state_machine: str, context: Any, fixture: str, field: str
) -> None:
    # GIVEN a malformed event
    # WHEN the trigger handles it
    with pytest.raises(InvalidEventError) as raised:
        lambda_handler(event(fixture), context)
    # THEN the error names the field, and nothing started
    assert field in str(raised.value)
    assert executions(state_machine) == []


def test_malformed_s3_detail_names_every_field(state_machine: str, context: Any) -> None:
    # GIVEN an S3 event whose detail lacks the object key and the bucket
    raw = event("s3_object_created")
    del raw["detail"]["object"]["key"]
    del raw["detail"]["bucket"]
    # WHEN / THEN both are named
    with pytest.raises(InvalidEventError) as raised:
        lambda_handler(raw, context)
    assert "detail.object.key" in str(raised.value)
    assert "detail.bucket" in str(raised.value)


def test_moto_spelling_etag_is_not_aws_spelling(state_machine: str, context: Any) -> None:
    # GIVEN an event spelled as moto emits it (eTag, no version-id): not what AWS sends
    raw = event("s3_object_created_unversioned")
    raw["detail"]["object"]["eTag"] = raw["detail"]["object"].pop("etag")
    # WHEN / THEN it is malformed for the trigger (the local cloud emits AWS's spelling)
    with pytest.raises(InvalidEventError, match=r"detail\.object\.etag"):
        lambda_handler(raw, context)


def test_unsupported_source_is_rejected(state_machine: str, context: Any) -> None:
    raw = event("ecr_push_success")
    raw["source"] = "aws.codecommit"
    with pytest.raises(InvalidEventError, match="unsupported event"):
        lambda_handler(raw, context)


def test_data_version_of_any_key_satisfies_the_metadata_constraints(
    state_machine: str, context: Any
) -> None:
    # GIVEN an ordinary upload whose name holds spaces, parentheses, a comma, #, & and %
    from functions.validate.checks import tag_problems

    raw = event("s3_object_created")
    key = "data/batch (3), v2 #1 & 50%.csv"
    raw["detail"]["object"]["key"] = key
    # WHEN the trigger starts the run
    out = TriggerOutput.model_validate(lambda_handler(raw, context))
    # THEN the execution starts and its data_version is a valid CustomerMetadataProperties
    # value (the characters AWS refuses replaced), still recognisably the key and version
    assert out.action == "started"
    version = raw["detail"]["object"]["version-id"]
    assert out.payload["tags"]["data_version"] == f"data/batch _3__ v2 _1 _ 50_.csv@{version}"
    assert tag_problems(out.payload["tags"]) == []
    # and a key that long is cut to the 256 characters AWS allows
    raw["detail"]["object"]["key"] = "data/" + "x" * 400 + ".csv"
    long = TriggerOutput.model_validate(lambda_handler(raw, context))
    assert len(long.payload["tags"]["data_version"]) == 256


def test_concurrent_deliveries_start_one_and_say_duplicate(
    state_machine: str, context: Any
) -> None:
    # GIVEN the same S3 event delivered twice at the same time
    from concurrent.futures import ThreadPoolExecutor

    raw = event("s3_object_created")
    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda _: lambda_handler(raw, context), range(2)))
    # THEN one execution, one "started" and one "duplicate" naming the same execution
    assert sorted(r["action"] for r in replies) == ["duplicate", "started"]
    assert len({r["execution_name"] for r in replies}) == 1
    assert len(executions(state_machine)) == 1


def test_a_claimed_event_whose_start_was_lost_is_started_by_the_redelivery(
    state_machine: str, context: Any
) -> None:
    # GIVEN a delivery that claimed its event and then died before StartExecution
    from functions.trigger.logic import CLAIM_TTL_SECONDS, claim_key
    from shared.adapters.dynamodb import CoordinationTable

    raw = event("ecr_push_success")
    name = execution_name_for_image(REPOSITORY, DIGEST)
    table = CoordinationTable(aws.dynamodb(), ENV["COORDINATION_TABLE"])
    assert table.claim(claim_key(name), CLAIM_TTL_SECONDS, event_id=raw["id"])
    # WHEN EventBridge retries it
    out = lambda_handler(raw, context)
    # THEN it is reported a duplicate, and the execution runs all the same (no event lost)
    assert out["action"] == "duplicate"
    assert [r["name"] for r in executions(state_machine)] == [name]


# --- the debounce: S3 events batched through SQS, one data run at a time ------------------------


def upload_event(key: str, version: str) -> dict[str, Any]:
    raw = event("s3_object_created")
    raw["id"] = f"evt-{key}-{version}"
    raw["detail"]["object"] |= {"key": key, "version-id": version}
    return raw


def sqs_batch(*events: dict[str, Any]) -> dict[str, Any]:
    """What the SQS event source mapping invokes the trigger with."""
    return {
        "Records": [
            {
                "messageId": f"m-{i}",
                "receiptHandle": f"r-{i}",
                "body": json.dumps(e),
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:sfn-mlops-new-data",
            }
            for i, e in enumerate(events)
        ]
    }


def closed(arn: str, status: str = "SUCCEEDED") -> dict[str, Any]:
    return {
        "id": f"closed-{status}",
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "detail": {"executionArn": arn, "status": status},
    }


def test_a_burst_of_uploads_in_one_batch_starts_one_run(state_machine: str, context: Any) -> None:
    # GIVEN 10 uploads that arrive within the debounce window (one SQS batch)
    batch = sqs_batch(*(upload_event(f"data/part-{i}.csv", f"v{i}") for i in range(10)))
    # WHEN the trigger gets the batch, and SQS delivers it again
    out = TriggerOutput.model_validate(lambda_handler(batch, context))
    again = TriggerOutput.model_validate(lambda_handler(batch, context))
    # THEN one execution for all 10 (it reads the whole prefix); the redelivery is a duplicate
    assert out.action == "started"
    assert out.execution_name is not None
    assert out.execution_name.startswith("data-batch-10-")
    assert out.payload is not None
    assert out.payload["tags"]["data_version"].endswith(" +9 more")
    assert again.action == "duplicate"
    assert len(executions(state_machine)) == 1


def test_uploads_while_a_data_run_runs_get_exactly_one_follow_up(
    state_machine: str, context: Any
) -> None:
    from functions.lock.handler import execution_closed_handler

    # GIVEN a data run that is RUNNING
    first = lambda_handler(sqs_batch(upload_event("data/a.csv", "v1")), context)
    # WHEN two more batches arrive while it runs
    late = [
        TriggerOutput.model_validate(lambda_handler(sqs_batch(upload_event(k, "v1")), context))
        for k in ("data/b.csv", "data/c.csv")
    ]
    # THEN nothing starts now; both are folded into one follow-up
    assert [o.action for o in late] == ["follow-up", "follow-up"]
    assert len(executions(state_machine)) == 1
    # WHEN the running one ends (and its status event is delivered twice)
    ended = execution_closed_handler(closed(first["execution_arn"]), context)
    execution_closed_handler(closed(first["execution_arn"]), context)
    # THEN exactly one follow-up run started, after it
    names = [r["name"] for r in executions(state_machine)]
    assert len(names) == 2
    assert ended["follow_up"] in names
    assert ended["follow_up"].startswith("data-followup-")
    # ... and it is the data run now: another upload waits for it in turn
    nxt = TriggerOutput.model_validate(
        lambda_handler(sqs_batch(upload_event("data/d.csv", "v1")), context)
    )
    assert nxt.action == "follow-up"


def test_a_data_run_that_ended_without_its_event_is_reclaimed(
    state_machine: str, context: Any
) -> None:
    # GIVEN the data run was stopped and its status event has not arrived (yet)
    first = lambda_handler(sqs_batch(upload_event("data/a.csv", "v1")), context)
    aws.stepfunctions().stop_execution(executionArn=first["execution_arn"])
    # WHEN new data arrives
    out = TriggerOutput.model_validate(
        lambda_handler(sqs_batch(upload_event("data/b.csv", "v1")), context)
    )
    # THEN it starts its own run at once (nothing waits for a run that is over)
    assert out.action == "started"
    assert len(executions(state_machine)) == 2


def test_a_follow_up_without_new_data_is_not_started(state_machine: str, context: Any) -> None:
    from functions.lock.handler import execution_closed_handler

    first = lambda_handler(sqs_batch(upload_event("data/a.csv", "v1")), context)
    ended = execution_closed_handler(closed(first["execution_arn"], "FAILED"), context)
    assert ended["follow_up"] is None
    assert len(executions(state_machine)) == 1


def test_a_batch_of_only_redelivered_objects_starts_nothing(
    state_machine: str, context: Any
) -> None:
    one = upload_event("data/a.csv", "v1")
    lambda_handler(sqs_batch(one), context)
    out = TriggerOutput.model_validate(lambda_handler(sqs_batch(one, one), context))
    assert out.action == "duplicate"
    assert len(executions(state_machine)) == 1


# --- the drift alarm: one retraining per cooldown window, deduplicated -------------------------


def drift_alarm(
    timestamp: str, state: str = "ALARM", name: str = "sfn-mlops-drift"
) -> dict[str, Any]:
    data = event("drift_alarm")
    data["detail"]["state"] = dict(data["detail"]["state"], value=state, timestamp=timestamp)
    data["detail"]["alarmName"] = name
    return data


def test_a_drift_alarm_starts_one_retraining_on_the_data(state_machine: str, context: Any) -> None:
    # GIVEN the drift alarm going into ALARM
    # WHEN the trigger handles it
    out = TriggerOutput.model_validate(lambda_handler(event("drift_alarm"), context))
    # THEN one execution retrains on the data prefix, tagged as a drift retraining
    assert out.action == "started"
    assert out.execution_name is not None
    assert out.execution_name.startswith("drift-sfn-mlops-drift-")
    (run,) = executions(state_machine)
    payload = json.loads(
        aws.stepfunctions().describe_execution(executionArn=run["executionArn"])["input"]
    )
    assert payload["raw_data_uri"] == f"s3://{BUCKET}/data/"
    assert payload["tags"]["trigger"] == "drift"
    # (that ValidateInput accepts it: test_trigger_payload_passes_validation_with_defaults)


def test_a_redelivered_drift_alarm_is_a_duplicate(state_machine: str, context: Any) -> None:
    first = lambda_handler(event("drift_alarm"), context)
    second = lambda_handler(event("drift_alarm"), context)
    assert (first["action"], second["action"]) == ("started", "duplicate")
    assert second["execution_arn"] == first["execution_arn"]
    assert len(executions(state_machine)) == 1


def test_the_cooldown_holds_until_the_window_ends(
    state_machine: str, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a retraining started by a drift alarm
    first = lambda_handler(drift_alarm("2026-12-01T11:00:40.460+0000"), context)
    assert first["action"] == "started"
    # WHEN the alarm fires again (a new state change) within the cooldown
    again = lambda_handler(drift_alarm("2026-12-01T12:00:40.460+0000"), context)
    # THEN nothing starts, and the reply names the retraining that holds the window
    assert again["action"] == "ignored"
    assert first["execution_name"] in again["reason"]
    assert len(executions(state_machine)) == 1
    # ... and once the window is over (DynamoDB has not deleted the item yet), one more starts
    from datetime import UTC, datetime, timedelta

    from shared.adapters import dynamodb

    later = datetime.now(UTC) + timedelta(seconds=int(ENV["DRIFT_COOLDOWN_SECONDS"]) + 1)

    class Later(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return later

    monkeypatch.setattr(dynamodb, "datetime", Later)
    after = lambda_handler(drift_alarm("2026-12-02T11:00:41.000+0000"), context)
    # (the first retraining is still RUNNING here: the new one follows it, as a data run does)
    assert after["action"] == "follow-up"
    assert "drift alarm while the data run" in after["reason"]


def test_other_alarms_and_states_are_ignored(state_machine: str, context: Any) -> None:
    ok = lambda_handler(drift_alarm("2026-12-01T11:00:40.460+0000", state="OK"), context)
    other = lambda_handler(
        drift_alarm("2026-12-01T11:00:40.460+0000", name="someone-else"), context
    )
    assert (ok["action"], other["action"]) == ("ignored", "ignored")
    assert "went to OK" in ok["reason"]
    assert executions(state_machine) == []


def _registry_event(**detail: Any) -> dict[str, Any]:
    body = event("model_package_approved")
    body["detail"] = {**body["detail"], **detail}
    return body


def test_registry_approval_starts_one_deployment_run_of_that_package(
    state_machine: str, context: Any
) -> None:
    # GIVEN an Approved state change of a package of the pipeline's group
    approved = _registry_event()
    arn = approved["detail"]["ModelPackageArn"]
    # WHEN the trigger handles it
    out = TriggerOutput.model_validate(lambda_handler(approved, context))
    # THEN one run starts whose input is the package (ValidateInput's registry mode)
    assert out.action == "started"
    assert out.payload == {"model_package_arn": arn}
    (run,) = executions(state_machine)
    assert run["name"] == execution_name_for_package(arn)
    # ... and approving it again (or a metadata update while Approved) starts nothing new
    again = {**_registry_event(ApprovalDescription="approved twice"), "id": "another-event"}
    assert lambda_handler(again, context)["action"] == "duplicate"
    assert len(executions(state_machine)) == 1


@pytest.mark.parametrize(
    "detail",
    [
        {"ModelApprovalStatus": "Rejected"},
        {"ModelApprovalStatus": "PendingManualApproval"},
        {"ModelPackageGroupName": "someone-elses-models"},
    ],
)
def test_other_registry_state_changes_start_nothing(
    detail: dict[str, Any], state_machine: str, context: Any
) -> None:
    out = TriggerOutput.model_validate(lambda_handler(_registry_event(**detail), context))
    assert out.action == "ignored"
    assert executions(state_machine) == []


def test_a_package_its_running_execution_registered_approved_is_left_to_it(
    state_machine: str, context: Any
) -> None:
    # GIVEN the execution that registered the package (Approved by its gate) is RUNNING
    # (moto's executions stay RUNNING)
    running = aws.stepfunctions().start_execution(stateMachineArn=state_machine, name="owner")
    metadata = {"execution_arn": running["executionArn"]}
    out = lambda_handler(_registry_event(CustomerMetadataProperties=metadata), context)
    # THEN the approval event starts nothing: that execution deploys it itself
    assert out["action"] == "ignored"
    assert "which deploys it itself" in out["reason"]
