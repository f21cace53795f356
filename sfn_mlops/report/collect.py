"""What a report shows, read from AWS or a local cloud (anything with `.client(service)`)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from sfn_mlops.history import StateRun, failure, last_state_data, state_runs

#: The pipeline's job steps: (ResultPath key in the state, SageMaker job type).
JOB_STEPS = (("preprocess", "processing"), ("train", "training"), ("evaluate", "processing"))


@dataclass
class StateOutcome:
    """How one state of the definition fared over the whole execution (all redrives)."""

    name: str
    type: str
    status: str  # succeeded | failed | caught | running | recovered | not run
    visits: int = 0
    failed_visits: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class JobRun:
    step: str
    kind: str  # processing | training
    name: str
    status: str
    start: dt.datetime | None
    end: dt.datetime | None
    failure_reason: str | None = None


@dataclass
class ReportData:
    describe: dict[str, Any]
    events: list[dict[str, Any]]
    definition: dict[str, Any]
    state: dict[str, Any]  # the execution's output, or the last state data a failed one had
    evaluation: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None
    jobs: list[JobRun] = field(default_factory=list)
    region: str = "us-east-1"
    on_aws: bool = False  # console links only make sense there
    problems: list[str] = field(default_factory=list)  # what could not be read, and why

    @property
    def name(self) -> str:
        return str(self.describe["name"])

    @property
    def status(self) -> str:
        return str(self.describe["status"])

    @property
    def runs(self) -> list[StateRun]:
        return state_runs(self.events)

    @property
    def redrives(self) -> list[dt.datetime]:
        return [_ts(e["timestamp"]) for e in self.events if e["type"] == "ExecutionRedriven"]

    @property
    def failure(self) -> tuple[str, str, str] | None:
        if self.status not in ("FAILED", "TIMED_OUT", "ABORTED"):
            return None
        return failure(self.events) or (
            "?",
            str(self.describe.get("error", "")),
            str(self.describe.get("cause", "")),
        )

    @property
    def gate(self) -> dict[str, Any] | None:
        gate = self.state.get("gate")
        return gate if isinstance(gate, dict) else None

    def outcomes(self) -> dict[str, StateOutcome]:
        return state_outcomes(self.events, self.definition)


def _ts(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(str(value))


def state_outcomes(
    events: list[dict[str, Any]], definition: dict[str, Any]
) -> dict[str, StateOutcome]:
    """Each state of the definition with its outcome over the execution: the last visit's
    status, except that a state which failed and then succeeded in a later redrive is
    `recovered` (so the graph shows where the execution was redriven from)."""
    out = {
        name: StateOutcome(name, str(spec.get("Type", "?")), "not run")
        for name, spec in definition.get("States", {}).items()
    }
    for run in state_runs(events):
        o = out.setdefault(run.name, StateOutcome(run.name, run.type, "not run"))
        o.visits += 1
        o.seconds += run.seconds or 0.0
        status = run.status
        if run.exited is None and run.errors and len(run.errors) >= run.attempts:
            status = "failed"  # its last attempt failed the execution there (no Catch)
        if run.errors:
            o.error = run.errors[-1][0]
        if status in ("failed", "caught"):
            o.failed_visits += 1
        if status == "succeeded" and o.failed_visits and o.status in ("failed", "recovered"):
            o.status = "recovered"
        else:
            o.status = status
    return out


def definition_of(sfn: Any, describe: dict[str, Any]) -> dict[str, Any]:
    """The definition the execution ran (after an update, not necessarily the current one)."""
    try:
        text = sfn.describe_state_machine_for_execution(executionArn=describe["executionArn"])[
            "definition"
        ]
    except Exception:
        text = sfn.describe_state_machine(stateMachineArn=describe["stateMachineArn"])["definition"]
    return json.loads(text)  # type: ignore[no-any-return]


def _s3_json(s3: Any, uri: Any, name: str) -> dict[str, Any]:
    """JSON at `uri`: the object itself, or `name` under it when it is a job's output prefix
    (preprocess' profile output is a prefix holding profile.json)."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not key.endswith(".json"):
        key = f"{key.rstrip('/')}/{name}"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return json.loads(body)  # type: ignore[no-any-return]


#: describe_* call, name parameter and the keys of its answer, per SageMaker job type.
_DESCRIBE = {
    "training": ("describe_training_job", "TrainingJobName", "Training"),
    "processing": ("describe_processing_job", "ProcessingJobName", "Processing"),
}


def _job(sm: Any, step: str, kind: str, name: str) -> JobRun:
    method, param, prefix = _DESCRIBE[kind]
    d = getattr(sm, method)(**{param: name})
    return JobRun(
        step,
        kind,
        name,
        d[f"{prefix}JobStatus"],
        d.get(f"{prefix}StartTime"),
        d.get(f"{prefix}EndTime"),
        d.get("FailureReason"),
    )


def collect(cloud: Any, execution_arn: str, region: str, on_aws: bool) -> ReportData:
    """Everything the report shows. What cannot be read (a job that never started, an
    evaluation a failed execution never wrote) is left out and named in `problems`."""
    from sfn_mlops.progress import get_history

    sfn = cloud.client("stepfunctions")
    describe = sfn.describe_execution(executionArn=execution_arn)
    events = get_history(sfn, execution_arn)
    data = ReportData(
        describe=describe,
        events=events,
        definition=definition_of(sfn, describe),
        state=last_state_data(events, describe.get("output")),
        region=region,
        on_aws=on_aws,
    )
    s3 = cloud.client("s3")
    for attr, step, key, name in (
        ("evaluation", "evaluate", "report_uri", "evaluation.json"),
        ("profile", "preprocess", "profile_uri", "profile.json"),
    ):
        uri = (data.state.get(step) or {}).get(key)
        if uri is None:
            data.problems.append(f"no {attr}: the execution did not get to write it")
            continue
        try:
            setattr(data, attr, _s3_json(s3, uri, name))
        except Exception as exc:
            data.problems.append(f"{attr} at {uri} could not be read: {exc}")
    sm = cloud.client("sagemaker")
    for step, kind in JOB_STEPS:
        name = (data.state.get(step) or {}).get("job_name")
        if not name:
            continue
        try:
            data.jobs.append(_job(sm, step, kind, name))
        except Exception as exc:
            data.problems.append(f"{kind} job {name} could not be described: {exc}")
    return data
