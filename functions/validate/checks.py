"""What ValidateInput checks beyond the payload's shape, before anything is spent:

* hyperparameters against XGBoost's documented ranges (each problem names its range);
* instance types against the SageMaker API's own valid values (botocore's service model);
* tags (they become CustomerMetadataProperties) against that model's length and pattern;
* the time budget: every job may run max_runtime_seconds, and all of them must fit inside
  the execution's timeout.

Each returns `path: problem; fix` lines (empty when fine). No AWS call here: the CLI runs
the same checks before StartExecution. The checks against the data (the prefix, the
header) are in functions/validate/data.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from shared.constraints import (
    INSTANCE_TYPE_SHAPES,
    METADATA_KEY_SHAPE,
    METADATA_VALUE_SHAPE,
    enum_values,
    string_problem,
)
from shared.models import PipelineInput
from shared.resources import EXECUTION_TIMEOUT_SECONDS

#: The SageMaker jobs one execution runs one after another (preprocess, train, evaluate).
JOBS_PER_EXECUTION = 3


@dataclass(frozen=True)
class Range:
    """A numeric range from XGBoost's parameter documentation."""

    low: float | None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def text(self) -> str:
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        kind = "an integer" if self.integer else "a number"
        return f"{kind} in {left}{low}, {high}{right}"

    def holds(self, value: float) -> bool:
        if self.integer and not float(value).is_integer():
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (
            self.high is not None and (value > self.high or (self.high_open and value == self.high))
        )


_UNIT = Range(0, 1, low_open=True)
_NON_NEGATIVE = Range(0)
#: XGBoost's documented ranges (https://xgboost.readthedocs.io/en/stable/parameter.html);
#: num_round, early_stopping_rounds and eval_period are the container's own (rounds, >= 1;
#: eval_period: validation scored every N rounds), checkpoint_interval too (rounds, 0 = off).
#: max_depth: the docs allow [0, inf); 0 (no limit) needs grow_policy=lossguide, and a depth
#: above 64 cannot be built (node ids are 64-bit), so the pipeline's bound is [1, 64].
RANGES: dict[str, Range] = {
    "num_round": Range(1, 100_000, integer=True),
    "early_stopping_rounds": Range(1, integer=True),
    "eval_period": Range(1, integer=True),
    "checkpoint_interval": Range(0, integer=True),
    "eta": _UNIT,
    "learning_rate": _UNIT,
    "subsample": _UNIT,
    "colsample_bytree": _UNIT,
    "colsample_bylevel": _UNIT,
    "colsample_bynode": _UNIT,
    "max_depth": Range(1, 64, integer=True),
    "max_leaves": Range(0, integer=True),
    "max_bin": Range(2, integer=True),
    "min_child_weight": _NON_NEGATIVE,
    "gamma": _NON_NEGATIVE,
    "min_split_loss": _NON_NEGATIVE,
    "max_delta_step": _NON_NEGATIVE,
    "lambda": _NON_NEGATIVE,
    "reg_lambda": _NON_NEGATIVE,
    "alpha": _NON_NEGATIVE,
    "reg_alpha": _NON_NEGATIVE,
    "scale_pos_weight": _NON_NEGATIVE,
    "num_parallel_tree": Range(1, integer=True),
    "max_cat_to_onehot": Range(1, integer=True),
}
CHOICES: dict[str, tuple[str, ...]] = {
    "tree_method": ("auto", "exact", "approx", "hist"),
    "grow_policy": ("depthwise", "lossguide"),
    "booster": ("gbtree", "dart", "gblinear"),
}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def hyperparameter_problems(hyperparameters: dict[str, Any]) -> list[str]:
    problems = []
    for name, value in hyperparameters.items():
        path = f"hyperparameters.{name}"
        if name in RANGES:
            allowed = RANGES[name]
            number = _number(value)
            if number is None or not math.isfinite(number) or not allowed.holds(number):
                problems.append(
                    f"{path}: {value!r} is out of range; XGBoost needs {allowed.text()}"
                )
        elif name in CHOICES and str(value) not in CHOICES[name]:
            problems.append(f"{path}: {value!r} is not one of {list(CHOICES[name])}")
    return problems


def instance_type_problems(config: PipelineInput) -> list[str]:
    problems = []
    for section, shape in INSTANCE_TYPE_SHAPES.items():
        value = getattr(config, section).instance_type
        valid = enum_values(shape)
        if value not in valid:
            family = value.rsplit(".", 1)[0] + "."
            close = [v for v in valid if v.startswith(family)][:6] or list(valid[:6])
            problems.append(
                f"{section}.instance_type: {value!r} is not a SageMaker {shape} (per the "
                f"SageMaker API's valid values); use one such as {', '.join(close)}"
            )
    return problems


def tag_problems(tags: dict[str, str]) -> list[str]:
    """Tags become the model package's CustomerMetadataProperties (keys and values)."""
    problems = []
    for key, value in tags.items():
        bad_key = string_problem(key, METADATA_KEY_SHAPE)
        if bad_key:
            problems.append(f"tags: key {key!r} {bad_key}; rename it")
        bad_value = string_problem(value, METADATA_VALUE_SHAPE)
        if bad_value:
            problems.append(
                f"tags.{key}: {bad_value}; use letters, digits, spaces and _ . : / = + - @ only"
            )
    return problems


def budget_problems(config: PipelineInput) -> list[str]:
    worst = JOBS_PER_EXECUTION * config.max_runtime_seconds
    if worst <= EXECUTION_TIMEOUT_SECONDS:
        return []
    return [
        f"max_runtime_seconds: {JOBS_PER_EXECUTION} jobs (preprocess, train, evaluate) of up "
        f"to {config.max_runtime_seconds}s each need {worst}s, more than the execution "
        f"timeout of {EXECUTION_TIMEOUT_SECONDS}s; set max_runtime_seconds <= "
        f"{EXECUTION_TIMEOUT_SECONDS // JOBS_PER_EXECUTION}"
    ]


def config_problems(config: PipelineInput) -> list[str]:
    return [
        *hyperparameter_problems(config.hyperparameters),
        *instance_type_problems(config),
        *tag_problems(config.tags),
        *budget_problems(config),
    ]
