"""Context parsing and the app's clear failures (no synth needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.constructs.functions import BuildMissingError, read_manifest
from infra.constructs.state_machine import DefinitionError, load_definition
from infra.settings import DeploySettings, SettingsError
from shared import resources

PLACEHOLDERS = {s.asl_placeholder for s in resources.FUNCTIONS if s.asl_placeholder} | {
    resources.TOPIC_PLACEHOLDER
}


def test_defaults_need_no_context() -> None:
    settings = DeploySettings.from_context(lambda key: None)
    assert not settings.cicd_enabled
    assert settings.schedule_enabled is False
    assert settings.context_args() == []


def test_context_values_are_parsed_and_forwarded() -> None:
    context = {
        "github_connection_arn": (
            "arn:aws:codestar-connections:us-east-1:123456789012:connection/x-1"
        ),
        "github_repo": "org/repo",
        "schedule_enabled": "true",
        "schedule_expression": "rate(1 day)",
        "log_retention_days": "90",
    }
    settings = DeploySettings.from_context(context.get)
    assert settings.cicd_enabled
    assert settings.github_owner_and_name == ("org", "repo")
    assert settings.schedule_enabled is True
    assert settings.log_retention_days == 90
    assert "schedule_expression=rate(1 day)" in settings.context_args()


def test_every_bad_value_is_reported_at_once() -> None:
    context = {
        "notification_email": "not-an-address",
        "github_repo": "no-slash",
        "log_retention_days": "31",
        "schedule_enabled": "perhaps",
    }
    with pytest.raises(SettingsError) as info:
        DeploySettings.from_context(context.get)
    message = str(info.value)
    for key in ("notification_email", "github_repo", "log_retention_days", "schedule_enabled"):
        assert key in message


def test_github_connection_and_repo_come_together() -> None:
    context = {"github_repo": "org/repo"}
    with pytest.raises(SettingsError, match="give both github_connection_arn and github_repo"):
        DeploySettings.from_context(context.get)


def test_missing_asl_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match=r"asl\.json not found.*make asl"):
        load_definition(tmp_path / "asl.json", PLACEHOLDERS)


def test_asl_placeholders_must_match_the_specs(tmp_path: Path) -> None:
    asl = tmp_path / "asl.json"
    asl.write_text(json.dumps({"StartAt": "A", "States": {"A": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "${UnknownFunctionArn}"}, "End": True}}}))  # fmt: skip
    with pytest.raises(DefinitionError, match="unfilled \\['UnknownFunctionArn'\\]"):
        load_definition(asl, PLACEHOLDERS)


def test_committed_asl_loads() -> None:
    definition = load_definition(resources.ASL_PATH, PLACEHOLDERS)
    assert definition["StartAt"] in definition["States"]


def test_missing_lambda_build_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(BuildMissingError, match="make layer"):
        read_manifest(tmp_path)
