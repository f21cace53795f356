"""Preprocess (SageMaker Processing job): raw data files -> train/validation/test splits,
a data profile and a smoke-test sample.

Reads every CSV, gzip CSV (``.csv.gz``) and Parquet file under
``$OPT_ML/processing/input/raw`` (the same columns in every file, in any order; see
:mod:`sfn_container.tabular`). Configuration comes from the job environment:
``TARGET_COLUMN`` (default ``target``), ``PROBLEM_TYPE`` (``binary_classification`` |
``regression``, default the former), ``IGNORE_COLUMNS`` (a JSON list of columns to drop,
e.g. an id), and optionally ``TEST_FRACTION`` / ``VALIDATION_FRACTION`` (0.15 each),
``SPLIT_SEED`` (0) and ``SAMPLE_ROWS`` (5).

The step is four functions, one concern each (multi-host sharding can replace any one):
:func:`read_inputs` (files -> one table, columns checked), :func:`check_target` (what needs
all the data: the target's values, per file), :func:`assign_splits` (row hashes ->
split ids) and :func:`profile_columns` (statistics); :func:`preprocess` composes them and
writes the outputs.

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
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sfn_container import tabular
from sfn_container.errors import ConfigError, EmptyInputError, SchemaError
from sfn_container.paths import OptMl

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
        if self.target_column in self.ignore_columns:
            raise ConfigError(f"IGNORE_COLUMNS lists the target column {self.target_column!r}")


# --- reading ----------------------------------------------------------------------------


@dataclass
class Inputs:
    """All raw files as one table (columns in the first file's order, ignored ones dropped)."""

    table: pa.Table
    files: dict[str, int]  # display name -> rows
    file_of_row: np.ndarray  # index into `files` of each row (for messages)
    warnings: list[str]


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


def read_inputs(input_dir: Path, config: PreprocessConfig) -> Inputs:
    """Read every data file; the same columns in each (any order); a column that is text in
    any file is text in all (a file where it happens to hold only numbers is converted)."""
    files = tabular.data_files(input_dir)
    tables: list[pa.Table] = []
    names: dict[str, int] = {}
    warnings: list[str] = []
    header: list[str] | None = None
    first = ""
    for path in files:
        source = tabular.display_name(path, input_dir)
        table = tabular.read_table(path, input_dir)
        if header is None:
            header, first = table.column_names, source
            _check_columns(header, config, source)
        elif sorted(table.column_names) != sorted(header):
            missing = [c for c in header if c not in table.column_names]
            extra = [c for c in table.column_names if c not in header]
            raise SchemaError(
                f"{source}: columns differ from {first}: missing {missing}, extra {extra}"
            )
        if table.num_rows == 0:
            warnings.append(f"{source} has a header and no data rows (ignored)")
        names[source] = table.num_rows
        kept = [c for c in header if c not in config.ignore_columns]
        tables.append(table.select(kept))
    assert header is not None
    text = {
        name
        for t in tables
        for name, kind in zip(t.column_names, t.schema.types, strict=True)
        if not tabular.is_numeric(kind)
    }
    if config.target_column in text:
        example = next(
            t for t in tables if not tabular.is_numeric(t.schema.field(config.target_column).type)
        )
        values = pc.unique(example.column(config.target_column)).drop_null().to_pylist()[:5]
        raise SchemaError(
            f"{_file_with_text(tables, names, config.target_column)}: target column "
            f"{config.target_column!r} must hold numbers; found {values}"
        )
    unified = [_unify(t, text) for t in tables]
    table = (
        unified[0] if len(unified) == 1 else pa.concat_tables(unified, promote_options="permissive")
    )
    counts = list(names.values())
    file_of_row = np.repeat(np.arange(len(counts)), counts)
    return Inputs(
        table.combine_chunks() if len(unified) > 1 else table, names, file_of_row, warnings
    )


def _file_with_text(tables: list[pa.Table], files: dict[str, int], column: str) -> str:
    for table, name in zip(tables, files, strict=True):
        if not tabular.is_numeric(table.schema.field(column).type):
            return name
    return "?"


def _unify(table: pa.Table, text: set[str]) -> pa.Table:
    columns = []
    for name in table.column_names:
        column = table.column(name)
        if name in text:
            column = tabular.as_text(column)
        elif not pa.types.is_floating(column.type):
            column = pc.cast(column, pa.float64())
        columns.append(column)
    return pa.table(columns, names=table.column_names)


# --- whole-data checks --------------------------------------------------------------------


def check_target(target: np.ndarray, inputs: Inputs, config: PreprocessConfig) -> None:
    """What only all the data can show: a binary target holding other values than 0/1, or
    an infinite regression target. Names the file, the column and the values found."""
    present = ~np.isnan(target)
    if config.problem_type == "binary_classification":
        bad = present & (target != 0) & (target != 1)
        detail = "must hold 0 or 1 for binary_classification"
    else:
        bad = present & ~np.isfinite(target)
        detail = "has infinite values"
    if not bad.any():
        return
    names = list(inputs.files)
    problems = []
    for index in np.unique(inputs.file_of_row[bad])[:_MAX_FILES]:
        in_file = bad & (inputs.file_of_row == index)
        values = np.unique(target[in_file])[:5].tolist()
        problems.append(f"{names[index]}: found {values}")
    raise SchemaError(f"target column {config.target_column!r} {detail}; " + "; ".join(problems))


_MAX_FILES = 5


# --- splitting ----------------------------------------------------------------------------


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, vectorised (uint64 arithmetic wraps, as intended)."""
    h ^= h >> np.uint64(30)
    h *= _M1
    h ^= h >> np.uint64(27)
    h *= _M2
    h ^= h >> np.uint64(31)
    return h


def _column_bits(column: pa.ChunkedArray) -> np.ndarray:
    """64 bits per value: a number's float64 bits (-0.0 as 0.0, every NaN/missing as one
    canonical NaN); a text value's hash of its UTF-8 bytes (missing: the canonical NaN)."""
    if tabular.is_text(column.type):
        encoded = pc.dictionary_encode(column).combine_chunks()
        words = encoded.dictionary.to_pylist()
        table = np.array(
            [(zlib.crc32(w.encode()) << 32) | zlib.adler32(w.encode()) for w in words]
            + [int(_CANONICAL_NAN)],
            dtype=np.uint64,
        )
        index = encoded.indices.fill_null(len(words)).to_numpy(zero_copy_only=False)
        return table[index]
    values = tabular.to_float(column)
    bits = values.view(np.uint64).copy()
    bits[np.isnan(values)] = _CANONICAL_NAN
    bits[values == 0] = 0
    return bits


def row_hash(table: pa.Table, seed: int) -> np.ndarray:
    """A 64-bit hash of each row's values, columns in name order."""
    h = _mix(np.full(table.num_rows, np.uint64(seed & 0xFFFFFFFFFFFFFFFF), dtype=np.uint64))
    for name in sorted(table.column_names):
        h = _mix(h ^ _column_bits(table.column(name)))
    return h


def assign_splits(hashes: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    unit = (hashes >> np.uint64(11)).astype(np.float64) * 2.0**-53
    split = np.zeros(hashes.shape[0], dtype=np.uint8)
    split[unit < config.test_fraction + config.validation_fraction] = 1
    split[unit < config.test_fraction] = 2
    return split


# --- statistics ---------------------------------------------------------------------------


def profile_columns(table: pa.Table) -> dict[str, dict[str, Any]]:
    """Per column: count, missing, and mean/std/min/max (numbers) or distinct values and
    the most frequent ones (text)."""

    def num(value: Any) -> float | None:
        return None if value is None or not np.isfinite(value) else float(value)

    out: dict[str, dict[str, Any]] = {}
    for name in table.column_names:
        column = table.column(name)
        missing = column.null_count
        if tabular.is_text(column.type):
            counts = pc.value_counts(column.drop_null())
            top = sorted(
                ((str(v["values"]), int(v["counts"])) for v in counts.to_pylist()),
                key=lambda item: (-item[1], item[0]),
            )
            out[name] = {
                "type": "categorical",
                "count": len(column) - missing,
                "missing": missing,
                "distinct": len(counts),
                "top": dict(top[:10]),
            }
            continue
        values = tabular.to_float(column)
        nan = np.isnan(values)
        count = int(values.size - nan.sum())
        present = values[~nan] if count < values.size else values
        out[name] = {
            "type": "numeric",
            "count": count,
            "missing": int(values.size - count),
            "mean": num(present.mean()) if count else None,
            "std": num(present.std(ddof=1)) if count > 1 else None,
            "min": num(present.min()) if count else None,
            "max": num(present.max()) if count else None,
        }
    return out


# --- the step -----------------------------------------------------------------------------


def preprocess(input_dir: Path, output_dir: Path, config: PreprocessConfig) -> dict[str, Any]:
    """Run the whole step; returns the profile (also written to profile/profile.json)."""
    inputs = read_inputs(input_dir, config)
    table = inputs.table
    target = tabular.to_float(table.column(config.target_column))
    check_target(target, inputs, config)
    split = assign_splits(row_hash(table, config.seed), config)
    split[np.isnan(target)] = DROPPED
    rows = np.bincount(split, minlength=4)

    total = int(rows[:3].sum())
    if total == 0:
        raise EmptyInputError(
            f"no usable data rows in {input_dir.name}/ (files: {list(inputs.files)})"
            + (f"; {'; '.join(inputs.warnings)}" if inputs.warnings else "")
        )
    for i, name in enumerate(SPLITS):
        if rows[i] == 0:
            raise EmptyInputError(
                f"the {name} split is empty: {total} rows are too few for test_fraction "
                f"{config.test_fraction} and validation_fraction {config.validation_fraction}"
            )

    kept = table if rows[DROPPED] == 0 else table.filter(pa.array(split != DROPPED))
    kept_split = split[split != DROPPED] if rows[DROPPED] else split
    for i, name in enumerate(SPLITS):
        path = output_dir / name / f"{name}{SPLIT_SUFFIX}"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(kept.filter(pa.array(kept_split == i)), path, compression="none")

    features = [c for c in table.column_names if c != config.target_column]
    test_rows = np.flatnonzero(kept_split == 2)[: config.sample_rows]
    sample_path = output_dir / "sample" / "sample.csv"
    sample_path.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(kept.select(features).take(pa.array(test_rows)), sample_path)

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
        "files": inputs.files,
        "split": {
            "method": "hash of row values (columns in name order)",
            "seed": config.seed,
            "test_fraction": config.test_fraction,
            "validation_fraction": config.validation_fraction,
        },
        "columns": profile_columns(kept),
        "warnings": inputs.warnings,
    }
    if config.problem_type == "binary_classification":
        kept_target = target[split != DROPPED]
        profile["class_balance"] = {
            name: {"rows": int(rows[i]), "positive": int((kept_target[kept_split == i] == 1).sum())}
            for i, name in enumerate(SPLITS)
        }
    profile_path = output_dir / "profile" / "profile.json"
    profile_path.parent.mkdir(parents=True, exist_ok=True)
    profile_path.write_text(json.dumps(profile, indent=2) + "\n", encoding="utf-8")
    return profile


def main() -> None:
    config = PreprocessConfig.from_env()
    opt_ml = OptMl.from_env()
    profile = preprocess(opt_ml.processing_input("raw"), opt_ml.processing_output(""), config)
    for warning in profile["warnings"]:
        print(f"WARNING {warning}", file=sys.stdout, flush=True)
    print(
        "preprocess: " + json.dumps({"rows": profile["rows"], "target": config.target_column}),
        file=sys.stdout,
        flush=True,
    )
