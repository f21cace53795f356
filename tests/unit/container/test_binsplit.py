"""The binary copy of each split: written by preprocess, read by train/evaluate when it
matches its CSV, ignored (CSV parsed) otherwise, with the same values and predictions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from container_helpers import run_entrypoint, stage_training
from sfn_container import binsplit, csvdata
from sfn_container.model import load_model, write_archive
from sfn_container.preprocess import PreprocessConfig, preprocess

FAST = {"num_round": "10", "max_depth": "3", "eta": "0.3"}
HEADER = ["a", "target", "b", "c"]


def _raw(directory: Path, rows: int = 400) -> Path:
    """Features with many decimals, some missing fields, the target not last."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(rows, 3)) * 1000
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    lines = [",".join(HEADER)]
    for i in range(rows):
        a = "" if i % 17 == 0 else repr(float(x[i, 0]))
        c = "" if i % 23 == 0 else f"{x[i, 2]:.9g}"
        lines.append(f"{a},{y[i]},{float(x[i, 1])!r},{c}")
    path = directory / "raw.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def splits(tmp_path: Path) -> Path:
    _raw(tmp_path / "raw")
    preprocess(tmp_path / "raw", tmp_path / "out", PreprocessConfig())
    return tmp_path / "out"


def _parsed(csv: Path, columns: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    return csvdata.read_matrix([csv], columns or HEADER, "target")


def test_preprocess_writes_a_binary_copy_equal_to_the_parsed_csv(splits: Path) -> None:
    for name in ("train", "validation", "test"):
        csv = splits / name / f"{name}.csv"
        manifest = json.loads((splits / name / f"{name}.binary.json").read_text())
        assert manifest["csv_bytes"] == csv.stat().st_size
        assert manifest["columns"] == HEADER
        x, y = binsplit.load([csv], HEADER, HEADER, "target")
        px, py = _parsed(csv)
        assert x.dtype == np.float32
        assert x.shape == (manifest["rows"], 3)
        assert np.isnan(x).any()  # missing values travel as NaN
        np.testing.assert_array_equal(x, px)  # the same float32 values, NaN where NaN
        np.testing.assert_array_equal(y, py)


def test_columns_in_another_order_are_reordered(splits: Path) -> None:
    csv = splits / "train" / "train.csv"
    order = ["c", "a", "target", "b"]
    x, y = binsplit.load([csv], HEADER, order, "target")
    px, py = _parsed(csv, order)
    np.testing.assert_array_equal(x, px)
    np.testing.assert_array_equal(y, py)


def _edit_same_size(csv: Path) -> None:
    data = bytearray(csv.read_bytes())
    line = data.index(b"\n") + 1
    digit = next(i for i in range(line, len(data)) if chr(data[i]).isdigit() and data[i] != 57)
    data[digit] += 1  # one digit changed: same size, other content
    csv.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    [
        "no manifest",
        "csv edited, same size",
        "csv grew",
        "array truncated",
        "manifest garbage",
        "other target",
    ],
)
def test_an_absent_or_stale_copy_is_not_used(splits: Path, damage: str) -> None:
    csv = splits / "train" / "train.csv"
    target = "target"
    if damage == "no manifest":
        (splits / "train" / "train.binary.json").unlink()
    elif damage == "csv edited, same size":
        _edit_same_size(csv)
    elif damage == "csv grew":
        with csv.open("a") as fh:
            fh.write("1,0,2,3\n")
    elif damage == "array truncated":
        path = splits / "train" / "train.features.npy"
        path.write_bytes(path.read_bytes()[:-12])
    elif damage == "manifest garbage":
        (splits / "train" / "train.binary.json").write_text("{not json")
    else:
        target = "a"
    with pytest.raises(binsplit.StaleCopyError):
        binsplit.load([csv], HEADER, HEADER, target)
    # read_split falls back to the CSV as it is now
    x, y = binsplit.read_split([csv], HEADER, HEADER, target)
    px, py = csvdata.read_matrix([csv], HEADER, target)
    np.testing.assert_array_equal(x, px)
    np.testing.assert_array_equal(y, py)


def _train_and_evaluate(root: Path, out: Path, with_copy: bool) -> dict[str, object]:
    """train + evaluate on preprocess's splits; without the copy, its files are deleted."""
    stage_training(root, out, {"target_column": "target", **FAST})
    test_input = root / "processing" / "input" / "test"
    shutil.copytree(out / "test", test_input)
    if not with_copy:
        for channel in (root / "input" / "data" / "train", root / "input" / "data" / "validation"):
            for path in channel.glob("*.npy"):
                path.unlink()
        (test_input / "test.binary.json").unlink()
    train = run_entrypoint("train", root)
    assert train.returncode == 0, train.stderr
    write_archive(root / "model", root / "processing" / "input" / "challenger" / "model.tar.gz")
    evaluate = run_entrypoint("evaluate", root, {"BOOTSTRAP_RESAMPLES": "5"})
    assert evaluate.returncode == 0, evaluate.stderr
    report = root / "processing" / "output" / "evaluation" / "evaluation.json"
    return {"train": train.stdout, "evaluate": evaluate.stdout, "report": report}


def test_train_and_evaluate_give_the_same_results_with_or_without_the_copy(
    tmp_path: Path,
) -> None:
    raw = tmp_path / "pre" / "processing" / "input" / "raw"
    _raw(raw, rows=1500)
    pre = run_entrypoint("preprocess", tmp_path / "pre")
    assert pre.returncode == 0, pre.stderr
    out = tmp_path / "pre" / "processing" / "output"
    fast = _train_and_evaluate(tmp_path / "binary", out, with_copy=True)
    slow = _train_and_evaluate(tmp_path / "csv", out, with_copy=False)
    assert "train: read the binary copy" in fast["train"]
    assert "test: read the binary copy" in fast["evaluate"]
    assert "train: parsing the CSV (binary copy not used" in slow["train"]
    assert "test: parsing the CSV (binary copy not used: no test.binary.json)" in slow["evaluate"]

    x, _ = _parsed(out / "test" / "test.csv")
    with_copy = load_model(tmp_path / "binary" / "model").predict(x)
    without = load_model(tmp_path / "csv" / "model").predict(x)
    np.testing.assert_array_equal(with_copy, without)
    report_fast = json.loads(Path(str(fast["report"])).read_text())
    report_slow = json.loads(Path(str(slow["report"])).read_text())
    assert report_fast == report_slow
