"""Reading the pipeline's tables: CSV (RFC 4180), gzip-compressed CSV and Parquet, with
numeric and categorical (text) columns, on pyarrow.

Why pyarrow (not pandas, not hand-written): one library reads all three formats (pandas
reads Parquet only through pyarrow anyway, so pandas would add ~70 MB on top of it); its
CSV reader is multi-threaded, RFC 4180 (quoted fields, quoted header names, embedded
commas, doubled quotes) and converts columns in C; Parquet splits need no parsing at all.
The image grows by pyarrow's ~170 MB installed (no pandas). XGBoost gets plain numpy
arrays: categorical columns are integer codes with ``feature_types="c"`` (XGBoost's native
categorical support, ``enable_categorical``), so no DataFrame library is needed there.

Conventions:

* a header row is required (CSV); column names are unique and non-empty;
* a missing value is an empty field (or ``NA``/``NaN``/``null``, pyarrow's defaults); it
  stays missing (NaN), which XGBoost treats as missing;
* a column whose values are not all numbers (in any file) is categorical: its values are
  text; booleans (``true``/``false``) are numeric 0/1.

Files are named in messages relative to their input directory (``raw/data/a.csv``), not
by the job's absolute path, so a failure reason reads the same on SageMaker and locally.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sfn_container import csvpieces
from sfn_container.errors import EmptyInputError, SchemaError

T = TypeVar("T")
CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES
NUMERIC = "q"  # XGBoost's feature_types: quantitative
CATEGORICAL = "c"
_MAX_REPORTED = 5


def display_name(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root``'s parent (``raw/a.csv``), else its name."""
    if root is not None:
        try:
            return str(path.relative_to(root.parent))
        except ValueError:
            pass
    return path.name


def is_data_file(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and name.endswith(SUFFIXES)


def data_files(directory: Path) -> list[Path]:
    """Every CSV, ``.csv.gz`` and Parquet file under ``directory`` (recursively, as S3
    prefixes download), sorted."""
    if not directory.is_dir():
        raise EmptyInputError(f"input directory {directory.name} does not exist")
    files = sorted(p for p in directory.rglob("*") if is_data_file(p))
    if not files:
        raise EmptyInputError(f"no data files ({', '.join(SUFFIXES)}) under {directory.name}/")
    return files


def _is_parquet(path: Path) -> bool:
    return path.name.lower().endswith(PARQUET_SUFFIXES)


def _check_names(names: Sequence[str], source: str) -> None:
    if not names or any(not str(n).strip() for n in names):
        raise SchemaError(f"{source}: header row has empty column names: {list(names)}")
    duplicates = sorted({n for n in names if list(names).count(n) > 1})
    if duplicates:
        raise SchemaError(f"{source}: duplicate column names in header: {duplicates}")


_CONVERT = pacsv.ConvertOptions(strings_can_be_null=True)


def _read_csv(path: Path, source: str) -> pa.Table:
    """A CSV (gzip-compressed when its name ends ``.gz``) as a table; a column pyarrow typed
    as numbers from the first block but that holds text further down is read as text."""
    try:
        return pacsv.read_csv(path, read_options=_csv_read_options(), convert_options=_CONVERT)
    except pa.ArrowInvalid:
        pass
    text = text_columns(path)  # slow path (rare)
    table = _read_as_text(path, source)
    columns = [
        table.column(n) if n in text else pc.cast(table.column(n), pa.float64())
        for n in table.column_names
    ]
    return pa.table(columns, names=table.column_names)


def _read(
    path: Path, root: Path | None, parquet: Callable[[Path], T], csv: Callable[[Path, str], T]
) -> T:
    """`parquet(path)` or `csv(path, source)` by the file's name; the errors named."""
    source = display_name(path, root)
    if _is_parquet(path):
        try:
            return parquet(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise SchemaError(f"{source}: not a readable Parquet file: {exc}") from exc
    if path.stat().st_size == 0:
        raise EmptyInputError(f"{source} is empty (no header row)")
    return csv(path, source)


def read_table(path: Path, root: Path | None = None) -> pa.Table:
    """One data file as a table (header checked)."""
    table = _read(path, root, pq.read_table, _read_csv)
    _check_names(table.column_names, display_name(path, root))
    return table


BATCH_BYTES = 4 << 20  # CSV block: measured at 1M rows x 20, 4 MiB reads as fast as 16 MiB
# and keeps the streaming reader's peak ~250 MB (pyarrow's read_csv: ~520 MB)
_BATCH_ROWS = 64 * 1024  # Parquet


def _csv_read_options() -> pacsv.ReadOptions:
    return pacsv.ReadOptions(block_size=BATCH_BYTES)


def _csv_schema(path: Path, source: str) -> pa.Schema:
    try:
        return pacsv.open_csv(  # types from the first 64 KiB only: cheap
            path, read_options=pacsv.ReadOptions(block_size=64 << 10), convert_options=_CONVERT
        ).schema
    except pa.ArrowInvalid as exc:
        raise SchemaError(f"{source}: not a readable CSV: {exc}") from exc


def read_schema(path: Path, root: Path | None = None) -> pa.Schema:
    """A file's columns and types without reading all of it: the Parquet schema, or what
    pyarrow infers from a CSV's first 64 KiB (a later block may still hold text)."""
    schema = _read(path, root, pq.read_schema, _csv_schema)
    _check_names(schema.names, display_name(path, root))
    return schema


def iter_batches(
    path: Path,
    text: set[str],
    root: Path | None = None,
    floats: set[str] | frozenset[str] = frozenset(),
    columns: Sequence[str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """A file's rows in record batches (streamed: memory stays at a few batches); the
    columns in ``text`` are read as strings, those in ``floats`` as float64, the others
    typed by pyarrow from the first block; only ``columns`` when given. A CSV column typed
    as numbers (given or inferred) that holds text later raises ``pa.ArrowInvalid`` (see
    :func:`text_columns`).

    Naming the float columns (what the schema scan found) halves the CSV reader's CPU
    time: pyarrow's streaming reader otherwise infers every block's types again (1M rows x
    20, 150 MB: ~2.7 -> ~1.5 s CPU; benchmarks/training_scale.py, figure 6). It also lets a
    column that was empty or integral in the first block hold decimals further down.

    A plain CSV's pieces are parsed on several threads (:mod:`sfn_container.csvpieces`:
    the same rows and batches as the streaming reader, which parses on one thread); a
    ``.csv.gz`` stream cannot be cut, so it is read by the streaming reader."""
    if _is_parquet(path):
        handle = pq.ParquetFile(path)
        present = (
            None if columns is None else [c for c in columns if c in handle.schema_arrow.names]
        )
        yield from handle.iter_batches(batch_size=_BATCH_ROWS, columns=present)
        return
    types = dict.fromkeys(sorted(floats), pa.float64()) | dict.fromkeys(sorted(text), pa.string())
    convert = pacsv.ConvertOptions(  # a name not in the file is ignored
        strings_can_be_null=True,
        column_types=types,
        include_columns=list(columns) if columns is not None else [],
    )
    if path.name.lower().endswith(".gz"):  # a compressed stream cannot be cut: one thread
        yield from pacsv.open_csv(path, read_options=_csv_read_options(), convert_options=convert)
    else:  # the same rows, pieces parsed in parallel
        yield from csvpieces.iter_csv(path, BATCH_BYTES, convert)


def is_float_like(kind: pa.DataType) -> bool:
    """A type a CSV column can be read as float64 without changing its values: integers,
    floats, or no value yet (pyarrow's null type). Not booleans (``true`` is no float)."""
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind))


def arrow_mask(values: np.ndarray) -> pa.BooleanArray:
    """A numpy bool array as an Arrow one, for ``filter``. Not ``pa.array``: it imports
    pandas when pandas is installed (~0.5 s the first time, in preprocess's critical path)."""
    bits = np.packbits(values, bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])


def text_columns(path: Path, root: Path | None = None) -> set[str]:
    """The columns of a CSV whose values are not all numbers (slow: reads it as text)."""
    table = _read_as_text(path, display_name(path, root))
    found = set()
    for name in table.column_names:
        try:
            pc.cast(table.column(name), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            found.add(name)
    return found


def sample_values(path: Path, column: str, root: Path | None = None) -> list[Any]:
    """Up to 20 distinct values of one column (for error messages)."""
    if _is_parquet(path):
        values = pq.read_table(path, columns=[column]).column(column)
    else:
        values = _read_as_text(path, display_name(path, root)).column(column)
    return pc.unique(values).drop_null().to_pylist()[:20]


def _read_as_text(path: Path, source: str) -> pa.Table:
    names = read_schema(path).names
    as_text = pacsv.ConvertOptions(
        strings_can_be_null=True, column_types=dict.fromkeys(names, pa.string())
    )
    try:
        return pacsv.read_csv(path, read_options=_csv_read_options(), convert_options=as_text)
    except pa.ArrowInvalid as exc:
        raise SchemaError(f"{source}: not a readable CSV: {exc}") from exc


def is_text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def is_numeric(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_null(kind)
        or pa.types.is_decimal(kind)
    )


def as_text(column: Any) -> Any:
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    if is_text(column.type):
        return pc.cast(column, pa.string()) if column.type != pa.string() else column
    if pa.types.is_floating(column.type):  # 3.0 -> "3", so "3" in one file equals 3 in another
        ints = pc.cast(column, pa.int64(), safe=False)
        whole = pc.equal(pc.cast(ints, column.type), column)
        return pc.if_else(whole, pc.cast(ints, pa.string()), pc.cast(column, pa.string()))
    return pc.cast(column, pa.string())


def to_float(column: Any, dtype: Any = np.float64) -> np.ndarray:
    """A numeric column as a numpy array, NaN for a missing value. Read straight from the
    Arrow buffers (``to_numpy`` and ``fill_null(nan)`` import pandas when it is installed:
    ~0.5 s; see :func:`values_of`)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if not pa.types.is_float64(column.type):
        column = pc.cast(column, pa.float64())
    out = values_of(column, np.float64, math.nan)
    return out if np.dtype(dtype) == out.dtype else out.astype(dtype)


def values_of(array: pa.Array, dtype: Any, missing: Any) -> np.ndarray:
    """A fixed-width Arrow array's values as numpy (`dtype` its width), `missing` where it
    has none: a view of its buffer when nothing is missing. Not ``to_numpy`` /
    ``fill_null``: both convert through a pyarrow scalar, and any Python-to-Arrow conversion
    imports pandas when it is installed (~0.5 s, on preprocess's critical path; figure 6)."""
    out = np.frombuffer(
        array.buffers()[1],
        dtype=dtype,
        count=len(array),
        offset=array.offset * np.dtype(dtype).itemsize,
    )
    if not array.null_count:
        return out
    bits = np.frombuffer(array.buffers()[0], dtype=np.uint8)
    valid = np.unpackbits(bits, count=array.offset + len(array), bitorder="little")
    out = out.copy()
    out[valid[array.offset :] == 0] = missing
    return out


def categories_of(column: pa.ChunkedArray) -> list[str]:
    """The distinct non-missing values of a text column, sorted (the category mapping)."""
    values = pc.unique(as_text(column)).drop_null()
    return sorted(values.to_pylist())


def codes(
    column: pa.ChunkedArray, categories: Sequence[str], dtype: Any = np.float32
) -> np.ndarray:
    """A text column as category codes (index in ``categories``); missing and unseen
    values are NaN (XGBoost's missing value)."""
    index = pc.index_in(as_text(column), value_set=pa.array(list(categories), pa.string()))
    return to_float(index, dtype)


@dataclass(frozen=True)
class FeatureSchema:
    """What a model expects: the features in order, their XGBoost types, and for each
    categorical feature the category list (a value's code is its index)."""

    names: list[str]
    types: list[str]
    categories: dict[str, list[str]]

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> FeatureSchema:
        names = list(metadata["feature_names"])
        types = list(metadata.get("feature_types") or [NUMERIC] * len(names))
        return cls(
            names, types, {k: list(v) for k, v in (metadata.get("categories") or {}).items()}
        )

    def to_metadata(self) -> dict[str, Any]:
        return {
            "feature_names": self.names,
            "feature_types": self.types,
            "categories": self.categories,
        }

    @property
    def has_categorical(self) -> bool:
        return CATEGORICAL in self.types

    def matrix(
        self, table: pa.Table | ParquetColumns, source: str = "the data", order: str = "C"
    ) -> np.ndarray:
        """The table's features as a float32 matrix in this schema's order: C-contiguous,
        or with ``order="F"`` column-major (each feature's values contiguous: what train
        hands to ``DMatrix``, which reads any strides). Filling a column-major matrix writes
        each feature in one contiguous run and casts float64 to float32 in that one write;
        row-major it is a strided write after a float32 temporary: at 700k rows x 20 the
        column-major fill plus ``DMatrix`` measured 0.36-0.39 s against 0.45-0.48 s
        (benchmarks/training_scale.py, figure 6), the same DMatrix and model."""
        missing = [n for n in self.names if n not in table.column_names]
        if missing:
            raise SchemaError(f"{source} lacks the features {missing}")
        if order not in ("C", "F"):
            raise ValueError(f"order must be 'C' or 'F', got {order!r}")
        shape = (len(self.names), table.num_rows)
        out = (
            np.empty(shape, dtype=np.float32).T
            if order == "F"
            else np.empty(shape[::-1], np.float32)
        )
        for j, (name, kind) in enumerate(zip(self.names, self.types, strict=True)):
            column = table.column(name)
            if kind == CATEGORICAL:
                out[:, j] = codes(column, self.categories[name])
            elif is_numeric(column.type):
                out[:, j] = to_float(column)  # float64 cast to float32 by the assignment
            else:
                raise SchemaError(
                    f"{source}: column {name!r} holds text, but the model was trained on "
                    "numbers there"
                )
        return out


def learn_schema(table: pa.Table | ParquetColumns, features: Sequence[str]) -> FeatureSchema:
    """The schema of ``features`` from a (training) table: text columns are categorical,
    with their sorted distinct values as categories."""
    types: list[str] = []
    categories: dict[str, list[str]] = {}
    for name in features:
        if all(is_numeric(kind) for kind in _field_types(table, name)):
            types.append(NUMERIC)  # from the schema: a numeric column's values aren't read
        else:
            types.append(CATEGORICAL)
            categories[name] = categories_of(table.column(name))
    return FeatureSchema(list(features), types, categories)


def _field_types(table: pa.Table | ParquetColumns, name: str) -> list[pa.DataType]:
    """A column's type in each file (a table: its one type). A column numeric in every
    file is numeric once combined (concatenation promotes numbers to numbers); any other
    mix is decided by reading it."""
    if isinstance(table, ParquetColumns):
        return table.field_types(name)
    return [table.schema.field(name).type]


class ParquetColumns:
    """Parquet files' columns, each read only when asked for: the part of a table's
    interface (``column_names``, ``num_rows``, ``column``) that :func:`learn_schema` and
    :meth:`FeatureSchema.matrix` use. Building a float32 matrix from it holds one float64
    column at a time instead of the whole table: at 1M rows x 20 the train step's peak RSS
    drops by the table's size (~120 MB; benchmarks/training_scale.py, figure 6)."""

    def __init__(self, files: Sequence[Path], directory: Path) -> None:
        self._directory = directory
        self._files = [(path, pq.ParquetFile(path)) for path in files]
        first_path, first = self._files[0]
        self.column_names: list[str] = list(first.schema_arrow.names)
        _check_names(self.column_names, display_name(first_path, directory))
        for path, handle in self._files[1:]:
            names = handle.schema_arrow.names
            _check_names(names, display_name(path, directory))
            if sorted(names) != sorted(self.column_names):
                raise SchemaError(
                    f"{display_name(path, directory)}: columns differ from "
                    f"{display_name(first_path, directory)}"
                )
        self.num_rows = sum(handle.metadata.num_rows for _, handle in self._files)

    def field_types(self, name: str) -> list[pa.DataType]:
        """The column's type in each file's schema (no data read)."""
        return [handle.schema_arrow.field(name).type for _, handle in self._files]

    def column(self, name: str) -> pa.ChunkedArray:
        """One column over every file (types promoted as :func:`read_dir` does)."""
        tables = []
        for path, handle in self._files:
            try:
                tables.append(handle.read(columns=[name], use_threads=True))
            except (pa.ArrowInvalid, OSError) as exc:
                source = display_name(path, self._directory)
                raise SchemaError(f"{source}: not a readable Parquet file: {exc}") from exc
        if len(tables) == 1:
            return tables[0].column(0)
        return pa.concat_tables(tables, promote_options="permissive").column(0)


def read_columns(directory: Path) -> pa.Table | ParquetColumns:
    """Every data file under ``directory`` for building a matrix: Parquet files (what
    preprocess writes) column by column (:class:`ParquetColumns`), otherwise (any CSV)
    as one table (:func:`read_dir`)."""
    files = data_files(directory)
    if not all(_is_parquet(path) for path in files):
        return read_dir(directory)
    try:
        return ParquetColumns(files, directory)
    except (pa.ArrowInvalid, OSError):
        return read_dir(directory)  # names the unreadable file


def read_dir(directory: Path) -> pa.Table:
    """Every data file under ``directory`` (a split written by preprocess, or raw files
    with the same columns) as one table."""
    files = data_files(directory)
    tables = [read_table(path, directory) for path in files]
    if len(tables) == 1:
        return tables[0]
    first = tables[0].column_names
    for path, table in zip(files[1:], tables[1:], strict=True):
        if sorted(table.column_names) != sorted(first):
            raise SchemaError(
                f"{display_name(path, directory)}: columns differ from "
                f"{display_name(files[0], directory)}"
            )
    return pa.concat_tables([t.select(first) for t in tables], promote_options="permissive")
