"""Why the local cloud's strict request checks (sfn_mlops/local/strict.py) leave S3 out, held
to the service model: the S3 operations the pipeline and the local stack call carry no
constraint the pipeline could break that nothing else checks. If botocore's S3 model gains
one (a bucket-name pattern, a key maximum), the guard below fails: then S3 needs the check."""

from __future__ import annotations

from typing import Any

import boto3
import botocore.session
import pytest
from botocore.exceptions import ParamValidationError

from sfn_mlops.local import strict

#: every S3 operation the Lambdas, the CLI and the local stack make (boto3's upload_file /
#: download_file are PutObject / GetObject; get_paginator is ListObjectsV2)
PIPELINE_OPERATIONS = (
    "CreateBucket",
    "PutBucketVersioning",
    "PutBucketNotificationConfiguration",
    "PutObject",
    "GetObject",
    "HeadObject",
    "ListObjectsV2",
)


def _constraints(shape: Any, path: str, seen: set[str]) -> set[tuple[str, str, Any]]:
    """(member path, constraint, value) for every length, range and pattern constraint
    reachable from `shape` (enums aside: S3's are fixed strings the code writes)."""
    if shape.name in seen:
        return set()
    seen = seen | {shape.name}
    metadata = shape.metadata
    found = {(path, key, metadata[key]) for key in ("min", "max", "pattern") if key in metadata}
    children: list[tuple[str, Any]] = []
    if shape.type_name == "structure":
        children = [(f"{path}.{n}", m) for n, m in shape.members.items()]
    elif shape.type_name == "list":
        children = [(f"{path}[]", shape.member)]
    elif shape.type_name == "map":
        children = [(f"{path}{{}}", shape.key), (f"{path}{{}}", shape.value)]
    for child_path, child in children:
        found |= _constraints(child, child_path, seen)
    return found


def _s3_model() -> Any:
    return botocore.session.get_session().get_service_model("s3")


def test_the_s3_calls_carry_no_constraint_botocore_leaves_unchecked() -> None:
    model = _s3_model()
    found = set()
    for name in PIPELINE_OPERATIONS:
        found |= _constraints(model.operation_model(name).input_shape, name, set())
    # Only minimum lengths (the object key's, a bucket tag key's), which botocore's client
    # checks itself (minimums, not maximums or patterns): no request reaches S3 breaking one.
    # Bucket names have no constraint in the model at all (their rules are prose only).
    assert {kind for _, kind, _ in found} == {"min"}, found
    assert ("PutObject.Key", "min", 1) in found


def test_botocore_refuses_an_empty_key_before_sending() -> None:
    s3 = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with pytest.raises(ParamValidationError, match="valid min length: 1"):
        s3.put_object(Bucket="b", Key="", Body=b"")


def test_the_generic_check_would_read_s3_shapes() -> None:
    # the checker itself is not what keeps S3 out: it reads S3's shapes like any other
    shape = _s3_model().operation_model("PutObject").input_shape
    found = strict.problems({"Bucket": "b", "Key": "k", "StorageClass": "COLD"}, shape)
    assert len(found) == 1
    assert found[0].startswith(
        "Value 'COLD' at 'storageClass' failed to satisfy constraint: Member must satisfy enum"
    )
