"""Train (SageMaker Training job): XGBoost on the ``train`` channel, evaluated on
``validation``, saved to ``$OPT_ML/model``.

Inputs: ``$OPT_ML/input/data/train/*.csv`` (required) and
``$OPT_ML/input/data/validation/*.csv`` (optional, same columns), and
``$OPT_ML/input/config/hyperparameters.json``. SageMaker passes every hyperparameter as a
string; numbers are converted back. Reserved keys: ``target_column`` (default
``target``), ``problem_type`` (``binary_classification`` | ``regression``), ``num_round``
(100), ``early_stopping_rounds`` (off). Every other key is an XGBoost parameter
(``max_depth``, ``eta``, ``subsample``, ``eval_metric`` as a comma-separated list, ...).

Metrics: each round prints XGBoost's line ``[12]\\tvalidation-auc:0.97\\t...`` and the end
prints one ``validation-<metric>: <value>`` line per metric, so a SageMaker metric
definition such as ``{"Name": "validation:auc", "Regex": "validation-auc:\\s*([0-9.eE+-]+)"}``
parses both (the last value is the final one).

Speed and memory: when preprocess's binary copy of a split is present and matches its CSV
(:mod:`sfn_container.binsplit`), its float32 arrays are memory-mapped and no CSV is
parsed; otherwise the CSV is parsed block by block by numpy's C parser (no pandas). Either
way the values are the same. The matrices are plain ``DMatrix`` objects: with
``tree_method=hist`` XGBoost builds its histogram index once inside ``xgb.train``, which at
1M rows is ~0.4 s faster than building a ``QuantileDMatrix`` up front (at ~1.9x instead of
~1.2x the CSV's size in peak memory, within the 3x goal). XGBoost is imported without
scikit-learn (:mod:`sfn_container.xgbimport`).

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
shard (less memory per host: 0.46x the one-host peak RSS at 1M rows).

Checkpoints (Spot): with ``/opt/ml/checkpoints`` present, a checkpoint every
``checkpoint_interval`` rounds (reserved hyperparameter, default 10; 0 turns it off) and a
restarted job resumes from the latest one (:mod:`sfn_container.checkpoints`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sfn_container import binsplit, checkpoints, csvdata
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
)
DEFAULT_CHECKPOINT_INTERVAL = 10


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
        return cls(target, problem_type, num_round, early, params, interval)

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


def _load(channel: Path, target: str, columns: list[str] | None) -> tuple[list[str], Any, Any]:
    files = csvdata.csv_files(channel)
    header = csvdata.read_header(files[0])
    if target not in header:
        raise SchemaError(f"{files[0]}: target column {target!r} not in header; columns {header}")
    if columns is not None and sorted(header) != sorted(columns):
        raise SchemaError(
            f"{channel}: columns differ from the train channel: missing "
            f"{[c for c in columns if c not in header]}, extra "
            f"{[c for c in header if c not in columns]}"
        )
    columns = columns or header
    if len(columns) < 2:
        raise SchemaError(f"{files[0]}: no feature columns besides {target!r}")
    x, y = binsplit.read_split(files, header, columns, target)
    keep = ~np.isnan(y)
    if not keep.all():  # rows without a label cannot train
        x, y = x[keep], y[keep]
    return columns, x, y


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
    columns, x, y = _load(opt_ml.channel("train"), config.target_column, None)
    _check_labels(y, config, "train" + where)
    features = [c for c in columns if c != config.target_column]
    if distributed:
        # Memory per host is what scaling out buys, so a host builds the histogram index
        # straight from its shard (QuantileDMatrix: sketches merged over the collective, 1
        # byte per value) instead of DMatrix's float copy (8 bytes per value), which one
        # host keeps because it is faster there (see the module docstring).
        max_bin = int(config.params.get("max_bin", 256))
        dtrain = xgb.QuantileDMatrix(x, y, feature_names=features, max_bin=max_bin)
    else:
        dtrain = xgb.DMatrix(x, y, feature_names=features)
    train_rows = x.shape[0]
    del x, y
    evals: list[tuple[Any, str]] = []
    validation_rows = 0
    if opt_ml.channel("validation").is_dir():
        _, xv, yv = _load(opt_ml.channel("validation"), config.target_column, columns)
        _check_labels(yv, config, "validation" + where)
        dvalid = (
            xgb.QuantileDMatrix(xv, yv, feature_names=features, ref=dtrain)
            if distributed
            else xgb.DMatrix(xv, yv, feature_names=features)
        )
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
    try:
        booster = xgb.train(
            config.params,
            dtrain,
            num_boost_round=max(config.num_round - done_rounds, 0),
            evals=evals,
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
    final = {
        f"{name}-{metric}": float(values[at])
        for name, metrics in history.items()
        for metric, values in metrics.items()
    }
    for key, value in final.items():
        print(f"{key}: {value:.6f}", flush=True)
    metadata = {
        "framework": "xgboost",
        "xgboost_version": xgb.__version__,
        "feature_names": features,
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
