"""A warm Lambda worker: one process per function instance, like a Lambda execution
environment. Imports the handler once (the cold start), then serves invocations read as
JSON lines on stdin, answering on the original stdout; anything the handler prints goes
to stderr (the function's log).

Run as `python -m sfn_mlops.local.lambda_worker` with the function's environment
(`_HANDLER`, `AWS_LAMBDA_FUNCTION_NAME`, ... plus its configured variables).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    """The attributes and method of the Lambda context object that handlers use."""

    def __init__(self, request_id: str, deadline_ms: int) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = os.environ.get("SFN_MLOPS_FUNCTION_ARN", "")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": "",
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def _trace_header() -> str:
    """What the Lambda runtime puts in _X_AMZN_TRACE_ID for each invocation: a new trace,
    not sampled (the local cloud has no X-Ray daemon). Without it the X-Ray SDK logs a
    warning and discards each subsegment, on every invocation."""
    root = f"1-{int(time.time()):08x}-{os.urandom(12).hex()}"
    return f"Root={root};Parent={os.urandom(8).hex()};Sampled=0"


def _warm_clients(services: str) -> None:
    """Create the function's boto3 clients now (shared.aws caches them per service): about
    60% of a first invocation was client creation. Each client's table of its service's
    error shapes is built too: botocore builds it when the client meets its first error
    response (a handler's "not found yet" answer, e.g. DescribeModelPackageGroup), and for
    SageMaker's model that took ~80 ms of the register function's first invocation
    (cProfile). A failure here is left to the handler."""
    if not services:
        return
    try:
        from shared import aws

        for service in services.split(","):
            aws.client(service).meta.service_model.shape_for_error_code("")
    except Exception as exc:  # the handler will meet (and report) the same problem
        print(f"warming clients {services}: {exc}", file=sys.stderr)


def _build_models(handler_module: str) -> None:
    """Build the validators of the pydantic models the handler's package names. The
    models are `defer_build` (shared/models.py: a Lambda builds only the models it uses,
    in the first invocation that validates one): 20-60 ms of each function's first
    invocation (cProfile: the lock, register and deploy functions). Here they are built
    in the worker's init phase, the models of the handler module and of the modules of its
    package (functions/<name>/), not all of shared/models.py's 55 (~1.3 s). A model that
    fails to build is left to its first use, which reports it as before."""
    if "pydantic" not in sys.modules:
        return
    from pydantic import BaseModel

    package = handler_module.rpartition(".")[0] or handler_module
    names = [n for n in list(sys.modules) if n == handler_module or n.startswith(package + ".")]
    seen: set[type] = set()
    for name in names:
        for value in list(vars(sys.modules[name]).values()):
            if (
                isinstance(value, type)
                and issubclass(value, BaseModel)
                and value not in seen
                and not value.__pydantic_complete__
            ):
                seen.add(value)
                with contextlib.suppress(Exception):
                    value.model_rebuild()


def _warm_up_handlers() -> None:
    """shared.handler.warm_up() when the handler uses it: the tracer of a traced handler
    (the X-Ray SDK's import and patches, ~0.1 s of the invoke function's first
    invocation), made in the init phase. Then the IDNA codec the first connection's host
    name is encoded with (encodings.idna, imported inside the first request otherwise)."""
    entry = sys.modules.get("shared.handler")
    warm_up = getattr(entry, "warm_up", None)
    if warm_up is not None:
        try:
            warm_up()
        except Exception as exc:  # the first invocation meets (and reports) it
            print(f"warming the handler: {exc}", file=sys.stderr)
    import encodings.idna  # noqa: F401


def _load_pydantic_plugins() -> None:
    """pydantic looks for plugins (the entry points of every installed distribution) when
    it builds its first validator, which for the handlers' `defer_build` models is inside
    the first invocation. A worker's path is the whole development environment (~160
    distributions: ~40 ms idle, 0.2 s on loaded cores), a Lambda's only its package and
    layer (a few ms), so the worker does the scan while it initialises: the same plugins,
    found before the invocation, as the smaller path would find them within a few ms."""
    if "pydantic" not in sys.modules:  # the handler does not use pydantic
        return
    try:
        from pydantic.plugin._loader import get_plugins
    except ImportError:  # another pydantic layout: it scans on first use, as before
        return
    get_plugins()


def main() -> None:
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the handler's prints and logs go to the function log (stderr)
    sys.stdout = sys.stderr

    handler_path = os.environ["_HANDLER"]
    init_error: dict[str, Any] | None = None
    handler: Any = None
    try:
        module_name, func_name = handler_path.rsplit(".", 1)
        handler = getattr(importlib.import_module(module_name), func_name)
    except Exception as exc:  # reported on every invocation, as Lambda does
        init_error = _error(exc)
        init_error["errorType"] = "Runtime.ImportModuleError"
        init_error["errorMessage"] = f"Unable to import module '{handler_path}': {exc}"

    if init_error is None:
        _warm_clients(os.environ.get("SFN_MLOPS_WARM_CLIENTS", ""))
        _load_pydantic_plugins()
        _build_models(module_name)
        _warm_up_handlers()
    out.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        if init_error is not None:
            out.write(json.dumps({"error": init_error}) + "\n")
            continue
        context = LambdaContext(request["request_id"], request["deadline_ms"])
        os.environ["_X_AMZN_TRACE_ID"] = _trace_header()
        try:
            result = handler(request["event"], context)
        except Exception as exc:
            err = _error(exc)
            err["requestId"] = request["request_id"]
            text = json.dumps({"error": err})
        else:
            try:
                text = json.dumps({"result": result})
            except (TypeError, ValueError) as exc:
                err = _error(exc)
                err["errorType"] = "Runtime.MarshalError"
                text = json.dumps({"error": err})
        sys.stderr.flush()
        out.write(text + "\n")


if __name__ == "__main__":
    main()
