"""validate: payload deep-merged over the pipeline defaults; every bad field named at once."""

from __future__ import annotations

from typing import Any

import pytest
from fn_support import BUCKET, EXECUTION, EXECUTION_ARN, IMAGE

from functions.validate.handler import lambda_handler
from functions.validate.logic import deep_merge
from shared.errors import ConfigurationError, InvalidInputError
from shared.models import ValidateOutput
from shared.resources import pipeline_defaults


def request(payload: Any) -> dict[str, Any]:
    return {"payload": payload, "execution_name": EXECUTION, "execution_arn": EXECUTION_ARN}


def test_empty_payload_resolves_to_the_defaults(context: Any) -> None:
    # GIVEN a manual start with an empty payload
    # WHEN validate runs
    out = ValidateOutput.model_validate(lambda_handler(request({}), context))
    # THEN the config is config/pipeline.yaml plus the default image and data prefix
    defaults = pipeline_defaults()
    assert out.config.image_uri == IMAGE
    assert out.config.raw_data_uri == f"s3://{BUCKET}/data/"
    assert out.config.objective.threshold == defaults["objective"]["threshold"]
    assert out.config.hyperparameters == defaults["hyperparameters"]
    assert (out.execution_name, out.execution_arn) == (EXECUTION, EXECUTION_ARN)


def test_payload_deep_merges_over_defaults(context: Any) -> None:
    # GIVEN a payload overriding one hyperparameter and the threshold
    payload = {"hyperparameters": {"eta": 0.05}, "objective": {"threshold": 0.9}}
    # WHEN validate runs
    out = ValidateOutput.model_validate(lambda_handler(request(payload), context))
    # THEN those change and the sibling defaults stay
    assert out.config.hyperparameters["eta"] == 0.05
    assert (
        out.config.hyperparameters["max_depth"]
        == pipeline_defaults()["hyperparameters"]["max_depth"]
    )
    assert out.config.objective.threshold == 0.9
    assert out.config.objective.name == pipeline_defaults()["objective"]["name"]


def test_every_bad_field_is_named_in_one_error(context: Any) -> None:
    # GIVEN a payload with four problems: an unknown key, a wrong type, a bad enum, a typo
    payload = {
        "max_polls": "many",
        "problem_type": "multiclass",
        "objective": {"threshold": "high"},
        "endpoint_nmae": "x",
    }
    # WHEN validate runs
    with pytest.raises(InvalidInputError) as raised:
        lambda_handler(request(payload), context)
    # THEN the one error lists each as `path: problem`, with the fix for the unknown key
    message = str(raised.value)
    assert "4 invalid field(s)" in message
    assert "max_polls: " in message
    assert "problem_type: " in message
    assert "objective.threshold: " in message
    assert "endpoint_nmae: unknown key; remove it or fix its spelling" in message


def test_inconsistent_objective_is_reported(context: Any) -> None:
    # GIVEN a regression run that keeps the classification metric
    # WHEN / THEN the cause says what fits
    with pytest.raises(InvalidInputError, match=r"does not fit problem_type 'regression'"):
        lambda_handler(request({"problem_type": "regression"}), context)


def test_poll_schedule_must_cover_max_runtime(context: Any) -> None:
    # GIVEN adaptive polls that cannot wait out a job's max runtime (1+2+4 s for a 600 s job)
    payload = {
        "poll_schedule": "adaptive",
        "end_poll_interval_seconds": 1,
        "max_runtime_seconds": 600,
        "poll_interval_seconds": 1,
        "max_poll_interval_seconds": 4,
        "max_polls": 3,
    }
    # WHEN / THEN validation fails and says how many polls are needed
    with pytest.raises(InvalidInputError) as raised:
        lambda_handler(request(payload), context)
    assert "max_polls: 3 polls" in str(raised.value)
    assert "set max_polls >= 152" in str(raised.value)  # waits 1+2+4+4+...: 4n-5 >= 600


def test_payload_that_is_not_an_object_is_invalid_input(context: Any) -> None:
    with pytest.raises(InvalidInputError, match=r"payload: "):
        lambda_handler(request(["not", "an", "object"]), context)


def test_missing_setting_is_a_configuration_error_naming_it(
    context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a deployment without DEFAULT_IMAGE_URI and with broken PIPELINE_DEFAULTS
    monkeypatch.delenv("DEFAULT_IMAGE_URI")
    monkeypatch.setenv("PIPELINE_DEFAULTS", "{not json")
    # WHEN / THEN the error names both variables
    with pytest.raises(ConfigurationError) as raised:
        lambda_handler(request({}), context)
    assert "DEFAULT_IMAGE_URI: not set" in str(raised.value)
    assert "PIPELINE_DEFAULTS: " in str(raised.value)


def test_deep_merge_replaces_non_mappings_and_keeps_inputs() -> None:
    base = {"a": {"b": 1, "c": 2}, "d": [1]}
    override = {"a": {"b": 3}, "d": [2]}
    assert deep_merge(base, override) == {"a": {"b": 3, "c": 2}, "d": [2]}
    assert base == {"a": {"b": 1, "c": 2}, "d": [1]}
