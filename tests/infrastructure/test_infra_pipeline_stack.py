"""The pipeline stack's resources, checked on the synthesised template."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template
from cfnhelpers import as_list, resources_of, statements_of

from infra import build_lambda
from shared import resources

POWERTOOLS_ENV = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"}


def _only(found: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    assert len(found) == 1, sorted(found)
    return next(iter(found.items()))


def _by_property(template: dict[str, Any], cfn_type: str, prop: str, value: Any) -> str:
    matches = [
        k for k, r in resources_of(template, cfn_type).items() if r["Properties"].get(prop) == value
    ]
    assert len(matches) == 1, f"{cfn_type} with {prop}={value!r}: {matches}"
    return matches[0]


def _function_id(template: dict[str, Any], spec: resources.FunctionSpec) -> str:
    return _by_property(template, "AWS::Lambda::Function", "FunctionName", spec.function_name)


def _dead_letters_id(template: dict[str, Any]) -> str:
    (found,) = [k for k in resources_of(template, "AWS::SQS::Queue") if "DeadLetters" in k]
    return found


def _data_bucket_id(template: dict[str, Any]) -> str:
    return _only(
        {
            k: r
            for k, r in resources_of(template, "AWS::S3::Bucket").items()
            if "BucketName" in r["Properties"]
        }
    )[0]


# --- storage and repository ----------------------------------------------------------------


def test_data_bucket_is_versioned_private_encrypted_logged_and_sends_events(
    pipeline_json: dict[str, Any],
) -> None:
    bucket = pipeline_json["Resources"][_data_bucket_id(pipeline_json)]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    logs_id = bucket["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
    assert pipeline_json["Resources"][logs_id]["Type"] == "AWS::S3::Bucket"
    assert bucket["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}
    }
    # the name is the one the local cloud uses too
    assert bucket["BucketName"] == {
        "Fn::Join": ["", [f"{resources.PROJECT}-", {"Ref": "AWS::AccountId"}, "-",
                          {"Ref": "AWS::Region"}]]
    }  # fmt: skip


def test_data_bucket_lifecycle_tiers_artifacts_and_expires_old_versions(
    pipeline_json: dict[str, Any],
) -> None:
    bucket = pipeline_json["Resources"][_data_bucket_id(pipeline_json)]["Properties"]
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    runs = rules["tier-run-artifacts"]
    assert runs["Prefix"] == resources.ARTIFACTS_PREFIX
    assert [t["StorageClass"] for t in runs["Transitions"]] == ["STANDARD_IA", "GLACIER_IR"]
    assert "ExpirationInDays" not in runs  # champion artifacts stay unless asked otherwise
    versions = rules["expire-old-versions"]
    assert versions["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    assert versions["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 7


def test_every_bucket_denies_plain_http(pipeline_json: dict[str, Any]) -> None:
    buckets = set(resources_of(pipeline_json, "AWS::S3::Bucket"))
    policies = resources_of(pipeline_json, "AWS::S3::BucketPolicy").values()
    denied = set()
    for policy in policies:
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement.get("Condition") == {
                "Bool": {"aws:SecureTransport": "false"}
            }:
                denied.add(policy["Properties"]["Bucket"]["Ref"])
    assert denied == buckets


def test_repository_scans_on_push_and_expires_untagged_images(pipeline: Template) -> None:
    pipeline.has_resource_properties(
        "AWS::ECR::Repository",
        {
            "RepositoryName": resources.ECR_REPOSITORY,
            "ImageScanningConfiguration": {"ScanOnPush": True},
            "LifecyclePolicy": {
                "LifecyclePolicyText": Match.serialized_json(
                    {"rules": [Match.object_like({"selection": Match.object_like(
                        {"tagStatus": "untagged", "countType": "sinceImagePushed"})})]}
                )
            },
        },
    )  # fmt: skip


# --- functions -------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", resources.FUNCTIONS, ids=lambda s: s.key)
def test_function_matches_its_spec(
    pipeline_json: dict[str, Any], spec: resources.FunctionSpec
) -> None:
    function = pipeline_json["Resources"][_function_id(pipeline_json, spec)]["Properties"]
    assert function["Handler"] == spec.handler
    assert function["Runtime"] == f"python{build_lambda.PYTHON_VERSION}"
    assert function["Architectures"] == [build_lambda.ARCHITECTURE]
    assert function["Timeout"] == spec.timeout_seconds
    assert function["MemorySize"] == spec.memory_mb
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert function["LoggingConfig"]["LogFormat"] == "JSON"
    assert len(function["Layers"]) == 1
    env = function["Environment"]["Variables"]
    assert set(env) == set(spec.env) | POWERTOOLS_ENV
    assert env["POWERTOOLS_SERVICE_NAME"] == spec.function_name
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == resources.METRICS_NAMESPACE
    # its log group has a retention and is named for the function
    log_group = pipeline_json["Resources"][function["LoggingConfig"]["LogGroup"]["Ref"]]
    assert log_group["Properties"]["LogGroupName"] == f"/aws/lambda/{spec.function_name}"
    assert log_group["Properties"]["RetentionInDays"] == 30


def test_every_function_has_its_own_role(pipeline_json: dict[str, Any]) -> None:
    roles = [
        f["Properties"]["Role"]["Fn::GetAtt"][0]
        for f in resources_of(pipeline_json, "AWS::Lambda::Function").values()
    ]
    assert len(roles) == len(set(roles)) == len(resources.FUNCTIONS)


def test_pipeline_defaults_reach_the_validate_function(pipeline_json: dict[str, Any]) -> None:
    spec = resources.FUNCTIONS_BY_KEY["validate"]
    env = pipeline_json["Resources"][_function_id(pipeline_json, spec)]["Properties"]["Environment"]
    assert json.loads(env["Variables"]["PIPELINE_DEFAULTS"]) == resources.pipeline_defaults()


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements for a in as_list(s["Action"])}


@pytest.mark.parametrize("spec", resources.FUNCTIONS, ids=lambda s: s.key)
def test_function_role_is_scoped_to_what_the_function_does(
    pipeline_json: dict[str, Any], spec: resources.FunctionSpec
) -> None:
    function = pipeline_json["Resources"][_function_id(pipeline_json, spec)]["Properties"]
    statements = statements_of(pipeline_json, function["Role"]["Fn::GetAtt"][0])
    actions = _actions(statements)
    # SageMaker control-plane access exactly where the spec says so
    control_plane = {
        a for a in actions if a.startswith("sagemaker:") and a != "sagemaker:InvokeEndpoint"
    }
    assert bool(control_plane) == spec.sagemaker_access, sorted(control_plane)
    # logs only to its own log group
    log_statements = [s for s in statements if "logs:PutLogEvents" in as_list(s["Action"])]
    assert [s["Resource"] for s in log_statements] == [
        {"Fn::GetAtt": [function["LoggingConfig"]["LogGroup"]["Ref"], "Arn"]}
    ]
    # iam:PassRole only for the SageMaker role (the drift check: its job's role), only to
    # SageMaker, only for job/model creators
    pass_role = [s for s in statements if "iam:PassRole" in as_list(s["Action"])]
    creates = any(a.startswith("sagemaker:Create") and "ModelPackage" not in a for a in actions)
    assert bool(pass_role) == creates
    for statement in pass_role:
        passed = "SageMakerDriftJobRole" if spec.key == "monitor" else "SageMakerExecutionRole"
        assert statement["Resource"]["Fn::GetAtt"][0].startswith(passed)
        assert statement["Condition"] == {
            "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
        }
    # nothing writes or deletes S3 objects: run outputs are written by SageMaker jobs
    assert not {
        a for a in actions if a.startswith("s3:") and a not in {"s3:GetObject", "s3:ListBucket"}
    }


_ENDPOINT_ACTIONS = {
    "sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:DescribeEndpoint",
    "sagemaker:InvokeEndpoint",
}  # fmt: skip


def _arn_text(resource: Any) -> str:
    """An ARN as text, CloudFormation tokens (partition, region, account) left as they are."""
    if isinstance(resource, str):
        return resource
    if isinstance(resource, dict) and "Fn::Join" in resource:
        separator, parts = resource["Fn::Join"]
        return str(separator).join(_arn_text(part) for part in parts)
    return json.dumps(resource)


def test_endpoint_grants_name_only_the_stacks_two_endpoints(
    pipeline_json: dict[str, Any],
) -> None:
    # GIVEN every function role's statements that grant an endpoint action
    defaults = resources.pipeline_defaults()
    own = {f":endpoint/{defaults[f]}" for f in ("endpoint_name", "staging_endpoint_name")}
    granted: dict[str, set[str]] = {}
    for spec in resources.FUNCTIONS:
        function = pipeline_json["Resources"][_function_id(pipeline_json, spec)]["Properties"]
        for statement in statements_of(pipeline_json, function["Role"]["Fn::GetAtt"][0]):
            if not _ENDPOINT_ACTIONS & set(as_list(statement["Action"])):
                continue
            arns = [_arn_text(r) for r in as_list(statement["Resource"])]
            # THEN no endpoint wildcard: the endpoints named are exactly config/pipeline.yaml's
            assert not [a for a in arns if ":endpoint/*" in a or a == "*"], (spec.key, arns)
            endpoints = {a[a.index(":endpoint/") :] for a in arns if ":endpoint/" in a}
            assert endpoints == own, (spec.key, arns)
            granted.setdefault(spec.key, set()).update(as_list(statement["Action"]))
    # ... for every function that reaches an endpoint
    assert set(granted) == {"poll", "evaluate", "recheck", "deploy", "monitor", "invoke",
                            "loadcheck"}, granted  # fmt: skip
    assert {"sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint"} <= granted["deploy"]


def test_trigger_may_only_start_this_state_machine(pipeline_json: dict[str, Any]) -> None:
    spec = resources.FUNCTIONS_BY_KEY["trigger"]
    role = pipeline_json["Resources"][_function_id(pipeline_json, spec)]["Properties"]["Role"]
    (start,) = [s for s in statements_of(pipeline_json, role["Fn::GetAtt"][0])
                if "states:StartExecution" in as_list(s["Action"])]  # fmt: skip
    arn = json.dumps(start["Resource"])
    assert f"stateMachine:{resources.STATE_MACHINE_NAME}" in arn
    assert "*" not in arn


def test_endpoint_alarms_are_wired_into_the_deploy_function(pipeline_json: dict[str, Any]) -> None:
    alarms = {
        r["Properties"]["AlarmName"]: k
        for k, r in resources_of(pipeline_json, "AWS::CloudWatch::Alarm").items()
    }
    ids = [alarms[name] for name in resources.ENDPOINT_ALARM_NAMES]
    staging = [alarms[name] for name in resources.STAGING_ALARM_NAMES]
    spec = resources.FUNCTIONS_BY_KEY["deploy"]
    env = pipeline_json["Resources"][_function_id(pipeline_json, spec)]["Properties"]["Environment"]
    assert env["Variables"]["ENDPOINT_ALARM_NAMES"] == {
        "Fn::Join": ["", [{"Ref": ids[0]}, ",", {"Ref": ids[1]}]]
    }
    assert env["Variables"]["STAGING_ALARM_NAMES"] == {
        "Fn::Join": ["", [{"Ref": staging[0]}, ",", {"Ref": staging[1]}]]
    }
    # the deploy function and the SageMaker execution role may read exactly these alarms
    deploy_role = pipeline_json["Resources"][_function_id(pipeline_json, spec)]["Properties"][
        "Role"
    ]
    sagemaker_role = _sagemaker_role_id(pipeline_json)
    for role_id in (deploy_role["Fn::GetAtt"][0], sagemaker_role):
        (describe,) = [s for s in statements_of(pipeline_json, role_id)
                       if "cloudwatch:DescribeAlarms" in as_list(s["Action"])]  # fmt: skip
        assert describe["Resource"] == [{"Fn::GetAtt": [i, "Arn"]} for i in (*ids, *staging)]
    defaults = resources.pipeline_defaults()
    # each endpoint's own alarms: production's and (the second endpoint) staging's
    for endpoint, alarm_ids in (
        (defaults["endpoint_name"], ids),
        (defaults["staging_endpoint_name"], staging),
    ):
        metrics = ("Invocation5XXErrors", "ModelLatency")
        for alarm_id, metric in zip(alarm_ids, metrics, strict=True):
            alarm = pipeline_json["Resources"][alarm_id]["Properties"]
            assert alarm["Namespace"] == "AWS/SageMaker"
            assert alarm["MetricName"] == metric
            assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
                "EndpointName": endpoint,
                "VariantName": resources.ENDPOINT_VARIANT_NAME,
            }


def test_the_registry_approval_rule_matches_this_groups_approvals_only(
    pipeline_json: dict[str, Any],
) -> None:
    (rule,) = [
        r["Properties"]
        for r in resources_of(pipeline_json, "AWS::Events::Rule").values()
        if r["Properties"].get("Name") == resources.REGISTRY_APPROVAL_RULE
    ]
    assert rule["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {
            "ModelPackageGroupName": [resources.pipeline_defaults()["model_package_group"]],
            "ModelApprovalStatus": ["Approved"],
        },
    }
    trigger = _function_id(pipeline_json, resources.FUNCTIONS_BY_KEY["trigger"])
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": [trigger, "Arn"]}


# --- SageMaker -----------------------------------------------------------------------------


def _sagemaker_role_id(template: dict[str, Any]) -> str:
    return _only(
        {
            k: r
            for k, r in resources_of(template, "AWS::IAM::Role").items()
            if r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
            == {"Service": "sagemaker.amazonaws.com"}
            and r["Properties"].get("RoleName") != resources.DRIFT_JOB_ROLE  # test_infra_drift
        }
    )[0]


def test_sagemaker_role_is_limited_to_bucket_prefixes_and_the_repository(
    pipeline_json: dict[str, Any],
) -> None:
    role_id = _sagemaker_role_id(pipeline_json)
    statements = statements_of(pipeline_json, role_id)
    bucket = _data_bucket_id(pipeline_json)
    for statement in statements:
        actions = as_list(statement["Action"])
        if any(a in {"s3:GetObject", "s3:PutObject"} for a in actions):
            prefixes = {r["Fn::Join"][1][1] for r in as_list(statement["Resource"])}
            assert {
                r["Fn::Join"][1][0]["Fn::GetAtt"][0] for r in as_list(statement["Resource"])
            } == {bucket}
            allowed = {
                f"/{resources.DATA_PREFIX}*",
                f"/{resources.ARTIFACTS_PREFIX}*",
                f"/{resources.CHECKPOINTS_PREFIX}*",
            }
            assert prefixes <= allowed
            if "s3:PutObject" in actions:
                assert prefixes in (
                    {f"/{resources.ARTIFACTS_PREFIX}*"},
                    {f"/{resources.CHECKPOINTS_PREFIX}*"},
                )
        if "s3:ListBucket" in actions:
            assert statement["Condition"]["StringLike"]["s3:prefix"] == [
                f"{resources.DATA_PREFIX}*",
                f"{resources.ARTIFACTS_PREFIX}*",
                f"{resources.CHECKPOINTS_PREFIX}*",
            ]
        if "ecr:BatchGetImage" in actions:
            (repository,) = resources_of(pipeline_json, "AWS::ECR::Repository")
            assert statement["Resource"] == {"Fn::GetAtt": [repository, "Arn"]}
    assert not {a for a in _actions(statements) if a.startswith("s3:Delete")}


def test_sagemaker_role_syncs_spot_checkpoints_under_their_prefix_which_expires(
    pipeline_json: dict[str, Any],
) -> None:
    # Given the SageMaker execution role and the data bucket
    statements = statements_of(pipeline_json, _sagemaker_role_id(pipeline_json))
    bucket = pipeline_json["Resources"][_data_bucket_id(pipeline_json)]["Properties"]
    # Then the role may read and write checkpoints (SageMaker's sync of /opt/ml/checkpoints)
    (sync,) = [s for s in statements if s.get("Sid") == "SyncTrainingCheckpoints"]
    assert {"s3:GetObject", "s3:PutObject"} <= set(as_list(sync["Action"]))
    assert {r["Fn::Join"][1][1] for r in as_list(sync["Resource"])} == {
        f"/{resources.CHECKPOINTS_PREFIX}*"
    }
    # And the checkpoints expire: they only matter while their execution can resume
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    rule = rules["expire-training-checkpoints"]
    assert rule["Prefix"] == resources.CHECKPOINTS_PREFIX
    assert rule["ExpirationInDays"] == resources.CHECKPOINT_EXPIRY_DAYS


def test_model_package_group_is_the_configured_one(pipeline: Template) -> None:
    pipeline.has_resource_properties(
        "AWS::SageMaker::ModelPackageGroup",
        {"ModelPackageGroupName": resources.pipeline_defaults()["model_package_group"]},
    )


# --- state machine -------------------------------------------------------------------------


def _state_machine(pipeline_json: dict[str, Any]) -> dict[str, Any]:
    return _only(resources_of(pipeline_json, "AWS::StepFunctions::StateMachine"))[1]["Properties"]


def test_definition_is_the_committed_asl_with_every_placeholder_substituted(
    pipeline_json: dict[str, Any],
) -> None:
    props = _state_machine(pipeline_json)
    body, substitutions = props["DefinitionString"], props["DefinitionSubstitutions"]
    committed = json.loads(resources.ASL_PATH.read_text())
    assert json.loads(body)["States"] == committed["States"]
    # every ${...} in the string is filled by DefinitionSubstitutions: none is left unresolved
    used = set(re.findall(r"\$\{([^}]+)\}", body))
    assert used == set(substitutions)
    # each function placeholder is the ARN of the function its spec names
    for spec in resources.FUNCTIONS:
        if spec.asl_placeholder:
            target = substitutions[spec.asl_placeholder]["Fn::GetAtt"]
            assert target[1] == "Arn"
            assert target[0] == _function_id(pipeline_json, spec)
    (topic,) = resources_of(pipeline_json, "AWS::SNS::Topic")
    assert substitutions[resources.TOPIC_PLACEHOLDER] == {"Ref": topic}
    assert isinstance(json.loads(body)["TimeoutSeconds"], int)


def test_state_machine_logs_everything_and_traces(pipeline_json: dict[str, Any]) -> None:
    props = _state_machine(pipeline_json)
    assert props["StateMachineName"] == resources.STATE_MACHINE_NAME
    assert props["StateMachineType"] == "STANDARD"
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is True
    assert props["TracingConfiguration"] == {"Enabled": True}


def test_state_machine_role_invokes_only_the_pipeline_functions_and_publishes_only_to_the_topic(
    pipeline_json: dict[str, Any],
) -> None:
    props = _state_machine(pipeline_json)
    statements = statements_of(pipeline_json, props["RoleArn"]["Fn::GetAtt"][0])
    (invoke,) = [s for s in statements if "lambda:InvokeFunction" in as_list(s["Action"])]
    expected = {_function_id(pipeline_json, s) for s in resources.FUNCTIONS if s.asl_placeholder}
    assert {r["Fn::GetAtt"][0] for r in invoke["Resource"]} == expected
    (publish,) = [s for s in statements if "sns:Publish" in as_list(s["Action"])]
    (topic,) = resources_of(pipeline_json, "AWS::SNS::Topic")
    assert publish["Resource"] == {"Ref": topic}
    others = _actions(statements) - {"lambda:InvokeFunction", "sns:Publish"}
    assert {a.split(":")[0] for a in others} <= {"logs", "xray", "kms"}
    assert not any(a.startswith(("lambda:", "sns:", "states:")) for a in others)


# --- triggers ----------------------------------------------------------------------------


def _rule(pipeline_json: dict[str, Any], name: str) -> dict[str, Any]:
    return pipeline_json["Resources"][
        _by_property(pipeline_json, "AWS::Events::Rule", "Name", name)
    ]["Properties"]


def test_rules_match_the_shared_event_patterns(pipeline_json: dict[str, Any]) -> None:
    (repository,) = resources_of(pipeline_json, "AWS::ECR::Repository")
    ecr = _rule(pipeline_json, resources.ECR_PUSH_RULE)
    assert ecr["EventPattern"] == resources.ecr_push_event_pattern({"Ref": repository})  # type: ignore[arg-type]
    s3 = _rule(pipeline_json, resources.S3_DATA_RULE)
    assert s3["EventPattern"] == resources.s3_data_event_pattern(
        {"Ref": _data_bucket_id(pipeline_json)}  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("rule_name", [resources.ECR_PUSH_RULE, resources.S3_DATA_RULE])
def test_rules_target_the_trigger_with_retries_and_a_dead_letter_queue(
    pipeline_json: dict[str, Any], rule_name: str
) -> None:
    (target,) = _rule(pipeline_json, rule_name)["Targets"]
    trigger = _function_id(pipeline_json, resources.FUNCTIONS_BY_KEY["trigger"])
    if rule_name == resources.S3_DATA_RULE:  # through the debounce queue
        data_queue = _by_property(
            pipeline_json, "AWS::SQS::Queue", "QueueName", resources.DATA_EVENTS_QUEUE
        )
        assert target["Arn"] == {"Fn::GetAtt": [data_queue, "Arn"]}
    else:
        assert target["Arn"] == {"Fn::GetAtt": [trigger, "Arn"]}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 7200, "MaximumRetryAttempts": 8}
    queue = _dead_letters_id(pipeline_json)
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue, "Arn"]}}


def test_new_data_is_debounced_by_the_queue_batching_window(pipeline_json: dict[str, Any]) -> None:
    # Given the data events queue and the trigger's event source mapping on it
    debounce = resources.data_trigger()
    queue_id = _by_property(
        pipeline_json, "AWS::SQS::Queue", "QueueName", resources.DATA_EVENTS_QUEUE
    )
    queue = pipeline_json["Resources"][queue_id]["Properties"]
    mappings = resources_of(pipeline_json, "AWS::Lambda::EventSourceMapping")
    (mapping,) = [m["Properties"] for m in mappings.values()]
    trigger = _function_id(pipeline_json, resources.FUNCTIONS_BY_KEY["trigger"])
    # Then the trigger gets one batch per window (config/pipeline.yaml), and what it cannot
    # take ends in the dead-letter queue
    assert mapping["FunctionName"] == {"Ref": trigger}
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert mapping["MaximumBatchingWindowInSeconds"] == debounce.debounce_seconds
    assert mapping["BatchSize"] == debounce.max_batch_size
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": [_dead_letters_id(pipeline_json), "Arn"]
    }
    assert queue["SqsManagedSseEnabled"] is True
    timeout = resources.FUNCTIONS_BY_KEY["trigger"].timeout_seconds
    assert queue["VisibilityTimeout"] >= 6 * timeout + debounce.debounce_seconds


def test_the_batching_window_limit_is_lambdas() -> None:
    import botocore.session

    model = botocore.session.get_session().get_service_model("lambda")
    shape = model.shape_for("MaximumBatchingWindowInSeconds")
    assert shape.metadata["max"] == resources.MAX_BATCHING_WINDOW_SECONDS


def test_schedule_is_disabled_by_default_and_starts_the_state_machine(
    pipeline_json: dict[str, Any],
) -> None:
    rule = _rule(pipeline_json, resources.SCHEDULE_RULE)
    assert rule["State"] == "DISABLED"
    (target,) = rule["Targets"]
    (machine,) = resources_of(pipeline_json, "AWS::StepFunctions::StateMachine")
    assert target["Arn"] == {"Ref": machine}
    assert "DeadLetterConfig" in target
    assert "RetryPolicy" in target


def test_dead_letter_queue_is_encrypted_tls_only_and_alarmed(pipeline_json: dict[str, Any]) -> None:
    queue_id = _dead_letters_id(pipeline_json)
    queue = pipeline_json["Resources"][queue_id]
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    (policy,) = [p for p in resources_of(pipeline_json, "AWS::SQS::QueuePolicy").values()
                 if {"Ref": queue_id} in p["Properties"]["Queues"]]  # fmt: skip
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )
    # EventBridge may send to it, only from this stack's rules
    sends = [s for s in statements if s["Effect"] == "Allow"]
    assert all(s["Principal"] == {"Service": "events.amazonaws.com"} for s in sends)
    assert all("aws:SourceArn" in s["Condition"]["ArnEquals"] for s in sends)
    alarm = [
        a["Properties"] for a in resources_of(pipeline_json, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
    ]  # fmt: skip
    assert len(alarm) == 1
    assert alarm[0]["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}
    ]
    assert alarm[0]["AlarmActions"], "the DLQ alarm notifies"


def test_trigger_function_failures_go_to_the_dead_letter_queue(pipeline: Template) -> None:
    pipeline.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "MaximumRetryAttempts": 2,
            "DestinationConfig": {
                "OnFailure": {
                    "Destination": {
                        "Fn::GetAtt": [Match.string_like_regexp("^TriggersDeadLetters"), "Arn"]
                    }
                }
            },
        },
    )  # fmt: skip


# --- notifications and monitoring ---------------------------------------------------------


def test_topic_is_kms_encrypted_with_an_email_subscription(pipeline_json: dict[str, Any]) -> None:
    topic_id, topic = _only(resources_of(pipeline_json, "AWS::SNS::Topic"))
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    assert pipeline_json["Resources"][key_id]["Properties"]["EnableKeyRotation"] is True
    (subscription,) = resources_of(pipeline_json, "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["TopicArn"] == {"Ref": topic_id}


def test_dashboard_covers_executions_states_endpoint_and_registry(
    pipeline_json: dict[str, Any],
) -> None:
    (dashboard,) = resources_of(pipeline_json, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed",
                   "ExecutionTime", "Duration", "Invocations", "Invocation5XXErrors",
                   "ModelLatency"):  # fmt: skip
        assert metric in body, metric
    assert f"SEARCH('{{{resources.METRICS_NAMESPACE},service}}" in body
    assert resources.FUNCTIONS_BY_KEY["register"].function_name in body


def test_failed_executions_alarm_notifies(pipeline_json: dict[str, Any]) -> None:
    (alarm,) = [
        a["Properties"] for a in resources_of(pipeline_json, "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["AlarmName"] == f"{resources.PROJECT}-executions-failed"
    ]  # fmt: skip
    metrics = {
        m["MetricStat"]["Metric"]["MetricName"] for m in alarm["Metrics"] if "MetricStat" in m
    }
    assert metrics == {"ExecutionsFailed", "ExecutionsTimedOut"}
    (topic,) = resources_of(pipeline_json, "AWS::SNS::Topic")
    assert alarm["AlarmActions"] == [{"Ref": topic}]


def test_unsuccessful_executions_are_notified_from_their_status_change_event(
    pipeline_json: dict[str, Any],
) -> None:
    import botocore.session

    # Given the rule on this state machine's status change events
    rule = _rule(pipeline_json, resources.EXECUTION_STATUS_RULE)
    # Then it matches aws.states status changes of this state machine, unsuccessful ones only
    (arn,) = rule["EventPattern"]["detail"]["stateMachineArn"]
    assert f":stateMachine:{resources.STATE_MACHINE_NAME}" in json.dumps(arn)
    assert rule["EventPattern"] == resources.execution_status_event_pattern(arn)
    assert rule["EventPattern"]["source"] == ["aws.states"]
    assert rule["EventPattern"]["detail-type"] == ["Step Functions Execution Status Change"]
    model = botocore.session.get_session().get_service_model("stepfunctions")
    statuses = set(model.shape_for("ExecutionStatus").enum)
    assert set(rule["EventPattern"]["detail"]["status"]) == {"FAILED", "TIMED_OUT", "ABORTED"}
    assert set(resources.NOTIFIED_STATUSES) <= statuses
    # ... and targets the notify function (the event lacks the failed state: it reads the
    # history), the whole event as input, with EventBridge's retries and the dead-letter queue
    spec = resources.FUNCTIONS_BY_KEY["notify"]
    notify = _function_id(pipeline_json, spec)
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [notify, "Arn"]}
    assert "InputTransformer" not in target
    assert "Input" not in target
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 7200, "MaximumRetryAttempts": 8}
    dead_letters = _dead_letters_id(pipeline_json)
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dead_letters, "Arn"]}}
    rule_id = _by_property(
        pipeline_json, "AWS::Events::Rule", "Name", resources.EXECUTION_STATUS_RULE
    )
    (invoke,) = [
        p["Properties"] for p in resources_of(pipeline_json, "AWS::Lambda::Permission").values()
        if p["Properties"].get("SourceArn") == {"Fn::GetAtt": [rule_id, "Arn"]}
    ]  # fmt: skip
    assert invoke["Principal"] == "events.amazonaws.com"
    assert invoke["FunctionName"] == {"Fn::GetAtt": [notify, "Arn"]}
    function = pipeline_json["Resources"][notify]["Properties"]
    (topic_id,) = resources_of(pipeline_json, "AWS::SNS::Topic")
    assert function["Environment"]["Variables"]["NOTIFICATION_TOPIC_ARN"] == {"Ref": topic_id}


def test_the_notify_role_has_only_its_two_grants(pipeline_json: dict[str, Any]) -> None:
    # Given the notify function's role
    spec = resources.FUNCTIONS_BY_KEY["notify"]
    function = pipeline_json["Resources"][_function_id(pipeline_json, spec)]["Properties"]
    role_id = function["Role"]["Fn::GetAtt"][0]
    statements = statements_of(pipeline_json, role_id)
    # Then besides its own log group and X-Ray (every function's), exactly: the history of
    # this state machine's executions, and publishing to the topic
    own = [
        s for s in statements
        if not {"logs:PutLogEvents", "xray:PutTraceSegments"} & set(as_list(s["Action"]))
    ]  # fmt: skip
    grants = sorted((as_list(s["Action"]), json.dumps(s["Resource"])) for s in own)
    (topic_id,) = resources_of(pipeline_json, "AWS::SNS::Topic")
    assert [actions for actions, _ in grants] == [["sns:Publish"], ["states:GetExecutionHistory"]]
    assert grants[0][1] == json.dumps({"Ref": topic_id})
    history = grants[1][1]
    assert f":execution:{resources.STATE_MACHINE_NAME}:*" in history
    assert all("Condition" not in s for s in own)
    # ... and the topic's key lets it encrypt only through SNS (a key policy statement)
    key_id = pipeline_json["Resources"][topic_id]["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key_statements = pipeline_json["Resources"][key_id]["Properties"]["KeyPolicy"]["Statement"]
    (for_notify,) = [
        s for s in key_statements
        if s.get("Principal") == {"AWS": {"Fn::GetAtt": [role_id, "Arn"]}}
    ]  # fmt: skip
    assert set(as_list(for_notify["Action"])) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    via = for_notify["Condition"]["StringEquals"]["kms:ViaService"]
    assert "sns." in json.dumps(via)
    # ... and EventBridge no longer publishes to the topic itself (the function does)
    (policy,) = resources_of(pipeline_json, "AWS::SNS::TopicPolicy").values()
    assert not [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Principal") == {"Service": "events.amazonaws.com"}
    ]  # fmt: skip
    assert not [
        s for s in key_statements if s.get("Principal") == {"Service": "events.amazonaws.com"}
    ]


def test_the_workflow_no_longer_publishes_failures_itself(pipeline_json: dict[str, Any]) -> None:
    (machine,) = resources_of(pipeline_json, "AWS::StepFunctions::StateMachine").values()
    definition = json.dumps(machine["Properties"]["DefinitionString"])
    assert "NotifyFailure" not in definition
    assert '\\"Catch\\"' not in definition
