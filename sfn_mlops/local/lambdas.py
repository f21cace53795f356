"""The Lambda seam: moto's Lambda `Invoke` dispatches to registered Python callables.

moto runs a function's code only in Docker. This module patches moto's Lambda backend so
that invoking function NAME (by name or ARN, the function must exist in moto as on AWS)
calls the callable registered for NAME instead, and answers exactly as the Lambda Invoke
API does, so Step Functions' Retry/Catch (moto's ASL interpreter, or anything else that
calls Invoke) see what they would see on AWS:

- a return value is the response payload (JSON-encoded; `bytes` are sent as they are);
- a raised exception is a function error: header ``X-Amz-Function-Error: Unhandled`` and
  payload ``{"errorType": <class name>, "errorMessage": str(exc), "stackTrace": [...]}``,
  so Step Functions names the error after the exception class;
- a returned :class:`LambdaResult` (or any object with ``payload`` and ``function_error``
  attributes) is an explicit outcome, e.g. ``LambdaResult.unknown("Task timed out ...")``
  for a crash or timeout, which Step Functions reports as ``Lambda.Unknown``;
- a raised :class:`LambdaServiceError` fails the Invoke call itself (HTTP error), e.g.
  ``TooManyRequestsException`` -> ``Lambda.TooManyRequestsException`` in Step Functions.

The patch is on moto's backend classes, so it serves ``mock_aws`` in-process and a
``ThreadedMotoServer`` in the same process alike (handlers then run on server threads)::

    dispatcher = LambdaDispatcher()
    dispatcher.register("sfn-mlops-train", train_handler)   # (payload) -> result
    with dispatcher.install():
        ...  # Invoke / the state machine's lambda:invoke Tasks reach train_handler

Invoking a function that exists in moto but has no registered callable fails with
``ResourceNotFoundException`` (unless ``passthrough=True``: then moto's own Invoke runs).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.models import LambdaBackend
from moto.awslambda_simple.models import LambdaSimpleBackend

logger = logging.getLogger(__name__)

#: Payload in: the parsed JSON event (or the raw bytes when it is not JSON).
#: Out: a JSON-able result, raw bytes, or an explicit InvocationOutcome.
Handler = Callable[[Any], Any]

UNHANDLED = "Unhandled"
#: The Invoke error code of a throttled call (the account's concurrency is in use).
THROTTLED = "TooManyRequestsException"
#: How long an asynchronous invocation waits out throttling (AWS keeps trying up to 6 h).
ASYNC_QUEUE_SECONDS = 900.0
#: The error name Step Functions gives crashes, out-of-memory and timeouts.
UNKNOWN_ERROR = "Lambda.Unknown"


@runtime_checkable
class InvocationOutcome(Protocol):
    """What a handler may return to control the response: payload plus function error."""

    @property
    def payload(self) -> Any: ...

    @property
    def function_error(self) -> str | None: ...


@dataclass(frozen=True)
class LambdaResult:
    """An explicit Invoke outcome. `function_error` set = the function failed."""

    payload: Any
    function_error: str | None = None

    @classmethod
    def error(
        cls, error_type: str, message: str, stack_trace: list[str] | None = None
    ) -> LambdaResult:
        """An unhandled function error as the Lambda runtime reports it."""
        return cls(
            {
                "errorType": error_type,
                "errorMessage": message,
                "requestId": str(uuid.uuid4()),
                "stackTrace": list(stack_trace or []),
            },
            UNHANDLED,
        )

    @classmethod
    def from_exception(cls, exc: BaseException) -> LambdaResult:
        """`errorType` is the exception's class name: the ErrorEquals name in the ASL."""
        return cls.error(type(exc).__name__, str(exc), traceback.format_tb(exc.__traceback__))

    @classmethod
    def unknown(cls, message: str) -> LambdaResult:
        """A crash, timeout or out-of-memory: Step Functions reports `Lambda.Unknown`."""
        return cls.error(UNKNOWN_ERROR, message)


class LambdaServiceError(Exception):
    """Raise from a handler to fail the Invoke API call itself (not the function), e.g.
    throttling: ``LambdaServiceError("TooManyRequestsException", "Rate exceeded", 429)``."""

    def __init__(self, code: str, message: str, status: int = 500) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class _InvokeApiError(LambdaClientError):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(code, message)
        self.code = status  # the HTTP status of the response


@dataclass(frozen=True)
class Invocation:
    """One call a dispatcher served (for assertions and debugging)."""

    function_name: str
    payload: Any
    function_error: str | None
    error_type: str | None


@dataclass
class LambdaDispatcher:
    """Maps Lambda function names to Python callables while installed (see module doc)."""

    passthrough: bool = False
    _handlers: dict[str, Handler] = field(default_factory=dict, init=False, repr=False)
    _calls: list[Invocation] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    # --- registry ---------------------------------------------------------------------------

    def register(self, function_name: str, handler: Handler) -> None:
        """Serve Invoke of `function_name` (a name, not an ARN) with `handler`."""
        if function_name.startswith("arn:"):
            raise ValueError("register functions by name, not ARN")
        with self._lock:
            self._handlers[function_name] = handler

    def unregister(self, function_name: str) -> None:
        with self._lock:
            self._handlers.pop(function_name, None)

    def handler_for(self, function_name: str) -> Handler | None:
        with self._lock:
            return self._handlers.get(function_name)

    @property
    def calls(self) -> list[Invocation]:
        """Every invocation served so far, in order."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, function_name: str) -> list[Invocation]:
        return [c for c in self.calls if c.function_name == function_name]

    # --- installation -----------------------------------------------------------------------

    @contextmanager
    def install(self) -> Iterator[LambdaDispatcher]:
        """Patch moto's Lambda backends to dispatch here; restores them on exit."""
        with _install_lock:
            if _installed.active is not None:
                raise RuntimeError("a LambdaDispatcher is already installed")
            _installed.active = self
            originals = {cls: cls.__dict__["invoke"] for cls in _BACKENDS}
            for cls, original in originals.items():
                cls.invoke = _make_invoke(original)  # type: ignore[method-assign]
        try:
            yield self
        finally:
            with _install_lock:
                for cls, original in originals.items():
                    cls.invoke = original  # type: ignore[method-assign]
                _installed.active = None

    # --- dispatch ---------------------------------------------------------------------------

    def run(self, function_name: str, payload: Any) -> LambdaResult:
        """Call the handler for `function_name` and shape its outcome like Invoke's."""
        handler = self.handler_for(function_name)
        if handler is None:
            raise _InvokeApiError(
                "ResourceNotFoundException",
                f"Function not found: no handler registered for {function_name!r} "
                "(sfn_mlops.local.lambdas)",
                404,
            )
        try:
            outcome = handler(payload)
        except LambdaServiceError as exc:
            raise _InvokeApiError(exc.code, exc.message, exc.status) from exc
        except Exception as exc:  # an unhandled exception *is* a function error
            tb = exc.__traceback__
            result = LambdaResult.from_exception(exc.with_traceback(tb.tb_next if tb else None))
        else:
            if isinstance(outcome, InvocationOutcome):
                result = LambdaResult(outcome.payload, outcome.function_error)
            else:
                result = LambdaResult(outcome)
        self._record(function_name, payload, result)
        return result

    def run_queued(
        self, function_name: str, payload: Any, max_wait_seconds: float = ASYNC_QUEUE_SECONDS
    ) -> LambdaResult:
        """An asynchronous invocation (InvocationType=Event, an EventBridge target): as
        Lambda's event queue does, a throttled one is retried with backoff (bounded) instead
        of failing; any other service error is raised."""
        deadline = time.monotonic() + max_wait_seconds
        delay = 0.05
        while True:
            try:
                return self.run(function_name, payload)
            except _InvokeApiError as exc:
                if exc.error_type != THROTTLED or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _record(self, function_name: str, payload: Any, result: LambdaResult) -> None:
        error_type = None
        if result.function_error and isinstance(result.payload, Mapping):
            error_type = result.payload.get("errorType")
        with self._lock:
            self._calls.append(
                Invocation(function_name, payload, result.function_error, error_type)
            )


_BACKENDS: tuple[type[LambdaBackend], ...] = (LambdaBackend, LambdaSimpleBackend)
_install_lock = threading.Lock()


class _Installed:
    """The dispatcher the patched backends serve (one at a time, process-wide)."""

    active: LambdaDispatcher | None = None


_installed = _Installed()


def _header(headers: Any, name: str) -> str | None:
    """Case-insensitive header lookup (werkzeug Headers, requests' dict, or a plain dict)."""
    if headers is None:
        return None
    value = headers.get(name)
    if value is None and isinstance(headers, dict):
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return None if value is None else str(value)


def _decode(body: Any) -> Any:
    raw = body.encode() if isinstance(body, str) else bytes(body or b"")
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return raw


def _encode(result: LambdaResult) -> tuple[bytes, LambdaResult]:
    if isinstance(result.payload, bytes | bytearray):
        return bytes(result.payload), result
    try:
        return json.dumps(result.payload).encode(), result
    except (TypeError, ValueError) as exc:  # what the Python runtime answers
        marshal = LambdaResult.error("Runtime.MarshalError", f"Unable to marshal response: {exc}")
        return json.dumps(marshal.payload).encode(), marshal


def _make_invoke(original: Callable[..., Any]) -> Callable[..., Any]:
    def invoke(
        self: LambdaBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> str | bytes | None:
        dispatcher = _installed.active
        fn = self.get_function(function_name, qualifier)  # unknown function: as on AWS
        name = fn.function_name
        if dispatcher is None or (dispatcher.passthrough and dispatcher.handler_for(name) is None):
            return original(self, function_name, qualifier, body, headers, response_headers)  # type: ignore[no-any-return]
        invocation_type = _header(headers, "X-Amz-Invocation-Type") or "RequestResponse"
        if invocation_type == "DryRun":
            return b""
        event = _decode(body)
        if invocation_type == "Event":  # asynchronous: accepted now, run in the background
            threading.Thread(target=_run_async, args=(dispatcher, name, event), daemon=True).start()
            return b""
        payload, result = _encode(dispatcher.run(name, event))
        if result.function_error:
            response_headers["x-amz-function-error"] = result.function_error
        response_headers["x-amz-executed-version"] = fn.version
        response_headers["x-amz-log-result"] = base64.b64encode(
            f"START {name}\nEND {name}\n".encode()
        ).decode()
        response_headers["Content-Length"] = str(len(payload))
        return payload

    return invoke


def _run_async(dispatcher: LambdaDispatcher, name: str, event: Any) -> None:
    try:
        result = dispatcher.run_queued(name, event)
    except Exception:
        logger.exception("asynchronous invoke of %s failed", name)
        return
    if result.function_error:
        logger.warning("asynchronous invoke of %s: function error %s", name, result.payload)


__all__ = [
    "THROTTLED",
    "UNKNOWN_ERROR",
    "Handler",
    "Invocation",
    "InvocationOutcome",
    "LambdaDispatcher",
    "LambdaResult",
    "LambdaServiceError",
]
