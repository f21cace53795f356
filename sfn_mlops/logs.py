"""`sfn-mlops logs`: an execution's Lambda, SageMaker job and endpoint logs, from CloudWatch
Logs (on AWS, or the local cloud's own, which uses AWS's group and stream names).

Which lines belong to the execution:
- Lambda (/aws/lambda/<function>, each function a Task of the definition calls): the
  Powertools JSON lines whose `correlation_id` is the execution name (every handler sets
  it), and plain lines (a crash, START/END/REPORT) printed while one of the execution's
  states ran that function;
- jobs (/aws/sagemaker/ProcessingJobs, /TrainingJobs): the streams of the execution's
  jobs, every attempt (the streams are named `<job name>/algo-...`);
- the endpoint (/aws/sagemaker/Endpoints/<name>): what it printed while the execution was
  deploying and smoke-testing it.
`--state NAME` keeps the lines of that state: its function while it ran, and its step's
job or endpoint.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from sfn_mlops.history import StateRun, last_state_data, state_runs

PROCESSING_GROUP = "/aws/sagemaker/ProcessingJobs"
TRAINING_GROUP = "/aws/sagemaker/TrainingJobs"
MARGIN = dt.timedelta(seconds=2)  # clocks: a Lambda's log line vs the state's history event


@dataclass(frozen=True)
class LogLine:
    timestamp: dt.datetime
    group: str
    stream: str
    message: str
    state: str | None = None  # the state that was running, when known

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "timestamp": self.timestamp.isoformat()}


@dataclass
class Source:
    """One log group to read, over some time windows, with a rule for which lines to keep."""

    group: str
    windows: list[tuple[dt.datetime, dt.datetime, str]]  # (start, end, state)
    stream_prefixes: tuple[str, ...] = ()
    correlation_id: str | None = None  # Lambda: keep JSON lines of this execution only


def function_of(spec: dict[str, Any]) -> str | None:
    """The Lambda function name a Task state calls (lambda:invoke or a function ARN)."""
    params = spec.get("Parameters") or spec.get("Arguments") or {}
    target = str(params.get("FunctionName") or spec.get("Resource") or "")
    if ":function:" in target:
        return target.split(":function:", 1)[1].split(":", 1)[0]
    if target and not target.startswith("arn:"):
        return target
    return None


def step_of(spec: dict[str, Any]) -> str | None:
    """The pipeline step a state works on, from its ResultPath ($.train, $.train.poll)."""
    match = re.match(r"^\$\.(\w+)", str(spec.get("ResultPath") or ""))
    return match.group(1) if match else None


def _windows(runs: list[StateRun], names: set[str], now: dt.datetime) -> list[Any]:
    return [
        (r.entered - MARGIN, (r.exited or now) + MARGIN, r.name) for r in runs if r.name in names
    ]


def sources(
    definition: dict[str, Any],
    events: list[dict[str, Any]],
    describe: dict[str, Any],
    state: str | None = None,
) -> list[Source]:
    """What to read for the execution (or only for `state`)."""
    from sfn_mlops.aws import UserError

    states = definition.get("States", {})
    if state is not None and state not in states:
        raise UserError(f"no state {state!r} in the definition; states: {', '.join(states)}")
    runs = state_runs(events)
    now = describe.get("stopDate") or dt.datetime.now(tz=dt.UTC)
    data = last_state_data(events, describe.get("output"))
    wanted = {state} if state else set(states)
    out: list[Source] = []
    by_function: dict[str, set[str]] = {}
    for name in wanted:
        fn = function_of(states[name]) if states[name].get("Type") == "Task" else None
        if fn:
            by_function.setdefault(fn, set()).add(name)
    for fn, names in sorted(by_function.items()):
        windows = _windows(runs, names, now)
        if windows:
            out.append(Source(f"/aws/lambda/{fn}", windows, correlation_id=describe["name"]))
    steps = {step_of(states[n]) for n in wanted} - {None}
    start = describe["startDate"] - MARGIN
    for step in sorted(s for s in steps if s):
        info = data.get(step)
        if not isinstance(info, dict):  # a plain value (or null), not a step's output
            continue
        name, kind = info.get("job_name"), info.get("job_type")
        if not name:
            continue
        if kind in ("processing", "training"):
            prefix = re.sub(r"-\d+$", "-", name)  # every attempt: <base>-1, <base>-2, ...
            group = TRAINING_GROUP if kind == "training" else PROCESSING_GROUP
            out.append(Source(group, [(start, now + MARGIN, state or step)], (prefix,)))
        elif kind == "endpoint":
            step_states = {n for n in states if step_of(states[n]) == step}
            windows = _windows(runs, step_states | {"SmokeTest"}, now)
            if windows:
                out.append(Source(f"/aws/sagemaker/Endpoints/{name}", windows))
    return out


def _is_execution_line(message: str, correlation_id: str | None) -> bool:
    if correlation_id is None:
        return True
    try:
        data = json.loads(message)
    except ValueError:
        return True  # a plain line in the window: a crash, START/END/REPORT
    if not isinstance(data, dict):
        return True
    return data.get("correlation_id") == correlation_id


def read(logs: Any, source: Source) -> list[LogLine]:
    """FilterLogEvents over the source's windows (paginated); a missing group is no lines."""
    lines: list[LogLine] = []
    for start, end, state_name in source.windows:
        kwargs: dict[str, Any] = {
            "logGroupName": source.group,
            "startTime": int(start.timestamp() * 1000),
            "endTime": int(end.timestamp() * 1000),
        }
        prefixes = source.stream_prefixes or (None,)
        for prefix in prefixes:
            if prefix:
                kwargs["logStreamNamePrefix"] = prefix
            try:
                pages = logs.get_paginator("filter_log_events").paginate(**kwargs)
                events = [e for page in pages for e in page.get("events", [])]
            except logs.exceptions.ResourceNotFoundException:
                continue
            for e in events:
                if not _is_execution_line(e["message"], source.correlation_id):
                    continue
                ts = dt.datetime.fromtimestamp(e["timestamp"] / 1000, tz=dt.UTC)
                lines.append(
                    LogLine(ts, source.group, e.get("logStreamName", ""), e["message"], state_name)
                )
    return lines


def execution_logs(cloud: Any, execution_arn: str, state: str | None = None) -> list[LogLine]:
    """Every line of the execution (or of one state), oldest first, each once."""
    from sfn_mlops.progress import get_history
    from sfn_mlops.report.collect import definition_of

    sfn = cloud.client("stepfunctions")
    describe = sfn.describe_execution(executionArn=execution_arn)
    events = get_history(sfn, execution_arn)
    definition = definition_of(sfn, describe)
    logs = cloud.client("logs")
    seen: set[tuple[Any, ...]] = set()
    out: list[LogLine] = []
    for source in sources(definition, events, describe, state):
        for line in read(logs, source):
            key = (line.timestamp, line.group, line.stream, line.message)
            if key not in seen:
                seen.add(key)
                out.append(line)
    return sorted(out, key=lambda ln: ln.timestamp)
