"""IAM as on AWS for the Lambda functions: each function's worker runs with STS credentials
for its own role, whose policy is built from the same grants the CDK app synthesizes
(infra/permissions.py PERMISSIONS), and a call its role does not allow is denied the way AWS
denies it (AccessDeniedException / S3 AccessDenied, naming the action).

How: moto's own IAM enforcement (`INITIAL_NO_AUTH_ACTION_COUNT`) is all or nothing (every
client of the local cloud would need IAM users) and passes the resource "*" for every
service but S3, IAM, STS and SQS, so resource-scoped statements never match; and its
condition check denies a statement whose condition keys the request does not carry. So the
local cloud hooks moto's one authorization seam (ActionAuthenticatorMixin, which every
service's responses go through) and, for requests signed with a function role's
credentials only, checks them with moto's own machinery: the access key and session token
(moto STS AssumeRole), the SigV4 signature, and moto's policy evaluator (IAMPolicy) on the
action. Everything else (the operator's CLI, the ASL interpreter, the job runner) is not
checked, as before.

What it checks: the action (service:Operation, from the signing name and the operation),
explicit Deny before Allow, and for S3 the resource too (bucket or object ARN, so a grant on
runs/* does not allow data/*). For SageMaker's endpoint-only operations
(Create/Update/Describe/DeleteEndpoint, InvokeEndpoint...) the endpoint ARN is derived from
the request, so the grants scoped to the stack's two endpoints are checked. What it cannot
check: resources of other services and other SageMaker operations (moto does not say which
resource a Step Functions/SNS/Lambda call touches, so those grants are checked by action
only) and Condition blocks (iam:PassedToService, s3:prefix:
they are treated as met). Resource-based policies and SCPs are not modelled.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from infra.permissions import PERMISSIONS, Grant, Scope, policy_document
from shared import resources

Permissions = Mapping[str, Callable[[Scope], list[Grant]]]


@dataclass(frozen=True)
class LocalScope:
    """infra.permissions.Scope over the local stack's names (plain ARN strings)."""

    region: str
    account: str
    bucket: str
    state_machine_arn: str
    sagemaker_role_arn: str
    model_package_group: str
    alarm_names: tuple[str, ...]
    #: the deployed stack's endpoints (its defaults: endpoint_name, staging_endpoint_name)
    endpoint_names: tuple[str, ...] = ()

    @property
    def bucket_arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket}"

    def objects(self, pattern: str) -> str:
        return f"arn:aws:s3:::{self.bucket}/{pattern}"

    def sm(self, resource_type: str, name: str = "*") -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account}:{resource_type}/{name}"

    @property
    def group(self) -> str:
        return self.model_package_group.lower()

    @property
    def endpoint_arns(self) -> list[str]:
        # SageMaker lower-cases names in ARNs
        return [self.sm("endpoint", name.lower()) for name in self.endpoint_names]

    @property
    def alarm_arns(self) -> list[str]:
        return [
            f"arn:aws:cloudwatch:{self.region}:{self.account}:alarm:{name}"
            for name in self.alarm_names
        ]

    @property
    def drift_role_arn(self) -> str:
        return f"arn:aws:iam::{self.account}:role/{resources.DRIFT_JOB_ROLE}"

    @property
    def table_arn(self) -> str:
        return f"arn:aws:dynamodb:{self.region}:{self.account}:table/{resources.COORDINATION_TABLE}"

    @property
    def executions_arn(self) -> str:
        name = resources.STATE_MACHINE_NAME
        return f"arn:aws:states:{self.region}:{self.account}:execution:{name}:*"

    @property
    def topic_arn(self) -> str:
        return f"arn:aws:sns:{self.region}:{self.account}:{resources.FAILURE_TOPIC}"


def role_policies(scope: Scope, permissions: Permissions = PERMISSIONS) -> dict[str, str]:
    """Function key -> its role's policy document (JSON), from the shared grants."""
    missing = sorted(set(permissions) ^ set(resources.FUNCTIONS_BY_KEY))
    if missing:
        raise KeyError(f"PERMISSIONS and shared.resources.FUNCTIONS disagree on {missing}")
    return {key: json.dumps(policy_document(build(scope))) for key, build in permissions.items()}


#: IAM service prefix -> the boto3 client that makes those calls (actions not listed here,
#: such as iam:PassRole, are checked on another service's call and need no client).
_CLIENTS = {
    "s3": "s3",
    "sagemaker": "sagemaker",
    "states": "stepfunctions",
    "sns": "sns",
    "dynamodb": "dynamodb",
}


#: signing name -> IAM action prefix, where they differ
_IAM_PREFIX = {"monitoring": "cloudwatch"}


def client_services(policy: str) -> tuple[str, ...]:
    """The boto3 clients a function with this policy uses (what its worker creates while
    it warms up): one per granted service, sagemaker-runtime for InvokeEndpoint."""
    services: set[str] = set()
    for statement in json.loads(policy)["Statement"]:
        for action in statement["Action"]:
            prefix, _, name = action.partition(":")
            if action == "sagemaker:InvokeEndpoint":
                services.add("sagemaker-runtime")
            elif prefix in _CLIENTS and name:
                services.add(_CLIENTS[prefix])
    return tuple(sorted(services))


def role_name(spec: resources.FunctionSpec) -> str:
    return f"{resources.PROJECT}-{spec.key}-function"


class Enforcer:
    """The function roles' credentials the local cloud minted (only those are checked)."""

    def __init__(self) -> None:
        self._keys: set[str] = set()
        self._lock = threading.Lock()
        self.denials: list[str] = []

    def credentials(self, sts: Any, role_arn: str, session: str) -> dict[str, str]:
        """AssumeRole (moto STS) -> the environment variables of a worker with that role."""
        creds = sts.assume_role(
            RoleArn=role_arn, RoleSessionName=session[:64], DurationSeconds=43200
        )["Credentials"]
        with self._lock:
            self._keys.add(creds["AccessKeyId"])
        return {
            "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"],
        }

    def enforced(self, access_key_id: str) -> bool:
        with self._lock:
            return access_key_id in self._keys


def _access_key_id(headers: Any) -> str | None:
    auth = headers.get("Authorization") or ""
    marker = "Credential="
    if marker not in auth:
        return None
    return str(auth.split(marker, 1)[1].split("/", 1)[0])


def _document(policy: Any) -> str:
    """The text of a policy's default version (a moto managed Policy, an inline policy's
    dict, or the document itself), as moto's IAMPolicy reads it."""
    from moto.iam.models import Policy

    if isinstance(policy, Policy):
        return str(next(v.document for v in policy.versions if v.is_default))
    if isinstance(policy, str):
        return policy
    return str(policy["policy_document"])


def _without_text(text: str, keys: tuple[str, ...]) -> str:
    """A policy document with `keys` dropped from every statement (what moto's evaluator
    cannot check here: see the module doc)."""
    doc = json.loads(text)  # a fresh object: edited in place below
    statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
    for statement in statements:
        for key in keys:
            statement.pop(key, None)
    doc["Statement"] = statements
    return json.dumps(doc)


@functools.lru_cache(maxsize=512)
def _compiled(text: str, keys: tuple[str, ...]) -> Any:
    """moto's evaluator over `text` without `keys`, built once per document: IAMPolicy
    keeps only the parsed JSON and answers each is_action_permitted from it alone, so the
    same object serves every request (re-parsing it was ~3% of a warm request's CPU in
    moto's server). Keyed by the document's text, so a changed policy is a new entry."""
    from moto.iam.access_control import IAMPolicy

    return IAMPolicy(_without_text(text, keys))


def _denied(service: str, principal: str, action: str, resource: str) -> Exception:
    message = (
        f"User: {principal} is not authorized to perform: {action} on resource: {resource} "
        f"because no identity-based policy allows the {action} action"
    )
    if service == "s3":
        from moto.s3.exceptions import S3ClientError

        return S3ClientError("AccessDenied", message)
    if service in ("sns", "sqs", "iam", "sts", "cloudwatch"):  # query protocol services
        from moto.core.exceptions import AccessDeniedError

        return AccessDeniedError(principal, f"{action} on resource: {resource}")
    from moto.core.exceptions import JsonRESTError

    err = JsonRESTError("AccessDeniedException", message)
    err.code = 400
    return err


#: SageMaker operations whose only resource is the endpoint they name (the Service
#: Authorization Reference): moto gives "*", so the local cloud derives the endpoint ARN
#: from the request (EndpointName; the runtime's /endpoints/<name>/ path) and the
#: endpoint-scoped grants are checked on it, as on AWS.
_ENDPOINT_OPERATIONS = frozenset(
    {
        "CreateEndpoint",
        "UpdateEndpoint",
        "DescribeEndpoint",
        "DeleteEndpoint",
        "UpdateEndpointWeightsAndCapacities",
        "InvokeEndpoint",
        "InvokeEndpointAsync",
        "InvokeEndpointWithResponseStream",
    }
)


def _sagemaker_resource(response: Any, operation: str) -> str:
    """The endpoint ARN an endpoint-only SageMaker call acts on, else "*" (action only)."""
    if operation not in _ENDPOINT_OPERATIONS:
        return "*"
    name: str | None = None
    parts = str(response.raw_path).split("/")
    if len(parts) > 2 and parts[1] == "endpoints":  # sagemaker-runtime: /endpoints/<name>/...
        name = parts[2]
    else:
        try:
            body = json.loads(response.body or "{}")
        except (TypeError, ValueError):
            body = {}
        name = body.get("EndpointName") if isinstance(body, dict) else None
    if not name:
        return "*"
    region = response.region
    # SageMaker lower-cases the name in the ARN
    return f"arn:aws:sagemaker:{region}:{response.current_account}:endpoint/{name.lower()}"


@contextmanager
def install(enforcer: Enforcer) -> Iterator[Enforcer]:
    """Check requests signed with `enforcer`'s credentials (see the module doc)."""
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam.access_control import PermissionResult

    original = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def authorize(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        key = _access_key_id(self.headers)
        if key is None or not enforcer.enforced(key):
            original(self, iam_request_cls, resource)
            return
        path = self.raw_path  # as moto's own check builds it
        query = urlparse(self.uri).query
        if query:
            path += "?" + query
        request = iam_request_cls(
            account_id=self.current_account,
            method=self.method,
            path=path,
            data=self.data,
            body=self.raw_body,
            headers=self.headers,
            action=self._get_action(),
        )
        request.check_signature()  # a worker's key with a wrong secret: as on AWS
        action = request._action
        service, _, operation = action.partition(":")
        # moto names the action by the signing name; IAM by the service prefix
        # (CloudWatch signs as "monitoring", its actions are cloudwatch:*)
        action = f"{_IAM_PREFIX.get(service, service)}:{operation}"
        service = _IAM_PREFIX.get(service, service)
        if resource == "*" and service == "sagemaker":
            resource = _sagemaker_resource(self, operation)
        dropped = ("Condition",) if resource != "*" else ("Condition", "Resource")
        permitted = False
        for policy in request._access_key.collect_policies():
            result = _compiled(_document(policy), dropped).is_action_permitted(action, resource)
            if result == PermissionResult.DENIED:
                permitted = False
                break
            permitted = permitted or result == PermissionResult.PERMITTED
        if not permitted:
            principal = request._access_key.arn
            enforcer.denials.append(f"{principal} {action} {resource}")
            raise _denied(service, principal, action, resource)

    ActionAuthenticatorMixin._authenticate_and_authorize_action = authorize  # type: ignore[method-assign]
    try:
        yield enforcer
    finally:
        ActionAuthenticatorMixin._authenticate_and_authorize_action = original  # type: ignore[method-assign]
