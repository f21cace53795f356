"""ValidateInput's checks against the data itself, cheap and before any job: the raw data
prefix exists and holds data files, and the first one's header (a ranged GET: the first
64 KiB of a CSV, gzip-decompressed for ``.csv.gz``; the footer of a Parquet file) has the
target column and every ``ignore_columns`` entry.

Parquet without pyarrow (the Lambda stays small): a Parquet file ends with its metadata
(Thrift compact protocol), its 4-byte length and ``PAR1``. :func:`parquet_columns` reads
just the schema's top-level names from it (~60 lines; pyarrow would add ~170 MB to the
Lambda package and seconds to its cold start).
"""

from __future__ import annotations

import csv
import io
import struct
import zlib
from collections.abc import Callable

from shared.adapters.s3 import S3, split_uri
from shared.errors import ArtifactError
from shared.models import PipelineInput

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES
HEADER_BYTES = 64 * 1024
_MAGIC = b"PAR1"


class UnreadableHeaderError(ValueError):
    """The first data object's header could not be read (the message says why)."""


def csv_header(head: bytes, gzipped: bool) -> list[str]:
    """The header row of a CSV from its first bytes (RFC 4180 quoting, via the csv module)."""
    if gzipped:
        try:
            head = zlib.decompressobj(wbits=31).decompress(head)
        except zlib.error as exc:
            raise UnreadableHeaderError(f"not gzip data: {exc}") from exc
    text = head.decode("utf-8-sig", "replace")
    if not text.strip():
        raise UnreadableHeaderError("it is empty (a header row is required)")
    if "\n" not in text and len(head) >= HEADER_BYTES:
        raise UnreadableHeaderError(f"its first line is longer than {HEADER_BYTES} bytes")
    first = next(csv.reader(io.StringIO(text)), [])
    return [name for name in first]


class _Compact:
    """Just enough of Thrift's compact protocol to walk FileMetaData."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def binary(self) -> bytes:
        size = self.varint()
        value = self.data[self.pos : self.pos + size]
        self.pos += size
        return value

    def skip(self, kind: int) -> None:
        if kind in (1, 2):  # bool true/false: no payload in a field
            return
        if kind == 3:
            self.pos += 1
        elif kind in (4, 5, 6):
            self.varint()
        elif kind == 7:
            self.pos += 8
        elif kind == 8:
            self.binary()
        elif kind in (9, 10):
            size, element = self.list_header()
            for _ in range(size):
                self.skip(element)
        elif kind == 11:
            size = self.varint()
            if size:
                types = self.byte()
                for _ in range(size):
                    self.skip(types >> 4)
                    self.skip(types & 0x0F)
        elif kind == 12:
            self.struct(lambda _field, k: self.skip(k))
        else:
            raise UnreadableHeaderError(f"unknown Thrift type {kind}")

    def list_header(self) -> tuple[int, int]:
        head = self.byte()
        size = head >> 4
        if size == 15:
            size = self.varint()
        return size, head & 0x0F

    def struct(self, on_field: Callable[[int, int], None]) -> None:
        last = 0
        while True:
            head = self.byte()
            if head == 0:
                return
            delta = head >> 4
            field = last + delta if delta else self.zigzag()
            last = field
            on_field(field, head & 0x0F)


def parquet_columns(footer: bytes) -> list[str]:
    """The top-level column names from a Parquet file's last bytes (metadata + length +
    ``PAR1``); UnreadableHeaderError when they are not a Parquet footer."""
    if len(footer) < 8 or footer[-4:] != _MAGIC:
        raise UnreadableHeaderError("it does not end with PAR1 (not a Parquet file)")
    (length,) = struct.unpack("<I", footer[-8:-4])
    if length + 8 > len(footer):
        raise UnreadableHeaderError(f"its metadata ({length} bytes) is larger than was read")
    reader = _Compact(footer[-8 - length : -8])
    elements: list[tuple[str, int]] = []  # (name, num_children) in schema order

    def schema_element() -> None:
        name: list[str] = [""]
        children: list[int] = [0]

        def on_field(field: int, kind: int) -> None:
            if field == 4 and kind == 8:
                name[0] = reader.binary().decode("utf-8", "replace")
            elif field == 5 and kind == 5:
                children[0] = reader.zigzag()
            else:
                reader.skip(kind)

        reader.struct(on_field)
        elements.append((name[0], children[0]))

    def file_metadata(field: int, kind: int) -> None:
        if field == 2 and kind == 9:
            size, _ = reader.list_header()
            for _ in range(size):
                schema_element()
        else:
            reader.skip(kind)

    try:
        reader.struct(file_metadata)
    except (IndexError, UnicodeDecodeError) as exc:
        raise UnreadableHeaderError("its metadata is not valid Parquet") from exc
    if not elements:
        raise UnreadableHeaderError("its metadata has no schema")
    names: list[str] = []  # the root's direct children: skip each child's own subtree
    index, remaining = 1, elements[0][1]
    while remaining and index < len(elements):
        name, children = elements[index]
        names.append(name)
        remaining -= 1
        index += 1
        pending = children
        while pending and index < len(elements):
            pending += elements[index][1] - 1
            index += 1
    return names


def header_of(s3: S3, uri: str) -> list[str]:
    lower = uri.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        tail = s3.read_range(uri, f"bytes=-{HEADER_BYTES}")
        if len(tail) >= 8 and tail[-4:] == _MAGIC:
            (length,) = struct.unpack("<I", tail[-8:-4])
            if length + 8 > len(tail):  # a large footer: read exactly it
                tail = s3.read_range(uri, f"bytes=-{length + 8}")
        return parquet_columns(tail)
    return csv_header(s3.read_range(uri, f"bytes=0-{HEADER_BYTES - 1}"), lower.endswith(".gz"))


def data_problems(config: PipelineInput, s3: S3) -> list[str]:
    """Problems with the raw data: where it is, and the first data file's columns."""
    bucket, prefix = split_uri(config.raw_data_uri)
    where = f"bucket {bucket!r}, prefix {prefix!r}"
    try:
        keys = s3.list_keys(config.raw_data_uri)
    except ArtifactError as exc:
        return [f"raw_data_uri: {exc} ({where}); create it or fix raw_data_uri"]
    if not keys:
        return [
            f"raw_data_uri: no objects under {config.raw_data_uri} ({where}); upload the data "
            "there (CSV, .csv.gz or Parquet) or fix raw_data_uri"
        ]
    data = [k for k in keys if k.lower().endswith(SUFFIXES)]
    if not data:
        return [
            f"raw_data_uri: no data files under {config.raw_data_uri} ({where}; found "
            f"{keys[:3]}); name them *.csv, *.csv.gz or *.parquet"
        ]
    first = f"s3://{bucket}/{data[0]}"
    try:
        columns = header_of(s3, first)
    except (ArtifactError, UnreadableHeaderError) as exc:
        return [f"raw_data_uri: cannot read the header of {first}: {exc}"]
    problems = []
    if config.target_column not in columns:
        problems.append(
            f"target_column: {config.target_column!r} is not a column of {first}; its "
            f"columns are {columns[:30]}; set target_column to one of them"
        )
    missing = [c for c in config.ignore_columns if c not in columns]
    if missing:
        problems.append(
            f"ignore_columns: {missing} are not columns of {first}; its columns are {columns[:30]}"
        )
    return problems
