"""Each entrypoint as SageMaker runs it: a subprocess against a temporary /opt/ml tree."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from container_helpers import failure, run_entrypoint, stage_raw, stage_training
from sfn_container import tabular
from sfn_container.model import load_model, write_archive

FAST = {"num_round": "15", "max_depth": "3", "eta": "0.3"}


def _pipeline(root: Path, dataset: str, problem_type: str) -> dict[str, object]:
    """preprocess -> train -> evaluate (challenger = champion = the trained model)."""
    stage_raw(root, dataset)
    env = {"TARGET_COLUMN": "target", "PROBLEM_TYPE": problem_type}
    pre = run_entrypoint("preprocess", root, env)
    splits = root / "processing" / "output"
    stage_training(root, splits, {"target_column": "target", "problem_type": problem_type, **FAST})
    train = run_entrypoint("train", root)
    inputs = root / "processing" / "input"
    shutil.copytree(splits / "test", inputs / "test")
    shutil.copytree(splits / "train", inputs / "train")  # -> the challenger's drift baseline
    write_archive(root / "model", inputs / "challenger" / "model.tar.gz")
    write_archive(root / "model", inputs / "champion" / "model.tar.gz")
    evaluate = run_entrypoint("evaluate", root, env)
    return {"root": root, "preprocess": pre, "train": train, "evaluate": evaluate}


@pytest.fixture(scope="module")
def classification(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return _pipeline(tmp_path_factory.mktemp("clf"), "breast_cancer", "binary_classification")


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return _pipeline(tmp_path_factory.mktemp("reg"), "diabetes", "regression")


SPLITS = ("train", "validation", "test")


def _tuples(table: pa.Table) -> list[tuple]:
    return list(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


# --- preprocess ---------------------------------------------------------------------------


def test_preprocess_writes_splits_profile_and_sample(classification: dict) -> None:
    root: Path = classification["root"]
    assert classification["preprocess"].returncode == 0, classification["preprocess"].stderr
    out = root / "processing" / "output"
    raw_path = root / "processing" / "input" / "raw" / "breast_cancer.csv"
    raw = _rows(raw_path)
    raw_table = tabular.read_table(raw_path)
    splits = {name: pq.read_table(out / name / f"{name}.parquet") for name in SPLITS}
    # every split has the raw columns; together they hold each raw row exactly once
    assert all(table.column_names == raw[0] for table in splits.values())
    combined = pa.concat_tables(splits.values())
    assert sorted(_tuples(combined)) == sorted(_tuples(raw_table))
    assert all(table.num_rows > 0 for table in splits.values())
    profile = json.loads((out / "profile" / "profile.json").read_text())
    assert profile["rows"]["total"] == 569
    assert {k: profile["rows"][k] for k in splits} == {k: t.num_rows for k, t in splits.items()}
    assert profile["warnings"] == []
    column = np.array([float(r[0]) for r in raw[1:]])
    stats = profile["columns"][raw[0][0]]
    assert stats["count"] == 569
    assert stats["missing"] == 0
    assert stats["mean"] == pytest.approx(column.mean())
    assert stats["std"] == pytest.approx(column.std(ddof=1))
    sample = _rows(out / "sample" / "sample.csv")
    assert sample[0] == [c for c in raw[0] if c != "target"]
    assert 1 <= len(sample) - 1 <= 5
    assert all(len(r) == 30 for r in sample[1:])


def test_preprocess_text_target_names_the_column_and_values(opt_ml: Path) -> None:
    raw = opt_ml / "processing" / "input" / "raw"
    raw.mkdir(parents=True)
    (raw / "data.csv").write_text("a,color,b,target\n1,red,2,no\n3,blue,4,yes\n")
    result = run_entrypoint("preprocess", opt_ml, {"TARGET_COLUMN": "target"})
    assert result.returncode == 1
    reason = failure(opt_ml)
    assert reason.startswith("SchemaError: raw/data.csv: target column 'target' must hold numbers")
    assert "'no'" in reason
    assert "'yes'" in reason


def test_preprocess_missing_target_column(opt_ml: Path) -> None:
    raw = opt_ml / "processing" / "input" / "raw"
    raw.mkdir(parents=True)
    (raw / "data.csv").write_text("a,b,label\n1,2,0\n")
    result = run_entrypoint("preprocess", opt_ml, {"TARGET_COLUMN": "target"})
    assert result.returncode == 1
    assert "target column 'target' not in header" in failure(opt_ml)


def test_preprocess_empty_input(opt_ml: Path) -> None:
    raw = opt_ml / "processing" / "input" / "raw"
    raw.mkdir(parents=True)
    (raw / "data.csv").write_text("a,b,target\n")
    result = run_entrypoint("preprocess", opt_ml)
    assert result.returncode == 1
    assert failure(opt_ml).startswith("EmptyInputError")


def test_preprocess_does_not_import_pandas(opt_ml: Path) -> None:
    # Given numeric and text columns, and pandas installed (the dev environment has it)
    pytest.importorskip("pandas")
    raw = opt_ml / "processing" / "input" / "raw"
    raw.mkdir(parents=True)
    rows = "".join(f"{i},{'abc'[i % 3]},{i % 2}\n" for i in range(300))
    (raw / "data.csv").write_text("x,kind,target\n" + rows)
    # When preprocess runs as the entrypoint does, then it never imports pandas (pyarrow's
    # pa.array imports it when installed: ~0.5 s of a 1M-row run; figure 6)
    script = (  # main() without fast_exit returns, so the script can look afterwards
        "import sys; from sfn_container.__main__ import main\n"
        "assert main(['preprocess']) == 0\n"
        "print('PANDAS', 'pandas' in sys.modules)"
    )
    result = run_entrypoint("preprocess", opt_ml, python=["-c", script])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "PANDAS False"
    assert (opt_ml / "processing" / "output" / "train" / "train.parquet").is_file()


def test_a_batch_job_exits_without_teardown_with_its_code_and_its_output(opt_ml: Path) -> None:
    # Given a job that fails, run as SageMaker runs it (python -m sfn_container)
    (opt_ml / "processing" / "input" / "raw").mkdir(parents=True)
    script = (  # an exit handler runs in a normal interpreter exit, not after os._exit
        "import atexit, runpy, sys; sys.argv = ['sfn_container', 'preprocess']\n"
        "atexit.register(lambda: print('TEARDOWN', flush=True))\n"
        "print('partial line without newline', end='')\n"
        "runpy.run_module('sfn_container', run_name='__main__')"
    )
    result = run_entrypoint("preprocess", opt_ml, python=["-c", script])
    # Then it exits 1 with its output flushed and its failure file written, no teardown
    assert result.returncode == 1
    assert result.stdout.startswith("partial line without newline")
    assert "ERROR EmptyInputError" in result.stderr
    assert "no data files" in failure(opt_ml)
    assert "TEARDOWN" not in result.stdout


def test_preprocess_no_files(opt_ml: Path) -> None:
    (opt_ml / "processing" / "input" / "raw").mkdir(parents=True)
    result = run_entrypoint("preprocess", opt_ml)
    assert result.returncode == 1
    assert "no data files (.csv, .csv.gz, .parquet, .pq) under raw/" in failure(opt_ml)


# --- train ----------------------------------------------------------------------------------


def test_train_classification_saves_model_and_logs_metrics(classification: dict) -> None:
    result = classification["train"]
    assert result.returncode == 0, result.stderr
    # SageMaker metric definitions parse lines like "validation-auc: 0.97" (final) and
    # XGBoost's "[14]\tvalidation-auc:0.97" (per scored round: eval_period 10 by default)
    regex = re.compile(r"validation-auc:\s*([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)")
    values = [float(v) for v in regex.findall(result.stdout)]
    assert len(values) == 4  # rounds 0, 10 and the last (14) + the final line
    assert values[-1] == pytest.approx(values[-2], abs=1e-5)  # the last round's score
    assert len(re.findall(r"^\[\d+\]", result.stdout, re.MULTILINE)) == 15  # progress
    assert 0.9 < values[-1] <= 1.0
    model = load_model(classification["root"] / "model")
    assert model.problem_type == "binary_classification"
    assert len(model.feature_names) == 30
    assert "target" not in model.feature_names
    assert model.metadata["validation_metrics"]["validation-auc"] == pytest.approx(values[-1])


def test_train_builds_the_model_plain_xgboost_builds_from_the_splits(classification: dict) -> None:
    # Given the model the train entrypoint saved (column-major matrices read one Parquet
    # column at a time, feature types from the Parquet schema)
    root = classification["root"]
    saved = load_model(root / "model")
    # When plain xgboost.train runs on the same splits, read whole into C-ordered matrices
    xgb = pytest.importorskip("xgboost")

    def matrix(split: str) -> object:
        table = tabular.read_dir(root / "processing" / "output" / split)
        x = saved.schema.matrix(table)
        assert x.flags.c_contiguous
        return xgb.DMatrix(
            x,
            tabular.to_float(table.column("target")),
            feature_names=saved.feature_names,
            feature_types=saved.schema.types,
        )

    params = saved.metadata["hyperparameters"]
    booster = xgb.train(
        params,
        matrix("train"),
        saved.metadata["num_round"],
        evals=[(matrix("validation"), "validation")],
        verbose_eval=False,
    )
    # Then the same trees
    assert bytes(saved.booster.save_raw("json")) == bytes(booster.save_raw("json"))


def test_train_regression(regression: dict) -> None:
    result = regression["train"]
    assert result.returncode == 0, result.stderr
    assert re.search(r"^validation-rmse: [0-9.]+$", result.stdout, re.MULTILINE)
    model = load_model(regression["root"] / "model")
    assert model.problem_type == "regression"
    assert model.metadata["objective"] == "reg:squarederror"
    assert model.num_features == 10


def test_train_bad_hyperparameter_writes_failure(opt_ml: Path, tmp_path: Path) -> None:
    splits = tmp_path / "splits"
    for name in ("train", "validation"):
        (splits / name).mkdir(parents=True)
        (splits / name / f"{name}.csv").write_text("a,target\n1,0\n2,1\n")
    stage_training(opt_ml, splits, {"problem_type": "multiclass"})
    result = run_entrypoint("train", opt_ml)
    assert result.returncode == 1
    assert failure(opt_ml).startswith("ConfigError: problem_type must be one of")
    assert not (opt_ml / "model" / "model.ubj").exists()


def test_train_label_not_binary(opt_ml: Path, tmp_path: Path) -> None:
    splits = tmp_path / "splits"
    for name in ("train", "validation"):
        (splits / name).mkdir(parents=True)
        (splits / name / f"{name}.csv").write_text("a,target\n1,0\n2,3\n")
    stage_training(opt_ml, splits, {"problem_type": "binary_classification"})
    result = run_entrypoint("train", opt_ml)
    assert result.returncode == 1
    assert "must be 0 or 1" in failure(opt_ml)


def test_train_empty_channel(opt_ml: Path) -> None:
    (opt_ml / "input" / "data" / "train").mkdir(parents=True)
    result = run_entrypoint("train", opt_ml)
    assert result.returncode == 1
    assert failure(opt_ml).startswith("EmptyInputError")


# --- evaluate -------------------------------------------------------------------------------


def test_evaluate_classification_report(classification: dict) -> None:
    assert classification["evaluate"].returncode == 0, classification["evaluate"].stderr
    root: Path = classification["root"]
    report = json.loads(
        (root / "processing" / "output" / "evaluation" / "evaluation.json").read_text()
    )
    assert report["problem_type"] == "binary_classification"
    challenger = report["challenger"]
    auc = challenger["binary_classification_metrics"]["auc"]
    assert auc["value"] == challenger["metrics"]["auc"]
    assert 0.9 < auc["value"] <= 1.0
    assert auc["standard_deviation"] > 0
    assert set(challenger["metrics"]) == {"auc", "accuracy", "precision", "recall", "f1", "logloss"}
    matrix = challenger["binary_classification_metrics"]["confusion_matrix"]
    assert sum(matrix["0"].values()) + sum(matrix["1"].values()) == report["test_rows"]
    # the champion is the same model here: same figures on the same split
    assert report["champion"]["metrics"] == challenger["metrics"]
    assert report["champion_error"] is None
    roc = report["plots"]["challenger"]["roc_curve"]
    assert roc["false_positive_rates"][0] == 0.0
    assert roc["true_positive_rates"][-1] == 1.0
    # the drift baseline of the train split, one entry per model feature, in model order
    baseline = root / "processing" / "output" / "evaluation" / "baseline"
    statistics = json.loads((baseline / "statistics.json").read_text())
    constraints = json.loads((baseline / "constraints.json").read_text())
    names = challenger["model"]["feature_names"]
    assert [f["name"] for f in statistics["features"]] == names
    assert [f["name"] for f in constraints["features"]] == names
    train_rows = tabular.read_dir(root / "processing" / "input" / "train").num_rows
    assert statistics["dataset"]["item_count"] == train_rows


def test_evaluate_regression_report(regression: dict) -> None:
    assert regression["evaluate"].returncode == 0, regression["evaluate"].stderr
    root: Path = regression["root"]
    report = json.loads(
        (root / "processing" / "output" / "evaluation" / "evaluation.json").read_text()
    )
    metrics = report["challenger"]["regression_metrics"]
    assert set(report["challenger"]["metrics"]) == {"rmse", "mae", "mse", "r2"}
    assert metrics["rmse"]["value"] == pytest.approx(metrics["mse"]["value"] ** 0.5)
    assert report["plots"]["challenger"]["residuals"]["actual"]


def test_evaluate_without_champion(classification: dict, opt_ml: Path) -> None:
    source: Path = classification["root"] / "processing" / "input"
    for name in ("test", "challenger"):
        shutil.copytree(source / name, opt_ml / "processing" / "input" / name)
    (opt_ml / "processing" / "input" / "champion").mkdir()  # optional input, left empty
    result = run_entrypoint("evaluate", opt_ml)
    assert result.returncode == 0, result.stderr
    report = json.loads(
        (opt_ml / "processing" / "output" / "evaluation" / "evaluation.json").read_text()
    )
    assert report["champion"] is None
    assert report["plots"]["champion"] is None


def test_evaluate_missing_challenger(opt_ml: Path, classification: dict) -> None:
    shutil.copytree(
        classification["root"] / "processing" / "input" / "test",
        opt_ml / "processing" / "input" / "test",
    )
    result = run_entrypoint("evaluate", opt_ml)
    assert result.returncode == 1
    assert failure(opt_ml).startswith("ModelError: no model.tar.gz")


# --- data -----------------------------------------------------------------------------------


def test_data_synthetic_command(tmp_path: Path) -> None:
    args = ["--synthetic", "--rows", "1200", "--features", "4", "--out", str(tmp_path)]
    result = run_entrypoint("data", tmp_path, args=[*args, "--problem-type", "regression"])
    assert result.returncode == 0, result.stderr
    rows = _rows(Path(result.stdout.strip()))
    assert rows[0] == ["f0", "f1", "f2", "f3", "target"]
    assert len(rows) == 1201
    values = np.array(rows[1:], dtype=float)
    assert np.isfinite(values).all()
    assert len(np.unique(values[:, -1])) > 100  # a regression target, not labels


def test_data_breast_cancer_command(tmp_path: Path) -> None:
    result = run_entrypoint(
        "data", tmp_path, args=["--dataset", "breast_cancer", "--out", str(tmp_path)]
    )
    assert result.returncode == 0, result.stderr
    rows = _rows(tmp_path / "breast_cancer.csv")
    assert rows[0][0] == "mean_radius"
    assert rows[0][-1] == "target"
    assert len(rows) == 570
    assert {r[-1] for r in rows[1:]} == {"0", "1"}
