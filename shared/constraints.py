"""The SageMaker API's own constraints, read from botocore's service model (data, not lists
typed by hand): valid instance types, and the length and pattern of the values the
pipeline passes on (CustomerMetadataProperties of a model package).

The model is loaded with botocore's loader (boto3 is in the Lambda runtime), the one the
process's clients share (shared.aws.data_loader), once, and only when a check runs: a cold
start that never validates never pays for it, and one that made a SageMaker client already
has it.

Patterns: AWS's patterns use Unicode classes (``\\p{L}`` letters, ``\\p{Z}`` separators,
``\\p{N}`` numbers) that Python's ``re`` lacks. The metadata patterns are one character
class repeated (``([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)``), so :class:`CharClass` parses that
class and tests each character's Unicode category (``unicodedata``): exact for this form,
without shipping the ``regex`` package in the Lambda. (The local cloud, which checks every
request against any pattern, uses ``regex``; a test keeps the two in agreement.)
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

INSTANCE_TYPE_SHAPES = {
    "processing": "ProcessingInstanceType",
    "training": "TrainingInstanceType",
    "endpoint": "ProductionVariantInstanceType",
}
METADATA_KEY_SHAPE = "CustomerMetadataKey"
METADATA_VALUE_SHAPE = "CustomerMetadataValue"

# `(` `[class]` `*` `)` then an optional `$`, optionally followed by a Java-style `{m,n}`
# that some AWS models append (the length is also given as min/max).
_ONE_CLASS = re.compile(r"^\^?\(?\[(?P<body>(?:\\.|[^\]\\])*)\]\*\)?(?:\$(?:\{\d+,\d+\})?)?$")


@functools.cache
def service_shapes(service: str = "sagemaker") -> dict[str, Any]:
    """The `shapes` of a botocore service model (cached for the process), from the loader
    the process's clients share (shared.aws.data_loader): free when a client of the service
    exists, and a client made later reuses it. Called as botocore's session calls it (the
    loader caches by arguments)."""
    from shared.aws import data_loader

    model: dict[str, Any] = data_loader().load_service_model(
        service, type_name="service-2", api_version=None
    )
    shapes: dict[str, Any] = model["shapes"]
    return shapes


def enum_values(shape: str, service: str = "sagemaker") -> tuple[str, ...]:
    return tuple(service_shapes(service)[shape].get("enum", ()))


@dataclass(frozen=True)
class CharClass:
    """One regex character class: literal characters, ranges and Unicode categories."""

    chars: frozenset[str]
    ranges: tuple[tuple[str, str], ...]
    categories: tuple[str, ...]  # "L", "Z", "N", ... (major category letters)

    @classmethod
    def parse(cls, body: str) -> CharClass:
        tokens: list[tuple[str, str]] = []  # ("cat", "L") | ("lit", c) | ("esc", c)
        i = 0
        while i < len(body):
            if body.startswith("\\P{", i):
                raise ValueError(f"negated class \\P in {body!r} is not supported")
            if body.startswith("\\p{", i):
                end = body.index("}", i)
                tokens.append(("cat", body[i + 3 : end]))
                i = end + 1
            elif body[i] == "\\":
                tokens.append(("esc", body[i + 1]))
                i += 2
            else:
                tokens.append(("lit", body[i]))
                i += 1
        chars: set[str] = set()
        ranges: list[tuple[str, str]] = []
        categories: list[str] = []
        j = 0
        while j < len(tokens):
            kind, value = tokens[j]
            if kind == "cat":
                categories.append(value)
            elif (
                j + 2 < len(tokens) and tokens[j + 1] == ("lit", "-") and tokens[j + 2][0] != "cat"
            ):
                ranges.append((value, tokens[j + 2][1]))
                j += 2
            else:
                chars.add(value)
            j += 1
        return cls(frozenset(chars), tuple(ranges), tuple(categories))

    def __contains__(self, ch: str) -> bool:
        if ch in self.chars or any(lo <= ch <= hi for lo, hi in self.ranges):
            return True
        category = unicodedata.category(ch)
        return any(category.startswith(c) for c in self.categories)


@functools.cache
def char_class(pattern: str) -> CharClass:
    match = _ONE_CLASS.match(pattern)
    if not match:
        raise ValueError(f"pattern {pattern!r} is not one repeated character class")
    return CharClass.parse(match.group("body"))


def string_problem(value: str, shape_name: str, service: str = "sagemaker") -> str | None:
    """Why `value` breaks the shape's min/max length or pattern, or None."""
    shape = service_shapes(service)[shape_name]
    low, high = shape.get("min"), shape.get("max")
    if low is not None and len(value) < low:
        return f"is {len(value)} characters; {shape_name} needs at least {low}"
    if high is not None and len(value) > high:
        return f"is {len(value)} characters; {shape_name} allows at most {high}"
    pattern = shape.get("pattern")
    if pattern:
        allowed = char_class(pattern)
        bad = sorted({ch for ch in value if ch not in allowed})
        if bad:
            return (
                f"holds {', '.join(repr(c) for c in bad[:5])}, not allowed by {shape_name}'s "
                f"pattern {pattern}"
            )
    return None


def safe_metadata_value(value: str, max_length: int = 256) -> str:
    """`value` with every character the metadata pattern refuses replaced by ``_``, cut to
    `max_length` (for values the pipeline derives, e.g. an S3 key in data_version)."""
    allowed = char_class(service_shapes()[METADATA_VALUE_SHAPE]["pattern"])
    cleaned = "".join(ch if ch in allowed else "_" for ch in value)
    return (cleaned or "_")[:max_length]
