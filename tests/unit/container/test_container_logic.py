"""In-process tests of the container's logic: split stability, CSV parsing, metrics, codec."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sfn_container import codec, csvdata
from sfn_container.errors import SchemaError
from sfn_container.metrics import evaluate
from sfn_container.preprocess import PreprocessConfig, preprocess
from sklearn import metrics as skm


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _lines(path: Path) -> set[str]:
    return set(path.read_text().splitlines()[1:])


def test_split_is_stable_when_rows_are_appended(tmp_path: Path) -> None:
    # Given a data set and a refresh that appends rows, reorders and splits the files
    rng = np.random.default_rng(1)
    values = np.column_stack([rng.normal(size=(600, 2)), rng.integers(0, 2, 600)])
    rows = [f"{a:.4f},{b:.4f},{int(c)}" for a, b, c in values.tolist()]
    _write(tmp_path / "v1" / "in" / "a.csv", "x,y,target\n" + "\n".join(rows[:400]) + "\n")
    _write(tmp_path / "v2" / "in" / "a.csv", "x,y,target\n" + "\n".join(rows[400:][::-1]) + "\n")
    _write(tmp_path / "v2" / "in" / "b.csv", "x,y,target\n" + "\n".join(rows[:400][::-1]) + "\n")
    config = PreprocessConfig()
    # When both are preprocessed
    preprocess(tmp_path / "v1" / "in", tmp_path / "v1" / "out", config)
    preprocess(tmp_path / "v2" / "in", tmp_path / "v2" / "out", config)
    # Then every old row is in the same split as before
    for split in ("train", "validation", "test"):
        old = _lines(tmp_path / "v1" / "out" / split / f"{split}.csv")
        new = _lines(tmp_path / "v2" / "out" / split / f"{split}.csv")
        assert old, split
        assert old <= new, split
    test_share = len(_lines(tmp_path / "v2" / "out" / "test" / "test.csv")) / 600
    assert 0.08 < test_share < 0.22


def test_split_depends_on_seed(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{i % 7},{i % 2}" for i in range(300))
    _write(tmp_path / "in" / "a.csv", "x,y,target\n" + rows + "\n")
    preprocess(tmp_path / "in", tmp_path / "s0", PreprocessConfig(seed=0))
    preprocess(tmp_path / "in", tmp_path / "s1", PreprocessConfig(seed=1))
    assert _lines(tmp_path / "s0" / "test" / "test.csv") != _lines(
        tmp_path / "s1" / "test" / "test.csv"
    )


def test_missing_values_kept_as_missing_and_missing_target_dropped(tmp_path: Path) -> None:
    text = "x,y,target\n" + "".join(f"{i},,{i % 2}\n" for i in range(50)) + ",1,\n3,,\n"
    _write(tmp_path / "in" / "a.csv", text)
    profile = preprocess(tmp_path / "in", tmp_path / "out", PreprocessConfig())
    assert profile["rows"]["dropped_missing_target"] == 2
    assert profile["rows"]["total"] == 50
    assert profile["columns"]["y"]["missing"] == 50
    assert profile["columns"]["y"]["mean"] is None
    assert profile["columns"]["x"]["count"] == 50
    everything = set()
    for split in ("train", "validation", "test"):
        everything |= _lines(tmp_path / "out" / split / f"{split}.csv")
    assert ",1," not in everything
    assert "0,,0" in everything  # lines are copied as they were


def test_parse_block_missing_values_and_crlf() -> None:
    block = csvdata.Block(csvdata.normalise(b",1,2\r\n3,,\r\n\r\n4,5,6\r\n"), 2)
    values = csvdata.parse_block(block, ["a", "b", "c"], "t.csv")
    assert values.shape == (3, 3)
    assert np.isnan(values[0, 0])
    assert np.isnan(values[1, 1])
    assert np.isnan(values[1, 2])
    assert values[2].tolist() == [4, 5, 6]


def test_parse_block_names_bad_columns_and_rows() -> None:
    block = csvdata.Block(b"1,a,2\n3,4\n5,b,x\n", 2)
    with pytest.raises(SchemaError) as raised:
        csvdata.parse_block(block, ["num", "word", "other"], "t.csv")
    message = str(raised.value)
    assert "'word' (line 2: 'a')" in message
    assert "'other' (line 4: 'x')" in message
    assert "line 3 has 2" in message
    assert "'num'" not in message


def test_read_header_rejects_duplicates(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="duplicate"):
        csvdata.read_header(_write(tmp_path / "a.csv", "a,b,a\n1,2,3\n"))


@pytest.mark.parametrize("seed", [0, 1])
def test_classification_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 400).astype(float)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 400), 0, 1).round(2)  # with ties
    report = evaluate("binary_classification", y, p, resamples=5)
    flat = report["metrics"]
    predicted = (p >= 0.5).astype(int)
    assert flat["auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert flat["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))
    assert flat["precision"] == pytest.approx(skm.precision_score(y, predicted))
    assert flat["recall"] == pytest.approx(skm.recall_score(y, predicted))
    assert flat["f1"] == pytest.approx(skm.f1_score(y, predicted))
    assert flat["logloss"] == pytest.approx(skm.log_loss(y, p))
    section = report["binary_classification_metrics"]
    assert section["auc"]["standard_deviation"] > 0
    tn, fp, fn, tp = skm.confusion_matrix(y, predicted).ravel()
    assert section["confusion_matrix"] == {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}}


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=300)
    p = y + rng.normal(scale=0.3, size=300)
    flat = evaluate("regression", y, p, resamples=5)["metrics"]
    assert flat["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(y, p)))
    assert flat["mae"] == pytest.approx(skm.mean_absolute_error(y, p))
    assert flat["r2"] == pytest.approx(skm.r2_score(y, p))


def test_auc_undefined_with_one_class_is_null() -> None:
    report = evaluate("binary_classification", np.ones(20), np.linspace(0, 1, 20), resamples=3)
    assert report["metrics"]["auc"] is None
    assert report["binary_classification_metrics"]["auc"]["value"] is None


FEATURES = ["a", "b", "c"]


@pytest.mark.parametrize(
    ("body", "kind", "expected"),
    [
        (b"1,2,3", codec.CSV, [[1, 2, 3]]),
        (b"a,b,c\n1,2,3\r\n\n4,,6\n", codec.CSV, [[1, 2, 3], [4, np.nan, 6]]),
        (b'{"instances": [[1, 2, 3], [4, null, 6]]}', codec.JSON, [[1, 2, 3], [4, np.nan, 6]]),
        (b'{"instances": [{"features": [1, 2, 3]}]}', codec.JSON, [[1, 2, 3]]),
        (b"[[1, 2, 3]]", codec.JSON, [[1, 2, 3]]),
        (b"[1, 2.5, 3]", codec.JSON, [[1, 2.5, 3]]),
    ],
)
def test_decode_accepts_csv_and_json(body: bytes, kind: str, expected: list) -> None:
    np.testing.assert_array_equal(
        codec.decode(body, kind, FEATURES), np.array(expected, dtype=np.float32)
    )


@pytest.mark.parametrize(
    ("body", "kind", "status", "fragment"),
    [
        (b"1,2", codec.CSV, 400, "row 1 has 2 values; the model expects 3"),
        (b"1,2,3\n1,x,3", codec.CSV, 400, "row 2, column 2: 'x' is not a number"),
        (b"", codec.CSV, 400, "no rows"),
        (b"{not json", codec.JSON, 400, "not valid JSON"),
        (b'{"instances": [[1, 2, 3], [1, 2]]}', codec.JSON, 400, "row 2 has 2 values"),
        (b'{"instances": [[1, "x", 3]]}', codec.JSON, 400, "row 1, column 2"),
        (b'{"rows": 1}', codec.JSON, 400, "instances"),
        (b"1,2,3", "text/plain", 415, "unsupported content type"),
    ],
)
def test_decode_errors(body: bytes, kind: str, status: int, fragment: str) -> None:
    with pytest.raises(codec.RequestError) as raised:
        codec.decode(body, kind, FEATURES)
    assert raised.value.status == status
    assert fragment in raised.value.message


@pytest.mark.parametrize(
    ("accept", "content_type", "expected"),
    [
        (None, codec.CSV, codec.CSV),
        ("*/*", codec.JSON, codec.JSON),
        ("application/json", codec.CSV, codec.JSON),
        ("text/html, text/csv;q=0.9", codec.JSON, codec.CSV),
    ],
)
def test_response_type(accept: str | None, content_type: str, expected: str) -> None:
    assert codec.response_type(accept, content_type) == expected


def test_response_type_unsupported_accept() -> None:
    with pytest.raises(codec.RequestError) as raised:
        codec.response_type("application/xml", codec.CSV)
    assert raised.value.status == 406


def test_encode_round_trips_float32() -> None:
    predictions = np.array([0.1, 0.987654321, 3e-8], dtype=np.float32)
    csv_values = [float(v) for v in codec.encode(predictions, codec.CSV).decode().split()]
    assert np.array(csv_values, dtype=np.float32).tolist() == predictions.tolist()
    assert codec.encode(predictions[:1], codec.JSON) == b'{"predictions": [0.10000000149011612]}'
