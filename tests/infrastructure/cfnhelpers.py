"""Small readers over a synthesised CloudFormation template (plain dicts)."""

from __future__ import annotations

from typing import Any


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
