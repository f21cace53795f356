"""Settings: parsed once from the environment; a missing/invalid variable is named; each
function's settings read only keys its FunctionSpec declares (CDK and local cloud set those)."""

from __future__ import annotations

import pytest

from shared import settings as s
from shared.errors import ConfigurationError
from shared.resources import FUNCTIONS_BY_KEY

GOOD = {
    "ARTIFACT_BUCKET": "bucket-1",
    "ARTIFACTS_PREFIX": "runs/",
    "SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/r",
    "ENDPOINT_ALARM_NAMES": "a, b ,,c",
    "DATA_CAPTURE_PERCENT": "100",
    "DRIFT_ALARM_NAME": "sfn-mlops-drift",
    "DRIFT_COOLDOWN_SECONDS": "86400",
    "MONITORED_ENDPOINT": "sfn-mlops-endpoint",
    "MONITOR_ROLE_ARN": "arn:aws:iam::123456789012:role/sfn-mlops-drift-job",
    "MONITOR_WINDOW_HOURS": "1",
    "DRIFT_ENVIRONMENT": "{}",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:x",
    "ECR_REPOSITORY": "repo",
    "DATA_PREFIX": "data/",
    "PIPELINE_DEFAULTS": '{"max_polls": 3}',
    "DEFAULT_IMAGE_URI": "img",
    "COORDINATION_TABLE": "sfn-mlops-coordination",
}

#: Which settings model each function loads (functions/<folder>/handler.py).
USED = {
    "trigger": s.TriggerSettings,
    "validate": s.ValidateSettings,
    "preprocess": s.JobSettings,
    "train": s.JobSettings,
    "poll": s.NoSettings,
    "evaluate": s.JobSettings,
    "gate": s.NoSettings,
    "register": s.NoSettings,
    "deploy": s.DeploySettings,
    "invoke": s.InvokeSettings,
    "lock-acquire": s.LockSettings,
    "lock-release": s.LockSettings,
    "lock-events": s.ExecutionClosedSettings,
    "notify": s.NotifySettings,
    "recheck": s.JobSettings,
    "monitor": s.MonitorSettings,
    "loadcheck": s.NoSettings,
}


def test_every_function_has_a_settings_model() -> None:
    assert set(USED) == set(FUNCTIONS_BY_KEY)


@pytest.mark.parametrize("key", sorted(USED))
def test_settings_keys_are_declared_in_the_function_spec(key: str) -> None:
    # GIVEN the environment the CDK app / local cloud gives this function
    declared = set(FUNCTIONS_BY_KEY[key].env)
    # THEN everything its settings model reads is in it
    assert set(s.env_keys(USED[key])) <= declared


def test_values_are_parsed() -> None:
    deploy = s.parse_settings(s.DeploySettings, GOOD)
    assert deploy.endpoint_alarm_names == ("a", "b", "c")
    assert deploy.artifacts_prefix == "runs/"
    validate = s.parse_settings(s.ValidateSettings, GOOD)
    assert validate.pipeline_defaults == {"max_polls": 3}


def test_empty_alarm_list_is_allowed() -> None:
    assert (
        s.parse_settings(s.DeploySettings, GOOD | {"ENDPOINT_ALARM_NAMES": ""}).endpoint_alarm_names
        == ()
    )


def test_missing_and_invalid_variables_are_all_named() -> None:
    env = {k: v for k, v in GOOD.items() if k != "ARTIFACT_BUCKET"}
    env["SAGEMAKER_ROLE_ARN"] = "not-an-arn"
    with pytest.raises(ConfigurationError) as raised:
        s.parse_settings(s.JobSettings, env)
    assert "ARTIFACT_BUCKET: not set" in str(raised.value)
    assert "SAGEMAKER_ROLE_ARN: " in str(raised.value)


def test_too_many_alarms_is_a_configuration_error() -> None:
    env = GOOD | {"ENDPOINT_ALARM_NAMES": ",".join(f"a{i}" for i in range(11))}
    with pytest.raises(ConfigurationError, match=r"ENDPOINT_ALARM_NAMES: .*at most 10"):
        s.parse_settings(s.DeploySettings, env)


def test_loaded_once_and_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN settings loaded at cold start
    s.reset_settings()
    monkeypatch.setenv("ARTIFACT_BUCKET", "first-bucket")
    first = s.load_settings(s.InvokeSettings)
    # WHEN the environment changes later
    monkeypatch.setenv("ARTIFACT_BUCKET", "second-bucket")
    # THEN the parsed object is reused (parsed once per cold start)
    assert s.load_settings(s.InvokeSettings) is first
    assert first.artifact_bucket == "first-bucket"
    s.reset_settings()


def test_deploy_strategy_limits_are_sagemakers() -> None:
    """The blue/green limits in shared/models.py are botocore's service model's."""
    import botocore.session

    from shared import models

    model = botocore.session.get_session().get_service_model("sagemaker")
    routing = model.shape_for("TrafficRoutingConfig").members
    policy = model.shape_for("BlueGreenUpdatePolicy").members
    assert routing["WaitIntervalInSeconds"].metadata["max"] == models.WAIT_INTERVAL_MAX
    assert policy["TerminationWaitInSeconds"].metadata["max"] == models.TERMINATION_WAIT_MAX
    timeout = policy["MaximumExecutionTimeoutInSeconds"].metadata
    assert (timeout["min"], timeout["max"]) == models.MAX_EXECUTION_TIMEOUT_RANGE
    kinds = model.shape_for("TrafficRoutingConfigType").enum
    assert sorted(k.lower() for k in kinds) == sorted(
        models.DeployStrategy.model_fields["type"].annotation.__args__  # type: ignore[union-attr]
    )
