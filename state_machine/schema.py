"""The start-execution payload's JSON Schema, generated from shared.models.PipelineInput.

Every entry point (trigger, manual start, re-run) sends a *partial* PipelineInput: the
validate Lambda deep-merges it over config/pipeline.yaml, so every field is optional here,
at every level (``{"objective": {"threshold": 0.9}}`` overrides just the threshold), and
top-level fields carry their defaults. Unknown keys are rejected at every level
(`additionalProperties: false`), as ValidateInput rejects them. Cross-field rules (metric
fits the problem type, the poll schedule covers max_runtime_seconds) are ValidateInput's.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from shared.models import PipelineInput
from shared.resources import pipeline_defaults

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

#: Filled at deployment, not by config/pipeline.yaml (the validate function's environment).
_DEPLOYMENT_DEFAULTS = {
    "image_uri": "the deployment's image (DEFAULT_IMAGE_URI): the ECR repository's latest",
    "raw_data_uri": "the deployment's data prefix: s3://<ARTIFACT_BUCKET>/<DATA_PREFIX>",
}


def input_schema(defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """JSON Schema of the execution payload (all fields optional, defaults shown)."""
    values = pipeline_defaults() if defaults is None else defaults
    unknown = sorted(set(values) - set(PipelineInput.model_fields))
    if unknown:
        raise ValueError(f"config/pipeline.yaml has keys PipelineInput does not: {unknown}")
    model = PipelineInput.model_json_schema(mode="validation")
    properties: dict[str, Any] = {}
    for name, generated in model["properties"].items():
        prop = copy.deepcopy(generated)
        if name in values:
            prop["default"] = values[name]
        elif name in _DEPLOYMENT_DEFAULTS:
            prop["description"] = (
                f"{prop.get('description', name)}. Default: {_DEPLOYMENT_DEFAULTS[name]}"
            )
        properties[name] = prop
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "sfn-mlops pipeline input",
        "description": (
            "The start-execution payload (ECR/S3 trigger, manual start, re-run). Every field "
            "is optional: missing ones come from config/pipeline.yaml. Generated from "
            "shared.models.PipelineInput by `make asl`; do not edit."
        ),
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "$defs": {name: _all_optional(d) for name, d in model.get("$defs", {}).items()},
    }


def _all_optional(definition: Mapping[str, Any]) -> dict[str, Any]:
    """A nested object's schema without `required`: the payload's part is deep-merged."""
    return {k: copy.deepcopy(v) for k, v in definition.items() if k != "required"}
