"""The drift check: its baseline from training data, its statistics on captured traffic in
SageMaker's capture format, false alarms on undrifted traffic, and named drifted features."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sfn_container import drift, tabular
from sfn_container.data import synthetic_arrays
from sfn_container.errors import ConfigError
from sfn_container.paths import OptMl

FEATURES = 8
ENV = {"MIN_RECORDS": "200", "PSI_THRESHOLD": "0.2", "PSI_BINS": "10", "KS_P_VALUE": "0.01"}


def _table(x: np.ndarray, colors: list[str] | None = None) -> pa.Table:
    columns: dict[str, Any] = {f"f{i}": x[:, i] for i in range(x.shape[1])}
    if colors is not None:
        columns["color"] = colors
    return pa.table(columns)


def _colors(rng: np.random.Generator, n: int, p: tuple[float, float, float]) -> list[str]:
    return list(rng.choice(["red", "green", "blue"], size=n, p=p))


@pytest.fixture(scope="module")
def trained() -> tuple[dict[str, Any], tabular.FeatureSchema]:
    """The baseline of 5,000 synthetic training rows with a categorical column."""
    x, _ = synthetic_arrays(5000, FEATURES, "binary_classification", seed=0)
    table = _table(x, _colors(np.random.default_rng(0), 5000, (0.5, 0.3, 0.2)))
    schema = tabular.learn_schema(table, [*(f"f{i}" for i in range(FEATURES)), "color"])
    statistics, constraints = drift.baseline(table, schema)
    assert [c["name"] for c in constraints["features"]] == schema.names
    return statistics, schema


def _csv_capture(directory: Path, table: pa.Table, per_request: int = 5) -> None:
    """Traffic as the endpoint captures it: CSV requests, one JSON line each."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = [",".join(str(v) for v in row) for row in zip(*table.to_pydict().values(), strict=True)]
    with (directory / "00-00-000-x.jsonl").open("w") as fh:
        for i in range(0, len(rows), per_request):
            record = {
                "captureData": {
                    "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                      "data": "\n".join(rows[i : i + per_request]),
                                      "encoding": "CSV"},
                    "endpointOutput": {"observedContentType": "application/json",
                                       "mode": "OUTPUT", "data": "{}", "encoding": "JSON"},
                },
                "eventMetadata": {"eventId": str(i), "inferenceTime": "2026-12-01T10:30:00Z"},
                "eventVersion": "0",
            }  # fmt: skip
            fh.write(json.dumps(record) + "\n")


def test_baseline_records_the_models_features_and_training_distribution(
    trained: tuple[dict[str, Any], tabular.FeatureSchema],
) -> None:
    statistics, schema = trained
    f0, color = statistics["features"][0], statistics["features"][-1]
    assert statistics["dataset"]["item_count"] == 5000
    assert f0["inferred_type"] == "Fractional"
    assert len(f0["sample"]) == drift.SAMPLE_SIZE
    assert abs(f0["mean"]) < 0.1
    assert 0.9 < f0["std"] < 1.1
    assert color["inferred_type"] == "String"
    assert color["categories"] == ["blue", "green", "red"]
    assert color["fractions"] == pytest.approx([0.2, 0.3, 0.5], abs=0.03)
    assert drift.schema_of(statistics) == schema


def test_undrifted_traffic_raises_at_most_one_false_alarm_in_20_seeded_windows(
    trained: tuple[dict[str, Any], tabular.FeatureSchema],
) -> None:
    # GIVEN 20 windows of 500 fresh rows each from the training distribution
    statistics, _ = trained
    thresholds = drift.Thresholds(ENV)
    alarms = []
    for seed in range(20):
        x, _ = synthetic_arrays(500, FEATURES, "binary_classification", seed=0,
                                start=100_000 + 1000 * seed)  # fmt: skip
        table = _table(x, _colors(np.random.default_rng(seed + 1), 500, (0.5, 0.3, 0.2)))
        rows = tabular.FeatureSchema(*_schema_parts(statistics)).matrix(table)
        # WHEN checked
        report = drift.compare(statistics, rows, thresholds)
        assert report["status"] in ("drift", "no_drift")
        alarms.append(report["drifted_features"])
    # THEN at most one window raises an alarm
    assert sum(1 for a in alarms if a) <= 1, alarms


def _schema_parts(statistics: dict[str, Any]) -> tuple[Any, ...]:
    schema = drift.schema_of(statistics)
    return schema.names, schema.types, schema.categories


def test_shifted_features_are_detected_and_named_from_the_capture(
    trained: tuple[dict[str, Any], tabular.FeatureSchema], tmp_path: Path
) -> None:
    # GIVEN captured CSV traffic where f2 moved by one standard deviation and the colours
    # flipped, the other features unchanged
    statistics, _schema = trained
    x, _ = synthetic_arrays(600, FEATURES, "binary_classification", seed=0, start=200_000)
    x[:, 2] += 1.0
    table = _table(x, _colors(np.random.default_rng(5), 600, (0.1, 0.2, 0.7)))
    opt_ml = OptMl(tmp_path)
    _csv_capture(opt_ml.processing_input("capture") / "ep" / "AllTraffic" / "2026/12/01/10", table)
    baseline = opt_ml.processing_input("baseline")
    baseline.mkdir(parents=True)
    (baseline / drift.STATISTICS).write_text(json.dumps(statistics))

    # WHEN the check reads the capture in its window
    env = ENV | {"WINDOW_START": "2026-12-01T10:00:00Z", "WINDOW_END": "2026-12-01T11:00:00Z",
                 "ENDPOINT_NAME": "ep"}  # fmt: skip
    report = drift.check(opt_ml, env)

    # THEN exactly the shifted features are named, with their statistics
    assert report["records"] == 600
    assert report["status"] == "drift"
    assert report["drifted_features"] == ["f2", "color"]
    f2 = report["features"]["f2"]
    assert f2["psi"] > 0.2
    assert f2["ks_p_value"] < 1e-6
    assert f2["mean"] > f2["baseline_mean"]
    assert report["features"]["f0"]["drifted"] is False
    # ... and the metrics the alarm watches: a PSI per feature, the count of drifted ones
    items = drift.metric_data(report, "ep")
    by_name = {(i["MetricName"], i["Dimensions"][-1]["Value"]): i["Value"] for i in items}
    assert by_name[("DriftedFeatures", "ep")] == 2
    assert by_name[("FeatureDrift", "f2")] == pytest.approx(f2["psi"])


def test_outside_the_window_or_too_few_rows_is_no_verdict(
    trained: tuple[dict[str, Any], tabular.FeatureSchema], tmp_path: Path
) -> None:
    statistics, _ = trained
    x, _ = synthetic_arrays(600, FEATURES, "binary_classification", seed=0, start=300_000)
    opt_ml = OptMl(tmp_path)
    _csv_capture(opt_ml.processing_input("capture"), _table(x + 5, ["red"] * 600))
    baseline = opt_ml.processing_input("baseline")
    baseline.mkdir(parents=True)
    (baseline / drift.STATISTICS).write_text(json.dumps(statistics))

    report = drift.check(opt_ml, ENV | {"WINDOW_START": "2026-12-01T11:00:00Z"})

    assert (report["status"], report["records"]) == ("insufficient_data", 0)
    assert drift.metric_data(report, "ep") == []  # the alarm sees missing data, not a 0


def test_ks_statistic_and_p_value_match_known_values() -> None:
    rng = np.random.default_rng(3)
    same = drift.ks(rng.normal(size=2000), rng.normal(size=2000))
    moved = drift.ks(rng.normal(size=2000), rng.normal(0.3, size=2000))
    assert same[1] > 0.01
    assert moved[1] < 1e-10
    assert drift.ks(np.array([1.0, 1, 2, 2]), np.array([1.0, 1, 2, 2])) == (0.0, 1.0)
    # ties: the CDFs are compared at every point, D is the largest gap (here 2/4 - 1/4 at 1.0)
    assert drift.ks(np.array([1.0, 1, 2, 2]), np.array([1.0, 2, 2, 2]))[0] == 0.25
    # Kolmogorov's distribution: P(K > 1.358) = 0.05 (the classic 5 % critical value)
    n = 5000
    a = np.arange(n) / n
    shifted = drift.ks(a, a + 1.358 / np.sqrt(n / 2))
    assert shifted[1] == pytest.approx(0.05, abs=0.005)


def test_chi_square_matches_pearsons_statistic_and_p_value() -> None:
    # training 50/50 over 100 rows, the window 30/70: a 2 x 2 table whose Pearson statistic
    # is 8.333 (expected 40/60 per row) and P(chi2 with 1 df > 8.333) = 0.00389
    statistic, p = drift.chi_square(np.array([0.5, 0.5]), np.array([30, 70]), 100)
    assert statistic == pytest.approx(25 / 3)
    assert p == pytest.approx(0.00389, abs=1e-5)
    # a category neither side saw has no expected count: dropped, not a division by zero
    assert drift.chi_square(np.array([0.5, 0.5, 0.0]), np.array([50, 50, 0]), 100) == (
        pytest.approx(0.0), pytest.approx(1.0)
    )  # fmt: skip


def test_a_categorical_shift_below_the_psi_threshold_is_found_by_chi_square(
    trained: tuple[dict[str, Any], tabular.FeatureSchema],
) -> None:
    # GIVEN 2,000 rows whose colours moved from 50/30/20 to 42/33/25 (PSI about 0.03)
    statistics, _ = trained
    x, _ = synthetic_arrays(2000, FEATURES, "binary_classification", seed=0, start=400_000)
    table = _table(x, _colors(np.random.default_rng(7), 2000, (0.42, 0.33, 0.25)))
    rows = tabular.FeatureSchema(*_schema_parts(statistics)).matrix(table)
    # WHEN checked
    report = drift.compare(statistics, rows, drift.Thresholds(ENV))
    # THEN the colour drifted on its chi-square test, not its PSI
    color = report["features"]["color"]
    assert color["psi"] < 0.2
    assert color["chi2_p_value"] < report["thresholds"]["ks_p_value_per_feature"]
    assert color["chi2_statistic"] > 20
    assert report["drifted_features"] == ["color"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PSI_THRESHOLD", "zero", "PSI_THRESHOLD must be a number"),
        ("KS_P_VALUE", "0.9", r"KS_P_VALUE must be in 1e-12\.\.0\.5"),
        ("MIN_RECORDS", "0", "MIN_RECORDS must be in"),
    ],
)
def test_bad_thresholds_are_named(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        drift.Thresholds(ENV | {name: value})
