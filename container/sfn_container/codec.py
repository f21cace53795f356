"""Request and response bodies of ``POST /invocations`` (no I/O: the server and tests use it).

Requests (the training columns minus the target; categorical columns as their raw
values, see :func:`decode`):

* ``text/csv``: one row per line, RFC 4180 (quoted fields may hold commas); an empty field
  is a missing value. An optional header row naming the features (in any order) maps the
  columns by name (so ``sample.csv`` from preprocess can be sent as is); without one the
  values are in the model's feature order.
* ``application/json``: ``{"instances": [...]}`` or a bare list of rows, each a list of
  values in feature order, ``{"features": [...]}``, or a record keyed by column name
  (``{"color": "red", "size": 3.5}``; an absent column is missing, an unknown one an
  error); one bare row ``[...]`` too; ``null`` is a missing value.

Responses (the request's ``Accept``; ``*/*`` or none: the request's content type):

* ``text/csv``: one prediction per line.
* ``application/json``: ``{"predictions": [p, ...]}``.

A prediction is the probability of class 1 (binary classification) or the value
(regression), in row order. Problems raise :class:`RequestError` with the HTTP status
(400 malformed body or wrong feature count, 406 unsupported Accept, 413 too large, 415
unsupported content type) and a message for the caller.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence

import numpy as np

CSV = "text/csv"
JSON = "application/json"
SUPPORTED = (CSV, JSON)
_MAX_REPORTED = 3


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def response_type(accept: str | None, content_type: str) -> str:
    """The media type to answer in: the first supported entry of ``Accept``."""
    if not accept:
        return content_type
    for entry in accept.split(","):
        kind = media_type(entry)
        if kind in SUPPORTED:
            return kind
        if kind in ("*/*", ""):
            return content_type
        if kind == "text/*":
            return CSV
        if kind == "application/*":
            return JSON
    raise RequestError(406, f"cannot answer in {accept!r}; supported: {', '.join(SUPPORTED)}")


def decode(
    body: bytes,
    content_type: str,
    features: list[str],
    categories: Mapping[str, Sequence[str]] | None = None,
) -> np.ndarray:
    """The request body as a float32 matrix of shape (rows, len(features)).

    ``categories``: per categorical feature, the training categories (the model's
    mapping): a raw value becomes its index; a value not among them becomes a missing value
    (NaN), which the model handles as it handles any missing value. Without it (an
    all-numeric model) every value must be a number."""
    return Decoder(features, categories)(body, content_type)


class Decoder:
    """:func:`decode` for one model: the feature index and category codes are built once
    (the server keeps one per worker), not on every request."""

    def __init__(
        self, features: list[str], categories: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        self.encoder = _Encoder(features, categories or {})

    def __call__(self, body: bytes, content_type: str) -> np.ndarray:
        if content_type == CSV:
            return _decode_csv(body, self.encoder)
        if content_type == JSON:
            return _decode_json(body, self.encoder)
        raise RequestError(
            415,
            f"unsupported content type {content_type or '(none)'!r}; use {' or '.join(SUPPORTED)}",
        )


class _Encoder:
    """Raw values (numbers, strings, None) -> one float32 row in the model's feature order."""

    def __init__(self, features: list[str], categories: Mapping[str, Sequence[str]]) -> None:
        self.features = list(features)
        self.width = len(features)
        self.index = {name: j for j, name in enumerate(features)}
        self.codes: list[dict[str, int] | None] = [
            {str(v): i for i, v in enumerate(categories[name])} if name in categories else None
            for name in features
        ]
        self.numeric = not categories

    def value(self, j: int, raw: object, row: int) -> float | str:
        """The float for column ``j``, or a problem message."""
        codes = self.codes[j]
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return math.nan
        if codes is not None:  # exact text, as in training; unseen -> missing
            key = raw if isinstance(raw, str) else _number_text(raw)
            code = codes.get(key) if key is not None else None
            return math.nan if code is None else float(code)
        if isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, int | float):
            return float(raw)
        if isinstance(raw, str):
            try:
                return float(raw)
            except ValueError:
                pass
        shown = repr(raw)[:40]
        return f"row {row + 1}, column {self.features[j]!r}: {shown} is not a number"

    def fill(self, out: np.ndarray, i: int, values: Sequence[object]) -> str | None:
        for j, raw in enumerate(values):
            value = self.value(j, raw, i)
            if isinstance(value, str):
                return value
            out[i, j] = value
        return None


def _number_text(raw: object) -> str | None:
    """A number sent for a categorical column, as the CSV text it was trained from."""
    if isinstance(raw, bool):
        return str(raw).lower()
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    if isinstance(raw, int | float):
        return str(raw)
    return None


def _decode_csv(body: bytes, encoder: _Encoder) -> np.ndarray:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"the CSV body is not UTF-8: {exc}") from exc
    rows = _csv_rows(text)
    order: list[int] | None = None
    if rows and [f.strip() for f in rows[0]] and _is_header(rows[0], encoder):
        order = _header_order([f.strip() for f in rows[0]], encoder)
        rows = rows[1:]
    if not rows:
        raise RequestError(400, "the request has no rows")
    width = encoder.width
    out = np.empty((len(rows), width), dtype=np.float32)
    problems: list[str] = []
    for i, row in enumerate(rows):
        if len(row) != width:
            problems.append(f"row {i + 1} has {len(row)} values; the model expects {width}")
        else:
            values = row if order is None else [row[k] for k in order]
            if encoder.numeric:
                try:
                    out[i] = [float(f) for f in values]
                    continue
                except ValueError:
                    pass
            problem = encoder.fill(out, i, values)
            if problem:
                problems.append(problem)
        if len(problems) >= _MAX_REPORTED:
            break
    if problems:
        raise RequestError(400, "; ".join(problems))
    return out


#: Characters that need the csv reader: quoting, line breaks other than one final "\n", NUL.
_CSV_SPECIAL = frozenset('"\r\x00')


def _csv_rows(text: str) -> list[list[str]]:
    """The non-blank rows of a CSV text.

    The stdlib csv reader (C): RFC 4180 quoting, embedded commas and newlines. One plain
    line (the usual single-row request: no quote, no CR, no NUL, at most a final newline)
    is split directly: the reader's result for it, without its per-call set-up (measured
    with ``benchmarks/serving.py``)."""
    line = text[:-1] if text.endswith("\n") else text
    if "\n" not in line and _CSV_SPECIAL.isdisjoint(line):
        row = line.split(",")
        return [row] if any(f.strip() for f in row) else []
    try:
        return [row for row in csv.reader(io.StringIO(text)) if any(f.strip() for f in row)]
    except csv.Error as exc:
        raise RequestError(400, f"the body is not valid CSV: {exc}") from exc


def _is_header(first: list[str], encoder: _Encoder) -> bool:
    """A first row naming columns: all its fields are feature names (in any order)."""
    names = [f.strip() for f in first]
    return bool(names) and all(n in encoder.index for n in names)


def _header_order(names: list[str], encoder: _Encoder) -> list[int]:
    missing = [n for n in encoder.features if n not in names]
    if missing or len(names) != encoder.width:
        raise RequestError(
            400,
            f"the CSV header lacks the model's features {missing}; expected "
            f"{encoder.features} (any order)",
        )
    position = {n: k for k, n in enumerate(names)}
    return [position[n] for n in encoder.features]


def _decode_json(body: bytes, encoder: _Encoder) -> np.ndarray:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"the body is not valid JSON: {exc}") from exc
    rows = doc.get("instances") if isinstance(doc, dict) else doc
    if not isinstance(rows, list):
        raise RequestError(
            400,
            'JSON must be {"instances": [...]} or a list of rows: lists of values in feature '
            "order, or records keyed by column name",
        )
    if rows and not isinstance(rows[0], list | dict):
        rows = [rows]  # one bare row
    if not rows:
        raise RequestError(400, "the request has no rows")
    width = encoder.width
    out = np.empty((len(rows), width), dtype=np.float32)
    problems: list[str] = []
    for i, given in enumerate(rows):
        row = given
        if isinstance(row, dict) and isinstance(row.get("features"), list) and len(row) == 1:
            row = row["features"]
        if isinstance(row, dict):
            unknown = [k for k in row if k not in encoder.index]
            if unknown:
                problems.append(
                    f"row {i + 1}: unknown columns {unknown[:5]}; the model's features are "
                    f"{encoder.features}"
                )
                continue
            values: list[object] = [row.get(name) for name in encoder.features]
        elif isinstance(row, list):
            if len(row) != width:
                problems.append(f"row {i + 1} has {len(row)} values; the model expects {width}")
                continue
            values = row
        else:
            problems.append(f"row {i + 1} is not a list of values or a record")
            continue
        problem = encoder.fill(out, i, values)
        if problem:
            problems.append(problem)
        if len(problems) >= _MAX_REPORTED:
            break
    if problems:
        raise RequestError(400, "; ".join(problems[:_MAX_REPORTED]))
    return out


def encode(predictions: np.ndarray, kind: str) -> bytes:
    values = predictions.astype(np.float64).tolist()
    if kind == CSV:
        return "".join(f"{v!r}\n" for v in values).encode()
    return json.dumps({"predictions": [v if math.isfinite(v) else None for v in values]}).encode()
