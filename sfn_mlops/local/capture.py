"""Data capture for the local endpoints, in SageMaker's format (what Model Monitor and the
drift check read).

An endpoint whose config has ``DataCaptureConfig.EnableCapture`` records a sampled share
(``InitialSamplingPercentage``) of its successful invocations. Each is one JSON line::

    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                       "data": "1.0,2.0", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT",
                                        "data": "0.93", "encoding": "CSV"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceTime": "2026-12-01T11:14:23Z"},
     "eventVersion": "0"}

``encoding`` is CSV or JSON when the content type is one of the config's
``CaptureContentTypeHeader`` Csv/JsonContentTypes (the body as text), else BASE64.
``CaptureOptions`` decide which of endpointInput/endpointOutput a record has. Records are
buffered and written, as SageMaker does, in files under
``<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-fff>-<uuid>.jsonl`` (the hour
of the records' inference time, UTC) by a flusher thread, off the request path:
:meth:`Capture.record` only appends to a list.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import random
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FLUSH_SECONDS = 1.0
_DEFAULT_CSV = ("text/csv",)
_DEFAULT_JSON = ("application/json",)


@dataclass(frozen=True)
class CaptureSpec:
    """An endpoint config's DataCaptureConfig, parsed once."""

    bucket: str
    prefix: str
    percent: float
    inputs: bool
    outputs: bool
    csv_types: tuple[str, ...]
    json_types: tuple[str, ...]

    @classmethod
    def of(cls, config: dict[str, Any] | None) -> CaptureSpec | None:
        if not config or not config.get("EnableCapture", True):
            return None
        destination = str(config["DestinationS3Uri"])
        bucket, _, prefix = destination.removeprefix("s3://").partition("/")
        modes = {str(o.get("CaptureMode")) for o in config.get("CaptureOptions") or []}
        both = "InputAndOutput" in modes
        header = config.get("CaptureContentTypeHeader") or {}
        return cls(
            bucket=bucket,
            prefix=prefix.strip("/"),
            percent=float(config.get("InitialSamplingPercentage", 0)),
            inputs=both or "Input" in modes,
            outputs=both or "Output" in modes,
            csv_types=tuple(header.get("CsvContentTypes") or _DEFAULT_CSV),
            json_types=tuple(header.get("JsonContentTypes") or _DEFAULT_JSON),
        )

    def encode(self, content_type: str, body: bytes, mode: str) -> dict[str, str]:
        base = content_type.split(";", 1)[0].strip().lower()
        if base in self.csv_types or base in self.json_types:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                encoding = "CSV" if base in self.csv_types else "JSON"
                return {
                    "observedContentType": content_type,
                    "mode": mode,
                    "data": text,
                    "encoding": encoding,
                }
        return {
            "observedContentType": content_type,
            "mode": mode,
            "data": base64.b64encode(body).decode("ascii"),
            "encoding": "BASE64",
        }


def capture_key(spec: CaptureSpec, endpoint: str, variant: str, when: dt.datetime) -> str:
    """`<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-fff>-<uuid>.jsonl` (UTC)."""
    stamp = when.astimezone(dt.UTC)
    name = f"{stamp:%M-%S}-{stamp.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
    head = f"{spec.prefix}/" if spec.prefix else ""
    return f"{head}{endpoint}/{variant}/{stamp:%Y/%m/%d/%H}/{name}"


def record(
    spec: CaptureSpec,
    body: bytes,
    content_type: str,
    out: bytes,
    out_content_type: str,
    when: dt.datetime,
) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if spec.inputs:
        data["endpointInput"] = spec.encode(content_type, body, "INPUT")
    if spec.outputs:
        data["endpointOutput"] = spec.encode(out_content_type, out, "OUTPUT")
    return {
        "captureData": data,
        "eventMetadata": {
            "eventId": str(uuid.uuid4()),
            "inferenceTime": when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "eventVersion": "0",
    }


class Capture:
    """The local endpoints' capture buffer and its flusher thread (one per local cloud)."""

    def __init__(self, s3: Callable[[], Any], seed: int | None = None) -> None:
        self._s3 = s3  # the S3 client's factory (made when a flush needs it)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._pending: dict[tuple[CaptureSpec, str, str, str], list[str]] = defaultdict(list)
        self._wake = threading.Event()
        self._writing = 0  # records taken by a flush and not yet written
        self._closed = False
        self._thread: threading.Thread | None = None

    def record(
        self,
        spec: CaptureSpec | None,
        endpoint: str,
        variant: str,
        body: bytes,
        headers: dict[str, str],
        out: bytes,
        out_headers: dict[str, str],
    ) -> None:
        """Buffer one invocation (if sampled); cheap: the flusher does the S3 writes."""
        if spec is None or self._random.uniform(0, 100) >= spec.percent:
            return
        when = dt.datetime.now(dt.UTC)
        line = json.dumps(
            record(
                spec,
                body,
                _header(headers, "Content-Type") or "application/octet-stream",
                out,
                _header(out_headers, "Content-Type") or "application/octet-stream",
                when,
            ),
            separators=(",", ":"),
        )
        with self._lock:
            self._pending[(spec, endpoint, variant, f"{when:%Y%m%d%H}")].append(line)
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
                self._thread.start()

    def flush(self) -> list[str]:
        """Write what is buffered now; returns the keys written."""
        with self._lock:
            pending, self._pending = self._pending, defaultdict(list)
            taken = sum(len(lines) for lines in pending.values())
            self._writing += taken
        keys = []
        try:
            for (spec, endpoint, variant, _hour), lines in pending.items():
                first = json.loads(lines[0])["eventMetadata"]["inferenceTime"]
                when = dt.datetime.strptime(first, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
                key = capture_key(spec, endpoint, variant, when)
                self._s3().put_object(
                    Bucket=spec.bucket, Key=key, Body=("\n".join(lines) + "\n").encode()
                )
                keys.append(key)
        finally:
            with self._lock:
                self._writing -= taken
        return keys

    def unwritten(self) -> int:
        """Records captured and not yet in S3 (buffered, or being written by a flush)."""
        with self._lock:
            return self._writing + sum(len(lines) for lines in self._pending.values())

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the local cloud is shutting down, or S3 refused: retry later
                if self._closed:
                    return

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)
        with contextlib.suppress(Exception):  # moto already stopped: nothing to write to
            self.flush()


def _header(headers: dict[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None
