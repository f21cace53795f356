"""In-process tests of the container's logic: split stability, CSV parsing, metrics, codec."""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sfn_container import codec, tabular
from sfn_container.errors import EmptyInputError, SchemaError
from sfn_container.metrics import evaluate
from sfn_container.preprocess import SPLITS, PreprocessConfig, prefetch, preprocess, row_hash
from sklearn import metrics as skm


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _lines(path: Path) -> set[tuple]:
    """The rows of a split (Parquet) as a set of value tuples."""
    table = pq.read_table(path.with_suffix(".parquet"))
    return set(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))


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


def _reference_row_hash(table: pa.RecordBatch, seed: int) -> list[int]:
    """The split's row hash written out per value in Python integers: splitmix64's
    finaliser over the seed, then per column in name order over hash ^ the value's bits
    (a number's float64 bits, -0.0 as 0.0, NaN/missing as 0x7FF8000000000000; a text
    value's CRC-32 << 32 | Adler-32 of its UTF-8 bytes)."""
    import struct
    import zlib

    mask = (1 << 64) - 1

    def mix(h: int) -> int:
        h ^= h >> 30
        h = (h * 0xBF58476D1CE4E5B9) & mask
        h ^= h >> 27
        h = (h * 0x94D049BB133111EB) & mask
        return h ^ (h >> 31)

    def bits(value: object) -> int:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return 0x7FF8000000000000
        if isinstance(value, str):
            return (zlib.crc32(value.encode()) << 32) | zlib.adler32(value.encode())
        return struct.unpack("<Q", struct.pack("<d", float(value) + 0.0))[0]

    hashes = []
    for i in range(table.num_rows):
        h = mix(seed & mask)
        for name in sorted(table.schema.names):
            h = mix(h ^ bits(table.column(name)[i].as_py()))
        hashes.append(h)
    return hashes


@pytest.mark.parametrize("seed", [0, 7, -3])
def test_row_hash_is_the_documented_hash_of_each_value(seed: int) -> None:
    # Given rows with -0.0, NaN, missing values, infinities, text and a missing text
    batch = pa.record_batch(
        {
            "b": pa.array([0.0, -0.0, math.nan, None, 1.5, math.inf, -math.inf, 2.0]),
            "a": pa.array(["x", None, "y", "x", "", "é", "x", "y"]),
            "target": pa.array([1.0, 0, 1, 0, 1, 0, 1, 0]),
        }
    )
    # Then the vectorised hash (what assigns the splits) is the per-value definition
    assert row_hash(batch, seed).tolist() == _reference_row_hash(batch, seed)
    finite = batch.slice(0, 2)  # and a batch without any NaN (the fast path)
    assert row_hash(finite, seed).tolist() == _reference_row_hash(finite, seed)


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
    assert all(row[2] is not None for row in everything)  # no row without a target
    assert (0.0, None, 0.0) in everything  # a missing value stays missing


def test_formats_read_alike_with_quoted_header_and_missing_values(tmp_path: Path) -> None:
    # Given the same rows as CSV (a quoted header with a comma, CRLF, an empty field),
    # as gzip CSV and as Parquet
    text = 'id,"size, cm",color,target\r\n1,2.5,"red, dark",1\r\n2,,blue,0\r\n3,1.0,,1\r\n'
    _write(tmp_path / "csv" / "a.csv", text)
    gz = tmp_path / "gz" / "a.csv.gz"
    gz.parent.mkdir()
    gz.write_bytes(gzip.compress(text.encode()))
    (tmp_path / "pq").mkdir()
    pq.write_table(tabular.read_table(tmp_path / "csv" / "a.csv"), tmp_path / "pq" / "a.parquet")
    # When each is read
    tables = [tabular.read_dir(tmp_path / name) for name in ("csv", "gz", "pq")]
    # Then four columns, the text column categorical, the empty fields missing
    for table in tables:
        assert table.column_names == ["id", "size, cm", "color", "target"]
        schema = tabular.learn_schema(table, ["size, cm", "color"])
        assert schema.types == ["q", "c"]
        assert schema.categories == {"color": ["blue", "red, dark"]}
        x = schema.matrix(table)
        np.testing.assert_array_equal(x, np.array([[2.5, 1], [np.nan, 0], [1, np.nan]], "f4"))


def test_parquet_columns_build_the_same_matrix_as_the_whole_table(tmp_path: Path) -> None:
    # Given a split of several Parquet files (row groups, an int column in one file and a
    # float one with missing values in the other, a text column)
    first = pa.table({"x": pa.array([1, 2, 3]), "c": ["a", "b", None], "target": [0, 1, 1]})
    second = pa.table({"target": [1.0, 0.0], "x": pa.array([None, 4.5]), "c": pa.array(["c", "a"])})
    (tmp_path / "split").mkdir()
    pq.write_table(first, tmp_path / "split" / "a.parquet", row_group_size=2)
    pq.write_table(second, tmp_path / "split" / "b.parquet")
    # When read column by column (what train does) and as one table
    lazy = tabular.read_columns(tmp_path / "split")
    whole = tabular.read_dir(tmp_path / "split")
    # Then the same schema, matrix and target
    assert isinstance(lazy, tabular.ParquetColumns)
    assert lazy.num_rows == whole.num_rows == 5
    assert lazy.column_names == whole.column_names
    schema = tabular.learn_schema(lazy, ["x", "c"])
    assert schema == tabular.learn_schema(whole, ["x", "c"])
    np.testing.assert_array_equal(schema.matrix(lazy), schema.matrix(whole))
    column_major = schema.matrix(lazy, order="F")  # what train hands to DMatrix
    assert column_major.flags.f_contiguous
    np.testing.assert_array_equal(column_major, schema.matrix(whole))
    np.testing.assert_array_equal(
        tabular.to_float(lazy.column("target")), tabular.to_float(whole.column("target"))
    )
    # a column typed from each file's schema: no values in one file, text in another
    (tmp_path / "typed").mkdir()
    pq.write_table(pa.table({"n": pa.nulls(2), "target": [0, 1]}), tmp_path / "typed" / "a.parquet")
    pq.write_table(pa.table({"n": ["u", "v"], "target": [1, 0]}), tmp_path / "typed" / "b.parquet")
    typed = tabular.learn_schema(tabular.read_columns(tmp_path / "typed"), ["n"])
    assert typed == tabular.learn_schema(tabular.read_dir(tmp_path / "typed"), ["n"])
    assert typed.categories == {"n": ["u", "v"]}
    # a channel holding CSV is read whole
    _write(tmp_path / "mixed" / "a.csv", "x,target\n1,0\n")
    assert isinstance(tabular.read_columns(tmp_path / "mixed"), pa.Table)


def test_prefetch_yields_in_order_and_raises_where_the_source_fails() -> None:
    def source() -> Iterator[int]:
        yield from range(5)
        raise SchemaError("bad row")

    items = prefetch(source())
    assert [next(items) for _ in range(5)] == [0, 1, 2, 3, 4]
    with pytest.raises(SchemaError, match="bad row"):
        next(items)


def test_text_after_the_first_block_makes_the_column_categorical(tmp_path: Path) -> None:
    # Given a column that holds numbers for many rows, then text (past pyarrow's first block)
    rows = "".join(f"{i},{i % 2}\n" for i in range(400_000)) + "abc,1\n"
    path = _write(tmp_path / "a.csv", "code,target\n" + rows)
    # When read, then the column is text throughout
    table = tabular.read_table(path)
    assert tabular.is_text(table.schema.field("code").type)
    assert table.column("code")[0].as_py() == "0"


def test_integral_or_empty_first_block_then_decimals_stays_numeric(tmp_path: Path) -> None:
    # Given columns the scan sees as integers (x) and as empty (e), holding decimals past
    # the streaming reader's first 4 MiB block (where pyarrow would fix their types)
    head = "".join(f"{i},,{i % 2}\n" for i in range(600_000))
    path = _write(tmp_path / "in" / "a.csv", "x,e,target\n" + head + "2.5,7.25,1\n")
    assert path.stat().st_size > tabular.BATCH_BYTES
    # When preprocessed
    profile = preprocess(tmp_path / "in", tmp_path / "out", PreprocessConfig())
    # Then both are numeric, the decimals read as they are
    x, e = profile["columns"]["x"], profile["columns"]["e"]
    assert (x["type"], x["count"], x["max"]) == ("numeric", 600_001, 599_999.0)
    assert (e["type"], e["count"], e["missing"], e["min"]) == ("numeric", 1, 600_000, 7.25)
    splits = [pq.read_table(tmp_path / "out" / n / f"{n}.parquet") for n in SPLITS]
    assert 2.5 in pa.concat_tables(splits).column("x").to_pylist()


def test_header_errors(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="duplicate"):
        tabular.read_table(_write(tmp_path / "a.csv", "a,b,a\n1,2,3\n"))
    with pytest.raises(EmptyInputError, match="no header row"):
        tabular.read_table(_write(tmp_path / "b.csv", ""))


def test_binary_target_error_names_file_column_and_values(tmp_path: Path) -> None:
    _write(tmp_path / "in" / "good.csv", "x,target\n1,0\n2,1\n")
    _write(tmp_path / "in" / "sub" / "bad.csv", "x,target\n1,0\n2,2\n3,-1\n")
    with pytest.raises(SchemaError) as raised:
        preprocess(tmp_path / "in", tmp_path / "out", PreprocessConfig())
    message = str(raised.value)
    assert "target column 'target' must hold 0 or 1" in message
    assert "in/sub/bad.csv: found [-1.0, 2.0]" in message
    assert "good.csv" not in message
    assert str(tmp_path) not in message  # no job-local path prefixes


def test_header_only_file_is_a_warning_and_ignore_columns_are_dropped(tmp_path: Path) -> None:
    rows = "".join(f"{i},{'ab'[i % 2]},{i % 3},{i % 2}\n" for i in range(200))
    _write(tmp_path / "in" / "a.csv", "id,kind,x,target\n" + rows)
    _write(tmp_path / "in" / "b.csv", "id,kind,x,target\n")
    profile = preprocess(
        tmp_path / "in", tmp_path / "out", PreprocessConfig(ignore_columns=("id",))
    )
    assert profile["warnings"] == ["in/b.csv has a header and no data rows (ignored)"]
    assert profile["feature_names"] == ["kind", "x"]
    assert profile["columns"]["kind"]["type"] == "categorical"
    train = pq.read_table(tmp_path / "out" / "train" / "train.parquet")
    assert train.column_names == ["kind", "x", "target"]
    sample = (tmp_path / "out" / "sample" / "sample.csv").read_text().splitlines()
    assert sample[0] == '"kind","x"'


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
        (b"1,2,3\n1,x,3", codec.CSV, 400, "row 2, column 'b': 'x' is not a number"),
        (b"", codec.CSV, 400, "no rows"),
        (b"{not json", codec.JSON, 400, "not valid JSON"),
        (b'{"instances": [[1, 2, 3], [1, 2]]}', codec.JSON, 400, "row 2 has 2 values"),
        (b'{"instances": [[1, "x", 3]]}', codec.JSON, 400, "row 1, column 'b'"),
        (b'{"instances": [{"a": 1, "z": 2}]}', codec.JSON, 400, "unknown columns ['z']"),
        (b"a,z,c\n1,2,3", codec.CSV, 400, "row 1, column 'a': 'a' is not a number"),
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


CATEGORIES = {"b": ["blue", "red, dark"]}


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b'1,"red, dark",3\n4,blue,\n7,green,9\n', codec.CSV),
        (b'c,b,a\n3,"red, dark",1\n,blue,4\n9,green,7\n', codec.CSV),  # header, any order
        (
            b'{"instances": [{"a": 1, "b": "red, dark", "c": 3}, {"a": 4, "b": "blue"},'
            b' {"c": 9, "a": 7, "b": "green"}]}',
            codec.JSON,
        ),
        (b'[[1, "red, dark", 3], [4, "blue", null], [7, "green", 9]]', codec.JSON),
    ],
)
def test_decode_raw_categorical_values(body: bytes, kind: str) -> None:
    # Given a model with one categorical feature; an unseen category ("green") is missing
    x = codec.decode(body, kind, FEATURES, CATEGORIES)
    expected = [[1, 1, 3], [4, 0, np.nan], [7, np.nan, 9]]
    np.testing.assert_array_equal(x, np.array(expected, dtype=np.float32))


@given(st.text(alphabet=st.sampled_from(list('ab1.5 ,"\r\n\x00\x0b\u2028-')), max_size=30))
@settings(max_examples=400, deadline=None)
def test_csv_rows_match_the_csv_reader(text: str) -> None:
    # Given any text, plain single lines (the split fast path) or not (the csv reader)
    import csv
    import io

    try:
        expected = [r for r in csv.reader(io.StringIO(text)) if any(f.strip() for f in r)]
    except csv.Error:
        with pytest.raises(codec.RequestError):
            codec._csv_rows(text)
        return
    # Then the rows are the stdlib csv reader's, whichever path parsed them
    assert codec._csv_rows(text) == expected


def test_a_decoder_reused_across_requests_decodes_as_decode_does() -> None:
    # Given one Decoder for a model with a categorical feature (as a serving worker keeps)
    decoder = codec.Decoder(["color", "size"], {"color": ["red", "blue"]})
    bodies = [(b"blue,2.5\n", codec.CSV), (b'[["red", 1], ["green", null]]', codec.JSON)]
    for body, kind in bodies * 2:
        # Then each request decodes exactly as the one-shot decode()
        np.testing.assert_array_equal(
            decoder(body, kind),
            codec.decode(body, kind, ["color", "size"], {"color": ["red", "blue"]}),
        )
