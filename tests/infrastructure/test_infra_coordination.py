"""The coordination table (deployment locks, event claims), who may touch which items, and
the rule that releases a closed execution's locks."""

from __future__ import annotations

import json
from typing import Any

from cfnhelpers import as_list, resources_of, statements_of

from shared import resources


def _table(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (table_id,) = resources_of(template, "AWS::DynamoDB::Table")
    return table_id, template["Resources"][table_id]["Properties"]


def _statements(template: dict[str, Any], key: str) -> list[dict[str, Any]]:
    name = resources.FUNCTIONS_BY_KEY[key].function_name
    (fn,) = [
        r["Properties"]
        for r in resources_of(template, "AWS::Lambda::Function").values()
        if r["Properties"].get("FunctionName") == name
    ]
    return statements_of(template, fn["Role"]["Fn::GetAtt"][0])


def _dynamodb(template: dict[str, Any], key: str) -> dict[str, Any]:
    """action -> {resource, leading keys} for the function's DynamoDB statements."""
    found: dict[str, Any] = {}
    for s in _statements(template, key):
        for action in as_list(s["Action"]):
            if action.startswith("dynamodb:"):
                like = s.get("Condition", {}).get("ForAllValues:StringLike", {})
                found[action] = (json.dumps(s["Resource"]), like.get("dynamodb:LeadingKeys"))
    return found


def test_table_is_keyed_like_the_local_cloud_with_an_owner_index_and_ttl(
    pipeline_json: dict[str, Any],
) -> None:
    _, table = _table(pipeline_json)
    request = resources.coordination_table_request()
    assert table["TableName"] == resources.COORDINATION_TABLE
    assert table["KeySchema"] == request["KeySchema"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == resources.COORDINATION_OWNER_INDEX
    assert index["KeySchema"] == request["GlobalSecondaryIndexes"][0]["KeySchema"]
    assert table["TimeToLiveSpecification"] == {
        "AttributeName": resources.COORDINATION_TTL_ATTRIBUTE,
        "Enabled": True,
    }
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_each_function_touches_only_its_kind_of_item(pipeline_json: dict[str, Any]) -> None:
    table_id, _ = _table(pipeline_json)
    # the trigger claims events, takes the data-run item and the drift alarm's cooldown
    # window; the lock functions touch locks
    trigger = [s for s in _statements(pipeline_json, "trigger")
               if any(a.startswith("dynamodb:") for a in as_list(s["Action"]))]  # fmt: skip
    by_keys = {
        s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"][0]: set(
            as_list(s["Action"])
        )
        for s in trigger
    }
    assert by_keys == {
        "event#*": {"dynamodb:PutItem"},
        "datarun#*": {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem"},
        "drift#*": {"dynamodb:PutItem", "dynamodb:GetItem"},
    }
    acquire = _dynamodb(pipeline_json, "lock-acquire")
    assert set(acquire) == {"dynamodb:PutItem", "dynamodb:GetItem"}
    assert {v[1][0] for v in acquire.values()} == {"lock#*"}
    assert set(_dynamodb(pipeline_json, "lock-release")) == {"dynamodb:DeleteItem"}
    events = _dynamodb(pipeline_json, "lock-events")
    assert set(events) >= {"dynamodb:DeleteItem", "dynamodb:Query"}
    assert "/index/" in events["dynamodb:Query"][0]
    # UpdateEndpoint checks it holds the lock, and takes it back after a redrive
    deploy = _dynamodb(pipeline_json, "deploy")
    assert set(deploy) == {"dynamodb:PutItem", "dynamodb:GetItem"}
    assert {v[1][0] for v in deploy.values()} == {"lock#*"}
    for key in ("trigger", "lock-acquire", "lock-release", "lock-events", "deploy"):
        assert all(table_id in r for r, _ in _dynamodb(pipeline_json, key).values())
    # nobody else reaches the table
    others = [s.key for s in resources.FUNCTIONS if s.key not in
              {"trigger", "lock-acquire", "lock-release", "lock-events", "deploy"}]  # fmt: skip
    assert all(not _dynamodb(pipeline_json, key) for key in others)


def test_only_the_lock_owners_describe_executions_of_this_state_machine(
    pipeline_json: dict[str, Any],
) -> None:
    for spec in resources.FUNCTIONS:
        described = [s for s in _statements(pipeline_json, spec.key)
                     if "states:DescribeExecution" in as_list(s["Action"])]  # fmt: skip
        assert bool(described) == (spec.key in {"lock-acquire", "trigger", "lock-events"})
        for statement in described:
            assert f"execution:{resources.STATE_MACHINE_NAME}:*" in json.dumps(
                statement["Resource"]
            )


def test_execution_closed_rule_targets_the_lock_release_function(
    pipeline_json: dict[str, Any],
) -> None:
    (rule,) = [r["Properties"] for r in resources_of(pipeline_json, "AWS::Events::Rule").values()
               if r["Properties"].get("Name") == resources.EXECUTION_CLOSED_RULE]  # fmt: skip
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.states"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert pattern["detail"]["status"] == ["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"]
    (target,) = rule["Targets"]
    name = resources.FUNCTIONS_BY_KEY["lock-events"].function_name
    (fn_id,) = [k for k, r in resources_of(pipeline_json, "AWS::Lambda::Function").items()
                if r["Properties"].get("FunctionName") == name]  # fmt: skip
    assert target["Arn"] == {"Fn::GetAtt": [fn_id, "Arn"]}
    assert "DeadLetterConfig" in target
