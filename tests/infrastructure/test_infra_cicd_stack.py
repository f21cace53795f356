"""The CI/CD stack and buildspec.yml: GitHub -> CodeBuild running the README's targets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from aws_cdk.assertions import Template
from cfnhelpers import CICD_CONTEXT, Synth, as_list, resources_of, statements_of

from shared import resources

BUILDSPEC = resources.REPO_ROOT / "buildspec.yml"


def _project(synth: Synth) -> tuple[str, dict[str, Any]]:
    ((logical_id, project),) = resources_of(
        synth.templates["SfnMlopsCicd"], "AWS::CodeBuild::Project"
    ).items()
    return logical_id, project["Properties"]


def test_pipeline_sources_github_through_the_connection_and_runs_the_build(synth: Synth) -> None:
    template = synth.templates["SfnMlopsCicd"]
    ((_, pipeline),) = resources_of(template, "AWS::CodePipeline::Pipeline").items()
    stages = {s["Name"]: s for s in pipeline["Properties"]["Stages"]}
    assert list(stages) == ["Source", "Build"]
    (source,) = stages["Source"]["Actions"]
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert source["Configuration"]["ConnectionArn"] == CICD_CONTEXT["github_connection_arn"]
    assert source["Configuration"]["FullRepositoryId"] == CICD_CONTEXT["github_repo"]
    assert source["Configuration"]["BranchName"] == CICD_CONTEXT["github_branch"]
    (build,) = stages["Build"]["Actions"]
    assert build["ActionTypeId"]["Provider"] == "CodeBuild"
    variables = json.loads(build["Configuration"]["EnvironmentVariables"])
    assert {
        "name": "COMMIT_SHA",
        "type": "PLAINTEXT",
        "value": "#{Source_GitHub_NS.CommitId}",
    } in variables


def test_build_project_is_privileged_encrypted_and_uses_the_buildspec(synth: Synth) -> None:
    _, project = _project(synth)
    assert project["Environment"]["PrivilegedMode"] is True
    assert project["Source"]["BuildSpec"] == "buildspec.yml"
    assert "EncryptionKey" in project
    env = {v["Name"]: v["Value"] for v in project["Environment"]["EnvironmentVariables"]}
    assert env["ECR_REPOSITORY_URI"]["Fn::Join"][1][-1].endswith(f"/{resources.ECR_REPOSITORY}")
    # the deploy from CodeBuild carries the same context as the first deploy
    for key in ("github_connection_arn", "github_repo", "notification_email"):
        assert f"{key}={CICD_CONTEXT[key]}" in env["CDK_CONTEXT_ARGS"]
    assert "github_branch" not in env["CDK_CONTEXT_ARGS"]  # the default is not repeated


def test_build_role_pushes_only_to_the_model_repository_and_deploys_through_cdk_roles(
    synth: Synth,
) -> None:
    template = synth.templates["SfnMlopsCicd"]
    _, project = _project(synth)
    statements = statements_of(template, project["ServiceRole"]["Fn::GetAtt"][0])
    (push,) = [s for s in statements if "ecr:PutImage" in as_list(s["Action"])]
    assert push["Resource"]["Fn::Join"][1][-1] == f":repository/{resources.ECR_REPOSITORY}"
    (assume,) = [s for s in statements if "sts:AssumeRole" in as_list(s["Action"])]
    roles = [json.dumps(r) for r in assume["Resource"]]
    assert len(roles) == 4
    assert all(":role/cdk-hnb659fds-" in r for r in roles)
    actions = {a for s in statements for a in as_list(s["Action"])}
    assert not {a for a in actions if a.startswith(("cloudformation:", "iam:", "sagemaker:"))}


def test_pipeline_stack_is_optional_without_github_context(
    lambda_build: Any, tmp_path: Path
) -> None:
    from infra.app import build_app

    app = build_app({"lambda_build_dir": str(lambda_build.root)}, outdir=tmp_path)
    assert [c.node.id for c in app.node.children if hasattr(c, "stack_name")] == ["SfnMlops"]


def test_buildspec_runs_the_make_targets_reports_tests_and_pushes_the_commit_image() -> None:
    spec = yaml.safe_load(BUILDSPEC.read_text())
    assert spec["version"] == 0.2
    commands = [c for phase in spec["phases"].values() for c in phase.get("commands", [])]
    text = "\n".join(commands)
    order = [text.index(s) for s in ("make test", "docker build", "make deploy", "docker push")]
    assert order == sorted(order), "test, build the image, deploy, then push (which triggers)"
    assert '"$ECR_REPOSITORY_URI:$IMAGE_TAG"' in text
    assert "$ECR_REPOSITORY_URI:latest" in text
    assert "docker login" in text
    assert "get-login-password" in text
    assert "container/" in text
    # pytest's JUnit XML lands where the report group reads it
    assert "--junitxml=build/reports/junit.xml" in spec["env"]["variables"]["PYTEST_ADDOPTS"]
    (report,) = spec["reports"].values()
    assert report["file-format"] == "JUNITXML"
    assert report["base-directory"] == "build/reports"
    assert any(".cache/pip" in p for p in spec["cache"]["paths"])


def test_buildspec_targets_exist_in_the_makefile() -> None:
    makefile = (resources.REPO_ROOT / "Makefile").read_text()
    for target in ("test", "deploy", "layer", "synth"):
        assert f"\n{target}:" in makefile
    assert "CDK_APPROVAL" in makefile
    assert "CDK_ARGS" in makefile


def test_cicd_template_has_the_pipeline_and_project(cicd: Template) -> None:
    cicd.resource_count_is("AWS::CodePipeline::Pipeline", 1)
    cicd.resource_count_is("AWS::CodeBuild::Project", 1)
