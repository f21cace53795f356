"""CloudWatch alarms that really change state, and the endpoint metrics they watch.

moto stores metric alarms and datapoints but never evaluates an alarm (it stays in its
initial state forever) and SageMaker endpoints publish nothing. This module adds both:

- **Endpoint metrics.** `timed_invoke` wraps the local InvokeEndpoint call (api.py) and puts,
  per invocation, SageMaker's AWS/SageMaker metrics with dimensions EndpointName and
  VariantName: Invocations, InvocationsPerInstance, Invocation4XXErrors, Invocation5XXErrors
  (0 or 1 each, unit None, as SageMaker publishes zeros for good calls), ModelLatency and
  OverheadLatency (Microseconds). A server that is down (ServiceUnavailable) or gave no
  answer (ModelError, status 0) counts as a 5XX: the 5xx rollback alarm must see a model
  that crashes or hangs. A request refused before it reaches the model (too large, endpoint
  not InService) publishes nothing. The datapoints go straight into moto's CloudWatch
  backend in-process (a few object appends, no HTTP round trip), so `GetMetricStatistics`
  and `GetMetricData` see them at once.
- **Alarm evaluation.** `AlarmEvaluator` (started and stopped by cloud.py) evaluates every
  metric alarm in moto's backend every `tick` seconds, as CloudWatch does every minute:
  namespace, metric name, the exact dimension set, Unit, Statistic or ExtendedStatistic
  (pNN, nearest rank over raw values), Period, EvaluationPeriods, DatapointsToAlarm,
  Threshold, ComparisonOperator and TreatMissingData (missing | ignore | breaching |
  notBreaching, per AWS's table: with no datapoint at all, missing -> INSUFFICIENT_DATA,
  ignore keeps the state; with fewer datapoints than DatapointsToAlarm, ALARM only if
  every one present breaches). A change sets StateValue/StateReason/StateReasonData as
  AWS words them, records history (moto's `update_state`), publishes the alarm message to
  SNS alarm actions, and emits EventBridge's "CloudWatch Alarm State Change" through the
  local rules (events.py). New alarms start INSUFFICIENT_DATA, as on AWS (moto says OK).
  Not evaluated (left as they are): metric-math alarms (Metrics=[...]), anomaly-detection
  bands and composite alarms; EvaluateLowSampleCountPercentile is ignored.

**Time scale.** A local cloud must be fast, so one alarm period lasts `Period * scale` real
seconds: the evaluation range is the last EvaluationPeriods windows of that length ending
now, on real (moto's UTC) datapoint timestamps. The scale comes from `LocalCloud(...,
alarm_period_scale=...)` or the environment variable SFN_MLOPS_ALARM_PERIOD_SCALE
(default 0.05: a 60 s period is 3 s, 3 periods of 60 s alarm within ~9 s of bad traffic);
1.0 is AWS's real time. We do not use sfn.SimulatedClock: it only offsets "now" for the
redrive window, and datapoints carry wall-clock timestamps.

Public API for other fakes and tests: `LocalCloud.alarms` is the `AlarmEvaluator`:
`evaluate_now()` (one synchronous pass; returns the alarms that changed),
`state(name)` (the alarm's StateValue), `wait_for_state(name, value, timeout)`;
module level `put_endpoint_metrics(...)` and `alarm_state(account, region, name)`.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from shared import resources

NAMESPACE = "AWS/SageMaker"
SCALE_ENV = "SFN_MLOPS_ALARM_PERIOD_SCALE"
DEFAULT_SCALE = 0.05
DETAIL_TYPE = "CloudWatch Alarm State Change"
_MISSING = ("missing", "ignore", "breaching", "notBreaching")  # TreatMissingData's values

T = TypeVar("T")


@cache
def _enum(shape: str) -> tuple[str, ...]:
    """An enum from botocore's CloudWatch model (ComparisonOperator, Statistic, StateValue)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("cloudwatch")
    return tuple(model.shape_for(shape).metadata["enum"])


def period_scale() -> float:
    """SFN_MLOPS_ALARM_PERIOD_SCALE (real seconds per alarm second), checked."""
    raw = os.environ.get(SCALE_ENV, "")
    if not raw:
        return DEFAULT_SCALE
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise ValueError(f"{SCALE_ENV}={raw!r}: give a number in (0, 1], e.g. 0.05")
    return value


def _backend(account: str, region: str) -> Any:
    from moto.cloudwatch.models import cloudwatch_backends

    return cloudwatch_backends[account][region]


def _utcnow() -> dt.datetime:
    from moto.core.utils import utcnow

    return utcnow()  # naive UTC, as moto stamps datapoints


# --- endpoint metrics --------------------------------------------------------------------


def put_endpoint_metrics(
    account: str,
    region: str,
    endpoint: str,
    status: int,
    model_us: float | None,
    overhead_us: float,
    variant: str = resources.ENDPOINT_VARIANT_NAME,
) -> None:
    """One invocation's AWS/SageMaker datapoints (status: the model's HTTP status, 5xx for a
    server down or silent; model_us None when the request never reached the model)."""
    from moto.cloudwatch.models import MetricDatum

    dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
    now = _utcnow()
    points = [
        ("Invocations", 1.0, "None"),
        ("InvocationsPerInstance", 1.0, "None"),
        ("Invocation4XXErrors", float(400 <= status < 500), "None"),
        ("Invocation5XXErrors", float(status >= 500), "None"),
        ("OverheadLatency", round(overhead_us), "Microseconds"),
    ]
    if model_us is not None:
        points.append(("ModelLatency", round(model_us), "Microseconds"))
    data = _backend(account, region).metric_data
    data.extend(MetricDatum(NAMESPACE, n, float(v), dims, now, u) for n, v, u in points)


def timed_invoke(
    invoke: Callable[[str, bytes, dict[str, str]], tuple[int, dict[str, str], bytes]],
    account: str,
    region: str,
    received: float,
    endpoint: str,
    body: bytes,
    headers: dict[str, str],
) -> tuple[int, dict[str, str], bytes]:
    """`invoke(endpoint, body, headers)` timed, its outcome published (see the docstring).
    `received`: time.perf_counter() when the request arrived (for OverheadLatency)."""
    from sfn_mlops.local.sagemaker.endpoints import EndpointDownError, NoAnswerError

    start = time.perf_counter()
    status, reached = 500, True
    try:
        result = invoke(endpoint, body, headers)
        status = result[0]
        return result
    except LookupError:  # not InService: SageMaker refuses it before any metric
        reached = False
        raise
    except EndpointDownError:
        status = 503
        raise
    except NoAnswerError:
        status = 500
        raise
    finally:
        if reached:
            end = time.perf_counter()
            model_us = (end - start) * 1e6
            put_endpoint_metrics(
                account, region, endpoint, status, model_us, (start - received) * 1e6
            )


# --- alarm evaluation --------------------------------------------------------------------


def alarm_state(account: str, region: str, name: str) -> str:
    """The alarm's StateValue (KeyError naming it if there is no such alarm)."""
    alarms = _backend(account, region).alarms
    if name not in alarms:
        raise KeyError(f"no CloudWatch alarm named {name!r} in {account}/{region}")
    return str(alarms[name].state_value)


@dataclass
class Datapoint:
    start: dt.datetime
    value: float
    samples: float


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _statistic(alarm: Any, datums: list[Any], start: dt.datetime) -> Datapoint | None:
    from moto.cloudwatch.models import MetricDatum, Statistics

    if not datums:
        return None
    if alarm.extended_statistic:
        values = [d.value for d in datums if isinstance(d, MetricDatum)]
        if not values:
            return None
        p = float(str(alarm.extended_statistic).lstrip("p"))
        return Datapoint(start, _percentile(values, p), len(values))
    stats = Statistics([alarm.statistic, "SampleCount"], start)
    stats.metric_data = datums
    value = stats.get_statistics_for_type(alarm.statistic)
    if value is None:
        return None
    return Datapoint(start, float(value), float(stats.calc_sample_count()))


def _breaches(operator: str, value: float, threshold: float) -> bool:
    return {
        "GreaterThanOrEqualToThreshold": value >= threshold,
        "GreaterThanThreshold": value > threshold,
        "LessThanThreshold": value < threshold,
        "LessThanOrEqualToThreshold": value <= threshold,
    }[operator]


def _phrase(operator: str) -> str:
    """GreaterThanOrEqualToThreshold -> 'greater than or equal to' (AWS's StateReason)."""
    words = re.findall(r"[A-Z][a-z]*", operator.removesuffix("Threshold"))
    return " ".join(w.lower() for w in words)


def _fmt(value: float) -> str:
    return repr(float(value))


def _stamp(ts: dt.datetime) -> str:
    return ts.strftime("%d/%m/%y %H:%M:%S")


def _iso_ms(ts: dt.datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}+0000"


def _same_dimensions(datum: Any, wanted: set[tuple[str, str]]) -> bool:
    return {(d.name, d.value) for d in datum.dimensions} == wanted


@dataclass
class Verdict:
    state: str
    reason: str
    reason_data: dict[str, Any]


def evaluate(alarm: Any, data: list[Any], now: dt.datetime, scale: float) -> Verdict | None:
    """The state `alarm` should be in at `now` given moto's datapoints; None: not evaluable
    here (metric math, anomaly bands) or ignore-with-no-data (keep the state)."""
    operator = alarm.comparison_operator
    if (
        alarm.metric_data_queries
        or not alarm.metric_name
        or operator not in _enum("ComparisonOperator")[:4]
    ):
        return None
    window = dt.timedelta(seconds=float(alarm.period) * scale)
    n = int(alarm.evaluation_periods)
    m = int(alarm.datapoints_to_alarm or n)
    first = now - window * n
    wanted = {(d.name, d.value) for d in alarm.dimensions}
    matching = [
        d
        for d in data
        if d.namespace == alarm.namespace
        and d.name == alarm.metric_name
        and first <= d.timestamp < now
        and (not alarm.unit or d.unit == alarm.unit)
        and _same_dimensions(d, wanted)
    ]
    points: list[Datapoint | None] = []  # oldest first
    for i in range(n):
        start = first + window * i
        end = start + window
        points.append(_statistic(alarm, [d for d in matching if start <= d.timestamp < end], start))
    threshold = float(alarm.threshold)
    present = [p for p in points if p is not None]
    missing = alarm.treat_missing_data if alarm.treat_missing_data in _MISSING else "missing"
    data_json = {
        "version": "1.0",
        "queryDate": _iso_ms(now),
        "startDate": _iso_ms(first),
        "statistic" if not alarm.extended_statistic else "extendedStatistic": (
            alarm.extended_statistic or alarm.statistic
        ),
        "period": int(alarm.period),
        "recentDatapoints": [p.value for p in present],
        "threshold": threshold,
        "evaluatedDatapoints": [
            {"timestamp": _iso_ms(p.start), "sampleCount": p.samples, "value": p.value}
            for p in reversed(present)
        ],
    }
    if not present:
        if missing == "ignore":
            return None
        if missing == "missing":
            unknown = f"{n} datapoint{'s were' if n > 1 else ' was'} unknown"
            return Verdict("INSUFFICIENT_DATA", f"Insufficient Data: {unknown}.", data_json)
    breaching = [p for p in present if _breaches(operator, p.value, threshold)]
    count = len(breaching)
    if missing == "breaching":
        count += n - len(present)
    if missing in ("missing", "ignore") and len(present) < m:
        alarmed = bool(present) and len(breaching) == len(present)
    else:
        alarmed = count >= m
    shown = present[::-1]  # newest first, as AWS lists them
    values = ", ".join(f"{_fmt(p.value)} ({_stamp(p.start)})" for p in shown)
    phrase = _phrase(operator)
    if alarmed:
        listed = ", ".join(f"{_fmt(p.value)} ({_stamp(p.start)})" for p in breaching[::-1])
        if n == 1 and len(breaching) == 1:
            head = f"1 datapoint [{listed}] was {phrase}"
        else:
            head = f"{count} out of the last {n} datapoints [{listed}] were {phrase}"
        reason = f"Threshold Crossed: {head} the threshold ({_fmt(threshold)})"
        if m != n:
            reason += f" (minimum {m} datapoint{'s' if m > 1 else ''} for OK -> ALARM transition)"
        return Verdict("ALARM", reason + ".", data_json)
    if present:
        if len(present) == 1:
            head = f"1 datapoint [{values}] was not {phrase}"
        else:
            head = f"{len(present)} out of the last {n} datapoints [{values}] were not {phrase}"
        reason = f"Threshold Crossed: {head} the threshold ({_fmt(threshold)})"
    else:
        reason = (
            f"Threshold Crossed: no datapoints were received for {n} periods and {n} "
            "missing datapoints were treated as [NonBreaching]"
        )
    return Verdict("OK", reason + ".", data_json)


def state_change_event(
    alarm: Any, previous: dict[str, Any], account: str, region: str
) -> dict[str, Any]:
    """EventBridge's "CloudWatch Alarm State Change", as AWS shapes it."""
    from sfn_mlops.local.events import envelope

    metric: dict[str, Any] = {
        "metric": {
            "namespace": alarm.namespace,
            "name": alarm.metric_name,
            "dimensions": {d.name: d.value for d in alarm.dimensions},
        },
        "period": int(alarm.period),
        "stat": alarm.extended_statistic or alarm.statistic,
    }
    if alarm.unit:
        metric["unit"] = alarm.unit
    detail = {
        "alarmName": alarm.name,
        "state": {
            "value": alarm.state_value,
            "reason": alarm.state_reason,
            "reasonData": alarm.state_reason_data,
            "timestamp": _iso_ms(alarm.state_updated_timestamp),
        },
        "previousState": previous,
        "configuration": {
            "description": alarm.description or "",
            "metrics": [{"id": "m1", "metricStat": metric, "returnData": True}],
        },
    }
    return envelope("aws.cloudwatch", DETAIL_TYPE, detail, account, region, [alarm.alarm_arn])


def _sns_message(alarm: Any, previous: str, account: str, region: str) -> str:
    """The JSON CloudWatch publishes to an alarm action's SNS topic."""
    return json.dumps(
        {
            "AlarmName": alarm.name,
            "AlarmDescription": alarm.description or None,
            "AWSAccountId": account,
            "AlarmArn": alarm.alarm_arn,
            "NewStateValue": alarm.state_value,
            "NewStateReason": alarm.state_reason,
            "StateChangeTime": _iso_ms(alarm.state_updated_timestamp),
            "Region": region,
            "OldStateValue": previous,
            "Trigger": {
                "MetricName": alarm.metric_name,
                "Namespace": alarm.namespace,
                "Statistic": (alarm.statistic or "").upper() or None,
                "ExtendedStatistic": alarm.extended_statistic,
                "Dimensions": [{"name": d.name, "value": d.value} for d in alarm.dimensions],
                "Period": int(alarm.period),
                "EvaluationPeriods": int(alarm.evaluation_periods),
                "DatapointsToAlarm": alarm.datapoints_to_alarm,
                "ComparisonOperator": alarm.comparison_operator,
                "Threshold": float(alarm.threshold),
                "TreatMissingData": alarm.treat_missing_data or "missing",
            },
        }
    )


class MetricIndex:
    """moto's datapoints (`backend.metric_data`, append-only) per (namespace, metric name),
    each metric's kept sorted by timestamp, taken in incrementally: a tick reads only what
    was appended since the last one and bisects each alarm's window, instead of rescanning
    every datapoint ever put (six per InvokeEndpoint, so a long `local up` with traffic used
    to spend more each tick). A list that is replaced or shorter than what was read (moto's
    reset) is read again from the start."""

    def __init__(self) -> None:
        self._reset(None)

    def _reset(self, source: list[Any] | None) -> None:
        self._source = source
        self._read = 0
        self._seq = 0
        # per metric: timestamps (sorted) and (timestamp, arrival, datum), kept in step
        self._times: dict[tuple[Any, Any], list[dt.datetime]] = {}
        self._points: dict[tuple[Any, Any], list[tuple[dt.datetime, int, Any]]] = {}

    def update(self, source: list[Any]) -> None:
        if source is not self._source or len(source) < self._read:
            self._reset(source)
        end = len(source)
        for datum in source[self._read : end]:  # a slice: atomic against concurrent appends
            key = (datum.namespace, datum.name)
            times = self._times.setdefault(key, [])
            points = self._points.setdefault(key, [])
            try:
                at = bisect.bisect_right(times, datum.timestamp)  # the end unless back-dated
            except TypeError:  # a timestamp that can't be ordered is in no alarm's range
                continue
            times.insert(at, datum.timestamp)
            points.insert(at, (datum.timestamp, self._seq, datum))
            self._seq += 1
        self._read = end

    def window(self, key: tuple[Any, Any], first: dt.datetime, end: dt.datetime) -> list[Any]:
        """The metric's datapoints with first <= timestamp < end, in the order they were put
        (as moto's list has them, so a Sum adds them in the same order)."""
        times = self._times.get(key, [])
        lo, hi = bisect.bisect_left(times, first), bisect.bisect_left(times, end)
        return [d for _, _, d in sorted(self._points.get(key, [])[lo:hi], key=lambda p: p[1])]


def _range(alarm: Any, now: dt.datetime, scale: float) -> dt.datetime | None:
    """The start of the alarm's evaluation range (None: not a single-metric alarm)."""
    try:
        window = dt.timedelta(seconds=float(alarm.period) * scale)
        return now - window * int(alarm.evaluation_periods)
    except (TypeError, ValueError):
        return None


class AlarmEvaluator:
    """Evaluates moto's metric alarms in `account`/`region` every `tick` seconds (a thread,
    started by `start`, stopped by `close`); `emit(event)` routes state-change events."""

    def __init__(
        self,
        account: str,
        region: str,
        emit: Callable[[dict[str, Any]], None],
        scale: float | None = None,
        tick: float = 0.25,
    ) -> None:
        self.account = account
        self.region = region
        self.scale = period_scale() if scale is None else scale
        if not 0 < self.scale <= 1:
            raise ValueError(f"alarm_period_scale={self.scale}: give a number in (0, 1]")
        self.tick = tick
        self._emit = emit
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._index = MetricIndex()
        #: (alarm name, previous state, new state) of every change, in order (tests, the CLI)
        self.changes: list[tuple[str, str, str]] = []

    def start(self) -> AlarmEvaluator:
        self._thread = threading.Thread(target=self._loop, name="alarm-evaluator", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                self.evaluate_now()
            except Exception:  # a bad alarm must not stop the others; next tick retries
                continue

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def state(self, name: str) -> str:
        return alarm_state(self.account, self.region, name)

    def wait_for_state(self, name: str, value: str, timeout: float = 30.0) -> str:
        """Poll (bounded) until alarm `name` is in `value`; its StateReason."""
        if value not in _enum("StateValue"):
            raise ValueError(f"state {value!r}: one of {_enum('StateValue')}")
        deadline = time.monotonic() + timeout
        while True:
            alarm = _backend(self.account, self.region).alarms.get(name)
            if alarm is not None and alarm.state_value == value:
                return str(alarm.state_reason)
            if time.monotonic() >= deadline:
                now = alarm.state_value if alarm else "absent"
                raise TimeoutError(f"alarm {name!r} not {value} within {timeout:.0f}s ({now})")
            time.sleep(min(self.tick, 0.1))

    def evaluate_now(self, now: dt.datetime | None = None) -> list[str]:
        """One evaluation pass over every metric alarm; the names of those that changed."""
        with self._lock:
            backend = _backend(self.account, self.region)
            now = now or _utcnow()
            # each alarm reads only its metric's datapoints inside its range (evaluate
            # filters the rest out anyway), from the incremental index
            self._index.update(backend.metric_data)
            changed = []
            for alarm in list(backend.alarms.values()):
                first = _range(alarm, now, self.scale)
                key = (alarm.namespace, alarm.metric_name)
                data = [] if first is None else self._index.window(key, first, now)
                verdict = evaluate(alarm, data, now, self.scale)
                if verdict is None or verdict.state == alarm.state_value:
                    continue
                previous = {
                    "value": alarm.state_value,
                    "reason": alarm.state_reason,
                    "reasonData": alarm.state_reason_data,
                    "timestamp": _iso_ms(alarm.state_updated_timestamp),
                }
                alarm.update_state(verdict.reason, json.dumps(verdict.reason_data), verdict.state)
                self.changes.append((alarm.name, previous["value"], verdict.state))
                changed.append(alarm.name)
                self._act(alarm, previous)
            return changed

    def _act(self, alarm: Any, previous: dict[str, Any]) -> None:
        self._emit(state_change_event(alarm, previous, self.account, self.region))
        if not alarm.actions_enabled:
            return
        actions = {
            "ALARM": alarm.alarm_actions,
            "OK": alarm.ok_actions,
            "INSUFFICIENT_DATA": alarm.insufficient_data_actions,
        }[alarm.state_value]
        from moto.sns.models import sns_backends

        for arn in actions or []:
            if ":sns:" in arn:
                _, _, _, region, account, _ = arn.split(":", 5)
                message = _sns_message(alarm, previous["value"], self.account, self.region)
                sns_backends[account][region].publish(
                    message=message,
                    arn=arn,
                    subject=f'{alarm.state_value}: "{alarm.name}" in {self.region}'[:100],
                )


def install(patches: Any) -> None:
    """New alarms start INSUFFICIENT_DATA, as on AWS (moto: OK); an update keeps the state."""
    from moto.cloudwatch.models import CloudWatchBackend

    orig = CloudWatchBackend.put_metric_alarm

    def put_metric_alarm(backend: Any, *args: Any, **kwargs: Any) -> Any:
        old = backend.alarms.get(kwargs["name"] if "name" in kwargs else args[0])
        alarm = orig(backend, *args, **kwargs)
        if old is not None:
            alarm.state_value = old.state_value
            alarm.state_reason = old.state_reason
            alarm.state_reason_data = old.state_reason_data
            alarm.state_updated_timestamp = old.state_updated_timestamp
            alarm.history = old.history
        else:
            alarm.state_value = "INSUFFICIENT_DATA"
        return alarm

    patches.set(CloudWatchBackend, "put_metric_alarm", put_metric_alarm)
