"""Train (SageMaker Training job): XGBoost on the ``train`` channel, evaluated on
``validation``, saved to ``$OPT_ML/model``.

Inputs: ``$OPT_ML/input/data/train/`` (required) and ``$OPT_ML/input/data/validation/``
(optional, same columns): preprocess's Parquet splits (CSV, gzip CSV and Parquet files
are all read, see :mod:`sfn_container.tabular`), and
``$OPT_ML/input/config/hyperparameters.json``. SageMaker passes every hyperparameter as a
string; numbers are converted back. Reserved keys: ``target_column`` (default
``target``), ``problem_type`` (``binary_classification`` | ``regression``), ``num_round``
(100), ``early_stopping_rounds`` (off), ``eval_period`` (10, see Metrics) and
``checkpoint_interval`` (see Checkpoints). Every other key is an XGBoost parameter
(``max_depth``, ``eta``, ``subsample``, ``eval_metric`` as a comma-separated list, ...).

Metrics: the validation metrics are computed on round 0, every ``eval_period`` rounds
(default 10) and on the last round, each printed as XGBoost's line
``[20]\\tvalidation-auc:0.97\\t...``; the other rounds print
``[21]\\t(validation scored every 10 rounds)`` (progress, for the training poll). The end
prints one ``validation-<metric>: <value>`` line per metric (the last round's), so a
SageMaker metric definition such as ``{"Name": "validation:auc", "Regex":
"validation-auc:\\s*([0-9.eE+-]+)"}`` parses both (the last value is the final one). Why
not every round: without early stopping the booster never reads the scores, so the model
is the same whatever the period, and scoring is not free (AUC sorts the whole validation
split each round: measured ~20% of ``xgb.train``'s CPU at 1M rows in
benchmarks/training_scale.py, figure 6). 10 keeps a learning curve of 11 points per 100
rounds; ``eval_period: 1`` evaluates every round as plain XGBoost does. With
``early_stopping_rounds`` every round is evaluated whatever ``eval_period`` says (the
stopping decision needs each score).

Categorical features: a text column is categorical. Its categories are the train
channel's distinct values, sorted; a value's code is its index, and XGBoost gets the codes
with ``feature_types="c"`` (native categorical splits, ``enable_categorical``). The
mapping is saved in ``metadata.json`` (``feature_types``, ``categories``), so evaluate
and the model server encode raw values the same way; a value not seen in training is a
missing value (XGBoost sends it the learned default direction).

Speed and memory: the Parquet splits are read column by column straight into one
column-major float32 matrix (no text parsing; a feature's values contiguous, which
``DMatrix`` reads as it reads any strides: same matrix, same model, a test compares the
trees). A feature's type comes from the Parquet schema, so a numeric column is read once.
The matrices are plain ``DMatrix`` objects: with
``tree_method=hist`` XGBoost builds its histogram index once inside ``xgb.train``, which at
1M rows is ~0.4 s faster than building a ``QuantileDMatrix`` up front. XGBoost is imported
without scikit-learn (:mod:`sfn_container.xgbimport`).

Output: ``model.ubj`` + ``metadata.json`` (see :mod:`sfn_container.model`).

Several hosts (``resourceconfig.json`` names more than one): distributed XGBoost over
XGBoost's own collective (:mod:`sfn_container.distributed`). Each host trains on the shard
of the train (and validation) channel it received (``ShardedByS3Key``); the histogram
sketch and every split are agreed by allreduce, so all hosts hold the same booster after
each round, and validation metrics are computed over all shards. Only the first host
writes ``/opt/ml/model`` (SageMaker uploads the first host's model directory). The model
is not bit-identical to a one-host run: the quantile sketch is merged from per-shard
sketches and ``subsample`` draws rows per shard, so its validation AUC differs by
noise-level amounts (0.0048 at 1M rows in benchmarks/training_scale.py, about what another
``subsample`` draw moves one host's AUC). A host builds a ``QuantileDMatrix`` from its
shard (less memory per host: 0.46x the one-host peak RSS at 1M rows). Categorical
features: every host learns its shard's categories, then the hosts agree on one schema
over the collective (per feature the sorted union, what one host learns from the whole
train split), so a code means the same value on every host and in the saved model.

Checkpoints (Spot): with ``/opt/ml/checkpoints`` present, a checkpoint every
``checkpoint_interval`` rounds (reserved hyperparameter, default 10; 0 turns it off) and a
restarted job resumes from the latest one (:mod:`sfn_container.checkpoints`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sfn_container import checkpoints, tabular
from sfn_container.distributed import Cluster, collective
from sfn_container.errors import ConfigError, SchemaError
from sfn_container.model import save_model
from sfn_container.paths import OptMl
from sfn_container.xgbimport import import_xgboost

PROBLEM_TYPES = ("binary_classification", "regression")
DEFAULTS: dict[str, dict[str, Any]] = {
    "binary_classification": {"objective": "binary:logistic", "eval_metric": ["auc", "logloss"]},
    "regression": {"objective": "reg:squarederror", "eval_metric": ["rmse", "mae"]},
}
_RESERVED = (
    "target_column",
    "problem_type",
    "num_round",
    "early_stopping_rounds",
    "checkpoint_interval",
    "eval_period",
)
DEFAULT_CHECKPOINT_INTERVAL = 10
#: Validation metrics every this many rounds (and on the last); see the module docstring.
DEFAULT_EVAL_PERIOD = 10


def _coerce(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


@dataclass(frozen=True)
class TrainConfig:
    target_column: str = "target"
    problem_type: str = "binary_classification"
    num_round: int = 100
    early_stopping_rounds: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    checkpoint_interval: int = DEFAULT_CHECKPOINT_INTERVAL
    eval_period: int = DEFAULT_EVAL_PERIOD

    @property
    def effective_eval_period(self) -> int:
        """Early stopping decides on every round's score, so it evaluates every round."""
        return 1 if self.early_stopping_rounds else self.eval_period

    @classmethod
    def from_hyperparameters(cls, raw: dict[str, Any]) -> TrainConfig:
        values = {k: _coerce(v) for k, v in raw.items() if not k.startswith(("sagemaker_", "_"))}
        target = str(values.pop("target_column", "target")).strip()
        problem_type = str(values.pop("problem_type", "binary_classification")).strip()
        if problem_type not in PROBLEM_TYPES:
            raise ConfigError(f"problem_type must be one of {PROBLEM_TYPES}, got {problem_type!r}")
        num_round = values.pop("num_round", 100)
        early = values.pop("early_stopping_rounds", None)
        interval = values.pop("checkpoint_interval", DEFAULT_CHECKPOINT_INTERVAL)
        period = values.pop("eval_period", DEFAULT_EVAL_PERIOD)
        if not isinstance(period, int) or period < 1:
            raise ConfigError(
                f"eval_period must be a whole number of rounds >= 1 (1: every round), "
                f"got {period!r}"
            )
        if not isinstance(interval, int) or interval < 0:
            raise ConfigError(
                f"checkpoint_interval must be a whole number of rounds >= 0, got {interval!r}"
            )
        if not isinstance(num_round, int) or num_round < 1:
            raise ConfigError(f"num_round must be a positive integer, got {num_round!r}")
        if early is not None and (not isinstance(early, int) or early < 1):
            raise ConfigError(f"early_stopping_rounds must be a positive integer, got {early!r}")
        if not target:
            raise ConfigError("target_column is empty")
        params: dict[str, Any] = {"tree_method": "hist", "seed": 0, **DEFAULTS[problem_type]}
        params.update(values)
        if isinstance(params["eval_metric"], str):
            params["eval_metric"] = [m.strip() for m in params["eval_metric"].split(",")]
        return cls(target, problem_type, num_round, early, params, interval, period)

    @classmethod
    def from_file(cls, path: Path) -> TrainConfig:
        if not path.is_file():
            return cls.from_hyperparameters({})
        try:
            raw = json.loads(path.read_text(encoding="utf-8") or "{}")
        except ValueError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path} must hold a JSON object")
        return cls.from_hyperparameters(raw)


def _load(
    channel: Path,
    target: str,
    schema: tabular.FeatureSchema | None,
    agree: Callable[[tabular.FeatureSchema], tabular.FeatureSchema] | None = None,
) -> tuple[tabular.FeatureSchema, Any, Any]:
    """A channel's features (float32; categorical columns as codes of the train channel's
    categories, an unseen one missing) and target, rows without a target dropped.
    `agree`: makes a learned schema the same on every host (distributed training)."""
    table = tabular.read_columns(channel)  # Parquet splits: one column at a time
    if target not in table.column_names:
        raise SchemaError(
            f"{channel.name}: target column {target!r} not in the data; columns "
            f"{table.column_names}"
        )
    features = [c for c in table.column_names if c != target]
    if schema is None:
        if not features:
            raise SchemaError(f"{channel.name}: no feature columns besides {target!r}")
        schema = tabular.learn_schema(table, features)
        if agree is not None:
            schema = agree(schema)
    elif sorted(features) != sorted(schema.names):
        raise SchemaError(
            f"{channel.name}: columns differ from the train channel: missing "
            f"{[c for c in schema.names if c not in features]}, extra "
            f"{[c for c in features if c not in schema.names]}"
        )
    x = schema.matrix(table, f"the {channel.name} channel", order="F")  # DMatrix reads it
    y = tabular.to_float(table.column(target), np.float32)
    del table
    keep = ~np.isnan(y)
    if not keep.all():  # rows without a label cannot train
        x, y = x[keep], y[keep]
    return schema, x, y


def _check_labels(y: np.ndarray, config: TrainConfig, channel: str) -> None:
    if y.size == 0:
        raise SchemaError(f"the {channel} channel has no rows with a target value")
    if config.problem_type == "binary_classification":
        bad = np.unique(y[(y != 0) & (y != 1)])
        if bad.size:
            raise SchemaError(
                f"{channel}: target {config.target_column!r} must be 0 or 1; found "
                f"{bad[:5].tolist()}"
            )


def _dmatrix(
    xgb: Any,
    x: np.ndarray,
    y: np.ndarray,
    schema: tabular.FeatureSchema,
    quantile: dict[str, Any] | None = None,
) -> Any:
    """A DMatrix (or, given `quantile` arguments, a QuantileDMatrix); categorical features
    as codes with XGBoost's native categorical support."""
    kwargs = {
        "feature_names": schema.names,
        "feature_types": schema.types,
        "enable_categorical": schema.has_categorical,
    }
    if quantile is not None:
        return xgb.QuantileDMatrix(x, y, **kwargs, **quantile)
    return xgb.DMatrix(x, y, **kwargs)


def _agree_schema(table_schema: tabular.FeatureSchema, cluster: Cluster) -> tabular.FeatureSchema:
    """One schema for every host: each host learned its own from its shard, but a
    categorical feature's codes must mean the same on every host (and in the saved model).
    The first host's feature order; per categorical feature the sorted union of every
    host's categories (what one host would learn from the whole train split)."""
    import xgboost as xgb

    views = [
        tabular.FeatureSchema.from_metadata(
            xgb.collective.broadcast(
                table_schema.to_metadata() if rank == xgb.collective.get_rank() else None, rank
            )
        )
        for rank in range(xgb.collective.get_world_size())
    ]
    first = views[0]
    for host, view in zip(cluster.hosts, views, strict=True):
        if sorted(view.names) != sorted(first.names):
            raise SchemaError(
                f"host {host}'s train shard has other columns than host {cluster.hosts[0]}'s"
            )
    types: list[str] = []
    categories: dict[str, list[str]] = {}
    for j, name in enumerate(first.names):
        kinds = {
            host: view.types[view.names.index(name)]
            for host, view in zip(cluster.hosts, views, strict=True)
        }
        if len(set(kinds.values())) > 1:
            text = sorted(h for h, k in kinds.items() if k == tabular.CATEGORICAL)
            raise SchemaError(
                f"column {name!r} holds text in the train shards of hosts {text} and only "
                "numbers in the others: make it all numbers or all text in every file"
            )
        types.append(first.types[j])
        if first.types[j] == tabular.CATEGORICAL:
            categories[name] = sorted({c for view in views for c in view.categories[name]})
    return tabular.FeatureSchema(list(first.names), types, categories)


class _PeriodicEvaluation:
    """Validation metrics on round 0, every `period` rounds and on the last round, printed
    as XGBoost prints them (``[20]\\tvalidation-auc:0.94\\t...``); the other rounds print
    ``[21]\\t(validation scored every 10 rounds)`` (progress: functions/train's progress
    metric parses the round index). Without early stopping the booster never reads the scores,
    so it is the same model as with XGBoost's every-round evaluation (a test compares the
    predictions). With several hosts every host evaluates on the same rounds (the metric
    is an allreduce) and the first one prints."""

    def __init__(self, evals: list[tuple[Any, str]], period: int, last: int, prints: bool):
        self.evals, self.period, self.last, self.prints = evals, period, last - 1, prints
        self.latest: dict[str, float] = {}

    def after_round(self, booster: Any, epoch: int) -> None:
        # epoch: the round's index in the whole model (a resumed run continues numbering)
        if epoch % self.period and epoch != self.last:
            # "[21]\t...": the progress metric's regex wants whitespace after the index
            line = f"[{epoch}]\t(validation scored every {self.period} rounds)"
        else:
            scores = booster.eval_set(self.evals, epoch)  # "[20]\tvalidation-auc:0.9401…"
            self.latest = {
                key: float(value)
                for key, value in (item.rsplit(":", 1) for item in scores.split("\t")[1:])
            }
            line = f"[{epoch}]" + "".join(f"\t{k}:{v:.5f}" for k, v in self.latest.items())
        if self.prints:
            print(line, flush=True)

    def callback(self, xgb: Any) -> Any:
        periodic = self

        class _Callback(xgb.callback.TrainingCallback):  # type: ignore[misc]
            def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
                periodic.after_round(model, epoch)
                return False

        return _Callback()


def train(opt_ml: OptMl, config: TrainConfig, cluster: Cluster | None = None) -> dict[str, Any]:
    """Train on this host's data; with several hosts, as one worker of the collective."""
    cluster = cluster or Cluster.from_file(opt_ml.resource_config)
    with collective(cluster):
        return _train(opt_ml, config, cluster)


def _global_sum(value: int, distributed: bool) -> int:
    if not distributed:
        return value
    import xgboost as xgb

    total = xgb.collective.allreduce(np.array([value], dtype=np.int64), xgb.collective.Op.SUM)
    return int(total[0])


def _train(opt_ml: OptMl, config: TrainConfig, cluster: Cluster) -> dict[str, Any]:
    import xgboost as xgb

    started = time.perf_counter()
    distributed = cluster.size > 1
    where = f" (host {cluster.current_host})" if distributed else ""
    agree = (lambda schema: _agree_schema(schema, cluster)) if distributed else None
    schema, x, y = _load(opt_ml.channel("train"), config.target_column, None, agree)
    _check_labels(y, config, "train" + where)
    if distributed:
        # Memory per host is what scaling out buys, so a host builds the histogram index
        # straight from its shard (QuantileDMatrix: sketches merged over the collective, 1
        # byte per value) instead of DMatrix's float copy (8 bytes per value), which one
        # host keeps because it is faster there (see the module docstring).
        max_bin = int(config.params.get("max_bin", 256))
        dtrain = _dmatrix(xgb, x, y, schema, {"max_bin": max_bin})
    else:
        dtrain = _dmatrix(xgb, x, y, schema)
    train_rows = x.shape[0]
    del x, y
    evals: list[tuple[Any, str]] = []
    validation_rows = 0
    if opt_ml.channel("validation").is_dir():
        _, xv, yv = _load(opt_ml.channel("validation"), config.target_column, schema)
        _check_labels(yv, config, "validation" + where)
        dvalid = _dmatrix(xgb, xv, yv, schema, {"ref": dtrain} if distributed else None)
        evals.append((dvalid, "validation"))
        validation_rows = xv.shape[0]
        del xv, yv
    if config.early_stopping_rounds and not evals:
        raise ConfigError("early_stopping_rounds needs a validation channel")
    loaded = time.perf_counter()

    checkpoint_dir = opt_ml.checkpoints
    checkpointing = checkpoint_dir.is_dir() and config.checkpoint_interval > 0
    resumed, done_rounds = (
        checkpoints.latest(checkpoint_dir, distributed) if checkpointing else (None, 0)
    )
    if resumed is not None:
        print(f"checkpoints: resuming after round {done_rounds} of {config.num_round}", flush=True)
    callbacks = []
    if checkpointing and cluster.is_leader:  # one writer: every host holds the same model
        callbacks.append(
            checkpoints.callback(checkpoint_dir, config.checkpoint_interval, config.num_round)
        )
    history: dict[str, dict[str, list[float]]] = {}
    period = config.effective_eval_period
    periodic = _PeriodicEvaluation(evals, period, config.num_round, cluster.is_leader)
    if period > 1 and evals:  # the metrics every `period` rounds instead of XGBoost's each
        callbacks.append(periodic.callback(xgb))
    every_round = evals if period == 1 else []
    try:
        booster = xgb.train(
            config.params,
            dtrain,
            num_boost_round=max(config.num_round - done_rounds, 0),
            evals=every_round,
            evals_result=history,
            early_stopping_rounds=config.early_stopping_rounds,
            verbose_eval=True,
            xgb_model=resumed,
            callbacks=callbacks or None,
        )
    except xgb.core.XGBoostError as exc:
        raise ConfigError(f"XGBoost rejected the training set-up: {exc}") from exc
    best = booster.best_iteration if config.early_stopping_rounds else None
    if best is not None:
        booster = booster[: best + 1]
    # history holds this run's rounds only (a resumed run starts after done_rounds); a
    # checkpoint is never the last round, so this run boosted at least one
    at = best - done_rounds if best is not None and best >= done_rounds else -1
    final = periodic.latest or {
        f"{name}-{metric}": float(values[at])
        for name, metrics in history.items()
        for metric, values in metrics.items()
    }
    for key, value in final.items():
        print(f"{key}: {value:.6f}", flush=True)
    metadata = {
        "framework": "xgboost",
        "xgboost_version": xgb.__version__,
        **schema.to_metadata(),
        "target_column": config.target_column,
        "problem_type": config.problem_type,
        "objective": config.params["objective"],
        "num_round": config.num_round,
        "best_iteration": best,
        "train_rows": _global_sum(int(train_rows), distributed),
        "validation_rows": _global_sum(int(validation_rows), distributed),
        "hosts": cluster.size,
        "resumed_from_round": done_rounds,
        "hyperparameters": config.params,
        "validation_metrics": final,
    }
    if cluster.is_leader:  # SageMaker uploads the first host's model; the others write none
        save_model(booster, opt_ml.model_dir, metadata)
    done = time.perf_counter()
    print(
        f"train{where}: rows={train_rows} validation_rows={validation_rows} "
        f"load_seconds={loaded - started:.3f} train_seconds={done - loaded:.3f}",
        flush=True,
    )
    return metadata


def main() -> None:
    import_xgboost()  # before anything imports it: a job process needs no scikit-learn
    opt_ml = OptMl.from_env()
    config = TrainConfig.from_file(opt_ml.hyperparameters)
    if os.environ.get("SM_NUM_CPUS") and "nthread" not in config.params:
        config.params["nthread"] = int(os.environ["SM_NUM_CPUS"])
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    train(opt_ml, config)
