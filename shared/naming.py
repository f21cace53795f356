"""Deterministic names.

Execution names derive from the triggering content, so a duplicated event starts nothing
new (StartExecution is idempotent by name). SageMaker job, model and endpoint-config names
derive from the execution name, the step and an attempt number, so a re-run of a failed
state finds what already ran instead of failing on ResourceInUse or training twice.
"""

from __future__ import annotations

import hashlib
import re

EXECUTION_NAME_MAX = 80
SAGEMAKER_NAME_MAX = 63
_EXECUTION_UNSAFE = re.compile(r"[^0-9A-Za-z_-]+")
_SAGEMAKER_UNSAFE = re.compile(r"[^0-9A-Za-z]+")
SAGEMAKER_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
EXECUTION_NAME_RE = re.compile(r"^[0-9A-Za-z_-]{1,80}$")


def _digest(*parts: str, length: int = 16) -> str:
    h = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return h[:length]


def _slug(text: str, unsafe: re.Pattern[str], limit: int) -> str:
    return unsafe.sub("-", text).strip("-")[:limit].strip("-")


def execution_name_for_image(repository: str, image_digest: str) -> str:
    """`img-<repo>-<digest>`: one execution per image digest, however often it is pushed."""
    hex_digest = image_digest.split(":", 1)[-1]
    if not re.fullmatch(r"[0-9a-fA-F]{12,}", hex_digest):
        raise ValueError(f"image digest {image_digest!r} is not 'sha256:<hex>'")
    repo = _slug(repository, _EXECUTION_UNSAFE, 24)
    return f"img-{repo}-{hex_digest[:48]}"[:EXECUTION_NAME_MAX]


def execution_name_for_object(bucket: str, key: str, version: str) -> str:
    """`data-<key>-<hash>`: one execution per object version (version id, else ETag)."""
    if not version:
        raise ValueError("an S3 object needs a version id or an ETag to name its execution")
    readable = _slug(key.rsplit("/", 1)[-1], _EXECUTION_UNSAFE, 40)
    return f"data-{readable}-{_digest(bucket, key, version, length=32)}"[:EXECUTION_NAME_MAX]


def execution_name_for_package(model_package_arn: str) -> str:
    """`approved-<group>-<version>-<hash>`: one deployment run per approved package, however
    often it is approved (or its metadata changes while Approved)."""
    group_version = model_package_arn.rsplit("/", 2)[-2:]
    readable = _slug("-".join(group_version), _EXECUTION_UNSAFE, 40)
    return f"approved-{readable}-{_digest(model_package_arn, length=16)}"[:EXECUTION_NAME_MAX]


def execution_name_for_batch(object_execution_names: list[str]) -> str:
    """`data-batch-<n>-<hash>`: one execution per set of new objects (order-independent)."""
    names = sorted(set(object_execution_names))
    return f"data-batch-{len(names)}-{_digest(*names, length=32)}"[:EXECUTION_NAME_MAX]


def execution_name_for_alarm(alarm_name: str, state_timestamp: str) -> str:
    """`drift-<alarm>-<hash>`: one execution per alarm state change (its timestamp)."""
    readable = _slug(alarm_name, _EXECUTION_UNSAFE, 40)
    return f"drift-{readable}-{_digest(alarm_name, state_timestamp, length=24)}"[
        :EXECUTION_NAME_MAX
    ]


def resource_name(execution_name: str, step: str, attempt: int = 1) -> str:
    """A SageMaker job/model/endpoint-config name for `step` of an execution.

    1-63 characters matching SageMaker's `[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`; distinct per
    (execution, step, attempt); readable prefix from the execution name.
    """
    if attempt < 1:
        raise ValueError("attempt starts at 1")
    step_part = _slug(step, _SAGEMAKER_UNSAFE, 12)
    suffix = f"{step_part}-{_digest(execution_name, length=12)}-{attempt}"
    room = SAGEMAKER_NAME_MAX - len(suffix) - 1
    readable = _slug(execution_name, _SAGEMAKER_UNSAFE, min(room, 24))
    name = f"{readable}-{suffix}" if readable else suffix
    assert SAGEMAKER_NAME_RE.match(name), name
    return name


def checkpoint_uri(bucket: str, checkpoints_prefix: str, execution_name: str, step: str) -> str:
    """`s3://bucket/<checkpoints_prefix>/<execution>/<step>`: a training step's checkpoints.

    Per execution, not per job attempt: a later attempt of the same execution (a redrive
    after a failure or a MaxRuntime stop) trains the same data with the same settings, so it
    resumes from the checkpoints of the attempt before it instead of starting over."""
    prefix = checkpoints_prefix.strip("/")
    return f"s3://{bucket}/{prefix}/{execution_name}/{step}"


def artifact_prefix(bucket: str, artifacts_prefix: str, execution_name: str, step: str) -> str:
    """`s3://bucket/<artifacts_prefix>/<execution>/<step>`: where a step writes its outputs."""
    prefix = artifacts_prefix.strip("/")
    return f"s3://{bucket}/{prefix}/{execution_name}/{step}"


def attempt_of(resource: str) -> tuple[str, int]:
    """(`name without its attempt`, attempt) of a name made by `resource_name`."""
    base, _, attempt = resource.rpartition("-")
    if not base or not attempt.isdigit() or int(attempt) < 1:
        raise ValueError(f"{resource!r} is not a name with an attempt number")
    return base, int(attempt)


def with_attempt(base: str, attempt: int) -> str:
    """The name of `attempt` for a base from `attempt_of` (inverse of attempt_of)."""
    if attempt < 1:
        raise ValueError("attempt starts at 1")
    return f"{base}-{attempt}"
