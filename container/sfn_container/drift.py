"""Data drift: a model's baseline from its training split, and the drift check of captured
traffic against it (``python -m sfn_container drift``, a SageMaker Processing job).

**Baseline** (written by the evaluation job, beside the model's evaluation report, and
referenced from its model package's ``DriftCheckBaselines.ModelDataQuality``):

* ``statistics.json`` -- per feature, in the model's feature order: numeric ones their
  count, missing share, mean, std, min, max and a seeded sample of up to
  :data:`SAMPLE_SIZE` training values (sorted); categorical ones the share of each training
  category and of missing values.
* ``constraints.json`` -- per feature its inferred type (``Fractional`` | ``String``, as
  Model Monitor names them), completeness and, for categorical features, the domain.

**The check** reads the capture (SageMaker's JSON Lines: ``captureData.endpointInput`` of
each record, CSV or JSON or base64, decoded exactly as the model server decodes a request,
:mod:`sfn_container.codec`), keeps the records whose ``eventMetadata.inferenceTime`` lies in
``[WINDOW_START, WINDOW_END)``, and per feature computes:

* numeric: PSI over ``PSI_BINS`` quantile bins of the baseline sample, and the two-sample
  Kolmogorov-Smirnov statistic with its asymptotic p-value;
* categorical: PSI over the training categories (an unseen value counts as missing), and
  Pearson's chi-square test of homogeneity of the training counts and the window's counts
  (categories and missing; scipy's ``chi2_contingency``).

A feature drifted when its PSI >= ``PSI_THRESHOLD``, or its test's p-value (KS or
chi-square) < ``KS_P_VALUE`` / the number of features (Bonferroni: with 30 features and a
1 % level per test, 26 % of windows of undrifted traffic would raise a false alarm). Fewer
than ``MIN_RECORDS`` captured rows give no verdict (``status: insufficient_data``).

Output: ``$OPT_ML/processing/output/report/drift.json``; with ``METRICS_NAMESPACE`` set, a
CloudWatch metric per feature (``FeatureDrift``: its PSI; dimensions EndpointName, Feature)
and ``DriftedFeatures`` (their count; dimension EndpointName), which the drift alarm watches.
Both tests are scipy's (``ks_2samp``, ``chi2_contingency``; in the image already: XGBoost
depends on it).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sfn_container import codec, tabular
from sfn_container.errors import ConfigError, EmptyInputError, SchemaError
from sfn_container.paths import OptMl

SAMPLE_SIZE = 1000
STATISTICS = "statistics.json"
CONSTRAINTS = "constraints.json"
REPORT = "drift.json"
_EPS = 1e-4  # PSI's floor for an empty bin (ln(0) is undefined)
_TIME = "%Y-%m-%dT%H:%M:%SZ"


# --- baseline ------------------------------------------------------------------------------


def baseline(
    table: Any, schema: tabular.FeatureSchema, seed: int = 0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(statistics, constraints) of the training split ``table`` for ``schema``'s features."""
    matrix = schema.matrix(table, "the training split").astype(np.float64)
    if matrix.shape[0] == 0:
        raise EmptyInputError("the training split has no rows: no baseline")
    rng = np.random.default_rng(seed)
    features, constraints = [], []
    for j, (name, kind) in enumerate(zip(schema.names, schema.types, strict=True)):
        column = matrix[:, j]
        present = column[~np.isnan(column)]
        completeness = float(present.size / column.size)
        if kind == tabular.CATEGORICAL:
            categories = schema.categories[name]
            counts = np.bincount(present.astype(np.int64), minlength=len(categories))
            features.append({
                "name": name,
                "inferred_type": "String",
                "count": int(column.size),
                "missing_fraction": 1.0 - completeness,
                "categories": categories,
                "fractions": [float(c / column.size) for c in counts],
            })  # fmt: skip
            constraints.append({
                "name": name,
                "inferred_type": "String",
                "completeness": completeness,
                "string_constraints": {"domains": categories},
            })  # fmt: skip
            continue
        if present.size == 0:
            raise SchemaError(f"feature {name!r} has no value in the training split")
        take = min(SAMPLE_SIZE, present.size)
        sample = np.sort(rng.choice(present, size=take, replace=False))
        features.append({
            "name": name,
            "inferred_type": "Fractional",
            "count": int(column.size),
            "missing_fraction": 1.0 - completeness,
            "mean": float(present.mean()),
            "std": float(present.std(ddof=1)) if present.size > 1 else 0.0,
            "min": float(present.min()),
            "max": float(present.max()),
            "sample": [float(f"{v:.7g}") for v in sample],
        })  # fmt: skip
        constraints.append({
            "name": name,
            "inferred_type": "Fractional",
            "completeness": completeness,
            "num_constraints": {"is_non_negative": bool(present.min() >= 0)},
        })  # fmt: skip
    statistics = {"version": 0, "dataset": {"item_count": int(matrix.shape[0])},
                  "features": features}  # fmt: skip
    return statistics, {"version": 0, "features": constraints}


def write_baseline(directory: Path, table: Any, schema: tabular.FeatureSchema) -> None:
    statistics, constraints = baseline(table, schema)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / STATISTICS).write_text(json.dumps(statistics) + "\n", encoding="utf-8")
    (directory / CONSTRAINTS).write_text(json.dumps(constraints, indent=1) + "\n")


def schema_of(statistics: Mapping[str, Any]) -> tabular.FeatureSchema:
    """The model's feature schema as the baseline recorded it."""
    names, types, categories = [], [], {}
    for feature in statistics["features"]:
        names.append(feature["name"])
        if feature["inferred_type"] == "String":
            types.append(tabular.CATEGORICAL)
            categories[feature["name"]] = list(feature["categories"])
        else:
            types.append(tabular.NUMERIC)
    return tabular.FeatureSchema(names, types, categories)


# --- statistics ----------------------------------------------------------------------------


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two distributions over the same bins (shares)."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), _EPS)
    a = np.maximum(np.asarray(actual, dtype=np.float64), _EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def _bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)
    return counts / max(values.size, 1)


def numeric_psi(base: np.ndarray, current: np.ndarray, bins: int) -> float:
    """PSI over the baseline's quantile bins (ties collapse bins, as they must)."""
    edges = np.unique(np.quantile(base, np.linspace(0, 1, bins + 1)[1:-1]))
    return psi(_bin_shares(base, edges), _bin_shares(current, edges))


def ks(base: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """(D, p) of the two-sample Kolmogorov-Smirnov test: scipy's ``ks_2samp``, its asymptotic
    p-value (Kolmogorov's distribution; "exact" costs O(n * m) at the baseline's thousands
    of rows, and the windows here are never small enough to need it)."""
    from scipy.stats import ks_2samp  # here: the evaluate job imports this module too

    result = ks_2samp(base, current, method="asymp")
    return float(result.statistic), float(result.pvalue)


def chi_square(expected: np.ndarray, counts: np.ndarray, base_count: int) -> tuple[float, float]:
    """(statistic, p) of Pearson's chi-square test that the window's `counts` per category
    come from the training distribution `expected` (shares of `base_count` training rows): a
    2 x k contingency table, the categories neither side saw dropped (no expected count)."""
    table = np.vstack([np.asarray(expected, dtype=np.float64) * base_count,
                       np.asarray(counts, dtype=np.float64)])  # fmt: skip
    from scipy.stats import chi2_contingency  # here: the evaluate job imports this module too

    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or table[0].sum() == 0 or table[1].sum() == 0:
        return 0.0, 1.0  # one category in all: nothing can have moved
    result = chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


# --- the check -----------------------------------------------------------------------------


class Thresholds:
    """The check's settings from its environment, each checked (a clear error names it)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.min_records = _number(env, "MIN_RECORDS", "200", int, 1, 10**9)
        self.psi_threshold = _number(env, "PSI_THRESHOLD", "0.2", float, 1e-6, 100.0)
        self.psi_bins = _number(env, "PSI_BINS", "10", int, 2, 100)
        self.ks_p_value = _number(env, "KS_P_VALUE", "0.01", float, 1e-12, 0.5)


def _number(env: Mapping[str, str], name: str, default: str, kind: type, low: float,
            high: float) -> Any:  # fmt: skip
    raw = env.get(name) or default
    try:
        value = kind(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc
    if not (low <= value <= high):
        raise ConfigError(f"{name} must be in {low:g}..{high:g}, got {raw!r}")
    return value


def _window(env: Mapping[str, str], name: str) -> dt.datetime | None:
    raw = env.get(name)
    if not raw:
        return None
    try:
        return dt.datetime.strptime(raw, _TIME).replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a UTC time like 2026-01-31T13:00:00Z: {raw!r}") from exc


def _records(directory: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(directory.rglob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    where = path.relative_to(directory)
                    raise SchemaError(
                        f"capture {where} line {number}: not JSON ({exc.msg})"
                    ) from exc


def captured_rows(
    directory: Path,
    schema: tabular.FeatureSchema,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> tuple[np.ndarray, int]:
    """The captured requests' rows in the window as one matrix, and how many requests could
    not be decoded (skipped: the model answered them with an error, or they are not rows)."""
    blocks, skipped = [], 0
    for record in _records(directory) if directory.is_dir() else iter(()):
        when = dt.datetime.strptime(record["eventMetadata"]["inferenceTime"], _TIME)
        when = when.replace(tzinfo=dt.UTC)
        if (start and when < start) or (end and when >= end):
            continue
        data = record.get("captureData", {}).get("endpointInput")
        if data is None:
            continue
        body = data["data"]
        raw = base64.b64decode(body) if data.get("encoding") == "BASE64" else body.encode()
        try:
            blocks.append(codec.decode(raw, codec.media_type(data.get("observedContentType")),
                                       schema.names, schema.categories))  # fmt: skip
        except codec.RequestError:
            skipped += 1
    if not blocks:
        return np.empty((0, len(schema.names)), dtype=np.float32), skipped
    return np.concatenate(blocks), skipped


def compare(
    statistics: Mapping[str, Any], rows: np.ndarray, thresholds: Thresholds
) -> dict[str, Any]:
    """The drift report of captured ``rows`` against the baseline ``statistics``."""
    features = statistics["features"]
    level = thresholds.ks_p_value / max(len(features), 1)  # Bonferroni over every test
    report: dict[str, Any] = {
        "records": int(rows.shape[0]),
        "thresholds": {
            "psi": thresholds.psi_threshold,
            "psi_bins": thresholds.psi_bins,
            "ks_p_value": thresholds.ks_p_value,
            "ks_p_value_per_feature": level,
            "min_records": thresholds.min_records,
        },
    }
    if rows.shape[0] < thresholds.min_records:
        report |= {"status": "insufficient_data", "drifted_features": [], "features": {}}
        return report
    out: dict[str, Any] = {}
    for j, feature in enumerate(features):
        column = rows[:, j].astype(np.float64)
        entry: dict[str, Any] = {"type": "categorical" if feature["inferred_type"] == "String"
                                 else "numeric"}  # fmt: skip
        entry["missing_fraction"] = float(np.isnan(column).mean())
        present = column[~np.isnan(column)]
        if entry["type"] == "categorical":
            expected = np.append(feature["fractions"], feature["missing_fraction"])
            counts = np.bincount(present.astype(np.int64), minlength=len(feature["categories"]))
            counts = np.append(counts, column.size - present.size)
            entry["psi"] = psi(expected, counts / column.size)
            entry["chi2_statistic"], entry["chi2_p_value"] = chi_square(
                expected, counts, int(feature["count"])
            )
            entry["drifted"] = bool(
                entry["psi"] >= thresholds.psi_threshold or entry["chi2_p_value"] < level
            )
        else:
            base = np.asarray(feature["sample"], dtype=np.float64)
            if present.size == 0:
                entry |= {"psi": None, "ks_statistic": None, "ks_p_value": None,
                          "drifted": True, "why": "no value in the window"}  # fmt: skip
                out[feature["name"]] = entry
                continue
            entry["psi"] = numeric_psi(base, present, thresholds.psi_bins)
            entry["ks_statistic"], entry["ks_p_value"] = ks(base, present)
            entry["mean"], entry["baseline_mean"] = float(present.mean()), feature["mean"]
            entry["drifted"] = bool(
                entry["psi"] >= thresholds.psi_threshold or entry["ks_p_value"] < level
            )
        out[feature["name"]] = entry
    drifted = [name for name, entry in out.items() if entry["drifted"]]
    report |= {"status": "drift" if drifted else "no_drift", "drifted_features": drifted,
               "features": out}  # fmt: skip
    return report


def metric_data(report: Mapping[str, Any], endpoint: str) -> list[dict[str, Any]]:
    """PutMetricData items: FeatureDrift (PSI) per feature, DriftedFeatures (the alarm's)."""
    if report["status"] == "insufficient_data":
        return []  # no verdict: the alarm sees missing data, not a zero
    items = [
        {"MetricName": "FeatureDrift", "Value": float(entry["psi"] or 0.0), "Unit": "None",
         "Dimensions": [{"Name": "EndpointName", "Value": endpoint},
                        {"Name": "Feature", "Value": name[:1024]}]}
        for name, entry in report["features"].items()
    ]  # fmt: skip
    items.append({
        "MetricName": "DriftedFeatures", "Value": float(len(report["drifted_features"])),
        "Unit": "Count", "Dimensions": [{"Name": "EndpointName", "Value": endpoint}],
    })  # fmt: skip
    return items


def publish(items: list[dict[str, Any]], namespace: str) -> None:
    """PutMetricData in batches of 1000 (its limit); boto3 is only needed here."""
    import boto3

    client = boto3.client("cloudwatch")
    for i in range(0, len(items), 1000):
        client.put_metric_data(Namespace=namespace, MetricData=items[i : i + 1000])


def check(opt_ml: OptMl, env: Mapping[str, str]) -> dict[str, Any]:
    thresholds = Thresholds(env)
    baseline_dir = opt_ml.processing_input("baseline")
    found = sorted(baseline_dir.rglob(STATISTICS)) if baseline_dir.is_dir() else []
    if not found:
        raise EmptyInputError(f"no {STATISTICS} under the baseline input {baseline_dir}")
    statistics = json.loads(found[0].read_text(encoding="utf-8"))
    start, end = _window(env, "WINDOW_START"), _window(env, "WINDOW_END")
    rows, skipped = captured_rows(
        opt_ml.processing_input("capture"), schema_of(statistics), start, end
    )
    report = compare(statistics, rows, thresholds)
    report["endpoint_name"] = env.get("ENDPOINT_NAME", "")
    report["window"] = {"start": env.get("WINDOW_START"), "end": env.get("WINDOW_END")}
    report["skipped_requests"] = skipped
    return report


def main() -> None:
    opt_ml = OptMl.from_env()
    env = dict(os.environ)
    report = check(opt_ml, env)
    out = opt_ml.processing_output("report") / REPORT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    namespace = env.get("METRICS_NAMESPACE")
    if namespace:
        publish(metric_data(report, report["endpoint_name"]), namespace)
    print(
        "drift: " + json.dumps({k: report[k] for k in ("status", "records", "drifted_features")}),
        flush=True,
    )
