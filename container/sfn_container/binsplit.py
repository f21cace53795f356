"""A binary copy of a split, next to its CSV, so ``train`` and ``evaluate`` skip parsing.

The CSV stays the contract (what users see, what any tool reads). Next to
``<dir>/<name>.csv`` preprocess also writes:

* ``<name>.features.npy``  float32, shape (rows, features), C order: every column but the
  target, in header order (the values the CSV parser gives, NaN for a missing value)
* ``<name>.target.npy``    float32, shape (rows,)
* ``<name>.binary.json``   the manifest: format, the CSV's file name, byte size and CRC-32,
  its header, the target column, the row count and the two array files

A reader uses the copy only when it is *consistent*: every CSV in the channel has a
manifest whose size, CRC-32 and header match the CSV as it is now, and whose arrays have
the promised shape and dtype. Otherwise (no copy, an edited or replaced CSV, a truncated
array) it says why on stdout and parses the CSVs, so the result is the same either way:
the parser reads float32 the same way (decimal -> double -> float32). The files travel
with the split: a training channel or processing input is the whole S3 prefix.
"""

from __future__ import annotations

import json
import mmap
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from sfn_container import csvdata

FORMAT = "sfn-container/binary-split/1"
MANIFEST_SUFFIX = ".binary.json"
FEATURES_SUFFIX = ".features.npy"
TARGET_SUFFIX = ".target.npy"
_DTYPE = np.dtype("<f4")


def manifest_path(csv_path: Path) -> Path:
    return csv_path.with_name(csv_path.stem + MANIFEST_SUFFIX)


def _npy_header(handle: BinaryIO, shape: tuple[int, ...]) -> None:
    # numpy pads the header so axis 0 can grow in place: (0, F) and (n, F) are equally long
    np.lib.format.write_array_header_1_0(
        handle, {"descr": _DTYPE.str, "fortran_order": False, "shape": shape}
    )


class SplitWriter:
    """Writes one split: the CSV bytes (exactly as given) and, row for row, the binary copy.

    ``write(csv_chunk, values)`` takes the chunk's lines and their parsed values (rows x
    header columns, any float dtype). ``close()`` finishes the arrays and writes the
    manifest last, so a job that dies half-way leaves no manifest and no reader trusts it.
    """

    def __init__(self, csv_path: Path, header: list[str], target_column: str) -> None:
        self.csv_path = csv_path
        self.header = header
        self.target_column = target_column
        self._target_idx = header.index(target_column)
        self._feature_idx = [i for i, c in enumerate(header) if c != target_column]
        self._contiguous = self._feature_idx == list(range(len(self._feature_idx)))
        self._rows = 0
        self._crc = 0
        self._size = 0
        stem = csv_path.stem
        self._features_path = csv_path.with_name(stem + FEATURES_SUFFIX)
        self._target_path = csv_path.with_name(stem + TARGET_SUFFIX)
        manifest_path(csv_path).unlink(missing_ok=True)
        self._csv = csv_path.open("wb")
        self._features = self._features_path.open("wb")
        self._target = self._target_path.open("wb")
        _npy_header(self._features, (0, len(self._feature_idx)))
        _npy_header(self._target, (0,))
        self._data_offsets = (self._features.tell(), self._target.tell())
        self._write_csv((",".join(header) + "\n").encode())

    def _write_csv(self, chunk: bytes | memoryview) -> None:
        self._csv.write(chunk)
        self._crc = zlib.crc32(chunk, self._crc)
        self._size += len(chunk)

    def write(self, csv_chunk: bytes | memoryview, values: np.ndarray) -> None:
        if not values.shape[0]:
            return
        self._write_csv(csv_chunk)
        if self._contiguous:  # the target is the last column: one slice, one cast
            features = values[:, : len(self._feature_idx)]
        else:
            features = values[:, self._feature_idx]
        self._features.write(np.ascontiguousarray(features, dtype=_DTYPE).data)
        target = values[:, self._target_idx]
        self._target.write(np.ascontiguousarray(target, dtype=_DTYPE).data)
        self._rows += values.shape[0]

    def close(self) -> None:
        """Finish both arrays and write the manifest (call only when the split is whole)."""
        for handle, shape, offset in (
            (self._features, (self._rows, len(self._feature_idx)), self._data_offsets[0]),
            (self._target, (self._rows,), self._data_offsets[1]),
        ):
            handle.seek(0)
            _npy_header(handle, shape)
            if handle.tell() != offset:  # cannot happen with numpy's growth padding
                raise RuntimeError(f"{handle.name}: the .npy header changed length")
        self.abort()
        manifest = {
            "format": FORMAT,
            "csv": self.csv_path.name,
            "csv_bytes": self._size,
            "csv_crc32": self._crc,
            "columns": self.header,
            "target_column": self.target_column,
            "rows": self._rows,
            "features": self._features_path.name,
            "target": self._target_path.name,
        }
        manifest_path(self.csv_path).write_text(json.dumps(manifest, indent=1) + "\n")

    def abort(self) -> None:
        """Close the files without a manifest (the CSV is kept; readers will parse it)."""
        for handle in (self._csv, self._features, self._target):
            handle.close()


class StaleCopyError(Exception):
    """The binary copy does not describe the CSV as it is now (the message says why)."""


def _crc32(path: Path) -> int:
    with path.open("rb") as fh:
        if path.stat().st_size == 0:
            return 0
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
            return zlib.crc32(view)


def _load_one(csv_path: Path, header: list[str], target: str) -> tuple[np.ndarray, np.ndarray]:
    path = manifest_path(csv_path)
    if not path.is_file():
        raise StaleCopyError(f"no {path.name}")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StaleCopyError(f"{path.name} is unreadable: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StaleCopyError(f"{path.name}: not format {FORMAT}")
    if manifest.get("csv") != csv_path.name:
        raise StaleCopyError(f"{path.name} describes {manifest.get('csv')!r}, not {csv_path.name}")
    if manifest.get("columns") != header or manifest.get("target_column") != target:
        raise StaleCopyError(f"{path.name}: columns or target column differ from {csv_path.name}")
    if manifest.get("csv_bytes") != csv_path.stat().st_size:
        raise StaleCopyError(f"{csv_path.name} changed size since the binary copy was written")
    if manifest.get("csv_crc32") != _crc32(csv_path):
        raise StaleCopyError(f"{csv_path.name} changed content since the binary copy was written")
    rows = manifest.get("rows")
    try:
        x = np.load(csv_path.with_name(str(manifest["features"])), mmap_mode="r")
        y = np.load(csv_path.with_name(str(manifest["target"])), mmap_mode="r")
    except (OSError, ValueError, KeyError) as exc:
        raise StaleCopyError(f"the arrays of {path.name} are unreadable: {exc}") from exc
    if x.dtype != _DTYPE or y.dtype != _DTYPE or x.ndim != 2 or y.ndim != 1:
        raise StaleCopyError(f"the arrays of {path.name} are not 2-d/1-d float32")
    if x.shape != (rows, len(header) - 1) or y.shape != (rows,):
        raise StaleCopyError(f"the arrays of {path.name} do not hold {rows} rows")
    return np.asarray(x), np.asarray(y)  # plain ndarrays viewing the maps


def load(
    files: list[Path], header: list[str], columns: list[str], target: str
) -> tuple[np.ndarray, np.ndarray]:
    """Features (ordered as ``columns`` minus ``target``) and target of every CSV in
    ``files`` (all with ``header``) from their binary copies; raises :class:`StaleCopyError`
    when any copy is absent or does not match its CSV."""
    parts = [_load_one(path, header, target) for path in files]
    x = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
    y = parts[0][1] if len(parts) == 1 else np.concatenate([p[1] for p in parts])
    stored = [c for c in header if c != target]
    wanted = [c for c in columns if c != target]
    if wanted != stored:
        x = np.ascontiguousarray(x[:, [stored.index(c) for c in wanted]])
    return x, y


def read_split(
    files: list[Path], header: list[str], columns: list[str], target: str
) -> tuple[np.ndarray, np.ndarray]:
    """Features (``columns`` minus ``target``, float32) and target of a split's CSV files:
    from their binary copy when it matches them, else parsed from the CSVs (same values)."""
    where = files[0].parent.name
    try:
        x, y = load(files, header, columns, target)
    except StaleCopyError as exc:
        print(f"{where}: parsing the CSV (binary copy not used: {exc})", flush=True)
        return csvdata.read_matrix(files, columns, target)
    print(f"{where}: read the binary copy of {len(files)} CSV file(s)", flush=True)
    return x, y
