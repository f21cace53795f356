"""Observability, made once: the Powertools Logger and Metrics every function shares.

The service name comes from POWERTOOLS_SERVICE_NAME (one per function, see
shared/resources.function_environment); the correlation id is the execution name; logs are
structured JSON (keys, not f-strings); metrics are CloudWatch EMF lines flushed by the
handler decorator. The Tracer (X-Ray SDK, the heaviest import of cold start) is created
lazily by `get_tracer()`, only in functions that trace.
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import TYPE_CHECKING

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit

if TYPE_CHECKING:
    from aws_lambda_powertools.tracing import Tracer

DEFAULT_SERVICE = "sfn-mlops"
DEFAULT_NAMESPACE = "SfnMlops"  # = shared.resources.METRICS_NAMESPACE (checked by a test)

# Functions that emit no metric on a path (poll, validate) are normal, not a warning.
warnings.filterwarnings("ignore", message="No application metrics to publish")

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE)


@functools.cache
def get_tracer() -> Tracer:
    """The X-Ray tracer, imported and created on first use (never on the import path)."""
    from aws_lambda_powertools.tracing import Tracer

    return Tracer(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE)


def count(name: str, value: float = 1) -> None:
    """Add a Count metric to this invocation's EMF blob."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
