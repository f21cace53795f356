"""Streaming a plain (uncompressed) CSV file with its pieces parsed in parallel.

pyarrow's streaming CSV reader (``pyarrow.csv.open_csv``: "Reading using this function
is always single-threaded", its documentation says, whatever ``ReadOptions.use_threads``)
parses one block after the other; ``pyarrow.dataset`` reads a CSV file with that same
streaming reader; and ``pyarrow.csv.read_csv``, which parses blocks in parallel, holds
the whole table (~520 MB at 150 MB of CSV, against the 3x-the-CSV memory goal).
So the file is cut here into pieces that end at a record boundary, and each piece
(the header row + its records) is parsed by ``pyarrow.csv.read_csv`` on a thread pool
(pyarrow releases the GIL), results taken in file order, a few pieces in flight: memory
stays bounded, and the rows and their order are the file's. At 1M rows x 20 (150 MB),
preprocess's read-ahead thread spent ~2.3 s of CPU parsing against ~1.1 s for the main
thread (hash, split, Parquet write, statistics): parsing was the critical path
(benchmarks/training_scale.py, figure 6). Measured on the shared 2-core machine under
load: the entrypoint took 2.33-2.55 s against 2.63-2.77 s with the streaming reader
(back to back, 3 pairs; same CPU time, ~3.6 s) and peaked at ~250 MB against ~300 MB;
figure 6's ratios were within that machine's noise.

Where a piece ends depends only on the data and the piece size (never on thread
timing), so the same file always gives the same batches. A newline ends a record when
an even number of quote characters precedes it (RFC 4180). That is how pyarrow's parser
reads a quote only where each quote is RFC 4180's: opening a field, closing it (before a
delimiter or line end) or doubled inside it; a piece holding any other quote (e.g.
``5"6``, which pyarrow reads literally), or with no line feed in it (a file ending its
lines with a lone CR), is read from its start to the end of the file by the streaming
reader instead. Any parse error is raised as the streaming reader over the whole file
raises it (that read is repeated to get it), so messages are unchanged.
"""

from __future__ import annotations

import copy
import io
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

_QUOTE = ord('"')
_BOUNDARY = np.frombuffer(b",\n\r", np.uint8)  # what may precede an opening quote


class _UnusualError(Exception):
    """A piece this module cannot cut safely: read the rest with the streaming reader."""


def workers() -> int:
    """Parsing threads: the cores (2 on the benchmark machine), at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def _checked_quotes(buf: bytes, end: int, eof: bool = False) -> None:
    """Raise _UnusualError unless every quote in ``buf[:end]`` (which starts outside a quoted
    field) opens a field, closes one before a delimiter or line end (or the end of the
    file: ``eof``), or is doubled."""
    data = np.frombuffer(buf, np.uint8, count=end)
    quotes = np.flatnonzero(data == _QUOTE)
    if not len(quotes):
        return
    if len(quotes) % 2:
        raise _UnusualError("odd quotes")
    opening, closing = quotes[0::2], quotes[1::2]
    # an opening quote: at the start, after a delimiter or a line end, or right after a
    # closing one (the second of a doubled quote)
    before = data[np.maximum(opening - 1, 0)]
    doubled_before = np.zeros(len(opening), bool)
    doubled_before[1:] = opening[1:] - 1 == closing[:-1]
    ok_open = (opening == 0) | np.isin(before, _BOUNDARY) | doubled_before
    # a closing quote: before a delimiter or a line end, or before a quote (doubled)
    after = data[np.minimum(closing + 1, end - 1)]
    doubled_after = np.zeros(len(closing), bool)
    doubled_after[:-1] = closing[:-1] + 1 == opening[1:]
    at_end = closing + 1 == end
    ok_close = ~at_end & np.isin(after, _BOUNDARY) | doubled_after | (at_end & eof)
    if not (ok_open.all() and ok_close.all()):
        raise _UnusualError("a quote pyarrow reads literally")


def _record_end(buf: bytes, last: bool) -> int:
    """The end (after its line feed) of the last (or, ``last=False``, the first) complete
    record in ``buf``, which starts outside a quoted field; 0 when there is none."""
    if buf.find(b'"') < 0:  # the common case: no quotes at all
        return buf.rfind(b"\n") + 1 if last else buf.find(b"\n") + 1
    total = buf.count(b'"')
    if last:
        pos = buf.rfind(b"\n")
        while pos >= 0 and (total - buf.count(b'"', pos)) % 2:
            pos = buf.rfind(b"\n", 0, pos)
    else:
        pos = buf.find(b"\n")
        while pos >= 0 and buf.count(b'"', 0, pos) % 2:
            pos = buf.find(b"\n", pos + 1)
    return pos + 1


class _Prefixed(io.RawIOBase):
    """``head`` then the rest of ``fh``, as one readable stream (for pyarrow)."""

    def __init__(self, head: bytes, fh: Any) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._fh = fh

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._head.nbytes:
            n = min(len(b), self._head.nbytes)
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return int(self._fh.readinto(b))


def _pieces(fh: Any, size: int) -> Iterator[tuple[bytes, bytes]]:
    """(header, piece) for each piece of ``fh``: whole records, about ``size`` bytes each
    (longer only when one record is). Raises _UnusualError (the file positioned at the start
    of the piece) where the streaming reader must take over."""
    buf = fh.read(size)
    header_end = _record_end(buf, last=False)
    if not header_end:
        raise _UnusualError("no line feed in the first piece")
    header, chunk = buf[:header_end], buf[header_end:]
    _checked_quotes(header, len(header))
    start, carry = header_end, b""
    # the first piece: the rest of the first read (as the streaming reader's first block)
    chunk = chunk or fh.read(size)
    while True:
        buf = carry + chunk if carry else chunk
        if not chunk:
            if buf:
                _checked_or_rewind(fh, buf, len(buf), start, eof=True)
                yield header, buf
            return
        end = _record_end(buf, last=True)
        if not end:
            if len(buf) > 4 * size:  # a record over 4 pieces long, or no line feeds
                fh.seek(start)
                raise _UnusualError("no record end")
            carry = buf
        else:
            _checked_or_rewind(fh, buf, end, start)
            yield header, buf[:end]
            carry = buf[end:]
            start += end
        chunk = fh.read(size)


def _checked_or_rewind(fh: Any, buf: bytes, end: int, start: int, eof: bool = False) -> None:
    try:
        _checked_quotes(buf, end, eof)
    except _UnusualError:
        fh.seek(start)
        raise


def _parse(header: bytes, piece: bytes, convert: pacsv.ConvertOptions) -> pa.Table:
    read = pacsv.ReadOptions(use_threads=False, block_size=len(header) + len(piece) + 1)
    # a BufferReader: pyarrow reads the bytes without the GIL (a BytesIO is read through
    # Python calls)
    source = pa.BufferReader(pa.py_buffer(header + piece))
    return pacsv.read_csv(source, read_options=read, convert_options=convert)


def _fixed(convert: pacsv.ConvertOptions, schema: pa.Schema) -> pacsv.ConvertOptions:
    """``convert`` with every column's type fixed to ``schema``'s (what the streaming reader
    does after its first block)."""
    fixed = copy.copy(convert)
    fixed.column_types = {f.name: f.type for f in schema} | dict(convert.column_types)
    return fixed


def iter_csv(
    path: Path, block_size: int, convert: pacsv.ConvertOptions
) -> Iterator[pa.RecordBatch]:
    """The record batches of a plain CSV file, as ``pyarrow.csv.open_csv(path,
    block_size, convert)`` would give its rows (batches cut differently); any parse error
    is the streaming reader's own (see the module docstring)."""
    try:
        yield from _parallel(path, block_size, convert)
    except pa.ArrowInvalid as exc:
        # The streaming reader's error for this file, with its wording (a row number when
        # it gives one): read it again that way up to the error.
        read = pacsv.ReadOptions(block_size=block_size)
        for _ in pacsv.open_csv(path, read_options=read, convert_options=convert):
            pass
        raise exc  # (not reached: the streaming reader raises too)


def _parallel(
    path: Path, block_size: int, convert: pacsv.ConvertOptions
) -> Iterator[pa.RecordBatch]:
    read = pacsv.ReadOptions(block_size=block_size)
    included = convert.include_columns
    inferred = not included or not set(convert.column_types) >= set(included)
    with path.open("rb") as fh, ThreadPoolExecutor(workers(), "csv-parse") as pool:
        pending: deque[Future[pa.Table]] = deque()
        pieces = _pieces(fh, block_size)
        header = b""
        try:
            for header, piece in pieces:
                if inferred:
                    # some types are inferred: from the first piece, then fixed (as the
                    # streaming reader does from its first block)
                    first = _parse(header, piece, convert)
                    convert, inferred = _fixed(convert, first.schema), False
                    yield from first.to_batches()
                    continue
                pending.append(pool.submit(_parse, header, piece, convert))
                if len(pending) > workers():
                    yield from pending.popleft().result().to_batches()
            while pending:
                yield from pending.popleft().result().to_batches()
        except _UnusualError:
            while pending:
                yield from pending.popleft().result().to_batches()
            if not header:  # from the first piece: the streaming reader, as it is
                yield from pacsv.open_csv(path, read_options=read, convert_options=convert)
                return
            rest = io.BufferedReader(_Prefixed(header, fh), buffer_size=1 << 20)
            yield from pacsv.open_csv(rest, read_options=read, convert_options=convert)
