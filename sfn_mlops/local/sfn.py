"""Step Functions fixes for the local cloud (moto's ASL interpreter backend).

- StartExecution without a name: AWS generates a UUID; moto names the execution "None"
  (so a second unnamed start fails with ExecutionAlreadyExists).
- Fast waits (optional, on by default in the local cloud): a Wait state ends as soon as a
  SageMaker job or endpoint operation of the local cloud ends, or at once when none is under
  way, instead of sleeping its full seconds. The definition, the history and the
  transitions are unchanged; only idle wall time is skipped, like a clock that jumps to the
  next event. Local jobs take seconds where SageMaker's take minutes, so the poll schedule
  (tuned for AWS) would otherwise dominate a local run.
- RedriveExecution, as AWS does it (moto has none): the same execution (same ARN) continues
  from its unsuccessful state, with the input that state had, in the definition the execution
  started with; the history continues with `ExecutionRedriven` and the redriven states;
  DescribeExecution answers `redriveCount`, `redriveDate`, `redriveStatus`(+`Reason`);
  `$$.Execution.RedriveCount` is in the context object (0 before any redrive).
  `ExecutionNotRedrivable` for a RUNNING or SUCCEEDED execution, one closed more than 14 days
  ago (on the cloud's `clock`, which tests can advance) and one whose state machine
  definition changed since it started.
- Task tokens: moto's interpreter runs `.waitForTaskToken` (the token in `$$.Task.Token`,
  TimeoutSeconds(Path) and HeartbeatSeconds(Path) bounds ending the state in
  States.Timeout / States.HeartbeatTimeout) and answers SendTaskSuccess/Failure/Heartbeat;
  its SendTaskFailure drops the `cause` (the failed state and the execution then carry
  none): it is passed through here, as AWS does.
- GetExecutionHistory pages as AWS does when asked: `reverseOrder` (newest first),
  `maxResults` (1..1000) and `nextToken` (moto ignores all three and answers every event
  oldest first). Without `maxResults` it still answers every event (AWS pages by 100; no
  caller here relies on that default).
- The ASL definition is parsed once: moto's interpreter runs ANTLR over the definition at
  every StartExecution (and CreateStateMachine, UpdateStateMachine and each static analysis),
  0.4-0.7 s for this pipeline's definition on a 2-core machine, all of it between the
  execution being listed (RUNNING) and its ExecutionStarted event. The parse tree is kept
  per definition text; each execution still gets its own program built from it (the tree
  is only read), so nothing of one execution's evaluation is shared with another's.
- JSONPath expressions are parsed once: moto's interpreter parses each `$.path` with
  jsonpath_ng at every evaluation (InputPath, each `.$` parameter, ResultSelector,
  ResultPath, Choice variables), and jsonpath_ng builds a new ply lexer and parser for
  each parse, ~1-2 ms apiece: 100-200 of them per execution of this pipeline's definition
  (cProfile of one execution: the largest item of the interpreter's own CPU). The parsed
  expression is kept per path text; evaluating it (`find`, `update_or_create`) only reads
  it, so one is shared by every execution.
- JSON values are copied as JSON: the interpreter deep-copies the state's data at each
  step (the state input, each path's result, the Task's parameters and result), with
  `copy.deepcopy` (its memo and dispatch: the second largest item). Values made of dicts,
  lists and scalars are copied by a plain recursive copy; anything else still goes through
  `copy.deepcopy`. The copy is as deep (nothing is shared with the original).
- Execution status change events (`aws.states`, "Step Functions Execution Status Change"):
  RUNNING on start and on redrive, then SUCCEEDED | FAILED | TIMED_OUT | ABORTED, with
  AWS's detail fields, handed to `emit` (the cloud routes them into its EventBridge rules).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from moto.core.exceptions import ServiceException

REDRIVE_WINDOW = dt.timedelta(days=14)
STATUS_CHANGE = "Step Functions Execution Status Change"
CLOSED = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})

Emit = Callable[[dict[str, Any]], None]


class ExecutionNotRedrivable(ServiceException):
    code = "ExecutionNotRedrivable"


class SimulatedClock:
    """Wall time plus an offset that tests advance (e.g. past the 14-day redrive window)."""

    def __init__(self) -> None:
        self.offset = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset

    def advance(self, delta: dt.timedelta) -> None:
        self.offset += delta


@dataclass
class RedriveRecord:
    """What the local cloud knows about an execution's redrives (kept on the execution)."""

    count: int = 0
    date: dt.datetime | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def record_of(execution: Any) -> RedriveRecord:
    record = execution.__dict__.get("_sfn_mlops_redrive")
    if record is None:
        record = RedriveRecord()
        execution.__dict__["_sfn_mlops_redrive"] = record
    return record  # type: ignore[no-any-return]


def unsuccessful_state(events: list[Mapping[str, Any]]) -> tuple[str, Any] | None:
    """(name, input) of the state that was entered and never exited: where the run ended."""
    open_states: list[tuple[str, Any]] = []
    for event in events:
        kind = str(event["type"])
        if kind.endswith("StateEntered"):
            details = event["stateEnteredEventDetails"]
            open_states.append((details["name"], details.get("input")))
        elif kind.endswith("StateExited"):
            name = event["stateExitedEventDetails"]["name"]
            for i in range(len(open_states) - 1, -1, -1):
                if open_states[i][0] == name:
                    del open_states[i]
                    break
    if not open_states:
        return None
    name, text = open_states[-1]
    return name, json.loads(text) if isinstance(text, str) else text


def not_redrivable_reason(execution: Any, current_definition: str, now: dt.datetime) -> str | None:
    """Why AWS would refuse to redrive `execution` (None: it is redrivable)."""
    status = str(execution.status)
    if status == "RUNNING":
        return "Execution is RUNNING and cannot be redriven"
    if status == "SUCCEEDED":
        return "Execution is SUCCEEDED and cannot be redriven"
    if status not in CLOSED:
        return f"Execution is {status} and cannot be redriven"
    if execution.stop_date is not None and now - execution.stop_date > REDRIVE_WINDOW:
        return "Execution can only be redriven within 14 days of closing"
    if _canonical(execution.state_machine.definition) != _canonical(current_definition):
        return (
            "The state machine definition was updated after the execution started; "
            "start a new execution"
        )
    return None


def _canonical(definition: str) -> Any:
    try:
        return json.loads(definition)
    except (TypeError, ValueError):
        return definition


def _millis(value: dt.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def status_change_event(execution: Any, clock: SimulatedClock) -> dict[str, Any]:
    """The EventBridge event AWS emits when `execution` changes status."""
    record = record_of(execution)
    status = str(execution.status)
    output = None
    if status == "SUCCEEDED" and execution.output is not None:
        output = (
            execution.output
            if isinstance(execution.output, str)
            else json.dumps(execution.output, separators=(",", ":"))
        )
    detail: dict[str, Any] = {
        "executionArn": execution.exec_arn,
        "stateMachineArn": execution.state_machine_arn,
        "name": execution.name,
        "status": status,
        "startDate": _millis(execution.start_date),
        "stopDate": _millis(execution.stop_date) if status != "RUNNING" else None,
        "input": execution.execution_input,
        "output": output,
        "inputDetails": {"included": True},
        "outputDetails": {"included": True} if output is not None else None,
        "error": execution.error,
        "cause": execution.cause,
        "redriveCount": record.count,
        "redriveDate": _millis(record.date),
        "redriveStatus": "REDRIVABLE" if status in CLOSED else "NOT_REDRIVABLE",
    }
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": STATUS_CHANGE,
        "source": "aws.states",
        "account": execution.account_id,
        "time": clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": execution.region_name,
        "resources": [execution.exec_arn],
        "detail": detail,
    }


def install_fast_waits(
    patches: Any, wait_for_change: Callable[[float, Callable[[], bool]], None]
) -> None:
    """Wait states return at the next local SageMaker change (see the module docstring)."""
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
        WaitFunction,
    )

    def _wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        if wait_seconds > 0:
            wait_for_change(float(wait_seconds), env.is_running)

    patches.set(WaitFunction, "_wait_interval", _wait_interval)


def install_task_clients(patches: Any, warm: tuple[tuple[str, str], ...] = ()) -> None:
    """moto's interpreter makes a new boto3 client for every Task it runs (its
    `boto_client_for`: Lambda Invoke, SDK and service integrations): ~30-60 ms of CPU each,
    and the first in a process also parses the service model (~0.5 s for the execution's
    first Task, ValidateInput). Every one it makes is the same (its fixed dummy credentials,
    config and endpoint; `state_credentials` is not used), so one client per (region,
    service, endpoint) serves every Task, as boto3 clients are thread-safe. `warm`: (region,
    service) pairs made now, before the first execution (as the cloud's start does)."""
    import sys

    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.utils import boto_client

    original = boto_client.boto_client_for
    clients: dict[tuple[str, str, str | None], Any] = {}
    lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        # what the original's endpoint depends on: in-process (mock_aws) or the server port
        port = None if botocore_stubber.enabled else moto_server_port()
        key = (region, service, port)
        with lock:
            if key not in clients:
                clients[key] = original(region, service, state_credentials)
            return clients[key]

    patches.set(boto_client, "boto_client_for", boto_client_for)
    for name, module in list(sys.modules.items()):  # the modules that imported it by name
        if name.startswith("moto.stepfunctions.") and (
            getattr(module, "boto_client_for", None) is original
        ):
            patches.set(module, "boto_client_for", boto_client_for)
    for region, service in warm:
        boto_client_for(region, service)


def install_context(patches: Any) -> None:
    """`$$.Execution.RedriveCount` (and `RedriveTime` after a redrive) in the context object."""
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    original = ExecutionWorker._get_evaluation_environment

    def _get_evaluation_environment(worker: Any) -> Any:
        env = original(worker)
        execution = getattr(worker._execution_communication, "execution", None)
        record = record_of(execution) if execution is not None else RedriveRecord()
        data = env.states.context_object.context_object_data["Execution"]
        data["RedriveCount"] = record.count
        if record.date is not None:
            data["RedriveTime"] = record.date.isoformat()
        return env

    patches.set(ExecutionWorker, "_get_evaluation_environment", _get_evaluation_environment)


def _redrive_worker_class() -> type:
    from moto.stepfunctions.parser.api import ExecutionRedrivenEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventHistoryContext
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    class RedriveWorker(ExecutionWorker):  # type: ignore[misc]
        """Runs the execution's program from `start_at` with `state_input`, appending to the
        previous run's history (same event manager, ids continue)."""

        def __init__(
            self, previous_env: Any, start_at: str, state_input: Any, count: int, **kw: Any
        ) -> None:
            super().__init__(**kw)
            self._previous_env = previous_env
            self._start_at = start_at
            self._state_input = state_input
            self._count = count

        def _get_evaluation_entrypoint(self) -> Any:
            definition = json.loads(self._evaluation_details.state_machine_details.definition)
            definition["StartAt"] = self._start_at  # the program re-entered at that state
            return AmazonStateLanguageParser.parse(json.dumps(definition))[0]

        def _execution_logic(self) -> None:
            program = self._get_evaluation_entrypoint()
            env = self._get_evaluation_environment()
            events = self._previous_env.event_manager
            last_id = len(events.get_event_history())
            env.event_manager = events
            env.event_history_context = EventHistoryContext(previous_event_id=last_id)
            env.states.reset(self._state_input)
            events.add_event(
                context=env.event_history_context,
                event_type=HistoryEventType.ExecutionRedriven,
                event_details=EventDetails(
                    executionRedrivenEventDetails=ExecutionRedrivenEventDetails(
                        redriveCount=self._count
                    )
                ),
            )
            self.env = env
            program.eval(env)
            self._execution_communication.terminated()

    return RedriveWorker


def redrive(backend: Any, execution_arn: str, clock: SimulatedClock, emit: Emit | None) -> Any:
    """RedriveExecution on moto's parser backend; returns the redrive date."""
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.asl.eval.evaluation_details import EvaluationDetails

    execution = backend.describe_execution(execution_arn)  # ExecutionDoesNotExist
    current = backend._get_state_machine_for_execution(execution_arn)
    record = record_of(execution)
    with record.lock:
        reason = not_redrivable_reason(execution, current.definition, clock.now())
        if reason is not None:
            raise ExecutionNotRedrivable(reason)
        previous_env = execution.exec_worker.env
        where = unsuccessful_state(previous_env.event_manager.get_event_history())
        if where is None:
            raise ExecutionNotRedrivable("Execution has no unsuccessful state to redrive")
        start_at, state_input = where
        record.count += 1
        record.date = clock.now()
        execution.exec_status = ExecutionStatus.RUNNING
        execution.stop_date = None
        execution.error = None
        execution.cause = None
        execution.output = None
        worker = _redrive_worker_class()(
            previous_env,
            start_at,
            state_input,
            record.count,
            evaluation_details=EvaluationDetails(
                aws_execution_details=execution._get_start_aws_execution_details(),
                execution_details=execution.get_start_execution_details(),
                state_machine_details=execution.get_start_state_machine_details(),
            ),
            exec_comm=execution._get_start_execution_worker_comm(),
            cloud_watch_logging_session=execution._cloud_watch_logging_session,
            activity_store=execution._activity_store,
        )
        execution.exec_worker = worker
    if emit is not None:
        emit(status_change_event(execution, clock))
    worker.start()
    return record.date


class InvalidToken(ServiceException):
    code = "InvalidToken"


_TOKEN_PREFIX = "local-history:"


def history_page(
    events: list[Any], reverse: bool, max_results: int | None, token: str | None
) -> dict[str, Any]:
    """One GetExecutionHistory page of `events` (oldest first), as AWS pages them."""
    ordered = list(reversed(events)) if reverse else list(events)
    start = 0
    if token:
        if not token.startswith(_TOKEN_PREFIX) or not token[len(_TOKEN_PREFIX) :].isdigit():
            raise InvalidToken(f"Invalid Token: {token!r}")
        start = int(token[len(_TOKEN_PREFIX) :])
    size = max_results or len(ordered) or 1
    page: dict[str, Any] = {"events": ordered[start : start + size]}
    if start + size < len(ordered):
        page["nextToken"] = f"{_TOKEN_PREFIX}{start + size}"
    return page


#: Parse trees kept (definition text -> tree): the pipeline's definitions, tests' own ones.
PARSE_CACHE_SIZE = 64


def install_parse_cache(patches: Any) -> None:
    """AmazonStateLanguageParser.parse: ANTLR once per definition text (see the module
    docstring), the evaluation components built fresh from the kept tree at every call.
    A definition with syntax errors is not kept (each call raises, as before)."""
    from collections import OrderedDict

    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    original = AmazonStateLanguageParser.parse
    trees: OrderedDict[str, Any] = OrderedDict()
    lock = threading.Lock()

    def parse(definition: str) -> tuple[Any, Any]:
        with lock:
            tree = trees.get(definition)
            if tree is not None:
                trees.move_to_end(definition)
        if tree is None:
            program, tree = original(definition)  # raises ASLParserException on errors
            with lock:
                trees[definition] = tree
                while len(trees) > PARSE_CACHE_SIZE:
                    trees.popitem(last=False)
            return program, tree
        return Preprocessor().visit(tree), tree

    patches.set(AmazonStateLanguageParser, "parse", staticmethod(parse))


#: JSONPath expressions kept (path text -> parsed): every path of the definitions in use.
JSONPATH_CACHE_SIZE = 4096


def install_jsonpath_cache(patches: Any) -> None:
    """jsonpath_ng's parse, once per path text, where moto's interpreter calls it (see the
    module docstring). A path that does not parse raises at each call, as before."""
    import functools

    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    for module in (json_path, result_path):
        patches.set(module, "parse", functools.lru_cache(maxsize=JSONPATH_CACHE_SIZE)(module.parse))


_SCALARS = (str, int, float, bool, type(None))


def json_copy(value: Any, memo: Any = None) -> Any:
    """`copy.deepcopy(value)` for JSON values (dicts, lists, scalars), without deepcopy's
    memo and dispatch; any other type inside is copied by copy.deepcopy."""
    import copy

    kind = type(value)
    if kind is dict:
        return {k: json_copy(v) for k, v in value.items()}
    if kind is list:
        return [json_copy(v) for v in value]
    if kind in _SCALARS:
        return value
    return copy.deepcopy(value, memo)


class _JsonCopyModule:
    """Stands for the `copy` module in moto's interpreter modules: deepcopy is json_copy."""

    deepcopy = staticmethod(json_copy)

    def __getattr__(self, name: str) -> Any:
        import copy

        return getattr(copy, name)


def install_json_copies(patches: Any) -> None:
    """The interpreter's per-step deep copies of JSON data made as json_copy (module doc)."""
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.component.common.string import string_expression
    from moto.stepfunctions.parser.asl.component.state.exec import execute_state
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service,
    )
    from moto.stepfunctions.parser.asl.eval import states

    shim = _JsonCopyModule()
    for module in (states, execute_state, result_path, string_expression, state_task_service):
        patches.set(module, "copy", shim)


def install(patches: Any, clock: SimulatedClock | None = None, emit: Emit | None = None) -> None:
    from moto.core.responses import ActionResult, EmptyResult
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend
    from moto.stepfunctions.responses import StepFunctionResponse

    clock = clock or SimulatedClock()
    install_context(patches)
    install_parse_cache(patches)
    install_jsonpath_cache(patches)
    install_json_copies(patches)
    original_start = StepFunctionsParserBackend.start_execution
    original_describe = StepFunctionResponse.describe_execution
    original_terminated = BaseExecutionWorkerCommunication.terminated
    original_history = StepFunctionResponse.get_execution_history

    def start_execution(
        backend: Any,
        state_machine_arn: str,
        name: Any = None,
        execution_input: Any = None,
        trace_header: Any = None,
    ) -> Any:
        before = len(backend._get_executions())
        execution = original_start(
            backend, state_machine_arn, name or str(uuid.uuid4()), execution_input, trace_header
        )
        if emit is not None and len(backend._get_executions()) > before:
            emit(status_change_event(execution, clock))
        return execution

    def terminated(comm: Any) -> None:
        original_terminated(comm)
        comm.execution.stop_date = clock.now()
        if emit is not None:
            emit(status_change_event(comm.execution, clock))

    def redrive_execution(resp: Any) -> Any:
        date = redrive(resp.stepfunction_backend, resp._get_param("executionArn"), clock, emit)
        return ActionResult({"redriveDate": date})

    def describe_execution(resp: Any) -> Any:
        result = original_describe(resp)
        execution = resp.stepfunction_backend.describe_execution(resp._get_param("executionArn"))
        record = record_of(execution)
        current = resp.stepfunction_backend._get_state_machine_for_execution(execution.exec_arn)
        body = dict(result.result)
        body["redriveCount"] = record.count
        if record.date is not None:
            body["redriveDate"] = record.date
        reason = not_redrivable_reason(execution, current.definition, clock.now())
        body["redriveStatus"] = "REDRIVABLE" if reason is None else "NOT_REDRIVABLE"
        if reason is not None:
            body["redriveStatusReason"] = reason
        if str(execution.status) in CLOSED and "stopDate" not in body:
            body["stopDate"] = execution.stop_date
        return ActionResult(body)

    def send_task_failure(resp: Any) -> Any:
        resp.stepfunction_backend.send_task_failure(
            resp._get_param("taskToken"),
            error=resp._get_param("error"),
            cause=resp._get_param("cause"),
        )
        return EmptyResult()

    def get_execution_history(resp: Any) -> Any:
        result = original_history(resp)
        events = list(dict(result.result).get("events") or [])
        return ActionResult(
            history_page(
                events,
                bool(resp._get_param("reverseOrder")),
                resp._get_param("maxResults") or None,
                resp._get_param("nextToken"),
            )
        )

    patches.set(StepFunctionsParserBackend, "start_execution", start_execution)
    patches.set(StepFunctionResponse, "send_task_failure", send_task_failure)
    patches.set(BaseExecutionWorkerCommunication, "terminated", terminated)
    patches.set(StepFunctionResponse, "get_execution_history", get_execution_history)
    patches.set(StepFunctionResponse, "redrive_execution", redrive_execution)
    patches.set(StepFunctionResponse, "describe_execution", describe_execution)
