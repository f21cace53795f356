"""A plain CSV read in pieces parsed in parallel (sfn_container.csvpieces) gives the rows,
order, splits, row hashes and errors of pyarrow's streaming reader (what preprocess used
before), whatever the piece size and the number of threads."""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sfn_container import csvpieces, tabular
from sfn_container.errors import SchemaError
from sfn_container.preprocess import SPLITS, PreprocessConfig, preprocess, row_hash

HEADER = '"size, cm",weight,colour,"note\nmultiline",target\n'


def _rows(n: int) -> str:
    notes = ['"a, b"', '"line one\nline two"', '"he said ""hi"""', "", "plain", '""']
    colours = ["red", "green", "", '"blue, dark"']
    out = []
    for i in range(n):
        weight = "" if i % 7 == 3 else f"{i * 0.25}"
        out.append(
            f"{i % 13}.5,{weight},{colours[i % 4]},{notes[i % 6]},{i % 2}\n"
            if i % 11
            else f"{i},,NA,{notes[i % 6]},{i % 2}\r\n"
        )
    return "".join(out)


def _streaming(
    path: Path, block_size: int, convert: pacsv.ConvertOptions
) -> Iterator[pa.RecordBatch]:
    """What tabular.iter_batches did before (main): pyarrow's streaming reader."""
    read = pacsv.ReadOptions(block_size=block_size)
    yield from pacsv.open_csv(path, read_options=read, convert_options=convert)


def _table(batches: Iterator[pa.RecordBatch]) -> pa.Table:
    return pa.Table.from_batches(list(batches))


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


CONVERT = pacsv.ConvertOptions(strings_can_be_null=True)


@pytest.mark.parametrize("piece", [64, 333, 4096, 1 << 20])
def test_pieces_read_the_rows_of_the_streaming_reader(tmp_path: Path, piece: int) -> None:
    # Given a CSV with a quoted header, quoted commas, newlines and doubled quotes in
    # fields, missing values, text columns and CRLF lines
    path = _write(tmp_path / "a.csv", HEADER + _rows(500))
    # When read in pieces of `piece` bytes, then the rows are the streaming reader's (one
    # block: it cannot read a quoted newline across its blocks) and RFC 4180's
    expected = _table(_streaming(path, 1 << 20, CONVERT))
    got = _table(csvpieces.iter_csv(path, piece, CONVERT))
    assert got.equals(expected)
    assert got.num_rows == 500
    assert got.column("note\nmultiline")[1].as_py() == "line one\nline two"
    with path.open(newline="") as fh:
        notes = [row[3] for row in list(csv.reader(fh))[1:]]
    assert [v or "" for v in got.column(3).to_pylist()] == notes


def test_a_quoted_newline_across_pieces_is_read_as_rfc_4180_says(tmp_path: Path) -> None:
    # Given quoted newlines everywhere (the streaming reader fails when one straddles its
    # blocks: "CSV parser got out of sync with chunker")
    text = "a,b,c\n" + "".join(f'{i},"x\n{"y" * (i % 50)}\n,z",{i}\n' for i in range(3000))
    path = _write(tmp_path / "a.csv", text)
    with pytest.raises(pa.ArrowInvalid, match="out of sync"):
        _table(_streaming(path, 4096, CONVERT))
    # When read in pieces, then every row is whole
    got = _table(csvpieces.iter_csv(path, 4096, CONVERT))
    whole = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(newlines_in_values=True))
    assert got.equals(whole)


@pytest.mark.parametrize(
    "text",
    [
        "a,b\n" + "1,2\n" * 300 + '5"6,7\n' + "3,4\n" * 300,  # a quote pyarrow reads literally
        "a,b\n" + "1,2\n" * 300 + '"x"y,7\n' + "3,4\n" * 300,  # text after a closing quote
        "a,b\r" + "1,2\r" * 600,  # lines ended by a lone CR: no line feed to cut at
        "a,b\n" + "1,2\n" * 300 + '"x' + "y" * 5000 + '",7\n' + "3,4\n" * 10,  # a long record
        'a,b\n1,"2"',  # a closing quote ends the file
        "a,b\n",  # header only
        "a,b",  # header only, no line end
        "\ufeffa,b\n1,2\n",  # a byte-order mark
    ],
)
def test_unusual_files_read_as_the_streaming_reader_reads_them(tmp_path: Path, text: str) -> None:
    # (with the same block size: the streaming reader fixes inferred types after its first)
    path = _write(tmp_path / "a.csv", text)
    for convert in (CONVERT, pacsv.ConvertOptions(column_types={"a": pa.string()})):
        expected = _outcome(_streaming(path, 256, convert))
        assert _outcome(csvpieces.iter_csv(path, 256, convert)) == expected


def _outcome(batches: Iterator[pa.RecordBatch]) -> tuple:
    """The batches' schema and rows, or the error raised."""
    try:
        got = list(batches)
    except pa.ArrowInvalid as exc:
        return ("error", str(exc))
    return ([b.schema for b in got[:1]], [row for batch in got for row in batch.to_pylist()])


@settings(max_examples=60, deadline=None)
@given(
    cells=st.lists(
        st.lists(st.text(alphabet='ab,"\n 1.', max_size=6), min_size=3, max_size=3),
        min_size=0,
        max_size=40,
    ),
    piece=st.integers(min_value=16, max_value=200),  # the header fits the first piece
)
def test_any_rfc_4180_file_reads_alike_in_any_pieces(cells: list[list[str]], piece: int) -> None:
    # Given any RFC 4180 file (Python's csv writer quotes what needs it)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["x", "y", "z"])
    writer.writerows(cells)
    data = out.getvalue().encode()
    as_text = pacsv.ConvertOptions(column_types=dict.fromkeys("xyz", pa.string()))

    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp) / "a.csv", data)
        whole = pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=as_text,
        )
        got = pa.Table.from_batches(list(csvpieces.iter_csv(path, piece, as_text)), whole.schema)
    assert got.equals(whole)


def _preprocessed(
    monkeypatch: pytest.MonkeyPatch, inputs: Path, out: Path, *, parallel: bool, piece: int = 300
) -> dict:
    monkeypatch.setattr(tabular, "BATCH_BYTES", piece)
    if not parallel:
        monkeypatch.setattr(csvpieces, "iter_csv", _streaming)
    try:
        return preprocess(inputs, out, PreprocessConfig())
    finally:
        monkeypatch.undo()


def _fixture(root: Path) -> Path:
    inputs = root / "in"
    _write(inputs / "a.csv", HEADER + _rows(700))
    _write(inputs / "b.csv", HEADER)  # header only: a warning
    _write(inputs / "c.csv", HEADER.replace("weight,colour", "colour,weight") + _rows(50))
    return inputs


def test_preprocess_splits_rows_and_hashes_as_the_streaming_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = _fixture(tmp_path)
    old = _preprocessed(monkeypatch, inputs, tmp_path / "old", parallel=False, piece=1 << 20)
    new = _preprocessed(monkeypatch, inputs, tmp_path / "new", parallel=True)
    for name in SPLITS:
        a = pq.read_table(tmp_path / "old" / name / f"{name}.parquet")
        b = pq.read_table(tmp_path / "new" / name / f"{name}.parquet")
        assert a.num_rows
        assert b.equals(a)
        assert (row_hash(b, 0) == row_hash(a, 0)).all()
    assert new["rows"] == old["rows"]
    assert new["files"] == old["files"]
    assert (
        new["warnings"] == old["warnings"] == ["in/b.csv has a header and no data rows (ignored)"]
    )
    assert new["columns"]["colour"] == old["columns"]["colour"]
    assert (tmp_path / "new/sample/sample.csv").read_bytes() == (
        tmp_path / "old/sample/sample.csv"
    ).read_bytes()


def test_outputs_are_byte_identical_whatever_the_thread_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = _fixture(tmp_path)
    outputs = []
    for count in (1, 2, 3):
        monkeypatch.setattr(csvpieces, "workers", lambda count=count: count)
        _preprocessed(monkeypatch, inputs, tmp_path / f"out{count}", parallel=True)
        files = sorted(p for p in (tmp_path / f"out{count}").rglob("*") if p.is_file())
        outputs.append({p.relative_to(tmp_path / f"out{count}"): p.read_bytes() for p in files})
    assert outputs[0] == outputs[1] == outputs[2]


@pytest.mark.parametrize(
    "bad",
    [
        "1.5,2,red,x,0\n3,4\n",  # a ragged row
        "1.5,2,red,x,0\n2.5,oops,red,x,1\n",  # text in a numeric column: categorical
        "1.5,2,red,x,7\n",  # a binary target that is not 0/1
    ],
)
def test_errors_and_results_are_the_streaming_readers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    # Given a file whose fault lies many pieces in
    inputs = tmp_path / "in"
    _write(inputs / "a.csv", HEADER + _rows(400) + bad + _rows(20))
    outcome = []
    for parallel in (False, True):
        try:
            piece = 300 if parallel else 1 << 20  # (the streaming reader: one block)
            out = tmp_path / str(parallel)
            profile = _preprocessed(monkeypatch, inputs, out, parallel=parallel, piece=piece)
            outcome.append(("ok", profile["rows"], profile["columns"]["weight"]["type"]))
        except SchemaError as exc:
            outcome.append(("error", str(exc)))
    assert outcome[0] == outcome[1]
    if "3,4" in bad:
        assert outcome[1][0] == "error"
        assert "Expected 5 columns, got 2: 3,4" in outcome[1][1]


def test_types_not_given_are_inferred_from_the_first_piece_then_fixed(tmp_path: Path) -> None:
    # Given a boolean column (typed by inference) that later holds 1/0 and an empty
    # column that later holds text, read with some columns typed and some not
    rows = "".join(f"{i},{'true' if i % 2 else 'false'},\n" for i in range(2000))
    rows += "".join(f"{i},{i % 2},x\n" for i in range(2000))
    path = _write(tmp_path / "a.csv", "a,b,c\n" + rows)
    convert = pacsv.ConvertOptions(
        column_types={"a": pa.float64()}, include_columns=["a", "b", "c"]
    )
    # Then the outcome (rows or error) is the streaming reader's with the same block size
    for block in (512, 1 << 20):
        assert _outcome(csvpieces.iter_csv(path, block, convert)) == _outcome(
            _streaming(path, block, convert)
        )
