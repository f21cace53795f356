"""Security gates on the synthesised app: cdk-nag (AwsSolutions), cfn-lint, IAM wildcards."""

from __future__ import annotations

from typing import Any

import pytest
from cfnhelpers import Synth, as_list, resources_of
from cfnlint.api import lint

#: Actions IAM only accepts on Resource "*" (no resource-level permissions), and why we use them.
RESOURCE_STAR_ALLOWED = {
    "xray:PutTraceSegments": "Lambda/Step Functions active tracing",
    "xray:PutTelemetryRecords": "Lambda/Step Functions active tracing",
    "xray:GetSamplingRules": "Step Functions tracing",
    "xray:GetSamplingTargets": "Step Functions tracing",
    "ecr:GetAuthorizationToken": "docker login to ECR (SageMaker pull, CodeBuild push)",
    "cloudwatch:PutMetricData": "SageMaker job metrics (namespace-conditioned)",
    "sagemaker:ListModelPackages": "register: versions of the configured group",
    "sagemaker:ListTrainingJobs": "train: the step's last completed job (poll schedule)",
    "sagemaker:ListProcessingJobs": "preprocess/evaluate: the step's last completed job",
    "logs:CreateLogDelivery": "Step Functions logging",
    "logs:GetLogDelivery": "Step Functions logging",
    "logs:UpdateLogDelivery": "Step Functions logging",
    "logs:DeleteLogDelivery": "Step Functions logging",
    "logs:ListLogDeliveries": "Step Functions logging",
    "logs:PutResourcePolicy": "Step Functions logging",
    "logs:DescribeResourcePolicies": "Step Functions logging",
    "logs:DescribeLogGroups": "Step Functions logging",
}
#: cfn-lint warnings that are explained, not fixed:
#: W3005 - CDK adds DependsOn [Role, Role/DefaultPolicy] to functions and state machines so the
#: policy exists before first use; the Role half is redundant with the GetAtt (harmless).
EXPLAINED_WARNINGS = {"W3005"}


def test_cdk_nag_has_no_unacknowledged_findings(synth: Synth) -> None:
    assert synth.validation_error is None, synth.validation_error


def test_every_suppression_is_specific_and_explained(synth: Synth) -> None:
    assert synth.suppressions, "the report should list the acknowledged findings"
    seen = set()
    for s in synth.suppressions:
        assert s.rule.startswith("AwsSolutions-"), s
        # IAM5/IAM4 report per permission: acknowledge the exact finding, never the whole rule
        if s.rule.split("[")[0] in {"AwsSolutions-IAM4", "AwsSolutions-IAM5"}:
            assert "[" in s.rule, f"{s.path}: {s.rule} must name the finding it applies to"
        assert len(s.reason) >= 40, s
        assert (s.path, s.rule) not in seen, f"duplicate {s}"
        seen.add((s.path, s.rule))
    # wildcard acknowledgments are per role, never at stack scope
    assert all(s.path.count("/") >= 1 for s in synth.suppressions)


def _identity_statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for logical_id, policy in resources_of(template, "AWS::IAM::Policy").items():
        found += [(logical_id, s) for s in policy["Properties"]["PolicyDocument"]["Statement"]]
    for logical_id, role in resources_of(template, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            found += [(logical_id, s) for s in policy["PolicyDocument"]["Statement"]]
    return found


@pytest.mark.parametrize("stack", ["SfnMlops", "SfnMlopsCicd"])
def test_no_wildcard_actions_and_resource_star_only_where_iam_requires_it(
    synth: Synth, stack: str
) -> None:
    template = synth.templates[stack]
    statements = _identity_statements(template)
    assert statements
    for logical_id, statement in statements:
        assert statement["Effect"] == "Allow", (logical_id, statement)
        actions = as_list(statement["Action"])
        for action in actions:
            assert action != "*", (logical_id, statement)
            assert not action.endswith(":*"), f"{logical_id}: service-wide {action}"
        if "*" in as_list(statement["Resource"]):
            extra = set(actions) - set(RESOURCE_STAR_ALLOWED)
            assert not extra, f"{logical_id}: {sorted(extra)} on Resource '*'"
    # no managed policies (AWSLambdaBasicExecutionRole and friends are broader than needed)
    for logical_id, role in resources_of(template, "AWS::IAM::Role").items():
        assert not role["Properties"].get("ManagedPolicyArns"), logical_id


def test_wildcard_scan_catches_a_service_wide_action() -> None:
    statement = {"Effect": "Allow", "Action": "sagemaker:*", "Resource": "*"}
    document = {"PolicyDocument": {"Statement": [statement]}}
    template = {"Resources": {"P": {"Type": "AWS::IAM::Policy", "Properties": document}}}
    synth = Synth(outdir=None, templates={"SfnMlops": template}, suppressions=[])  # type: ignore[arg-type]
    with pytest.raises(AssertionError, match="service-wide sagemaker"):
        test_no_wildcard_actions_and_resource_star_only_where_iam_requires_it(synth, "SfnMlops")


@pytest.mark.parametrize("stack", ["SfnMlops", "SfnMlopsCicd"])
def test_cfn_lint_reports_no_errors(synth: Synth, stack: str) -> None:
    text = (synth.outdir / f"{stack}.template.json").read_text()
    matches = lint(text, regions=["us-east-1", "eu-west-1"])
    errors = [m for m in matches if m.rule.id.startswith("E")]
    assert not errors, "\n".join(str(m) for m in errors)
    unexplained = {m.rule.id for m in matches} - EXPLAINED_WARNINGS
    assert not unexplained, "\n".join(str(m) for m in matches if m.rule.id in unexplained)
