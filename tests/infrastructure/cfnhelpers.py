"""Small readers over a synthesised CloudFormation template (plain dicts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Template

from infra import nag

CICD_CONTEXT = {
    "github_connection_arn": (
        "arn:aws:codeconnections:eu-west-1:123456789012:connection/0a1b2c3d-aaaa-bbbb-cccc-0123"
    ),
    "github_repo": "example-org/sfn-mlops",
    "github_branch": "main",
    "notification_email": "ml-platform@example.com",
}


@dataclass
class Synth:
    outdir: Path
    templates: dict[str, dict[str, Any]]
    suppressions: list[nag.Suppression]
    validation_error: str | None = None
    _cache: dict[str, Template] = field(default_factory=dict)

    def template(self, stack: str) -> Template:
        if stack not in self._cache:
            self._cache[stack] = Template.from_json(self.templates[stack])
        return self._cache[stack]


def resources_of(template: dict[str, Any], cfn_type: str) -> dict[str, dict[str, Any]]:
    """logical id -> resource, for every resource of `cfn_type`."""
    return {k: r for k, r in template["Resources"].items() if r["Type"] == cfn_type}


def statements_of(template: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    """Every identity-policy statement of the role `role_id` (inline or AWS::IAM::Policy)."""
    role = template["Resources"][role_id]
    found = [
        s for p in role["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]
    ]
    for policy in resources_of(template, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"].get("Roles", []):
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
