"""Preprocess (SageMaker Processing job): raw CSVs -> train/validation/test splits,
a data profile and a smoke-test sample.

Reads every ``*.csv`` under ``$OPT_ML/processing/input/raw`` (same header in every file).
Configuration comes from the job environment: ``TARGET_COLUMN`` (default ``target``),
``PROBLEM_TYPE`` (``binary_classification`` | ``regression``, default the former), and
optionally ``TEST_FRACTION`` / ``VALIDATION_FRACTION`` (0.15 each), ``SPLIT_SEED`` (0) and
``SAMPLE_ROWS`` (5).

Checks: a header with unique names; the target column present; at least one feature;
every value numeric (the error names each bad column with an example and line); a 0/1
target for classification, a finite one for regression.

Missing values: an empty field (or ``nan``) is a missing value. Feature values stay
missing (XGBoost learns a default direction for them; imputing would hide that from the
model); rows whose *target* is missing cannot be used and are dropped (counted in the
profile).

Split: each row goes to a split by a 64-bit hash of its parsed values (columns taken in
name order, seeded by ``SPLIT_SEED``), not by its position. A row therefore stays in the
same split when new rows are appended, files are renamed or rows are re-ordered, so the
test split of a refreshed data set contains the old test rows and champion and challenger
are compared fairly; identical rows never straddle train and test.

Outputs (under ``$OPT_ML/processing/output``): ``train/train.csv``,
``validation/validation.csv``, ``test/test.csv`` (the original lines, header kept; next
to each, a binary copy of its parsed values that ``train`` and ``evaluate`` read instead
of parsing the CSV again, see :mod:`sfn_container.binsplit`),
``profile/profile.json`` (rows per split, per-column count/missing/mean/std/min/max, class
balance) and ``sample/sample.csv`` (header + a few test rows without the target column).
The input is streamed in blocks, so memory stays flat whatever the data size.

Several hosts (``$OPT_ML/config/resourceconfig.json``) or ``SPLIT_PARTS`` > 1: each host
splits its shard of the raw objects the same way and writes its files under its own
prefix, the profile with the raw moments a merge needs (:mod:`sfn_container.shards`,
:mod:`sfn_container.profiles`).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sfn_container import csvdata, profiles, shards
from sfn_container.binsplit import SplitWriter
from sfn_container.distributed import Cluster
from sfn_container.errors import ConfigError, EmptyInputError, SchemaError
from sfn_container.paths import OptMl

PROBLEM_TYPES = ("binary_classification", "regression")
SPLITS = ("train", "validation", "test")
DROPPED = 3  # split id of rows whose target is missing

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
    parts: int = 1

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> PreprocessConfig:
        env = dict(os.environ if env is None else env)
        try:
            config = cls(
                target_column=env.get("TARGET_COLUMN", "target").strip(),
                problem_type=env.get("PROBLEM_TYPE", "binary_classification").strip(),
                test_fraction=float(env.get("TEST_FRACTION", "0.15")),
                validation_fraction=float(env.get("VALIDATION_FRACTION", "0.15")),
                seed=int(env.get("SPLIT_SEED", "0")),
                sample_rows=int(env.get("SAMPLE_ROWS", "5")),
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


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, vectorised (uint64 arithmetic wraps, as intended)."""
    h ^= h >> np.uint64(30)
    h *= _M1
    h ^= h >> np.uint64(27)
    h *= _M2
    h ^= h >> np.uint64(31)
    return h


def row_hash(values: np.ndarray, column_order: list[int], seed: int) -> np.ndarray:
    """A 64-bit hash of each row's float64 values, in ``column_order``; -0.0 and every NaN
    hash like 0.0 and one canonical NaN."""
    n = values.shape[0]
    h = _mix(np.full(n, np.uint64(seed & 0xFFFFFFFFFFFFFFFF), dtype=np.uint64))
    bits = values.view(np.uint64)
    for j in column_order:
        col = values[:, j]
        b = bits[:, j].copy()
        b[np.isnan(col)] = _CANONICAL_NAN
        b[col == 0] = 0
        h = _mix(h ^ b)
    return h


def assign_splits(hashes: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    unit = (hashes >> np.uint64(11)).astype(np.float64) * 2.0**-53
    split = np.zeros(hashes.shape[0], dtype=np.uint8)
    split[unit < config.test_fraction + config.validation_fraction] = 1
    split[unit < config.test_fraction] = 2
    return split


@dataclass
class _ColumnStats:
    """Per-column count/mean/M2 merged block by block (Chan et al.), plus min/max/missing."""

    width: int
    count: np.ndarray = field(init=False)
    mean: np.ndarray = field(init=False)
    m2: np.ndarray = field(init=False)
    minimum: np.ndarray = field(init=False)
    maximum: np.ndarray = field(init=False)
    missing: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.count = np.zeros(self.width)
        self.mean = np.zeros(self.width)
        self.m2 = np.zeros(self.width)
        self.minimum = np.full(self.width, np.nan)
        self.maximum = np.full(self.width, np.nan)
        self.missing = np.zeros(self.width, dtype=np.int64)

    def update(self, values: np.ndarray) -> None:
        if values.shape[0] == 0:
            return
        nan = np.isnan(values)
        data = values
        if nan.any():
            self.missing += nan.sum(axis=0)
            count = (~nan).sum(axis=0).astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.nansum(data, axis=0) / count
                m2 = np.nansum((data - mean) ** 2, axis=0)
        else:  # no missing value in the block: the same sums without nansum's copies
            count = np.full(self.width, float(values.shape[0]))
            mean = data.sum(axis=0) / count
            centered = data - mean
            m2 = np.einsum("ij,ij->j", centered, centered)
        total = self.count + count
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = mean - self.mean
            new_mean = np.where(count > 0, self.mean + delta * count / total, self.mean)
            new_m2 = np.where(
                count > 0, self.m2 + m2 + delta**2 * self.count * count / total, self.m2
            )
        self.mean, self.m2, self.count = new_mean, new_m2, total
        self.minimum = np.fmin(self.minimum, np.fmin.reduce(data, axis=0))
        self.maximum = np.fmax(self.maximum, np.fmax.reduce(data, axis=0))

    def describe(self, names: list[str]) -> dict[str, dict[str, float | int | None]]:
        def num(value: float) -> float | None:
            return None if not np.isfinite(value) else float(value)

        out: dict[str, dict[str, float | int | None]] = {}
        for i, name in enumerate(names):
            count = int(self.count[i])
            std = np.sqrt(self.m2[i] / (count - 1)) if count > 1 else np.nan
            out[name] = {
                "count": count,
                "missing": int(self.missing[i]),
                "mean": num(self.mean[i]) if count else None,
                "std": num(std),
                "min": num(self.minimum[i]),
                "max": num(self.maximum[i]),
            }
        return out


def _check_target(target: np.ndarray, config: PreprocessConfig, source: object) -> None:
    present = target[~np.isnan(target)]
    if config.problem_type == "binary_classification":
        bad = np.unique(present[(present != 0) & (present != 1)])
        if bad.size:
            raise SchemaError(
                f"{source}: target column {config.target_column!r} must hold 0 or 1 for "
                f"binary_classification; found {bad[:5].tolist()}"
            )
    elif not np.isfinite(present).all():
        raise SchemaError(f"{source}: target column {config.target_column!r} has infinite values")


def _check_header(files: list[Path], config: PreprocessConfig) -> list[str]:
    header = csvdata.read_header(files[0])
    if config.target_column not in header:
        raise SchemaError(
            f"{files[0]}: target column {config.target_column!r} not in header; "
            f"columns are {header}"
        )
    if len(header) < 2:
        raise SchemaError(f"{files[0]}: no feature columns besides {config.target_column!r}")
    for path in files[1:]:
        other = csvdata.read_header(path)
        if other != header:
            missing = [c for c in header if c not in other]
            extra = [c for c in other if c not in header]
            raise SchemaError(
                f"{path}: header differs from {files[0].name}: missing {missing}, "
                f"extra {extra}" + ("" if missing or extra else ", order differs")
            )
    return header


def preprocess(
    input_dir: Path, output_dir: Path, config: PreprocessConfig, host: str | None = None
) -> dict:
    """Run the whole step; returns the profile (also written to profile/profile.json).

    `host`: this host's name when the job has several (its files go under its own prefix)."""
    files = _shard_files(input_dir, host)
    header = _check_header(files, config)
    target_idx = header.index(config.target_column)
    features = [c for c in header if c != config.target_column]
    order = sorted(range(len(header)), key=lambda i: header[i])

    parts = config.parts
    out_paths = shards.split_paths(output_dir, SPLITS, parts, host)
    bucket_dtype = np.uint8 if (DROPPED + 1) * parts <= 256 else np.uint16
    for path in out_paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    writers = [SplitWriter(path, header, config.target_column) for path in out_paths]
    stats = _ColumnStats(len(header))
    rows = np.zeros(4, dtype=np.int64)
    positives = np.zeros(3, dtype=np.int64)
    sample: list[bytes] = []
    file_rows: dict[str, int] = {}
    try:
        for path in files:
            file_rows[str(path.relative_to(input_dir))] = 0
            for block in csvdata.iter_blocks(path):
                values = csvdata.parse_block(block, header, path, dtype=np.float64)
                target = values[:, target_idx]
                _check_target(target, config, path)
                hashes = row_hash(values, order, config.seed)
                split = assign_splits(hashes, config)
                split[np.isnan(target)] = DROPPED
                rows += np.bincount(split, minlength=4)
                file_rows[str(path.relative_to(input_dir))] += values.shape[0]
                kept = split != DROPPED
                stats.update(values if kept.all() else values[kept])
                if config.problem_type == "binary_classification":
                    positives += np.bincount(split[target == 1], minlength=4)[:3]
                # the writer of each row; a small dtype: _write_lines repeats it per byte
                bucket = (split.astype(np.int64) * parts + shards.part_of(hashes, parts)).astype(
                    bucket_dtype
                )
                _write_lines(block.data, bucket, values, writers)
                if len(sample) < config.sample_rows:
                    sample.extend(_sample_lines(block.data, split, target_idx, config))
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    for writer in writers:
        writer.close()

    total = int(rows[:3].sum())
    if total == 0:
        raise EmptyInputError(f"no usable data rows in {input_dir} (files: {list(file_rows)})")
    for i, name in enumerate(SPLITS):
        if rows[i] == 0 and host is None:  # one host's shard may lack a split; the union not
            raise EmptyInputError(
                f"the {name} split is empty: {total} rows are too few for test_fraction "
                f"{config.test_fraction} and validation_fraction {config.validation_fraction}"
            )

    sample_path = shards.output_file(output_dir, "sample", "sample.csv", host)
    sample_path.parent.mkdir(parents=True, exist_ok=True)
    sample_header = (",".join(features) + "\n").encode()
    sample_path.write_bytes(sample_header + b"".join(sample[: config.sample_rows]))

    profile = {
        "target_column": config.target_column,
        "problem_type": config.problem_type,
        "feature_names": features,
        "rows": {
            "total": total,
            **{name: int(rows[i]) for i, name in enumerate(SPLITS)},
            "dropped_missing_target": int(rows[DROPPED]),
        },
        "files": file_rows,
        "split": {
            "method": "hash of row values (columns in name order)",
            "seed": config.seed,
            "test_fraction": config.test_fraction,
            "validation_fraction": config.validation_fraction,
        },
        "columns": stats.describe(header),
    }
    if shards.per_host(host, parts):
        profile["host"] = host
        profile["partial"] = profiles.partial(stats, header, rows, positives, SPLITS)
    if config.problem_type == "binary_classification":
        profile["class_balance"] = {
            name: {"rows": int(rows[i]), "positive": int(positives[i])}
            for i, name in enumerate(SPLITS)
        }
    profile_path = shards.output_file(output_dir, "profile", "profile.json", host)
    profile_path.parent.mkdir(parents=True, exist_ok=True)
    profile_path.write_text(json.dumps(profile, indent=2) + "\n", encoding="utf-8")
    return profile


def _shard_files(input_dir: Path, host: str | None) -> list[Path]:
    if host is not None and not any(p.is_file() for p in input_dir.rglob("*")):
        raise EmptyInputError(
            f"host {host} received no raw objects: ShardedByS3Key gives each host whole S3 "
            "objects, so the raw data needs at least as many CSV objects as processing hosts"
        )
    return csvdata.csv_files(input_dir)


def _write_lines(
    data: bytes, split: np.ndarray, values: np.ndarray, writers: list[SplitWriter]
) -> None:
    """Copy each line of ``data`` to its writer's CSV (``split`` holds each row's writer
    index; rows with no writer are skipped), byte-exact, and its parsed values to the
    writer's binary copy (vectorised)."""
    ends = csvdata.line_ends(data)
    lengths = np.diff(ends, prepend=0)
    byte_split = np.repeat(split, lengths)
    buffer = np.frombuffer(data, dtype=np.uint8)
    for i, writer in enumerate(writers):
        rows = split == i
        if rows.any():
            writer.write(buffer[byte_split == i].data, values[rows])


def _sample_lines(
    data: bytes, split: np.ndarray, target_idx: int, config: PreprocessConfig
) -> list[bytes]:
    lines = []
    test_rows = np.flatnonzero(split == 2)[: config.sample_rows]
    if test_rows.size == 0:
        return lines
    ends = csvdata.line_ends(data)
    starts = np.concatenate([[0], ends[:-1]])
    for row in test_rows.tolist():
        fields = data[starts[row] : ends[row] - 1].split(b",")
        del fields[target_idx]
        lines.append(b",".join(fields) + b"\n")
    return lines


def main() -> None:
    config = PreprocessConfig.from_env()
    opt_ml = OptMl.from_env()
    cluster = Cluster.from_file(opt_ml.processing_resource_config)
    host = cluster.current_host if cluster.size > 1 else None
    profile = preprocess(opt_ml.processing_input("raw"), opt_ml.processing_output(""), config, host)
    print(
        "preprocess: " + json.dumps({"rows": profile["rows"], "target": config.target_column}),
        file=sys.stdout,
        flush=True,
    )
