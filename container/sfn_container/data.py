"""Raw data sets in the pipeline's CSV convention (header row, numeric columns, ``target``).

* :func:`write_dataset` exports a real data set that ships inside scikit-learn (read from
  the installed package, no download): ``breast_cancer`` (binary classification, 569 rows
  x 30 features) or ``diabetes`` (regression, 442 x 10).
* :func:`write_synthetic` generates a seeded data set of any size, written in blocks so
  memory stays flat (for scale benchmarks).

CLI: ``python -m sfn_container data --dataset breast_cancer --out DIR`` or
``python -m sfn_container data --synthetic --rows N --features F --problem-type ... --out DIR``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from sfn_container.errors import ConfigError

DATASETS = {"breast_cancer": "binary_classification", "diabetes": "regression"}
PROBLEM_TYPES = ("binary_classification", "regression")
TARGET = "target"
_BLOCK_ROWS = 50_000


def _column_name(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def _format_rows(values: np.ndarray, decimals: int | None) -> str:
    rows = np.round(values, decimals).tolist() if decimals is not None else values.tolist()
    return "".join(",".join(map(_fmt, row)) + "\n" for row in rows)


def _fmt(value: float) -> str:
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _write(path: Path, columns: list[str], values: np.ndarray, decimals: int | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(",".join(columns) + "\n")
        for start in range(0, len(values), _BLOCK_ROWS):
            fh.write(_format_rows(values[start : start + _BLOCK_ROWS], decimals))
    return path


def write_dataset(name: str, out_dir: Path | str, filename: str | None = None) -> Path:
    """Export a scikit-learn data set as ``<out_dir>/<name>.csv``; returns the path."""
    if name not in DATASETS:
        raise ConfigError(f"unknown data set {name!r}; choose one of {sorted(DATASETS)}")
    from sklearn import datasets  # heavy import, only when used

    loader = getattr(datasets, f"load_{name}")
    # diabetes: the original (unscaled) measurements, as a raw data set would hold them
    bunch = loader(scaled=False) if name == "diabetes" else loader()
    columns = [_column_name(str(n)) for n in bunch.feature_names] + [TARGET]
    values = np.column_stack([bunch.data, bunch.target]).astype(np.float64)
    return _write(Path(out_dir) / (filename or f"{name}.csv"), columns, values, decimals=None)


def synthetic_arrays(
    rows: int, features: int, problem_type: str, seed: int = 0, start: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``start .. start+rows`` of the synthetic data set (features, target).

    Each block of rows is seeded by its position, so any slice is reproducible on its own
    and the same (rows, features, seed) always gives the same data.
    """
    if problem_type not in PROBLEM_TYPES:
        raise ConfigError(f"problem_type must be one of {PROBLEM_TYPES}, got {problem_type!r}")
    if features < 2:
        raise ConfigError("synthetic data needs at least 2 features")
    weights = np.random.default_rng([seed, 1]).normal(size=features)
    xs, ys = [], []
    for block_start in range(start, start + rows, _BLOCK_ROWS):
        n = min(_BLOCK_ROWS, start + rows - block_start)
        rng = np.random.default_rng([seed, 2, block_start])
        x = rng.normal(size=(n, features))
        signal = x @ weights / np.sqrt(features) + 0.8 * x[:, 0] * x[:, 1] + np.sin(2 * x[:, 2])
        noise = rng.normal(scale=0.5, size=n)
        if problem_type == "binary_classification":
            y = (signal + noise > 0).astype(np.float64)
        else:
            y = 3.0 * signal + noise
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def write_synthetic(
    out_dir: Path | str,
    rows: int,
    features: int,
    problem_type: str = "binary_classification",
    seed: int = 0,
    filename: str | None = None,
) -> Path:
    """Write a synthetic data set (``f0..f{F-1}`` and ``target``, 4 decimals); returns the path."""
    if rows < 1:
        raise ConfigError("rows must be >= 1")
    path = Path(out_dir) / (filename or f"synthetic_{rows}x{features}_{problem_type}.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = [f"f{i}" for i in range(features)] + [TARGET]
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(",".join(columns) + "\n")
        for start in range(0, rows, _BLOCK_ROWS):
            n = min(_BLOCK_ROWS, rows - start)
            x, y = synthetic_arrays(n, features, problem_type, seed, start)
            fh.write(_format_rows(np.column_stack([x, y]), decimals=4))
    return path
