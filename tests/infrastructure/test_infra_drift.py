"""Model monitoring in the synthesized stack: the drift check's schedule, its job's role,
the drift alarm, and the alarm -> trigger wiring."""

from __future__ import annotations

import json
from typing import Any

from cfnhelpers import as_list, resources_of, statements_of

from shared import resources


def _rule(template: dict[str, Any], name: str) -> dict[str, Any]:
    (rule,) = [r for r in resources_of(template, "AWS::Events::Rule").values()
               if r["Properties"].get("Name") == name]  # fmt: skip
    return rule["Properties"]


def _function_id(template: dict[str, Any], key: str) -> str:
    name = resources.FUNCTIONS_BY_KEY[key].function_name
    (found,) = [k for k, r in resources_of(template, "AWS::Lambda::Function").items()
                if r["Properties"].get("FunctionName") == name]  # fmt: skip
    return found


def test_the_drift_check_runs_on_the_configured_schedule(pipeline_json: dict[str, Any]) -> None:
    rule = _rule(pipeline_json, resources.DRIFT_SCHEDULE_RULE)
    # the same rate the local cloud's rule gets (sfn_mlops/local/stack.py monitoring)
    assert rule["ScheduleExpression"] == resources.monitoring().schedule_expression
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [_function_id(pipeline_json, "monitor"), "Arn"]}


def test_the_drift_alarm_in_alarm_reaches_the_trigger(pipeline_json: dict[str, Any]) -> None:
    (alarm_id, alarm), *_ = [
        (k, r) for k, r in resources_of(pipeline_json, "AWS::CloudWatch::Alarm").items()
        if r["Properties"].get("AlarmName") == resources.DRIFT_ALARM_NAME
    ]  # fmt: skip
    props = alarm["Properties"]
    assert (props["Namespace"], props["MetricName"]) == (
        resources.MONITORING_NAMESPACE, "DriftedFeatures"
    )  # fmt: skip
    assert props["TreatMissingData"] == "notBreaching"  # no capture -> no alarm
    rule = _rule(pipeline_json, resources.DRIFT_ALARM_RULE)
    pattern = rule["EventPattern"]
    assert pattern["detail-type"] == ["CloudWatch Alarm State Change"]
    assert pattern["detail"] == {"state": {"value": ["ALARM"]}}
    assert pattern["resources"] == [{"Fn::GetAtt": [alarm_id, "Arn"]}]
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [_function_id(pipeline_json, "trigger"), "Arn"]}
    # ... and the trigger knows the alarm and the cooldown
    trigger = pipeline_json["Resources"][_function_id(pipeline_json, "trigger")]
    env = trigger["Properties"]["Environment"]["Variables"]
    assert env["DRIFT_ALARM_NAME"] == resources.DRIFT_ALARM_NAME
    assert env["DRIFT_COOLDOWN_SECONDS"] == str(resources.monitoring().cooldown_hours * 3600)


def test_the_drift_jobs_role_reads_capture_and_baselines_writes_reports_and_metrics(
    pipeline_json: dict[str, Any],
) -> None:
    (role_id,) = [k for k, r in resources_of(pipeline_json, "AWS::IAM::Role").items()
                  if r["Properties"].get("RoleName") == resources.DRIFT_JOB_ROLE]  # fmt: skip
    statements = statements_of(pipeline_json, role_id)
    actions = sorted({a for s in statements for a in as_list(s["Action"])})
    assert actions == sorted([
        "s3:GetObject", "s3:ListBucket", "s3:PutObject", "cloudwatch:PutMetricData",
        "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability",
        "ecr:GetAuthorizationToken", "logs:CreateLogGroup", "logs:CreateLogStream",
        "logs:PutLogEvents", "logs:DescribeLogStreams",
    ])  # fmt: skip
    text = {a: json.dumps([s for s in statements if a in as_list(s["Action"])])
            for a in ("s3:GetObject", "s3:PutObject", "cloudwatch:PutMetricData")}  # fmt: skip
    assert resources.CAPTURE_PREFIX in text["s3:GetObject"]
    assert "/evaluate/" in text["s3:GetObject"]
    assert resources.MONITORING_PREFIX in text["s3:PutObject"]
    assert resources.CAPTURE_PREFIX not in text["s3:PutObject"]  # never rewrites the capture
    assert resources.MONITORING_NAMESPACE in text["cloudwatch:PutMetricData"]
    # the monitor function may pass exactly this role to SageMaker
    monitor = pipeline_json["Resources"][_function_id(pipeline_json, "monitor")]
    monitor_role = monitor["Properties"]["Role"]["Fn::GetAtt"][0]
    passes = [s for s in statements_of(pipeline_json, monitor_role)
              if "iam:PassRole" in as_list(s["Action"])]  # fmt: skip
    assert passes
    assert all(role_id in json.dumps(s["Resource"]) for s in passes)


def test_the_production_endpoint_captures_at_the_configured_rate(
    pipeline_json: dict[str, Any],
) -> None:
    deploy = pipeline_json["Resources"][_function_id(pipeline_json, "deploy")]
    env = deploy["Properties"]["Environment"]["Variables"]
    assert env["DATA_CAPTURE_PERCENT"] == str(resources.monitoring().capture_sampling_percentage)
