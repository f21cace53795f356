"""Preprocess (SageMaker Processing job): raw data files -> train/validation/test splits,
a data profile and a smoke-test sample.

Reads every CSV, gzip CSV (``.csv.gz``) and Parquet file under
``$OPT_ML/processing/input/raw`` (the same columns in every file, in any order; see
:mod:`sfn_container.tabular`). Configuration comes from the job environment:
``TARGET_COLUMN`` (default ``target``), ``PROBLEM_TYPE`` (``binary_classification`` |
``regression``, default the former), ``IGNORE_COLUMNS`` (a JSON list of columns to drop,
e.g. an id), and optionally ``TEST_FRACTION`` / ``VALIDATION_FRACTION`` (0.15 each),
``SPLIT_SEED`` (0) and ``SAMPLE_ROWS`` (5).

The step streams the data in batches (a few MB of CSV, or a Parquet batch: memory stays
flat whatever the data size), one concern per function so multi-host sharding can replace
any one: :func:`scan_inputs` (the files, their columns and which are text),
:func:`iter_batches` (reading), :func:`check_target` (what needs the data itself: the
target's values), :func:`row_hash` / :func:`assign_splits` (splitting) and
:func:`column_stats` / :func:`update_stats` (statistics, merged batch by batch);
:func:`preprocess` composes them and writes the outputs.

Columns: numeric, or categorical (text; see :mod:`sfn_container.tabular`). Missing values
stay missing (XGBoost learns a default direction for them); rows whose *target* is missing
cannot be used and are dropped (counted in the profile). The target must be numeric: 0/1
for binary classification (the error names the file, the column and the values found), a
finite number for regression.

Split: each row goes to a split by a 64-bit hash of its values (columns in name order, a
text value hashed by its UTF-8 bytes, seeded by ``SPLIT_SEED``), not by its position. A
row therefore stays in the same split when new rows are appended, files are renamed or
rows are re-ordered, so the test split of a refreshed data set contains the old test rows
and champion and challenger are compared fairly; identical rows never straddle train and
test.

Outputs (under ``$OPT_ML/processing/output``): ``train/train.parquet``,
``validation/validation.parquet``, ``test/test.parquet`` (the kept columns, typed: text
columns as Parquet strings; what ``train`` and ``evaluate`` read, with no parsing; this
replaces the CSV + binary copy of earlier versions: writing and reading Parquet measured
faster than writing CSV lines plus a float32 copy), ``profile/profile.json`` (rows per
split and per file, per-column statistics, class balance, ``warnings`` such as a data file
with a header and no rows) and ``sample/sample.csv`` (header + a few test rows without
the target column, RFC 4180 quoted: what the smoke test sends to the endpoint).

Several hosts (``$OPT_ML/config/resourceconfig.json``) or ``SPLIT_PARTS`` > 1: each host
splits its shard of the raw files the same way (a row's split never depends on the host
or the number of hosts) and writes its Parquet parts, profile and sample under its own
prefix (``train/<host>/train-00000.parquet``, ``profile/<host>/profile.json``), the
profile with the raw moments and category counts a merge needs
(:mod:`sfn_container.shards`, :mod:`sfn_container.profiles`).
"""

from __future__ import annotations

import json
import math
import os
import sys
import zlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sfn_container import profiles, shards, tabular
from sfn_container.distributed import Cluster
from sfn_container.errors import ConfigError, EmptyInputError, SchemaError
from sfn_container.paths import OptMl

T = TypeVar("T")
PROBLEM_TYPES = ("binary_classification", "regression")
SPLITS = ("train", "validation", "test")
DROPPED = 3  # split id of rows whose target is missing
SPLIT_SUFFIX = ".parquet"

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_CANONICAL_NAN = np.uint64(0x7FF8000000000000)


@dataclass(frozen=True)
class PreprocessConfig:
    target_column: str = "target"
    problem_type: str = "binary_classification"
    test_fraction: float = 0.15
    validation_fraction: float = 0.15
    seed: int = 0
    sample_rows: int = 5
    ignore_columns: tuple[str, ...] = field(default_factory=tuple)
    parts: int = 1  # Parquet parts per split (per host): the training instance count

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> PreprocessConfig:
        env = dict(os.environ if env is None else env)
        try:
            ignore = json.loads(env.get("IGNORE_COLUMNS") or "[]")
            if not isinstance(ignore, list) or not all(isinstance(c, str) for c in ignore):
                raise ValueError("IGNORE_COLUMNS must be a JSON list of column names")
            config = cls(
                target_column=env.get("TARGET_COLUMN", "target").strip(),
                problem_type=env.get("PROBLEM_TYPE", "binary_classification").strip(),
                test_fraction=float(env.get("TEST_FRACTION", "0.15")),
                validation_fraction=float(env.get("VALIDATION_FRACTION", "0.15")),
                seed=int(env.get("SPLIT_SEED", "0")),
                sample_rows=int(env.get("SAMPLE_ROWS", "5")),
                ignore_columns=tuple(ignore),
                parts=int(env.get("SPLIT_PARTS", "1")),
            )
        except ValueError as exc:
            raise ConfigError(f"invalid preprocessing setting: {exc}") from exc
        config.validate()
        return config

    def validate(self) -> None:
        if not self.target_column:
            raise ConfigError("TARGET_COLUMN is empty")
        if self.problem_type not in PROBLEM_TYPES:
            raise ConfigError(f"PROBLEM_TYPE must be one of {PROBLEM_TYPES}")
        fractions = (self.test_fraction, self.validation_fraction)
        if not all(0 < f < 1 for f in fractions) or sum(fractions) >= 1:
            raise ConfigError("TEST_FRACTION and VALIDATION_FRACTION must be in (0, 1), sum < 1")
        if self.sample_rows < 1:
            raise ConfigError("SAMPLE_ROWS must be >= 1")
        if not 1 <= self.parts <= 1000:
            raise ConfigError("SPLIT_PARTS must be between 1 and 1000")
        if self.target_column in self.ignore_columns:
            raise ConfigError(f"IGNORE_COLUMNS lists the target column {self.target_column!r}")


# --- reading ----------------------------------------------------------------------------


@dataclass
class Inputs:
    """The raw files: their columns (first file's order, ignored ones dropped), which of
    those are text (categorical) in any file, and per file the columns its scan typed as
    numbers (read as float64 without inferring again)."""

    root: Path
    files: list[Path]
    header: list[str]
    text: set[str]
    floats: dict[Path, set[str]] = field(default_factory=dict)

    def source(self, path: Path) -> str:
        return tabular.display_name(path, self.root)


class _NewTextColumnsError(Exception):
    """A column held text past the first block of a file: the read starts again with it as
    text (rare; only then is any work repeated)."""

    def __init__(self, columns: set[str]) -> None:
        super().__init__(sorted(columns))
        self.columns = columns


def _check_columns(names: list[str], config: PreprocessConfig, source: str) -> None:
    if config.target_column not in names:
        raise SchemaError(
            f"{source}: target column {config.target_column!r} not in header; columns are {names}"
        )
    missing = [c for c in config.ignore_columns if c not in names]
    if missing:
        raise SchemaError(f"{source}: ignore_columns {missing} not in header; columns are {names}")
    if len(names) - len(config.ignore_columns) < 2:
        raise SchemaError(f"{source}: no feature columns besides {config.target_column!r}")


def scan_inputs(input_dir: Path, config: PreprocessConfig) -> Inputs:
    """Every data file's columns (the same in each, any order) and their types as far as
    the schema (Parquet) or the first block (CSV) tells."""
    files = tabular.data_files(input_dir)
    header: list[str] | None = None
    text: set[str] = set()
    floats: dict[Path, set[str]] = {}
    first = ""
    for path in files:
        source = tabular.display_name(path, input_dir)
        schema = tabular.read_schema(path, input_dir)
        if header is None:
            header, first = schema.names, source
            _check_columns(header, config, source)
        elif sorted(schema.names) != sorted(header):
            missing = [c for c in header if c not in schema.names]
            extra = [c for c in schema.names if c not in header]
            raise SchemaError(
                f"{source}: columns differ from {first}: missing {missing}, extra {extra}"
            )
        text |= {f.name for f in schema if not tabular.is_numeric(f.type)}
        floats[path] = {f.name for f in schema if tabular.is_float_like(f.type)}
    assert header is not None
    kept = [c for c in header if c not in config.ignore_columns]
    return Inputs(input_dir, files, kept, text & set(kept), floats)


def iter_batches(inputs: Inputs) -> Iterator[tuple[Path, pa.RecordBatch]]:
    """Each file's rows in batches, columns in `inputs.header` order: text columns as
    strings, the others float64. Raises _NewTextColumnsError when a CSV column turns out
    to hold text after its first block."""
    for path in inputs.files:
        try:
            floats = inputs.floats.get(path, set()) & set(inputs.header) - inputs.text
            batches = tabular.iter_batches(path, inputs.text, inputs.root, floats, inputs.header)
            for batch in batches:
                yield path, _normalise(batch, inputs)
        except pa.ArrowInvalid as exc:
            found = tabular.text_columns(path, inputs.root) - inputs.text
            found &= set(inputs.header)
            if not found:
                raise SchemaError(f"{inputs.source(path)}: not a readable CSV: {exc}") from exc
            raise _NewTextColumnsError(found) from exc


def _normalise(batch: pa.RecordBatch, inputs: Inputs) -> pa.RecordBatch:
    surprise = {
        f.name
        for f in batch.schema
        if f.name in inputs.header and f.name not in inputs.text and not tabular.is_numeric(f.type)
    }
    if surprise:  # text seen in a later part of the file than the scan read
        raise _NewTextColumnsError(surprise)
    columns = []
    for name in inputs.header:
        column = batch.column(name)
        if name in inputs.text:
            column = tabular.as_text(column)
        elif not pa.types.is_float64(column.type):
            column = pc.cast(column, pa.float64())
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=inputs.header)


def prefetch(items: Iterator[T]) -> Iterator[T]:
    """`items`, the next one produced on a worker thread while the caller works on the
    current one: parsing the next CSV block (pyarrow releases the GIL) overlaps hashing and
    writing this one, so on 2 cores preprocessing takes about the longer of the two rather
    than their sum (benchmarks/training_scale.py, figure 6). One item ahead: memory grows
    by one batch. An error producing an item is raised here, in the caller's order."""
    done = object()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as pool:
        pending = pool.submit(next, items, done)
        while (item := pending.result()) is not done:
            pending = pool.submit(next, items, done)
            yield item  # type: ignore[misc]


# --- whole-data checks --------------------------------------------------------------------


def check_target(target: np.ndarray, source: str, config: PreprocessConfig) -> None:
    """What needs the data itself: a binary target holding other values than 0/1, or an
    infinite regression target. Names the file, the column and the values found."""
    present = ~np.isnan(target)
    if config.problem_type == "binary_classification":
        bad = present & (target != 0) & (target != 1)
        detail = "must hold 0 or 1 for binary_classification"
    else:
        bad = present & ~np.isfinite(target)
        detail = "has infinite values"
    if bad.any():
        values = np.unique(target[bad])[:5].tolist()
        raise SchemaError(
            f"target column {config.target_column!r} {detail}; {source}: found {values}"
        )


# --- splitting ----------------------------------------------------------------------------


def _mix(h: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
    """splitmix64's finaliser, vectorised, in place (uint64 arithmetic wraps, as
    intended); `scratch`: an array of h's shape for the shifted values."""
    tmp = np.empty_like(h) if scratch is None else scratch
    for shift, multiplier in ((30, _M1), (27, _M2), (31, None)):
        np.right_shift(h, np.uint64(shift), out=tmp)
        h ^= tmp
        if multiplier is not None:
            h *= multiplier
    return h


def _column_bits(column: pa.Array | pa.ChunkedArray, out: np.ndarray | None = None) -> np.ndarray:
    """64 bits per value: a number's float64 bits (-0.0 as 0.0, every NaN/missing as one
    canonical NaN); a text value's hash of its UTF-8 bytes (missing: the canonical NaN).
    `out`: a uint64 array to write them to (a number column's are computed in it)."""
    if tabular.is_text(column.type):
        encoded = pc.dictionary_encode(column)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        words = encoded.dictionary.to_pylist()
        table = np.array(
            [(zlib.crc32(w.encode()) << 32) | zlib.adler32(w.encode()) for w in words]
            + [int(_CANONICAL_NAN)],
            dtype=np.uint64,
        )
        indices = encoded.indices
        index = tabular.values_of(indices, f"int{indices.type.bit_width}", len(words))
        if out is None:
            return table[index]
        return np.take(table, index, out=out)
    values = tabular.to_float(column)
    bits = np.empty(len(values), np.uint64) if out is None else out
    np.add(values, 0.0, out=bits.view(np.float64))  # -0.0 + 0.0 is +0.0, the rest unchanged
    if np.isnan(values.sum()):  # a NaN somewhere (or inf - inf): one canonical NaN
        bits[np.isnan(values)] = _CANONICAL_NAN
    return bits


def row_hash(table: pa.Table | pa.RecordBatch, seed: int) -> np.ndarray:
    """A 64-bit hash of each row's values, columns in name order. In place, two scratch
    arrays for the whole row: the same bits as mixing into new arrays, 8-25% less CPU
    at 1M rows x 21 (0.16 -> 0.12-0.15 s; preprocess's main thread; figure 6)."""
    n = table.num_rows
    scratch, bits = np.empty(n, np.uint64), np.empty(n, np.uint64)
    h = _mix(np.full(n, np.uint64(seed & 0xFFFFFFFFFFFFFFFF), dtype=np.uint64), scratch)
    for name in sorted(table.schema.names):
        h ^= _column_bits(table.column(name), bits)
        _mix(h, scratch)
    return h


def assign_splits(hashes: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    unit = (hashes >> np.uint64(11)).astype(np.float64) * 2.0**-53
    split = np.zeros(hashes.shape[0], dtype=np.uint8)
    split[unit < config.test_fraction + config.validation_fraction] = 1
    split[unit < config.test_fraction] = 2
    return split


# --- statistics ---------------------------------------------------------------------------


@dataclass
class NumericStats:
    """count/mean/M2 merged batch by batch (Chan et al.), plus min/max/missing."""

    count: float = 0.0
    mean: float = 0.0
    m2: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf
    missing: int = 0

    def update(self, values: np.ndarray) -> None:
        nan = np.isnan(values)
        if nan.any():
            self.missing += int(nan.sum())
            values = values[~nan]
        n = float(values.size)
        if not n:
            return
        mean = float(values.mean())
        centered = values - mean
        m2 = float(np.square(centered, out=centered).sum())  # no BLAS: threads contend
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total
        self.minimum = min(self.minimum, float(values.min()))
        self.maximum = max(self.maximum, float(values.max()))

    def describe(self) -> dict[str, Any]:
        return profiles.describe_numeric(
            int(self.count), self.missing, self.mean, self.m2, self.minimum, self.maximum
        )


@dataclass
class TextStats:
    counts: Counter[str] = field(default_factory=Counter)
    missing: int = 0

    def update(self, column: pa.Array) -> None:
        self.missing += column.null_count
        for item in pc.value_counts(column.drop_null()).to_pylist():
            self.counts[str(item["values"])] += int(item["counts"])

    def describe(self) -> dict[str, Any]:
        return profiles.describe_categorical(self.counts, self.missing)


def column_stats(inputs: Inputs) -> dict[str, NumericStats | TextStats]:
    return {c: TextStats() if c in inputs.text else NumericStats() for c in inputs.header}


def update_stats(stats: dict[str, NumericStats | TextStats], batch: pa.RecordBatch) -> None:
    for name, stat in stats.items():
        column = batch.column(name)
        if isinstance(stat, TextStats):
            stat.update(column)
        else:
            stat.update(tabular.to_float(column))


# --- the step -----------------------------------------------------------------------------


@dataclass
class _Run:
    """What one pass over the inputs produced."""

    rows: np.ndarray  # per split id (train, validation, test, dropped)
    positives: np.ndarray  # per split, target == 1
    files: dict[str, int]
    stats: dict[str, NumericStats | TextStats]
    sample: list[pa.RecordBatch]


def _one_pass(inputs: Inputs, output_dir: Path, config: PreprocessConfig, host: str | None) -> _Run:
    """Stream every batch: check, hash and split it, append it to its split's (part's)
    Parquet file, merge its statistics. Memory stays at a few batches whatever the data
    size."""
    features = [c for c in inputs.header if c != config.target_column]
    schema = pa.schema(
        [(c, pa.string() if c in inputs.text else pa.float64()) for c in inputs.header]
    )
    parts = config.parts
    paths = shards.split_paths(output_dir, SPLITS, parts, host, SPLIT_SUFFIX)
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    # Uncompressed, dictionary encoding only for text: measured ~4x faster to write than
    # the defaults (snappy, dictionary everywhere) for float columns, and no slower to read.
    writers = [
        pq.ParquetWriter(
            path,
            schema,
            compression="none",
            use_dictionary=sorted(inputs.text) or False,
            write_statistics=False,
        )
        for path in paths
    ]
    run = _Run(np.zeros(4, np.int64), np.zeros(3, np.int64), {}, column_stats(inputs), [])
    sampled = 0
    try:
        for path in inputs.files:
            run.files.setdefault(inputs.source(path), 0)
        for path, batch in prefetch(iter_batches(inputs)):
            source = inputs.source(path)
            run.files[source] += batch.num_rows
            target = tabular.to_float(batch.column(config.target_column))
            check_target(target, source, config)
            hashes = row_hash(batch, config.seed)
            split = assign_splits(hashes, config)
            split[np.isnan(target)] = DROPPED
            run.rows += np.bincount(split, minlength=4)
            if config.problem_type == "binary_classification":
                run.positives += np.bincount(split[target == 1], minlength=4)[:3]
            kept = (
                batch
                if not run.rows[DROPPED]
                else batch.filter(tabular.arrow_mask(split != DROPPED))
            )
            kept_split = split if kept is batch else split[split != DROPPED]
            update_stats(run.stats, kept)
            # each row's writer: its split's part (another slice of the same hash)
            writer_of = kept_split.astype(np.int64) * parts
            if parts > 1:
                kept_hashes = hashes if kept is batch else hashes[split != DROPPED]
                writer_of += shards.part_of(kept_hashes, parts)
            for i, writer in enumerate(writers):
                part = kept.filter(tabular.arrow_mask(writer_of == i))
                if part.num_rows:
                    writer.write_batch(part)
            if sampled < config.sample_rows:
                test = kept.filter(tabular.arrow_mask(kept_split == 2)).select(features)
                test = test.slice(0, config.sample_rows - sampled)
                run.sample.append(test)
                sampled += test.num_rows
    finally:
        for writer in writers:
            writer.close()
    return run


def preprocess(
    input_dir: Path, output_dir: Path, config: PreprocessConfig, host: str | None = None
) -> dict[str, Any]:
    """Run the whole step; returns the profile (also written to profile/profile.json).

    `host`: this host's name when the job has several (its files go under its own prefix,
    its profile carries the mergeable ``partial``)."""
    if host is not None and not any(p.is_file() for p in input_dir.rglob("*")):
        raise EmptyInputError(
            f"host {host} received no raw objects: ShardedByS3Key gives each host whole S3 "
            "objects, so the raw data needs at least as many data files as processing hosts"
        )
    inputs = scan_inputs(input_dir, config)
    if config.target_column in inputs.text:
        raise _text_target(inputs, config)
    while True:
        try:
            run = _one_pass(inputs, output_dir, config, host)
            break
        except _NewTextColumnsError as exc:  # start again with those columns as text
            inputs.text |= exc.columns
            if config.target_column in inputs.text:
                raise _text_target(inputs, config) from exc
    rows = run.rows
    warnings = [
        f"{name} has a header and no data rows (ignored)" for name, n in run.files.items() if not n
    ]
    total = int(rows[:3].sum())
    if total == 0:
        raise EmptyInputError(
            f"no usable data rows in {input_dir.name}/ (files: {list(run.files)})"
            + (f"; {'; '.join(warnings)}" if warnings else "")
        )
    for i, name in enumerate(SPLITS):
        if rows[i] == 0 and host is None:  # one host's shard may lack a split; the union not
            raise EmptyInputError(
                f"the {name} split is empty: {total} rows are too few for test_fraction "
                f"{config.test_fraction} and validation_fraction {config.validation_fraction}"
            )

    features = [c for c in inputs.header if c != config.target_column]
    sample_path = shards.output_file(output_dir, "sample", "sample.csv", host)
    sample_path.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(pa.Table.from_batches(run.sample), sample_path)

    profile: dict[str, Any] = {
        "target_column": config.target_column,
        "problem_type": config.problem_type,
        "feature_names": features,
        "ignored_columns": list(config.ignore_columns),
        "rows": {
            "total": total,
            **{name: int(rows[i]) for i, name in enumerate(SPLITS)},
            "dropped_missing_target": int(rows[DROPPED]),
        },
        "files": run.files,
        "split": {
            "method": "hash of row values (columns in name order)",
            "seed": config.seed,
            "test_fraction": config.test_fraction,
            "validation_fraction": config.validation_fraction,
        },
        "columns": {name: stat.describe() for name, stat in run.stats.items()},
        "warnings": warnings,
    }
    if shards.per_host(host, config.parts):
        profile["host"] = host
        profile["partial"] = profiles.partial(run.stats, rows, run.positives, SPLITS)
    if config.problem_type == "binary_classification":
        profile["class_balance"] = {
            name: {"rows": int(rows[i]), "positive": int(run.positives[i])}
            for i, name in enumerate(SPLITS)
        }
    profile_path = shards.output_file(output_dir, "profile", "profile.json", host)
    profile_path.parent.mkdir(parents=True, exist_ok=True)
    profile_path.write_text(json.dumps(profile, indent=2) + "\n", encoding="utf-8")
    return profile


def _text_target(inputs: Inputs, config: PreprocessConfig) -> SchemaError:
    for path in inputs.files:
        values = tabular.sample_values(path, config.target_column, inputs.root)
        texts = [v for v in values if isinstance(v, str)]
        try:
            [float(v) for v in texts]
        except ValueError:
            return SchemaError(
                f"{inputs.source(path)}: target column {config.target_column!r} must hold "
                f"numbers; found {texts[:5]}"
            )
    return SchemaError(f"target column {config.target_column!r} must hold numbers")


def main() -> None:
    config = PreprocessConfig.from_env()
    opt_ml = OptMl.from_env()
    cluster = Cluster.from_file(opt_ml.processing_resource_config)
    host = cluster.current_host if cluster.size > 1 else None
    profile = preprocess(opt_ml.processing_input("raw"), opt_ml.processing_output(""), config, host)
    for warning in profile["warnings"]:  # also in the profile (and the execution's output)
        print(f"WARNING {warning}", file=sys.stdout, flush=True)
    print(
        "preprocess: " + json.dumps({"rows": profile["rows"], "target": config.target_column}),
        file=sys.stdout,
        flush=True,
    )
