"""The committed artefacts: in sync with the code, deterministic, valid ASL, a usable schema."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from shared.models import PipelineInput
from shared.resources import pipeline_defaults
from state_machine import render
from state_machine.definition import definition, placeholders

REPO = Path(__file__).resolve().parents[3]
VALIDATOR = REPO / "node_modules" / ".bin" / "asl-validator"
RENDERED = render.render()


@pytest.mark.parametrize("path", sorted(RENDERED), ids=lambda p: p.name)
def test_committed_file_is_what_the_code_renders(path: Path) -> None:
    # Given the code as it is / When rendered in memory / Then the committed file matches
    assert path.read_text(encoding="utf-8") == RENDERED[path], (
        f"{path.name} is stale: run `make asl` and commit it"
    )


def test_render_check_reports_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "asl.json"
    stale.write_text("{}\n")
    assert render.stale({stale: RENDERED[render.ASL_FILE]}) == [stale]
    stale.write_text(RENDERED[render.ASL_FILE])
    assert render.stale({stale: RENDERED[render.ASL_FILE]}) == []


def test_rendering_is_deterministic_and_needs_no_aws_environment() -> None:
    # Given a clean process with another region (another partition!) and no credentials
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_REGION="cn-north-1", AWS_DEFAULT_REGION="cn-north-1")
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    code = (
        "import json, sys\n"
        "from state_machine import render\n"
        "json.dump({p.name: t for p, t in render.render().items()}, sys.stdout)\n"
    )
    # When rendered there (what `make asl` runs)
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    # Then byte for byte what this process renders
    assert json.loads(result.stdout) == {p.name: t for p, t in RENDERED.items()}
    assert render.render() == RENDERED


def _validate_asl(tmp_path: Path, asl: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    if not VALIDATOR.exists():
        pytest.fail("node_modules/.bin/asl-validator is missing: run `npm ci` (make test does)")
    path = tmp_path / "asl.json"
    path.write_text(json.dumps(asl))
    return subprocess.run(
        [str(VALIDATOR), "--json-path", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _substituted(asl: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(asl)
    for name in placeholders(asl):
        value = (
            "arn:aws:sns:us-east-1:123456789012:sfn-mlops-notifications"
            if name == "NotificationTopicArn"
            else f"arn:aws:lambda:us-east-1:123456789012:function:sfn-mlops-{name}"
        )
        text = text.replace(f"${{{name}}}", value)
    return dict(json.loads(text))


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node (make test installs it)")
def test_rendered_asl_passes_asl_validator(tmp_path: Path) -> None:
    asl = json.loads(render.ASL_FILE.read_text())
    # As committed (placeholders in Parameters are plain strings to the validator) ...
    as_committed = _validate_asl(tmp_path, asl)
    assert as_committed.returncode == 0, as_committed.stdout + as_committed.stderr
    # ... and as CDK deploys it, placeholders substituted
    deployed = _validate_asl(tmp_path, _substituted(asl))
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node (make test installs it)")
def test_asl_validator_rejects_a_broken_definition(tmp_path: Path) -> None:
    # Control: the validator does check what the test above relies on
    broken = copy.deepcopy(definition())
    broken["States"]["RegisterModel"]["Next"] = "NoSuchState"
    result = _validate_asl(tmp_path, broken)
    assert result.returncode != 0


# --- input.schema.json -------------------------------------------------------------------------

SCHEMA = json.loads(render.SCHEMA_FILE.read_text())


def _validator() -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(SCHEMA)
    cls.check_schema(SCHEMA)
    return cls(SCHEMA)  # type: ignore[no-any-return]


def test_schema_accepts_an_empty_payload_and_partial_overrides() -> None:
    validator = _validator()
    validator.validate({})
    validator.validate({"image_uri": "repo@sha256:" + "a" * 64, "max_polls": 10})
    # nested objects are deep-merged over the defaults: a part of one is enough
    validator.validate({"objective": {"threshold": 0.9}, "training": {"instance_count": 2}})


@pytest.mark.parametrize(
    "payload",
    [
        {"bogus": 1},
        {"objective": {"threshold": 0.9, "bogus": 1}},
        {"training": {"instance_count": 0}},
        {"problem_type": "multiclass"},
        {"max_polls": 0},
        {"raw_data_uri": "http://not-s3/"},
    ],
)
def test_schema_rejects_what_validate_rejects(payload: dict[str, Any]) -> None:
    assert list(_validator().iter_errors(payload))


def test_schema_defaults_are_the_pipeline_configuration() -> None:
    defaults = pipeline_defaults()
    properties = SCHEMA["properties"]
    assert set(properties) == set(PipelineInput.model_fields)
    assert {k: p["default"] for k, p in properties.items() if "default" in p} == defaults
    assert SCHEMA["additionalProperties"] is False
    assert "required" not in SCHEMA
    assert all("required" not in d for d in SCHEMA["$defs"].values())
    assert all(d["additionalProperties"] is False for d in SCHEMA["$defs"].values())
    # defaults plus the deployment's image and data make a valid PipelineInput
    PipelineInput.model_validate(
        {**defaults, "image_uri": "repo:latest", "raw_data_uri": "s3://bucket/data/"}
    )
