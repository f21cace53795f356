"""cdk-nag (AwsSolutions pack) and the project's way of acknowledging a finding.

Every acknowledgment names one rule and, for rules that report per permission or per
resource (IAM4, IAM5), the exact finding (`applies_to`), so a new wildcard elsewhere is
still reported. Each carries a reason specific to that resource: `acknowledge` refuses
short or generic reasons, and records every acknowledgment for the report (`report`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aws_cdk import Acknowledgment, App, Stack, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

PACK = "AwsSolutions"
_RECORDS_KEY = "sfn-mlops:nag-acknowledgments"


@dataclass(frozen=True)
class Suppression:
    path: str
    rule: str  # e.g. AwsSolutions-IAM5[Resource::*]
    reason: str


def apply(app: App) -> None:
    """Run the AwsSolutions pack at synth: any unacknowledged finding fails the synth."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))


def arn_of(resource: IConstruct, attribute: str = "Arn") -> str:
    """How cdk-nag prints a `Fn::GetAtt` of `resource` inside a finding: `<LogicalId.Arn>`."""
    cfn = resource if hasattr(resource, "logical_id") else resource.node.default_child
    logical_id = Stack.of(resource).resolve(cfn.logical_id)  # type: ignore[union-attr]
    return f"<{logical_id}.{attribute}>"


def acknowledge(
    construct: IConstruct, rule: str, reason: str, *, applies_to: Iterable[str] = ()
) -> None:
    """Acknowledge `AwsSolutions-<rule>` on `construct` (and its children), per finding."""
    if len(reason) < 40:
        raise ValueError(f"a suppression of {rule} needs a specific reason, not {reason!r}")
    findings = list(applies_to)
    ids = [f"{PACK}-{rule}[{finding}]" for finding in findings] or [f"{PACK}-{rule}"]
    Validations.of(construct).acknowledge(*(Acknowledgment(id=i, reason=reason) for i in ids))
    records: list[Suppression] = _records(construct)
    records.extend(Suppression(construct.node.path, i, reason) for i in ids)


def _records(construct: IConstruct) -> list[Suppression]:
    root = construct.node.root
    records = getattr(root, "_sfn_mlops_suppressions", None)
    if records is None:
        records = []
        # jsii objects accept plain Python attributes; the list lives as long as the app.
        object.__setattr__(root, "_sfn_mlops_suppressions", records)
    return records  # type: ignore[no-any-return]


def report(app: IConstruct) -> list[Suppression]:
    """Every acknowledgment made through `acknowledge` in this app, in order."""
    return list(_records(app))


def render(resolved: object) -> str:
    """A resolved CloudFormation value as cdk-nag prints it in a finding id:
    `{"Ref": "AWS::Region"}` -> `<AWS::Region>`, `{"Fn::GetAtt": [Id, Arn]}` -> `<Id.Arn>`."""
    if isinstance(resolved, str):
        return resolved
    if isinstance(resolved, dict) and len(resolved) == 1:
        ((fn, args),) = resolved.items()
        if fn == "Ref":
            return f"<{args}>"
        if fn == "Fn::GetAtt":
            return f"<{args[0]}.{args[1]}>"
        if fn == "Fn::Join":
            separator, parts = args
            return str(separator).join(render(p) for p in parts)
    raise ValueError(f"cannot render {resolved!r} as a cdk-nag finding")
