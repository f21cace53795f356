"""Evaluate (SageMaker Processing job): score the challenger and, when given, the champion
on the same test split; write ``evaluation.json``.

Inputs (under ``$OPT_ML/processing/input``): ``test/`` (the preprocess test split, Parquet;
CSV and gzip CSV are read too), each model encoding it with its own feature schema and
category mapping (:mod:`sfn_container.tabular`),
``challenger/model.tar.gz`` and optionally ``champion/model.tar.gz`` (as SageMaker
downloads them; an already extracted model directory works too; an absent or empty
``champion`` directory means there is no champion). Environment: ``TARGET_COLUMN`` and
``PROBLEM_TYPE`` (default: what the challenger's metadata says; a conflicting value is an
error), ``BOOTSTRAP_RESAMPLES`` (30).

Output: ``$OPT_ML/processing/output/evaluation/evaluation.json``::

    {
      "problem_type": "binary_classification" | "regression",
      "target_column": "target",
      "test_rows": 86,
      "threshold": 0.5,                       # classification only
      "bootstrap": {"resamples": 30, "seed": 0},
      "challenger": {                         # SageMaker Model Quality format, plus extras
        "binary_classification_metrics": {    # or "regression_metrics"
          "auc": {"value": 0.98, "standard_deviation": 0.01},
          "accuracy" | "precision" | "recall" | "f1" | "logloss"
            | "true_positive_rate" | "true_negative_rate" | "false_positive_rate"
            | "false_negative_rate": {"value": ..., "standard_deviation": ...},
          "confusion_matrix": {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}}
        },                                    # regression: rmse, mae, mse, r2
        "metrics": {"auc": 0.98, "accuracy": ..., ...},   # flat: the objective names
        "model": {"feature_names": [...], "objective": ..., "best_iteration": ...,
                  "feature_importance": {"<feature>": total_gain, ...}}
      },
      "champion": {same shape} | null,        # null: no champion given, or it cannot
      "champion_error": null | "why",         #   score this test split (reason here)
      "plots": {"challenger": {"roc_curve": {"false_positive_rates": [...],
                                             "true_positive_rates": [...],
                                             "thresholds": [...]},
                                 "pr_curve": {"recalls": [...], "precisions": [...]}},
                "champion": {...} | null}     # regression: "residuals" (actual,
    }                                         #   predicted, histogram)

When the ``train`` input is present (the preprocess train split), the model's drift
baseline (:mod:`sfn_container.drift`) is written to ``evaluation/baseline/statistics.json``
and ``constraints.json``.

Also, when the ``profile`` input is present (preprocess's profile prefix: one
``profile.json``, or one per host of a sharded preprocessing job), the data profile of the
whole data set, merged from the hosts' partial profiles (:mod:`sfn_container.profiles`), is
written next to the report as ``profile.json``.

A metric that is undefined on the data (e.g. AUC with one class) is ``null``. So
``report["challenger"]["binary_classification_metrics"]["auc"]["value"]`` and
``report["challenger"]["metrics"]["auc"]`` both read the challenger's AUC.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sfn_container import tabular
from sfn_container.errors import ConfigError, ContainerError, ModelError, SchemaError
from sfn_container.metrics import evaluate as score
from sfn_container.model import Model, find_model_dir, load_model
from sfn_container.paths import OptMl
from sfn_container.xgbimport import import_xgboost

THRESHOLD = 0.5


def _model_summary(model: Model) -> dict[str, Any]:
    keys = ("feature_names", "objective", "best_iteration", "num_round", "xgboost_version")
    summary = {k: model.metadata.get(k) for k in keys}
    return {**summary, "feature_importance": model.feature_importance()}


def _score(
    model: Model,
    table: Any,
    y: np.ndarray,
    role: str,
    problem_type: str,
    resamples: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    if model.problem_type != problem_type:
        raise ModelError(
            f"the {role} is a {model.problem_type} model; this evaluation is {problem_type}"
        )
    features = model.schema.matrix(table, f"the test split (for the {role})")
    result = score(problem_type, y, model.predict(features), resamples=resamples)
    plot = result.pop("plot")
    result["model"] = _model_summary(model)
    return result, plot


def evaluate(
    opt_ml: OptMl, env: dict[str, str] | None = None, baseline_dir: Path | None = None
) -> dict[str, Any]:
    env = dict(os.environ if env is None else env)
    try:
        resamples = int(env.get("BOOTSTRAP_RESAMPLES", "30"))
    except ValueError as exc:
        raise ConfigError(f"BOOTSTRAP_RESAMPLES must be an integer: {exc}") from exc
    workdir = Path(tempfile.mkdtemp(prefix="evaluate-"))
    try:
        challenger_dir = find_model_dir(opt_ml.processing_input("challenger"), workdir)
        if challenger_dir is None:
            raise ModelError(f"no model.tar.gz under {opt_ml.processing_input('challenger')}")
        challenger = load_model(challenger_dir)
        champion_dir = find_model_dir(opt_ml.processing_input("champion"), workdir)
        champion = load_model(champion_dir) if champion_dir else None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    problem_type = env.get("PROBLEM_TYPE") or challenger.problem_type
    target = env.get("TARGET_COLUMN") or challenger.metadata.get("target_column", "target")

    table = tabular.read_dir(opt_ml.processing_input("test"))
    if target not in table.column_names:
        raise SchemaError(
            f"test split: target column {target!r} not in the data; columns {table.column_names}"
        )
    y = tabular.to_float(table.column(target), np.float32)
    keep = ~np.isnan(y)
    if not keep.all():
        table, y = table.filter(pa.array(keep)), y[keep]
    if y.size == 0:
        raise SchemaError(f"the test split has no rows with a target {target!r}")
    if problem_type == "binary_classification" and not np.isin(y, (0, 1)).all():
        raise SchemaError(f"target {target!r} must be 0 or 1 for binary_classification")

    report: dict[str, Any] = {
        "problem_type": problem_type,
        "target_column": target,
        "test_rows": int(y.size),
        "bootstrap": {"resamples": resamples, "seed": 0},
    }
    if problem_type == "binary_classification":
        report["threshold"] = THRESHOLD
    report["challenger"], challenger_plot = _score(
        challenger, table, y, "challenger", problem_type, resamples
    )
    report["champion"], report["champion_error"], champion_plot = None, None, None
    if champion is not None:
        try:
            report["champion"], champion_plot = _score(
                champion, table, y, "champion", problem_type, resamples
            )
        except ContainerError as exc:  # a champion of another schema cannot be compared
            report["champion_error"] = str(exc)
            print(f"WARNING champion not scored: {exc}", flush=True)
    report["plots"] = {"challenger": challenger_plot, "champion": champion_plot}
    train_dir = opt_ml.processing_input("train")
    if baseline_dir is not None and train_dir.is_dir():
        # the challenger's drift baseline, from the split it was trained on
        from sfn_container.drift import write_baseline

        write_baseline(baseline_dir, tabular.read_dir(train_dir), challenger.schema)
    return report


def main() -> None:
    import_xgboost()  # before anything imports it: a job process needs no scikit-learn
    opt_ml = OptMl.from_env()
    out = opt_ml.processing_output("evaluation") / "evaluation.json"
    report = evaluate(opt_ml, baseline_dir=out.parent / "baseline")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    profile_dir = opt_ml.processing_input("profile")
    if profile_dir.is_dir():
        from sfn_container.profiles import merge_dir

        merged = merge_dir(profile_dir)
        (out.parent / "profile.json").write_text(json.dumps(merged, indent=2) + "\n")
    summary = {
        "challenger": report["challenger"]["metrics"],
        "champion": report["champion"]["metrics"] if report["champion"] else None,
    }
    print("evaluate: " + json.dumps(summary), flush=True)
