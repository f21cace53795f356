"""Strict requests: every request the local cloud serves is checked against the service
model's own constraints, as AWS checks it, and refused with AWS's ValidationException text.

botocore checks only types and required members on the client side, and moto little more,
so without this an invalid instance type, a model-package metadata value with a quote, or a
name over its length limit would succeed locally and fail only on AWS. The constraints come
from botocore's service models, generically (no per-field lists): a string's ``min``/``max``
length, ``pattern`` and ``enum``; a number's ``min``/``max``; a list's or map's ``min``/
``max`` size; recursively through structures, lists and maps.

Where: moto's ``BaseResponse._dispatch`` (the request path of every service that answers
through it: SageMaker, Step Functions, EventBridge, SNS, CloudWatch, ECR, Lambda's control
plane, ...), after moto parsed the request into the operation's parameters with its
protocol parsers.

S3 is not checked, by design. Its model gives the S3 operations the pipeline and the local
stack make (CreateBucket, PutBucketVersioning, PutBucketNotificationConfiguration,
PutObject, GetObject, HeadObject, ListObjectsV2) no length maximum, pattern or range, only
minimum lengths, which botocore's client checks itself; bucket names have no constraint in
the model at all (their rules are prose). The rest are enums of fixed strings the code
writes. So a check would refuse nothing the pipeline can send, and it would cost a second
request router: moto's S3 answers through its own dispatch, which names the operation late
and by IAM action (a CopyObject is a ``PutObject``), and S3 refuses with its own error codes
(``InvalidArgument``, ``MalformedXML``), not ValidationException. A test holds this to the
model (tests/unit/test_local_strict_s3.py): if botocore's S3 model gains such a constraint,
it fails, and S3 needs the check.

Patterns: AWS's are Java regular expressions with ``\\p{L}``-style classes, which Python's
``re`` lacks: they are compiled with the ``regex`` package and matched against the whole
value, as AWS does. A trailing Java-style ``${m,n}`` (some models carry one; the length is
also given as min/max) is dropped. A pattern that ``regex`` cannot compile is skipped, so
a model quirk never refuses a valid request.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

_TRAILING_LENGTH = re.compile(r"\$\{\d+,\d+\}$")
_MAX_SHOWN = 100  # characters of a value quoted in a message
_NUMERIC = ("integer", "long", "float", "double")


@functools.cache
def compiled(pattern: str) -> Any:
    import regex

    try:
        return regex.compile(_TRAILING_LENGTH.sub("$", pattern))
    except regex.error:
        return None


def _member_path(path: str, name: str) -> str:
    name = name[:1].lower() + name[1:]
    return f"{path}.{name}" if path else name


def _shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _size_problems(value: Any, size: int, shape: Any, path: str, what: str) -> list[str]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    out = []
    if low is not None and size < low:
        out.append(f"Member must have {what} greater than or equal to {low}")
    if high is not None and size > high:
        out.append(f"Member must have {what} less than or equal to {high}")
    return [_problem(value, path, p) for p in out]


def _problem(value: Any, path: str, constraint: str) -> str:
    return f"Value '{_shown(value)}' at '{path}' failed to satisfy constraint: {constraint}"


def problems(value: Any, shape: Any, path: str = "") -> list[str]:
    """Every constraint `value` breaks, in AWS's words (``Value 'x' at 'a.b' failed to
    satisfy constraint: ...``)."""
    if value is None:
        return []
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, Mapping):
            return []
        out: list[str] = []
        for name, member in shape.members.items():
            if name in value:
                out += problems(value[name], member, _member_path(path, name))
        return out
    if kind == "list":
        if not isinstance(value, list | tuple):
            return []
        out = _size_problems(value, len(value), shape, path, "length")
        for i, item in enumerate(value):
            out += problems(item, shape.member, f"{path}.{i + 1}.member")
        return out
    if kind == "map":
        if not isinstance(value, Mapping):
            return []
        out = _size_problems(value, len(value), shape, path, "length")
        for key, item in value.items():
            out += problems(key, shape.key, f"{path}.key")
            out += problems(item, shape.value, f"{path}.{key}")
        return out
    if kind == "string" and isinstance(value, str):
        out = _size_problems(value, len(value), shape, path, "length")
        enum = list(getattr(shape, "enum", None) or [])
        if enum and value not in enum:
            out.append(
                _problem(value, path, f"Member must satisfy enum value set: [{', '.join(enum)}]")
            )
        pattern = shape.metadata.get("pattern")
        regex = compiled(pattern) if pattern else None
        if regex is not None and regex.fullmatch(value) is None:
            out.append(
                _problem(value, path, f"Member must satisfy regular expression pattern: {pattern}")
            )
        return out
    if kind in _NUMERIC and isinstance(value, int | float) and not isinstance(value, bool):
        return _size_problems(value, value, shape, path, "value")  # type: ignore[arg-type]
    return []


def message(found: list[str]) -> str:
    count = len(found)
    noun = "validation error" if count == 1 else "validation errors"
    return f"{count} {noun} detected: " + "; ".join(found)


def request_problems(response: Any, request: Any) -> list[str]:
    """The constraint violations of the request a moto response object is serving (after
    its setup_class); empty when the operation or its parameters cannot be determined."""
    from botocore.model import OperationNotFoundError
    from moto.core.parse import PROTOCOL_PARSERS
    from moto.core.request import determine_request_protocol
    from moto.core.utils import get_service_model

    try:
        action = response._get_action()
        if not action:
            return []
        service_model = get_service_model(response.boto3_service_name)
        operation = service_model.operation_model(action)
    except (OperationNotFoundError, AttributeError, KeyError, ValueError):
        return []
    if operation.input_shape is None:
        return []
    params = getattr(response, "params", None) if response.automated_parameter_parsing else None
    if not params:
        try:
            protocol = determine_request_protocol(service_model, request.content_type)
            parser = PROTOCOL_PARSERS[protocol](operation, map_type=dict)
            params = parser.parse(
                {
                    "method": request.method,
                    "values": request.values,
                    "headers": request.headers,
                    "body": request.data,
                    "url_path": request.path,
                    "url_params": getattr(response, "uri_match", {}),
                }
            )
        except Exception:  # a request moto itself can parse some other way: not ours to refuse
            return []
    return problems(params, operation.input_shape)


def install(patches: Any) -> None:
    """Check every request served through moto's BaseResponse before its action runs."""
    from moto.core.exceptions import ServiceException
    from moto.core.responses import ActionResult, BaseResponse

    class ValidationException(ServiceException):
        code = "ValidationException"

    original = BaseResponse._dispatch

    def _dispatch(self: Any, request: Any, full_url: Any = None, headers: Any = None) -> Any:
        self.setup_class(request, full_url, headers)
        found = request_problems(self, request)
        if found:
            return self.serialized(ActionResult(ValidationException(message(found))))
        return self.call_action()

    _dispatch.__wrapped__ = original  # type: ignore[attr-defined]
    patches.set(BaseResponse, "_dispatch", _dispatch)
