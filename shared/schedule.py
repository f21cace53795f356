"""The predictive poll schedule: when to look at a job (or endpoint) next, and why.

What is known about how long the step takes decides the wait:

1. **Progress** (training jobs): the job's own rate. The poll's DescribeTrainingJob carries the
   boosting round the container last logged (metric `progress:round`, parsed by SageMaker from
   the log through the job's MetricDefinitions, with its timestamp), `num_round` and
   TrainingStartTime; rounds done over the time they took extrapolate the end. The next poll
   comes at that end (extrapolating at most PROGRESS_HORIZON times the span observed).
2. **History**: the duration of the same step's last completed job (or the endpoint's last
   update), looked up once when the step starts and carried in the poll state
   (`expected_seconds`), never re-read per poll. The first look comes at
   `expected × (1 − prediction_margin)` (the early edge of the noise band), in waits of at most
   `max_poll_interval_seconds`.
3. **Neither**: the adaptive schedule (shared/polling.py): `poll_interval_seconds` doubling
   up to `max_poll_interval_seconds`.

After the predicted end, polls come every `end_poll_interval_seconds`; once the job is overdue
by more than a few of those, the wait grows with the overrun (half of it, up to
`max_poll_interval_seconds`), so a job much longer than predicted costs a logarithmic number of
polls and is noticed at most a third of its overrun (or max_poll_interval_seconds) late. A
job shorter than predicted is noticed at most max_poll_interval_seconds late (the cap on
every wait before the predicted end). `max_polls` bounds every loop as before.

Elapsed time is the sum of the waits so far (`elapsed_seconds` in the poll state): a lower
bound of the real time, so a late clock makes polls early (cost), never late (lag).

Pure functions: no AWS calls here; the callers pass what Describe/List answered.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from shared.models import PollState
from shared.polling import wait_seconds as adaptive_wait

if TYPE_CHECKING:
    from shared.adapters.sagemaker import JobKind, SageMaker

Schedule = Literal["predictive", "adaptive"]
# Polls at end_poll_interval_seconds after the predicted end before the wait grows again.
END_POLLS = 4
OVERDUE_WAIT_FRACTION = 0.5  # overdue by O seconds: wait O/2 (lag <= a third of the overrun)
PROGRESS_METRIC = "progress:round"  # the training log's "[<round>]\t..." (functions/train)
MIN_PROGRESS_ROUNDS = 5  # fewer rounds than this say too little about the rate
PROGRESS_HORIZON = 10  # a progress wait extrapolates at most 10x the span the rate was seen over


@dataclass(frozen=True)
class ScheduleSettings:
    schedule: Schedule
    interval: int  # poll_interval_seconds: the adaptive schedule's first wait
    max_interval: int  # max_poll_interval_seconds: the cap on every wait but a progress one
    end_interval: int  # end_poll_interval_seconds: after the predicted end
    margin: float  # prediction_margin: the first look at expected x (1 - margin)


class _Configured(Protocol):  # PipelineInput and PollRequest both carry the settings
    @property
    def poll_schedule(self) -> Schedule: ...
    @property
    def poll_interval_seconds(self) -> int: ...
    @property
    def max_poll_interval_seconds(self) -> int: ...
    @property
    def end_poll_interval_seconds(self) -> int: ...
    @property
    def prediction_margin(self) -> float: ...


def settings_of(source: _Configured) -> ScheduleSettings:
    return ScheduleSettings(
        schedule=source.poll_schedule,
        interval=source.poll_interval_seconds,
        max_interval=source.max_poll_interval_seconds,
        end_interval=source.end_poll_interval_seconds,
        margin=source.prediction_margin,
    )


@dataclass(frozen=True)
class Progress:
    """A job's progress as the job itself reports it: `done` of `total` units, the work
    starting `offset` seconds after the job was created and reaching `done` `seconds` later."""

    done: int
    total: int
    offset: float
    seconds: float

    def expected_total(self) -> float:
        return self.offset + self.seconds * self.total / self.done


@dataclass(frozen=True)
class Plan:
    wait: int
    reason: str
    expected: float | None  # the end the wait aimed at (seconds since start), if any


def plan(
    settings: ScheduleSettings,
    *,
    attempt: int,
    elapsed: float,
    expected: float | None,
    progress: Progress | None = None,
    status_detail: str | None = None,
) -> Plan:
    """The wait before the next poll, `elapsed` seconds after the start, at poll `attempt`."""
    note = f"; {status_detail}" if status_detail else ""
    if settings.schedule == "adaptive" or (expected is None and progress is None):
        wait = adaptive_wait(attempt, settings.interval, settings.max_interval)
        why = "adaptive schedule" if settings.schedule == "adaptive" else "no history"
        return Plan(
            wait,
            f"{why}: poll_interval_seconds {settings.interval} doubling to "
            f"{settings.max_interval} (poll {attempt})" + note,
            None,
        )
    if progress is not None:
        end = progress.expected_total()
        basis = (
            f"progress {progress.done}/{progress.total} in {progress.seconds:.0f} s "
            f"(started {progress.offset:.0f} s in): end expected at {end:.0f} s"
        )
        early, capped = end, False  # an observed rate: aim at its end, not before
        horizon = PROGRESS_HORIZON * progress.seconds  # ... but extrapolate only so far
        if end - elapsed > max(horizon, settings.max_interval):
            return Plan(
                math.ceil(max(horizon, settings.max_interval)),
                f"{basis}; {elapsed:.0f} s elapsed, wait capped at {PROGRESS_HORIZON}x the "
                "observed span" + note,
                end,
            )
    else:
        assert expected is not None
        end = expected
        early = expected * (1 - settings.margin)
        basis = (
            f"history: {expected:.0f} s last time; first look at x(1-{settings.margin:g}) "
            f"= {early:.0f} s"
        )
        capped = True
    if elapsed < early:
        ahead = early - elapsed
        if capped and ahead > settings.max_interval:
            return Plan(
                settings.max_interval,
                f"{basis}; {elapsed:.0f} s elapsed, wait capped at max_poll_interval_seconds"
                + note,
                end,
            )
        return Plan(max(1, math.ceil(ahead)), f"{basis}; {elapsed:.0f} s elapsed" + note, end)
    overdue = elapsed - early
    if overdue < settings.end_interval * END_POLLS:
        return Plan(
            settings.end_interval,
            f"{basis}; {elapsed:.0f} s elapsed, near the expected end: every "
            f"end_poll_interval_seconds" + note,
            end,
        )
    grown = min(settings.max_interval, max(settings.end_interval, overdue * OVERDUE_WAIT_FRACTION))
    return Plan(
        math.ceil(grown),
        f"{basis}; overdue by {overdue:.0f} s: wait half the overrun (max "
        f"{settings.max_interval})" + note,
        end,
    )


def worst_case_seconds(max_polls: int, settings: ScheduleSettings) -> float:
    """A lower bound of the time `max_polls` polls cover under any prediction: the first look
    may come at once, then END_POLLS waits of end_interval, then waits of half the overrun
    (at least end_interval, at most max_interval)."""
    if settings.schedule == "adaptive":
        return float(
            sum(
                adaptive_wait(a, settings.interval, settings.max_interval) for a in range(max_polls)
            )
        )
    covered, overdue = 1.0, 0.0
    for _ in range(max_polls - 1):
        if overdue < settings.end_interval * END_POLLS:
            step = float(settings.end_interval)
        else:
            step = math.ceil(
                min(
                    settings.max_interval,
                    max(settings.end_interval, overdue * OVERDUE_WAIT_FRACTION),
                )
            )
        covered += step
        overdue += step
    return covered


# --- reading what SageMaker answered ------------------------------------------------------


def _seconds(later: Any, earlier: Any) -> float | None:
    if isinstance(later, datetime) and isinstance(earlier, datetime):
        return (later - earlier).total_seconds()
    return None


def training_progress(description: Mapping[str, Any]) -> Progress | None:
    """Boosting rounds done out of num_round, from a DescribeTrainingJob answer: the latest
    `progress:round` metric (0-based round index, timestamped) since TrainingStartTime."""
    metric = next(
        (
            m
            for m in description.get("FinalMetricDataList") or ()
            if m.get("MetricName") == PROGRESS_METRIC
        ),
        None,
    )
    total = str((description.get("HyperParameters") or {}).get("num_round", ""))
    if metric is None or not total.isdigit():
        return None
    done = int(metric.get("Value", -1)) + 1
    offset = _seconds(description.get("TrainingStartTime"), description.get("CreationTime"))
    seconds = _seconds(metric.get("Timestamp"), description.get("TrainingStartTime"))
    if offset is None or seconds is None or seconds <= 0 or offset < 0:
        return None
    if not MIN_PROGRESS_ROUNDS <= done <= int(total):
        return None
    return Progress(done=done, total=int(total), offset=offset, seconds=seconds)


def secondary_status(description: Mapping[str, Any]) -> str | None:
    """SageMaker's SecondaryStatus (Starting, Downloading, Training, Uploading...) and how
    long the job has been in it, for the poll's explanation."""
    status = description.get("SecondaryStatus")
    if not status:
        return None
    transitions = description.get("SecondaryStatusTransitions") or ()
    message = transitions[-1].get("StatusMessage") if transitions else None
    return f"SecondaryStatus {status}" + (f" ({message})" if message else "")


def job_seconds(summary: Mapping[str, Any], end_key: str) -> float | None:
    """A completed job's duration from its List*Jobs summary: CreationTime to the end."""
    seconds = _seconds(summary.get(end_key), summary.get("CreationTime"))
    return seconds if seconds is not None and seconds > 0 else None


def last_duration(
    summaries: Iterable[Mapping[str, Any]],
    name_key: str,
    end_key: str,
    matches: Callable[[str], bool],
) -> tuple[str, float] | None:
    """The newest summary whose name `matches` and its duration."""
    for summary in summaries:
        name = str(summary.get(name_key, ""))
        seconds = job_seconds(summary, end_key)
        if matches(name) and seconds is not None:
            return name, seconds
    return None


# --- what the start states look up once, and the poll state they return -------------------


def job_history(sagemaker: SageMaker, kind: JobKind, step: str) -> tuple[str, float] | None:
    """The step's last completed job and its duration (one List*Jobs call). Job names are
    `<execution>-<step>-<12 hex>-<attempt>` (shared/naming.py); the pattern keeps an execution
    whose own name contains the step's out."""
    pattern = re.compile(rf"(^|-){re.escape(step)}-[0-9a-f]{{12}}-[0-9]+$")
    summaries = sagemaker.recent_completed_jobs(kind, f"{step}-")

    def matches(name: str) -> bool:
        return pattern.search(name) is not None

    if kind == "processing":
        return last_duration(summaries, "ProcessingJobName", "ProcessingEndTime", matches)
    return last_duration(summaries, "TrainingJobName", "TrainingEndTime", matches)


def endpoint_history(
    sagemaker: SageMaker, endpoint: Mapping[str, Any] | None
) -> tuple[str, float] | None:
    """The endpoint's last create/update: from its serving config's CreationTime (made just
    before CreateEndpoint/UpdateEndpoint) to the endpoint's LastModifiedTime (InService)."""
    if endpoint is None or endpoint.get("EndpointStatus") != "InService":
        return None
    serving = str(endpoint.get("EndpointConfigName", ""))
    config = sagemaker.describe_endpoint_config(serving) if serving else None
    if config is None:
        return None
    seconds = _seconds(endpoint.get("LastModifiedTime"), config.get("CreationTime"))
    return (f"endpoint config {serving}", seconds) if seconds and seconds > 0 else None


def first_poll(status: str, source: _Configured, history: tuple[str, float] | None) -> PollState:
    """The `poll` a start state returns: Completed needs only a short wait; else the first
    wait of the schedule, with the history it used carried for the polls to come."""
    if status == "Completed":
        return PollState(status="Completed", attempt=0, wait_seconds=1, reason="already Completed")
    settings = settings_of(source)
    expected = math.ceil(history[1]) if history and settings.schedule == "predictive" else None
    chosen = plan(settings, attempt=0, elapsed=0, expected=expected)
    source_note = f" ({history[0]})" if history and expected else ""
    return PollState(
        status="InProgress",
        attempt=0,
        wait_seconds=chosen.wait,
        elapsed_seconds=chosen.wait,
        expected_seconds=expected,
        reason=chosen.reason + source_note,
    )


def job_first_poll(
    sagemaker: SageMaker, kind: JobKind, step: str, status: str, config: _Configured
) -> PollState:
    """A job start's `poll`: the history is looked up only when it can be used."""
    wanted = status != "Completed" and config.poll_schedule == "predictive"
    return first_poll(status, config, job_history(sagemaker, kind, step) if wanted else None)
