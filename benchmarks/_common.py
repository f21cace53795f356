"""What every benchmark module shares: repeated measurement and the result row format.

A benchmark module exposes `run(quick: bool = False) -> list[dict]`; each dict is a row
made by `figure(...)`: a value, its baseline from the same run, their ratio, the goal and
whether it was met, with the median and min-max over the repetitions.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def measure(fn: Callable[[], object], reps: int = 5, warmup: int = 0) -> dict[str, Any]:
    """Wall time of `fn` over `reps` runs: median, min, max (seconds) and the samples."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return summarize(samples)


def summarize(samples: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "reps": len(samples),
        "samples": samples,
    }


def figure(
    figure: str,
    subject: str,
    value: dict[str, Any] | float,
    baseline_name: str,
    baseline: dict[str, Any] | float,
    unit: str,
    goal: str,
    met: bool | None = None,
    *,
    ratio: float | None = None,
    note: str = "",
) -> dict[str, Any]:
    """One result row. `value`/`baseline` are a `summarize()` dict or a plain number;
    `ratio` defaults to value/baseline (medians); `met` is judged by the caller."""
    v = value["median"] if isinstance(value, dict) else float(value)
    b = baseline["median"] if isinstance(baseline, dict) else float(baseline)
    row: dict[str, Any] = {
        "figure": figure,
        "subject": subject,
        "value": v,
        "baseline_name": baseline_name,
        "baseline": b,
        "ratio": ratio if ratio is not None else (v / b if b else float("nan")),
        "unit": unit,
        "goal": goal,
        "met": met,
        "note": note,
    }
    if isinstance(value, dict):
        row.update(min=value["min"], max=value["max"], reps=value["reps"])
    if isinstance(baseline, dict):
        row.update(baseline_min=baseline["min"], baseline_max=baseline["max"])
    return row
