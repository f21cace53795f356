"""The start-execution payload's JSON Schema, generated from shared.models.PipelineInput.

Every entry point (trigger, manual start, re-run) sends a *partial* PipelineInput: the
validate Lambda fills what is missing from config/pipeline.yaml, so every top-level field
is optional here and carries its default. Nested objects (objective, processing, ...) keep
their required fields: a payload that overrides one gives it whole. Unknown keys are
rejected at every level (`additionalProperties: false`), as ValidateInput rejects them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from shared.models import PipelineInput
from shared.resources import pipeline_defaults

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://github.com/sfn-mlops/sfn-mlops/state_machine/input.schema.json"

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
        "$id": SCHEMA_ID,
        "title": "sfn-mlops pipeline input",
        "description": (
            "The start-execution payload (ECR/S3 trigger, manual start, re-run). Every field "
            "is optional: missing ones come from config/pipeline.yaml. Generated from "
            "shared.models.PipelineInput by `make asl`; do not edit."
        ),
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "$defs": model.get("$defs", {}),
    }
