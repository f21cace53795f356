"""Request and response bodies of ``POST /invocations`` (no I/O: the server and tests use it).

Requests:

* ``text/csv``: one row per line, numbers separated by commas, no target column; an empty
  field is a missing value. An optional first line equal to the model's feature names is
  skipped (so ``sample.csv`` from preprocess can be sent as is).
* ``application/json``: ``{"instances": [[...], ...]}``, ``{"instances": [{"features":
  [...]}, ...]}``, a bare list of rows ``[[...], ...]`` or one row ``[...]``; ``null`` is a
  missing value.

Responses (the request's ``Accept``; ``*/*`` or none: the request's content type):

* ``text/csv``: one prediction per line.
* ``application/json``: ``{"predictions": [p, ...]}``.

A prediction is the probability of class 1 (binary classification) or the value
(regression), in row order. Problems raise :class:`RequestError` with the HTTP status
(400 malformed body or wrong feature count, 406 unsupported Accept, 413 too large, 415
unsupported content type) and a message for the caller.
"""

from __future__ import annotations

import json
import math

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


def decode(body: bytes, content_type: str, features: list[str]) -> np.ndarray:
    """The request body as a float32 matrix of shape (rows, len(features))."""
    if content_type == CSV:
        return _decode_csv(body, features)
    if content_type == JSON:
        return _decode_json(body, len(features))
    raise RequestError(
        415,
        f"unsupported content type {content_type or '(none)'!r}; use {' or '.join(SUPPORTED)}",
    )


def _decode_csv(body: bytes, features: list[str]) -> np.ndarray:
    width = len(features)
    lines = [line for line in body.replace(b"\r", b"").split(b"\n") if line.strip()]
    if lines and not _numeric_start(lines[0]):
        names = [
            n.strip().strip('"').strip() for n in lines[0].decode("utf-8", "replace").split(",")
        ]
        if names == features:
            lines = lines[1:]
    if not lines:
        raise RequestError(400, "the request has no rows")
    out = np.empty((len(lines), width), dtype=np.float32)
    problems: list[str] = []
    for i, line in enumerate(lines):
        fields = line.split(b",")
        if len(fields) != width:
            problems.append(f"row {i + 1} has {len(fields)} values; the model expects {width}")
        else:
            try:
                out[i] = [float(f) for f in fields]
            except ValueError:
                problem = _fill_row(out, i, fields)
                if problem:
                    problems.append(problem)
        if len(problems) >= _MAX_REPORTED:
            break
    if problems:
        raise RequestError(400, "; ".join(problems))
    return out


def _numeric_start(line: bytes) -> bool:
    first = line.split(b",", 1)[0].strip()
    if not first:
        return True
    try:
        float(first)
    except ValueError:
        return False
    return True


def _fill_row(out: np.ndarray, i: int, fields: list[bytes]) -> str | None:
    """Slow path for one CSV row: empty fields are missing; name the first non-number."""
    for j, field in enumerate(fields):
        text = field.strip()
        if not text:
            out[i, j] = np.nan
            continue
        try:
            out[i, j] = float(text)
        except ValueError:
            value = text.decode("utf-8", "replace")[:40]
            return f"row {i + 1}, column {j + 1}: {value!r} is not a number"
    return None


def _decode_json(body: bytes, width: int) -> np.ndarray:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"the body is not valid JSON: {exc}") from exc
    rows = doc.get("instances") if isinstance(doc, dict) else doc
    if not isinstance(rows, list):
        raise RequestError(400, 'JSON must be {"instances": [[...], ...]} or a list of rows')
    if rows and not isinstance(rows[0], (list, dict)):
        rows = [rows]  # one bare row
    rows = [r.get("features") if isinstance(r, dict) else r for r in rows]
    if not rows:
        raise RequestError(400, "the request has no rows")
    problems = []
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            problems.append(f"row {i + 1} is not a list of numbers")
        elif len(row) != width:
            problems.append(f"row {i + 1} has {len(row)} values; the model expects {width}")
        else:
            bad = next((j for j, v in enumerate(row) if v is not None and not _is_number(v)), None)
            if bad is not None:
                problems.append(f"row {i + 1}, column {bad + 1}: {row[bad]!r} is not a number")
        if len(problems) >= _MAX_REPORTED:
            break
    if problems:
        raise RequestError(400, "; ".join(problems))
    return np.array(rows, dtype=np.float32)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def encode(predictions: np.ndarray, kind: str) -> bytes:
    values = predictions.astype(np.float64).tolist()
    if kind == CSV:
        return "".join(f"{v!r}\n" for v in values).encode()
    return json.dumps({"predictions": [v if math.isfinite(v) else None for v in values]}).encode()
