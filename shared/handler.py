"""The one way a pipeline Lambda is wrapped: context and correlation id into the logs, EMF
metrics flushed, errors logged with their class name, optional lazy tracing; plus `parse`,
which turns a bad event into an InvalidInputError naming every bad field.

    @lambda_entry()
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        request = parse(TrainRequest, event)
        ...
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shared.errors import InvalidInputError, PipelineError, validation_problems
from shared.observability import get_tracer, logger, metrics

Event = dict[str, Any]
Handler = Callable[[Event, Any], Any]
M = TypeVar("M", bound=BaseModel)

#: What a handler would otherwise make in its first invocation (a traced handler's X-Ray
#: tracer); see warm_up().
_warm_ups: list[Callable[[], object]] = []


def warm_up() -> None:
    """Make now what the decorated handlers would make in their first invocation (the
    tracer). Nothing calls it on AWS, where the first invocation makes it, as before; the
    local cloud's workers call it in their init phase (sfn_mlops/local/lambda_worker.py),
    as an environment initialised ahead of its first request has it done."""
    for make in list(_warm_ups):
        make()


def parse(model: type[M], event: Any) -> M:
    """`event` as `model`; InvalidInputError listing every bad field otherwise."""
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        problems = validation_problems(exc)
        raise InvalidInputError(
            f"{model.__name__}: {len(problems)} invalid field(s): " + "; ".join(problems)
        ) from exc


def lambda_entry(
    *, correlation_key: str = "execution_name", tracing: bool = False
) -> Callable[[Handler], Handler]:
    """Decorate a handler: Lambda context in the logs, correlation id = `event[correlation_key]`
    (the execution name), metrics flushed as EMF (with a ColdStart metric), failures logged.

    `tracing=True` wraps the handler in the X-Ray tracer, imported on the first invocation
    (not at import time, so the handler module still imports fast).
    """

    def decorate(handler: Handler) -> Handler:
        traced: list[Handler] = []

        def traced_handler() -> Handler:
            if not traced:
                traced.append(get_tracer().capture_lambda_handler(handler))
            return traced[0]

        if tracing:
            _warm_ups.append(traced_handler)

        @functools.wraps(handler)
        def entry(event: Event, context: Any) -> Any:
            correlation = event.get(correlation_key) if isinstance(event, Mapping) else None
            logger.set_correlation_id(correlation if isinstance(correlation, str) else None)
            target = traced_handler() if tracing else handler
            try:
                return target(event, context)
            except PipelineError as exc:
                logger.warning("failed", extra={"error": type(exc).__name__, "cause": str(exc)})
                raise
            except Exception as exc:
                logger.exception("crashed", extra={"error": type(exc).__name__})
                raise

        with_context = logger.inject_lambda_context(entry, clear_state=True)
        wrapped: Handler = metrics.log_metrics(with_context, capture_cold_start_metric=True)
        return wrapped

    return decorate
